"""The sign-up ring builder: which signals link two organizations, how strongly, and which groups are rings."""

import random
import string
from datetime import UTC, datetime, timedelta

import pytest

from abuse.linking import (
    Link,
    LinkingPolicy,
    RingCandidate,
    SignupFact,
    pair_weight,
    ring_score,
    rings_from_links,
    signup_links,
    signup_rings,
)

POLICY = LinkingPolicy()
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
SCRIPT_UA = "python-requests/2.32.3"


def fact(org, email, *, ip=None, ua="", minutes=0.0, card=None):
    """A sign-up that shares nothing with any other unless told: no address, no user agent, no card."""
    return SignupFact(
        organization_id=org,
        email=email,
        ip_address=ip,
        user_agent=ua,
        created_at=T0 + timedelta(minutes=minutes),
        card_fingerprint=card,
    )


def links_of(*facts, policy=POLICY):
    return signup_links(list(facts), policy=policy)


def signals(links):
    return [(link.low, link.high, link.signal) for link in links]


NAMES = ["ann", "bob", "cid", "dan", "eve", "fay", "gus", "hal", "ida", "joe"]


def people(domain=None, *, ip=None, ua="", spacing=1.0, count=10):
    """Distinct honest names, one after another; each on its own domain unless given one, `ip` a function of n."""
    return [
        fact(
            n,
            f"{name}@{domain or name + '.example'}",
            ip=ip(n) if ip else None,
            ua=ua,
            minutes=spacing * n,
        )
        for n, name in enumerate(NAMES[:count], 1)
    ]


# --- Addresses and networks ----------------------------------------------------------------------------------------


def test_the_same_address_minutes_apart_links_strongly():
    links = links_of(
        fact(1, "ann@a.example", ip="203.0.113.7"),
        fact(2, "bob@b.example", ip="203.0.113.7", minutes=12),
    )
    assert links == [Link(1, 2, "same_ip", 0.697, "both signed up from 203.0.113.7 within 12 minutes")]


def test_the_same_address_counts_less_the_further_apart_the_sign_ups_and_not_after_a_day():
    assert links_of(
        fact(1, "ann@a.example", ip="203.0.113.7"),
        fact(2, "bob@b.example", ip="203.0.113.7", minutes=12 * 60),
    ) == [Link(1, 2, "same_ip", 0.5, "both signed up from 203.0.113.7 within 12 hours")]
    assert (
        links_of(
            fact(1, "ann@a.example", ip="203.0.113.7"),
            fact(2, "bob@b.example", ip="203.0.113.7", minutes=24 * 60 + 1),
        )
        == []
    )


def test_a_shared_slash_24_within_hours_links_weakly_with_both_addresses_as_evidence():
    links = links_of(
        fact(1, "ann@a.example", ip="203.0.113.7"),
        fact(2, "bob@b.example", ip="203.0.113.9", minutes=40),
    )
    assert links == [
        Link(
            1, 2, "same_subnet", 0.25, "both signed up from 203.0.113.0/24 within 40 minutes (203.0.113.7, 203.0.113.9)"
        )
    ]


def test_a_shared_slash_24_does_not_link_after_six_hours_nor_neighbouring_networks():
    assert (
        links_of(fact(1, "ann@a.example", ip="203.0.113.7"), fact(2, "bob@b.example", ip="203.0.113.9", minutes=361))
        == []
    )
    assert links_of(fact(1, "ann@a.example", ip="203.0.113.7"), fact(2, "bob@b.example", ip="203.0.114.7")) == []


def test_ipv6_sign_ups_share_a_slash_64():
    links = links_of(
        fact(1, "ann@a.example", ip="2001:db8:1:2::10"),
        fact(2, "bob@b.example", ip="2001:db8:1:2:ffff::1", minutes=5),
        fact(3, "cid@c.example", ip="2001:db8:1:3::10", minutes=5),
    )
    assert links == [
        Link(
            1,
            2,
            "same_subnet",
            0.25,
            "both signed up from 2001:db8:1:2::/64 within 5 minutes (2001:db8:1:2::10, 2001:db8:1:2:ffff::1)",
        )
    ]


