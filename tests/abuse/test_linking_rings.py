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
        "numbered addresses on gmail.com within 48 minutes, one template (user{n}): user1@gmail.com, user5@gmail.com",
        "both signed up from 203.0.113.0/24 within 48 minutes (203.0.113.11, 203.0.113.15)",
    ]
    # Consecutive pairs 0.685 (the program's agent: 0.3), the others 0.55: mean 0.604, five members.
    assert (ring.score, ring.level) == (79.7, "certain")


def test_a_burst_adds_to_the_ring_evidence():
    facts = sybil_ring([1, 2, 3, 4, 5], stem="agent", domain="x.com", network="203.0.113", spacing=5)
    [ring] = signup_rings(facts, policy=POLICY)
    assert (
        "both among 5 sign-ups from 203.0.113.0/24 by one scripted client (python-requests/2.32.3) within 20 minutes,"
        " both with addresses on x.com, not a webmail provider"
    ) in {link.evidence for link in ring.links}
    # Pattern, /24 and the program's burst on a private domain on every pair (0.85), the agent too on all but (1, 5)
    # (0.895): mean 0.8905.
    assert ring.score == 94.4


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


def max_pair_weight(facts):
    by_pair = {}
    for link in signup_links(facts, policy=POLICY):
        by_pair.setdefault((link.low, link.high), []).append(link)
    return max(pair_weight(pair) for pair in by_pair.values())


def numbered_wave(orgs, *, template, domain, network, ua=SCRIPT_UA, start=0.0):
    """Issue 14's ring: accounts opened within two minutes from one /24 with one user agent, the number inside the
    local part (`template` has `{n}`) on one domain that is not a webmail provider."""
    return [
        fact(org, f"{template.format(n=n)}@{domain}", ip=f"{network}.{10 + n}", ua=ua, minutes=start + 2 * (n - 1) / 7)
        for n, org in enumerate(orgs, 1)
    ]


@pytest.mark.parametrize(
    ("ua", "weight", "score"),
    [
        # Template 0.6, /24 0.25, the program's agent 0.3, the program's burst on a private domain 0.5.
        (SCRIPT_UA, 0.895, 97.2),
        # Template 0.6, /24 0.25, the browser's string 0.05, a crowd's burst 0.2: the template alone links them.
        (CHROME, 0.772, 94.0),
    ],
    ids=["program", "browser"],
)
def test_eight_sign_ups_in_two_minutes_from_one_slash_24_numbered_on_one_private_domain_are_one_certain_ring(
    ua, weight, score
):
    facts = numbered_wave(range(1, 9), template="user{n}-x", domain="harvest.example", network="203.0.113", ua=ua)

    [ring] = signup_rings(facts, policy=POLICY)

    assert (ring.members, ring.score, ring.level) == ((1, 2, 3, 4, 5, 6, 7, 8), score, "certain")
    by_pair = {}
    for link in ring.links:
        by_pair.setdefault((link.low, link.high), []).append(link)
    # Each sign-up is compared with the four before it in each group it shares (LinkingPolicy.lookback).
    assert len(by_pair) == 22
    assert {pair_weight(pair) for pair in by_pair.values()} == {weight}
    assert {link.evidence for link in by_pair[(1, 2)] if link.signal == "email_pattern"} == {
        "numbered addresses on harvest.example, one template (user{n}-x): user1-x@harvest.example,"
        " user2-x@harvest.example"
    }


def test_two_waves_of_one_scheme_with_other_tags_are_two_rings_and_share_no_link():
    first = numbered_wave(range(1, 9), template="user{n}-x", domain="harvest.example", network="203.0.113")
    second = numbered_wave(
        range(11, 19), template="user{n}-y", domain="harvest.example", network="198.51.100", start=10 * 60
    )

    rings = signup_rings(first + second, policy=POLICY)

    assert [(ring.members, ring.level) for ring in rings] == [
        ((1, 2, 3, 4, 5, 6, 7, 8), "certain"),
        ((11, 12, 13, 14, 15, 16, 17, 18), "certain"),
    ]
    # `user1-x@` and `user1-y@` share a number, not a template.
    assert [link for link in signup_links(first + second, policy=POLICY) if (link.low < 10) != (link.high < 10)] == []


