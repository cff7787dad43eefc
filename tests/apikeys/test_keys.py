from django.conf import settings

from apikeys.keys import display_fragment, generate_raw_key, hash_key, is_well_formed


def test_a_raw_key_is_the_prefix_and_256_bits_of_url_safe_randomness():
    raw = generate_raw_key()
    assert raw.startswith(settings.API_KEY_PREFIX)
    assert len(raw) == len(settings.API_KEY_PREFIX) + 43
    assert is_well_formed(raw)


def test_two_keys_never_repeat():
    assert len({generate_raw_key() for _ in range(200)}) == 200


def test_the_stored_hash_is_sha256_hex_and_the_display_shows_only_the_last_four_characters():
    raw = generate_raw_key()
    assert len(hash_key(raw)) == 64
    assert hash_key(raw) == hash_key(raw)
    assert display_fragment(raw) == f"{settings.API_KEY_PREFIX}…{raw[-4:]}"
    assert raw[len(settings.API_KEY_PREFIX) : -4] not in display_fragment(raw)


def test_malformed_keys_are_recognised_without_a_lookup():
    raw = generate_raw_key()
    for bad in [
        "",
        "Bearer",
        raw[:-1],
        raw + "x",
        "other_" + raw[len(settings.API_KEY_PREFIX) :],
        raw[:-1] + "!",
    ]:
        assert not is_well_formed(bad)