def test_an_ipv4_client_seen_through_a_dual_stack_socket_is_the_same_address():
    links = links_of(
        fact(1, "ann@a.example", ip="::ffff:203.0.113.7"),
        fact(2, "bob@b.example", ip="203.0.113.7", minutes=1),
    )
    assert signals(links) == [(1, 2, "same_ip")]


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.5", "172.16.4.2", "192.168.1.20", "169.254.10.1", "100.64.0.1", "::1", "fe80::1", "fd00::1"],
)
def test_private_loopback_and_link_local_addresses_link_nobody(address):
    # Everything that came through an unconfigured proxy (or a development server) has the proxy's address.
    facts = people(ip=lambda n: address)
    assert signup_links(facts, policy=POLICY) == []
    assert signup_rings(facts, policy=POLICY) == []


@pytest.mark.parametrize("address", [None, "", "not-an-address", "203.0.113.300", "unknown"])
def test_missing_or_invalid_addresses_are_ignored(address):
    assert links_of(fact(1, "ann@a.example", ip=address), fact(2, "bob@b.example", ip=address, minutes=1)) == []


# --- User agents ---------------------------------------------------------------------------------------------------


def test_the_same_user_agent_within_fifteen_minutes_is_a_weak_link():
    links = links_of(fact(1, "ann@a.example", ua=SCRIPT_UA), fact(2, "bob@b.example", ua=SCRIPT_UA, minutes=5))
    assert links == [
        Link(
            1,
            2,
            "same_user_agent_burst",
            0.15,
            "both signed up with the same user agent within 5 minutes (python-requests/2.32.3)",
        )
    ]


def test_the_same_user_agent_further_apart_or_an_empty_one_is_no_link():
    assert links_of(fact(1, "ann@a.example", ua=SCRIPT_UA), fact(2, "bob@b.example", ua=SCRIPT_UA, minutes=16)) == []
    assert links_of(fact(1, "ann@a.example", ua=""), fact(2, "bob@b.example", ua="  ", minutes=1)) == []


def test_a_long_user_agent_is_shortened_in_the_evidence():
    agent = "Agent/" + "x" * 300
    [link] = links_of(fact(1, "ann@a.example", ua=agent), fact(2, "bob@b.example", ua=agent, minutes=1))
    assert link.evidence == f"both signed up with the same user agent within 1 minute ({agent[:119]}…)"


# --- Email addresses -----------------------------------------------------------------------------------------------


def test_numbered_addresses_on_one_domain_link_strongly_however_far_apart():
    links = links_of(fact(1, "user1@x.com"), fact(2, "user2@x.com", minutes=10 * 24 * 60))
    assert links == [Link(1, 2, "email_pattern", 0.6, "numbered addresses on x.com: user1@x.com, user2@x.com")]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("user1@x.com", "user17@x.com"),
        ("john@x.com", "john2@x.com"),
        ("User.1@X.com", "user_2@x.com"),
        ("user01@x.com", "user1@x.com"),
    ],
)
def test_a_stem_with_different_numbers_is_a_pattern(first, second):
    assert signals(links_of(fact(1, first), fact(2, second, minutes=1))) == [(1, 2, "email_pattern")]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("alice@acme.com", "bob@acme.com"),  # a company's employees: distinct names, no number
        ("ab1@x.com", "ab2@x.com"),  # a stem of two letters is nobody's scheme
        ("12@x.com", "13@x.com"),
        ("user1@x.com", "user2@y.com"),  # the same stem on two domains
        ("john.smith@x.com", "john@x.com"),
        ("not an address", "user2@x.com"),
    ],
)
def test_distinct_names_short_stems_and_other_domains_are_no_pattern(first, second):
    assert links_of(fact(1, first), fact(2, second, minutes=1)) == []


def test_numbered_addresses_on_a_big_free_provider_count_less_and_only_within_a_day():
    assert links_of(fact(1, "user1@gmail.com"), fact(2, "user2@gmail.com", minutes=60)) == [
        Link(
            1,
            2,
            "email_pattern",
            0.4,
            "numbered addresses on gmail.com within 60 minutes: user1@gmail.com, user2@gmail.com",
        )
    ]
    assert links_of(fact(1, "user1@gmail.com"), fact(2, "user2@gmail.com", minutes=25 * 60)) == []


def test_numbered_addresses_on_a_disposable_service_count_as_on_a_free_provider():
    [link] = links_of(fact(1, "user1@mailinator.com"), fact(2, "user2@mailinator.com", minutes=60))
    assert (link.signal, link.weight) == ("email_pattern", 0.4)