@pytest.mark.parametrize(
    ("domain", "weight", "score"),
    [
        # /24 0.25, the program's agent 0.3, its burst on a private domain 0.5.
        ("harvest.example", 0.7375, 93.1),
        # On a webmail provider the burst is the program's alone: 0.35.
        ("gmail.com", 0.65875, 91.1),
    ],
)
def test_without_numbered_addresses_one_programs_burst_from_one_slash_24_is_a_ring(domain, weight, score):
    facts = [
        fact(n, f"{name}zq@{domain}", ip=f"203.0.113.{10 + n}", ua=SCRIPT_UA, minutes=2 * (n - 1) / 7)
        for n, name in enumerate(NAMES[:8], 1)
    ]
    [ring] = signup_rings(facts, policy=POLICY)
    assert (ring.members, ring.score, ring.level) == ((1, 2, 3, 4, 5, 6, 7, 8), score, "certain")
    assert max_pair_weight(facts) == weight


def slow_script(orgs, *, network="203.0.113", spacing=10.0, start=0.0):
    """One program's sign-ups from one /24 with unrelated webmail names, too far apart to be a burst (four in half
    an hour): the /24 (0.25) on every pair, the program's agent (0.3) on neighbours, 0.475."""
    return [
        fact(org, f"{NAMES[n]}zq@gmail.com", ip=f"{network}.{10 + n}", ua=SCRIPT_UA, minutes=start + spacing * n)
        for n, org in enumerate(orgs)
    ]


def test_one_programs_sign_ups_too_slow_for_a_burst_are_a_likely_ring():
    facts = slow_script(range(1, 9))
    assert max_pair_weight(facts) == 0.475

    [ring] = signup_rings(facts, policy=POLICY)

    # Seven neighbouring pairs at 0.475 connect eight members: 100 * (1 - 0.525 * 0.8 ** 6).
    assert (ring.members, ring.score, ring.level) == ((1, 2, 3, 4, 5, 6, 7, 8), 86.2, "likely")
    assert {link.signal for link in ring.links} == {"same_subnet", "same_user_agent_burst"}


def test_three_such_sign_ups_are_no_ring_yet_and_four_are_a_likely_one():
    assert signup_rings(slow_script([1, 2, 3]), policy=POLICY) == []  # 100 * (1 - 0.525 * 0.8) = 58
    [ring] = signup_rings(slow_script([1, 2, 3, 4]), policy=POLICY)
    assert (ring.members, ring.score, ring.level) == ((1, 2, 3, 4), 66.4, "likely")


def test_a_likely_link_never_pulls_an_account_into_a_certain_ring():
    certain = numbered_wave(range(1, 6), template="user{n}-x", domain="harvest.example", network="203.0.113")
    # Thirteen hours later, four slow sign-ups from the same /24, three of them from ring members' addresses.
    likely = slow_script([6, 7, 8, 9], start=13 * 60)

    rings = signup_rings(certain + likely, policy=POLICY)

    assert [(ring.members, ring.level) for ring in rings] == [((1, 2, 3, 4, 5), "certain"), ((6, 7, 8, 9), "likely")]
    assert [(link.low, link.high, link.signal, link.weight) for link in signup_links(certain + likely, policy=POLICY)
            if link.low <= 5 < link.high] == [
        (1, 7, "same_ip", 0.481), (2, 8, "same_ip", 0.478), (3, 9, "same_ip", 0.475),
    ]  # fmt: skip


