"""The sign-up ring builder's rings: how links combine, which groups are rings, determinism and scale."""

import random
import string
from datetime import datetime, timedelta

import pytest

from abuse.linking import (
    Link,
    LinkingPolicy,
    SignupFact,
    pair_weight,
    ring_score,
    rings_from_links,
    signup_links,
    signup_rings,
)
from tests.abuse.linking_helpers import CHROME, NAMES, POLICY, SCRIPT_UA, fact, people, signals

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