@pytest.mark.parametrize(
    ("first", "second", "mailbox"),
    [
        ("ann+1@acme.io", "ann+2@acme.io", "ann@acme.io"),  # any domain: servers deliver +tags to the base mailbox
        ("Ann+moat@Outlook.com", "ann@outlook.com", "ann@outlook.com"),
        ("jane-x@yahoo.com", "jane-y@yahoo.com", "jane@yahoo.com"),
    ],
)
def test_tagged_addresses_of_one_mailbox_are_a_plus_address_link(first, second, mailbox):
    links = links_of(fact(1, first), fact(2, second, minutes=20 * 24 * 60))
    assert links == [
        Link(1, 2, "plus_address", 0.9, f"{first} and {second} are one mailbox, {mailbox}, with different tags")
    ]


def test_dots_in_a_gmail_local_part_are_one_mailbox():
    links = links_of(fact(1, "j.ohn@gmail.com"), fact(2, "john+x@googlemail.com", minutes=20 * 24 * 60))
    assert links == [
        Link(
            1,
            2,
            "dotted_local_part",
            0.9,
            "j.ohn@gmail.com and john+x@googlemail.com are one mailbox, john@gmail.com: the provider ignores dots",
        )
    ]


def test_dots_matter_on_providers_that_keep_them_and_hyphens_outside_yahoo():
    assert links_of(fact(1, "j.ohn@outlook.com"), fact(2, "john@outlook.com", minutes=1)) == []
    assert links_of(fact(1, "jean-luc@x.com"), fact(2, "jean-paul@x.com", minutes=1)) == []


def test_two_disposable_domains_within_the_burst_window_are_a_weak_link():
    links = links_of(fact(1, "kq7@mailinator.com"), fact(2, "zz@guerrillamail.com", minutes=10))
    assert links == [
        Link(
            1,
            2,
            "disposable_domain",
            0.15,
            "both used disposable email domains within 10 minutes (mailinator.com, guerrillamail.com)",
        )
    ]


def test_disposable_domains_further_apart_or_only_one_of_them_are_no_link():
    assert links_of(fact(1, "kq7@mailinator.com"), fact(2, "zz@guerrillamail.com", minutes=31)) == []
    assert links_of(fact(1, "kq7@mailinator.com"), fact(2, "zz@acme.com", minutes=1)) == []


# --- Bursts and cards ----------------------------------------------------------------------------------------------


def test_five_sign_ups_from_one_network_within_half_an_hour_are_a_burst():
    facts = people(ip=lambda n: f"203.0.113.{n}", spacing=5, count=5)
    links = signup_links(facts, policy=POLICY)
    bursts = [link for link in links if link.signal == "signup_burst"]
    # All five within 20 minutes: every pair is in the burst.
    assert [(link.low, link.high) for link in bursts] == [
        (1, 2), (1, 3), (1, 4), (1, 5), (2, 3), (2, 4), (2, 5), (3, 4), (3, 5), (4, 5)
    ]  # fmt: skip
    assert {link.evidence for link in bursts} == {"both among 5 sign-ups from 203.0.113.0/24 within 20 minutes"}
    assert {link.weight for link in bursts} == {0.2}


def test_four_sign_ups_are_no_burst():
    facts = people(ip=lambda n: f"203.0.113.{n}", spacing=5, count=4)
    assert {link.signal for link in signup_links(facts, policy=POLICY)} == {"same_subnet"}


def test_a_burst_of_addresses_on_one_company_domain_counts_but_not_on_a_free_provider():
    company = people("robotics.example", spacing=4, count=5)
    assert {link.evidence for link in signup_links(company, policy=POLICY)} == {
        "both among 5 sign-ups with addresses on robotics.example within 16 minutes"
    }
    free = people("gmail.com", count=5)
    assert signup_links(free, policy=POLICY) == []


def test_one_card_links_accounts_of_any_age_and_alone_makes_a_ring():
    facts = [
        fact(1, "ann@a.example", card="fp_Q1w2E3"),
        fact(2, "bob@b.example", card="fp_Q1w2E3", minutes=90 * 24 * 60),
    ]
    links = signup_links(facts, policy=POLICY)
    assert links == [Link(1, 2, "same_card", 0.95, "both pay with the same card (Stripe fingerprint fp_Q1w2E3)")]
    assert signup_rings(facts, policy=POLICY) == [RingCandidate(members=(1, 2), links=tuple(links), score=95.0)]


def test_an_organization_is_never_linked_to_itself():
    facts = [fact(1, "ann@acme.io", ip="203.0.113.7", ua=CHROME), fact(1, "ann+2@acme.io", ip="203.0.113.7", ua=CHROME)]
    assert signup_links(facts, policy=POLICY) == []