def test_a_likely_ring_is_not_formed_when_the_likely_level_is_the_certain_one():
    facts = slow_script(range(1, 9))
    assert signup_rings(facts, policy=LinkingPolicy(likely_link_threshold=0.5)) == []


FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Safari/605.1.15"
EDGE = CHROME + " Edg/131.0.0.0"
VARIOUS = [CHROME, FIREFOX, SAFARI, EDGE]


def colleagues_over_days():
    # Twelve colleagues on their company's domain from its office /24 over four days, three a day: two minutes
    # apart each morning on the office's Chrome build, one in the afternoon on whatever they use.
    return [
        fact(n, f"{name}@acme-robotics.example", ip=f"198.51.100.{20 + n}", ua=CHROME if n % 3 != 2 else VARIOUS[n % 4],
             minutes=(n // 3) * 24 * 60 + (0, 2, 300)[n % 3])
        for n, name in enumerate(OFFICE_NAMES[:12])
    ]  # fmt: skip


def strangers_on_gmail():
    # Thirty strangers with numbered names of four common templates on gmail.com, five minutes apart (two in a row
    # of each template), each from their own network, all on one Chrome build.
    return [
        fact(n, f"{('alex', 'maria', 'chen', 'sam')[n // 2 % 4]}{1980 + n}@gmail.com", ip=f"{23 + n}.{n}.7.{n + 1}",
             ua=CHROME, minutes=5 * n)
        for n in range(1, 31)
    ]  # fmt: skip


def semester_start():
    # Thirty students on their university's domain from its /24 within half an hour, on the browsers they own.
    return [
        fact(n, f"{name}@uni.example", ip=f"198.51.100.{n}", ua=VARIOUS[n % 4], minutes=n)
        for n, name in enumerate(OFFICE_NAMES, 1)
    ]


def team_onboarding():
    # Six colleagues of one team sign up within 25 minutes from the office, all on its Chrome build.
    return [
        fact(n, f"{name}@acme-robotics.example", ip=f"198.51.100.{20 + n}", ua=CHROME, minutes=5 * n)
        for n, name in enumerate(OFFICE_NAMES[:6])
    ]


def household():
    # Two people behind one home address, thirteen hours apart: a likely pair, but a pair is not a ring.
    return [fact(1, "ann@a.example", ip="203.0.113.7"), fact(2, "bob@b.example", ip="203.0.113.7", minutes=13 * 60)]


@pytest.mark.parametrize(
    ("facts", "weight"),
    [
        (colleagues_over_days(), 0.2875),  # /24 and one browser within minutes
        (strangers_on_gmail(), 0.43),  # a shared-provider template and one browser within minutes
        (semester_start(), 0.43),  # /24, a crowd's burst and one browser within minutes
        (team_onboarding(), 0.43),  # the same
        (household(), 0.483),
    ],
    ids=["colleagues-over-days", "strangers-on-gmail", "semester-start", "team-onboarding", "household"],
)
def test_honest_crowds_near_the_line_are_neither_certain_nor_likely_rings(facts, weight):
    assert max_pair_weight(facts) == weight
    assert signup_rings(facts, policy=POLICY) == []


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
    assert max(pair_weight(pair) for pair in by_pair.values()) == 0.2875
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
        {"likely_link_threshold": 0},
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
    crowd = honest_crowd(19_737, rng=rng, first_org=10_000)
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
    ring_d = slow_script([12, 13, 14, 15], network="192.0.2", start=7000)  # likely only
    facts = crowd + campus + ring_a + ring_b + ring_c + ring_d
    assert len(facts) == 20_000
    random.Random(1).shuffle(facts)

    rings = signup_rings(facts, policy=POLICY)

    assert sorted((ring.members, ring.level) for ring in rings) == [
        ((1, 2, 3, 4, 5), "certain"), ((6, 7, 8), "certain"), ((9, 10, 11), "certain"), ((12, 13, 14, 15), "likely"),
    ]  # fmt: skip
