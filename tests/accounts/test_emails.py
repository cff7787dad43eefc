"""The canonical mailbox of an address, and the disposable-domain policy."""

import pytest

from accounts.emails import canonical_email, email_domain, is_disposable_domain, split_email
from tests.accounts.helpers import IDN_ADDRESS_WITH_AN_OVERLONG_CANONICAL_FORM, IDN_ADDRESS_WITH_AN_OVERLONG_DOMAIN

# Four labels within 63 characters, 253 in all: the longest domain there is.
LONGEST_DOMAIN = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61


def test_canonical_email_folds_the_case_of_the_local_part_and_the_domain():
    assert canonical_email("Alice.Smith@Example.COM") == "alice.smith@example.com"


def test_canonical_email_ignores_surrounding_whitespace_and_a_trailing_dot_of_the_domain():
    assert canonical_email("  bob@example.com.  ") == "bob@example.com"


def test_canonical_email_removes_dots_and_plus_tags_from_gmail_addresses():
    assert canonical_email("John.Doe+moat@gmail.com") == "johndoe@gmail.com"


def test_canonical_email_maps_googlemail_to_gmail():
    assert canonical_email("John.Doe+moat@GoogleMail.com") == "johndoe@gmail.com"


@pytest.mark.parametrize(
    ("address", "canonical"),
    [
        ("Jane.Roe+signup@outlook.com", "jane.roe@outlook.com"),
        ("jane+x+y@hotmail.com", "jane@hotmail.com"),
        ("jane+tag@icloud.com", "jane@icloud.com"),
        ("jane+tag@fastmail.com", "jane@fastmail.com"),
        ("jane+tag@proton.me", "jane@proton.me"),
    ],
)
def test_canonical_email_strips_plus_tags_but_keeps_dots_on_other_tagging_providers(address, canonical):
    assert canonical_email(address) == canonical


def test_canonical_email_keeps_dots_and_plus_tags_on_custom_domains():
    assert canonical_email("First.Last+billing@Acme.example") == "first.last+billing@acme.example"


def test_canonical_email_removes_yahoo_hyphen_tags_but_keeps_dots_and_plus_signs():
    assert canonical_email("Jane.Roe-shopping@yahoo.com") == "jane.roe@yahoo.com"
    assert canonical_email("jane-x@ymail.com") == "jane@ymail.com"
    assert canonical_email("jane+x@yahoo.com") == "jane+x@yahoo.com"


def test_canonical_email_encodes_an_international_domain_as_idna():
    assert canonical_email("Anna@Bücher.de") == "anna@xn--bcher-kva.de"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "no-at-sign",
        "@example.com",
        "someone@",
        "someone@" + "a" * 64 + ".com",
        "someone@" + "中ü日ж本ñ語é한ß" * 3 + ".com",  # a 30-character label, over 63 once encoded
    ],
)
def test_canonical_email_raises_value_error_for_anything_that_is_not_an_address(value):
    with pytest.raises(ValueError):
        canonical_email(value)


def test_split_email_refuses_a_unicode_domain_that_is_over_253_characters_once_idna_encoded():
    with pytest.raises(ValueError, match="domain too long"):
        split_email(IDN_ADDRESS_WITH_AN_OVERLONG_DOMAIN)


def test_split_email_accepts_a_domain_of_253_characters_and_refuses_one_of_254():
    assert split_email("ada@" + LONGEST_DOMAIN) == ("ada", LONGEST_DOMAIN)
    assert split_email("ada@" + LONGEST_DOMAIN + ".") == ("ada", LONGEST_DOMAIN)
    with pytest.raises(ValueError, match="domain too long"):
        split_email("ada@" + LONGEST_DOMAIN + "d")


@pytest.mark.parametrize(
    "address",
    [IDN_ADDRESS_WITH_AN_OVERLONG_DOMAIN, IDN_ADDRESS_WITH_AN_OVERLONG_CANONICAL_FORM],
    ids=["overlong-domain", "overlong-canonical"],
)
def test_canonical_email_refuses_an_address_that_is_too_long_once_idna_encoded(address):
    with pytest.raises(ValueError):
        canonical_email(address)


def test_canonical_email_accepts_254_characters_and_refuses_255():
    domain = "example.com"
    longest = "a" * (254 - len("@" + domain)) + "@" + domain

    assert canonical_email(longest) == longest
    with pytest.raises(ValueError, match="address too long"):
        canonical_email("a" + longest)


def test_split_email_returns_the_local_part_as_typed_and_the_lower_cased_domain():
    assert split_email("Mixed.Case@EXAMPLE.org") == ("Mixed.Case", "example.org")


def test_email_domain_is_the_lower_cased_domain():
    assert email_domain("someone@Sub.Example.ORG") == "sub.example.org"


def test_is_disposable_domain_recognises_a_listed_domain_in_any_case():
    assert is_disposable_domain("mailinator.com") is True
    assert is_disposable_domain("MAILINATOR.com") is True


def test_is_disposable_domain_recognises_subdomains_of_a_listed_domain():
    assert is_disposable_domain("inbox.mailinator.com") is True
    assert is_disposable_domain("a.b.mailinator.com") is True


def test_is_disposable_domain_is_false_for_ordinary_domains():
    assert is_disposable_domain("example.com") is False
    assert is_disposable_domain("gmail.com") is False
    # A bare top-level domain is never matched on its own.
    assert is_disposable_domain("com") is False


def test_is_disposable_domain_honours_the_allowlist_for_the_domain_and_its_subdomains(settings):
    settings.DISPOSABLE_EMAIL_ALLOWLIST = ["Mailinator.com"]

    assert is_disposable_domain("mailinator.com") is False
    assert is_disposable_domain("team.mailinator.com") is False
    assert is_disposable_domain("yopmail.com") is True