def test_a_pair_linked_by_several_sign_ups_keeps_one_link_per_signal_at_its_strongest():
    facts = [
        fact(1, "ann@a.example", ip="203.0.113.7"),
        fact(2, "bob@b.example", ip="203.0.113.7", minutes=600),
        fact(2, "cid@b.example", ip="203.0.113.7", minutes=3),
    ]
    assert signup_links(facts, policy=POLICY) == [
        Link(1, 2, "same_ip", 0.699, "both signed up from 203.0.113.7 within 3 minutes")
    ]


# --- Combining evidence --------------------------------------------------------------------------------------------


def test_pair_weight_is_a_noisy_or_that_counts_each_signal_once():
    subnet = Link(1, 2, "same_subnet", 0.25, "")
    agent = Link(1, 2, "same_user_agent_burst", 0.15, "")
    assert pair_weight([subnet, agent]) == 0.3625
    assert pair_weight([subnet, subnet, agent]) == 0.3625
    assert pair_weight([Link(1, 2, "same_ip", 0.5, ""), Link(1, 2, "same_ip", 0.7, "")]) == 0.7
    assert pair_weight([]) == 0.0


def test_ring_score_grows_with_the_links_strength_and_the_number_of_members():
    assert ring_score([0.95], 2) == 95.0
    assert ring_score([0.6], 2) == 60.0
    assert ring_score([0.6, 0.6], 3) == 68.0
    assert ring_score([0.55] * 10, 5) == 77.0
    assert ring_score([0.55] * 3, 4) == 71.2


@pytest.mark.parametrize(
    "facts",
    [
        # Ten people with the same browser within minutes.
        people(ua=CHROME),
        # Ten people from one /24 over an afternoon.
        people(ip=lambda n: f"203.0.113.{n}", spacing=20),
        # Ten people on throwaway domains within minutes.
        people("mailinator.com"),
        # A classroom: eight students from one /24 in one burst, same browser, their own names.
        people("uni.example", ip=lambda n: f"203.0.113.{n}", ua=CHROME, spacing=3, count=8),
    ],
    ids=["user-agent", "subnet", "disposable", "subnet+burst+user-agent"],
)
def test_weak_signals_alone_make_no_ring(facts):
    links = signup_links(facts, policy=POLICY)
    assert links  # they are linked...
    assert signup_rings(facts, policy=POLICY) == []  # ...but too weakly to be anyone's ring


def test_a_lone_mid_strength_pair_is_no_ring_but_three_accounts_are():
    pair = [fact(1, "ann@a.example", ip="203.0.113.7"), fact(2, "bob@b.example", ip="203.0.113.7", minutes=8 * 60)]
    assert [link.weight for link in signup_links(pair, policy=POLICY)] == [0.567]
    assert signup_rings(pair, policy=POLICY) == []
    trio = [*pair, fact(3, "cid@c.example", ip="203.0.113.7", minutes=16 * 60)]
    [ring] = signup_rings(trio, policy=POLICY)
    # (1, 3) are 16 hours apart (0.433): evidence in the ring, but not one of the pairs that connect it.
    assert (ring.members, ring.score) == ((1, 2, 3), 65.4)
    assert [(link.low, link.high, link.weight) for link in ring.links] == [(1, 2, 0.567), (1, 3, 0.433), (2, 3, 0.567)]


def sybil_ring(orgs, *, stem, domain, network, ua=SCRIPT_UA, start=0.0, spacing=12.0):
    """Accounts opened one after another from one /24, with numbered addresses."""
    return [
        fact(org, f"{stem}{n}@{domain}", ip=f"{network}.{10 + n}", ua=ua, minutes=start + spacing * (n - 1))
        for n, org in enumerate(orgs, 1)
    ]


def test_five_accounts_from_one_slash_24_with_numbered_addresses_within_an_hour_are_one_ring():
    facts = sybil_ring([101, 102, 103, 104, 105], stem="user", domain="gmail.com", network="203.0.113")

    [ring] = signup_rings(facts, policy=POLICY)

    assert ring.members == (101, 102, 103, 104, 105)
    pairs = [(a, b) for a in ring.members for b in ring.members if a < b]
    # Every pair shares the /24 and the numbering; the sign-ups 12 minutes apart also share the script's agent.
    consecutive = [(101, 102), (102, 103), (103, 104), (104, 105)]
    assert signals(ring.links) == sorted(
        [(a, b, "email_pattern") for a, b in pairs]
        + [(a, b, "same_subnet") for a, b in pairs]
        + [(a, b, "same_user_agent_burst") for a, b in consecutive]
    )
    assert all(link.evidence for link in ring.links)
    assert [link.evidence for link in ring.links if (link.low, link.high) == (101, 105)] == [
        "numbered addresses on gmail.com within 48 minutes: user1@gmail.com, user5@gmail.com",
        "both signed up from 203.0.113.0/24 within 48 minutes (203.0.113.11, 203.0.113.15)",
    ]
    # Consecutive pairs 0.6175, the others 0.55: mean 0.577, five members.
    assert ring.score == 78.3


def test_a_burst_adds_to_the_ring_evidence():
    facts = sybil_ring([1, 2, 3, 4, 5], stem="agent", domain="x.com", network="203.0.113", spacing=5)
    [ring] = signup_rings(facts, policy=POLICY)
    assert "both among 5 sign-ups from 203.0.113.0/24 within 20 minutes" in {link.evidence for link in ring.links}
    # Pattern, /24 and burst on every pair (0.76), the agent too on all but (1, 5) (0.796): mean 0.7924.
    assert ring.score == 89.4


def test_two_rings_at_the_same_time_with_the_same_agent_stay_apart():
    first = sybil_ring([1, 2, 3, 4, 5], stem="user", domain="gmail.com", network="203.0.113")
    second = sybil_ring([6, 7, 8, 9, 10], stem="bot", domain="outlook.com", network="198.51.100", start=3)

    rings = signup_rings(first + second, policy=POLICY)

    assert [ring.members for ring in rings] == [(1, 2, 3, 4, 5), (6, 7, 8, 9, 10)]
    # Across the rings only the agent is shared, and only within minutes: no link there reaches the threshold.
    across = [link for link in signup_links(first + second, policy=POLICY) if (link.low <= 5) != (link.high <= 5)]
    assert {link.signal for link in across} == {"same_user_agent_burst"}


OFFICE_NAMES = [
    "alice", "bruno", "chloe", "dmitri", "elena", "farid", "grace", "hiro", "ines", "jonas",
    "kemal", "lena", "marco", "nadia", "oscar", "priya", "quentin", "rosa", "sven", "tara",
    "umar", "vera", "walid", "ximena", "yusuf", "zoe", "amara", "bastian", "carmen", "dario",
]  # fmt: skip


def test_an_office_of_thirty_on_one_slash_24_with_one_browser_over_a_week_is_no_ring():
    # Six a day for five days, two of them minutes apart each morning and afternoon ("sign up too").
    day_offsets = [0, 10, 120, 270, 360, 365]
    facts = [
        fact(
            index + 1,
            f"{name}@acme.com",
            ip=f"203.0.113.{20 + index}",
            ua=CHROME,
            minutes=(index // 6) * 24 * 60 + day_offsets[index % 6],
        )
        for index, name in enumerate(OFFICE_NAMES)
    ]
    links = signup_links(facts, policy=POLICY)

    assert {link.signal for link in links} == {"same_subnet", "same_user_agent_burst"}
    by_pair = {}
    for link in links:
        by_pair.setdefault((link.low, link.high), []).append(link)
    assert max(pair_weight(pair) for pair in by_pair.values()) == 0.3625
    assert signup_rings(facts, policy=POLICY) == []


# --- Determinism, validation, scale --------------------------------------------------------------------------------


def test_the_output_is_sorted_and_does_not_depend_on_the_order_of_the_facts():
    facts = (
        sybil_ring([1, 2, 3, 4, 5], stem="user", domain="gmail.com", network="203.0.113")
        + sybil_ring([6, 7, 8], stem="bot", domain="x.com", network="198.51.100", start=3)
        + [fact(9, "ann@a.example", card="fp_1"), fact(10, "bob@b.example", card="fp_1", minutes=99)]
    )
    links = signup_links(facts, policy=POLICY)
    rings = signup_rings(facts, policy=POLICY)
    assert links == sorted(links, key=lambda link: (link.low, link.high, link.signal))
    assert [ring.members for ring in rings] == [(9, 10), (6, 7, 8), (1, 2, 3, 4, 5)]  # highest score first
    for seed in range(5):
        shuffled = facts[:]
        random.Random(seed).shuffle(shuffled)
        assert signup_links(shuffled, policy=POLICY) == links
        assert signup_rings(shuffled, policy=POLICY) == rings


def test_rings_from_links_accepts_the_links_the_pipeline_already_computed():
    facts = sybil_ring([1, 2, 3, 4, 5], stem="user", domain="gmail.com", network="203.0.113")
    links = signup_links(facts, policy=POLICY)
    assert rings_from_links(links, policy=POLICY) == signup_rings(facts, policy=POLICY)


def test_thresholds_come_from_the_policy():
    facts = [fact(1, "ann@a.example", ip="203.0.113.7"), fact(2, "bob@b.example", ip="203.0.113.9", minutes=1)]
    assert signup_rings(facts, policy=POLICY) == []
    [ring] = signup_rings(facts, policy=LinkingPolicy(ring_link_threshold=0.2, ring_score_threshold=20))
    assert (ring.members, ring.score) == ((1, 2), 25.0)


@pytest.mark.parametrize(
    "overrides",
    [
        {"ip_window": timedelta(0)},
        {"burst_size": 1},
        {"lookback": 0},
        {"ring_link_threshold": 0},
        {"ring_score_threshold": 101},
    ],
)
def test_a_policy_with_impossible_values_is_refused(overrides):
    with pytest.raises(ValueError):
        LinkingPolicy(**overrides)


def test_a_naive_sign_up_time_is_refused():
    naive = SignupFact(1, "ann@a.example", None, "", datetime(2025, 3, 3, 9, 0))  # noqa: DTZ001
    with pytest.raises(ValueError, match="naive created_at"):
        signup_links([naive], policy=POLICY)


PUBLIC_FIRST_OCTETS = [23, 31, 45, 51, 62, 77, 81, 88, 91, 94, 109, 145, 151, 176, 185, 188, 193, 212, 213, 217]
FREE_PROVIDERS = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me"]
BROWSERS = [CHROME] * 14 + [f"Mozilla/5.0 Browser/{n}" for n in range(6)]


def honest_crowd(n, *, rng, first_org):
    """A month of honest sign-ups: random names (no digits), public addresses all over, common browsers."""
    month = 30 * 24 * 60
    facts = []
    for org in range(first_org, first_org + n):
        name = "".join(rng.choices(string.ascii_lowercase, k=9))
        domain = rng.choice(FREE_PROVIDERS) if rng.random() < 0.7 else f"company-{rng.randrange(3000)}.example"
        ip = ".".join(str(part) for part in (rng.choice(PUBLIC_FIRST_OCTETS), *(rng.randrange(256) for _ in range(3))))
        facts.append(fact(org, f"{name}@{domain}", ip=ip, ua=rng.choice(BROWSERS), minutes=rng.uniform(0, month)))
    return facts


def test_twenty_thousand_sign_ups_yield_exactly_the_planted_rings():
    rng = random.Random(20250303)
    crowd = honest_crowd(19_741, rng=rng, first_org=10_000)
    # A campus /24: 240 students over the month, and a class of eight that signs up together on the first day.
    campus = [
        fact(40_000 + n, f"student{''.join(rng.choices(string.ascii_lowercase, k=6))}@uni.example",
             ip=f"198.51.100.{n + 1}", ua=CHROME, minutes=rng.uniform(0, 30 * 24 * 60))
        for n in range(240)
    ] + [
        fact(40_500 + n, f"{name}@uni.example", ip=f"198.51.100.{241 + n}", ua=CHROME, minutes=3 * n)
        for n, name in enumerate(NAMES[:8])
    ]  # fmt: skip
    ring_a = sybil_ring([1, 2, 3, 4, 5], stem="user", domain="gmail.com", network="203.0.113", start=5000)
    ring_b = [
        fact(6 + n, f"{name}@{name}.example", card="fp_shared", minutes=n * 3 * 24 * 60)
        for n, name in enumerate(["kim", "lou", "max"])
    ]
    ring_c = [
        fact(9, "ops.team@gmail.com", ip="45.1.2.3", minutes=100),
        fact(10, "opsteam+2@gmail.com", ip="91.4.5.6", minutes=9000),
        fact(11, "o.p.s.team+3@googlemail.com", ip="185.7.8.9", minutes=20000),
    ]
    facts = crowd + campus + ring_a + ring_b + ring_c
    assert len(facts) == 20_000
    random.Random(1).shuffle(facts)

    rings = signup_rings(facts, policy=POLICY)

    assert sorted(ring.members for ring in rings) == [(1, 2, 3, 4, 5), (6, 7, 8), (9, 10, 11)]
