"""The sign-up ring builder's signals: which shared traits link two organizations, and how strongly."""

import pytest

from abuse.linking import Link, RingCandidate, is_scripted_client, signup_links, signup_rings
from tests.abuse.linking_helpers import CHROME, NAMES, POLICY, SCRIPT_UA, fact, links_of, people, signals

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


def test_the_same_browser_within_fifteen_minutes_is_barely_a_link():
    # Every Chrome of one major version on one platform sends this very string.
    links = links_of(fact(1, "ann@a.example", ua=CHROME), fact(2, "bob@b.example", ua=CHROME, minutes=5))
    assert links == [
        Link(
            1, 2, "same_user_agent_burst", 0.05, f"both signed up with the same user agent within 5 minutes ({CHROME})"
        )
    ]


def test_the_same_program_within_fifteen_minutes_is_a_script_but_alone_no_link():
    links = links_of(fact(1, "ann@a.example", ua=SCRIPT_UA), fact(2, "bob@b.example", ua=SCRIPT_UA, minutes=5))
    assert links == [
        Link(
            1,
            2,
            "same_user_agent_burst",
            0.3,
            "both signed up with the same user agent within 5 minutes (python-requests/2.32.3), a program's, not a"
            " browser's",
        )
    ]


@pytest.mark.parametrize(
    ("agent", "scripted"),
    [
        (SCRIPT_UA, True),
        ("curl/8.5.0", True),
        ("Go-http-client/2.0", True),
        ("okhttp/4.12.0", True),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0", True),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) python-httpx", True),
        (CHROME, False),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", False),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148", False),
        # Only looks like a browser's: counted as one, so that spoofing a browser gains nothing.
        ("Mozilla/5.0 (X11; Linux) Chrome/140", False),
        ("", False),
    ],
)
def test_a_program_is_told_from_a_browser_by_its_user_agent(agent, scripted):
    assert is_scripted_client(agent) is scripted


def test_the_same_user_agent_further_apart_or_an_empty_one_is_no_link():
    assert links_of(fact(1, "ann@a.example", ua=SCRIPT_UA), fact(2, "bob@b.example", ua=SCRIPT_UA, minutes=16)) == []
    assert links_of(fact(1, "ann@a.example", ua=""), fact(2, "bob@b.example", ua="  ", minutes=1)) == []


def test_a_long_user_agent_is_shortened_in_the_evidence():
    agent = "Agent/" + "x" * 300
    [link] = links_of(fact(1, "ann@a.example", ua=agent), fact(2, "bob@b.example", ua=agent, minutes=1))
    assert link.evidence == (
        f"both signed up with the same user agent within 1 minute ({agent[:119]}…), a program's, not a browser's"
    )


# --- Email addresses -----------------------------------------------------------------------------------------------


def test_numbered_addresses_on_one_domain_link_strongly_however_far_apart():
    links = links_of(fact(1, "user1@x.com"), fact(2, "user2@x.com", minutes=10 * 24 * 60))
    assert links == [
        Link(
            1, 2, "email_pattern", 0.6, "numbered addresses on x.com, one template (user{n}): user1@x.com, user2@x.com"
        )
    ]


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


def test_a_number_anywhere_in_the_local_part_fills_one_template():
    links = links_of(fact(1, "user1-x@harvest.example"), fact(2, "user2-x@harvest.example", minutes=1))
    assert links == [
        Link(
            1,
            2,
            "email_pattern",
            0.6,
            "numbered addresses on harvest.example, one template (user{n}-x): user1-x@harvest.example,"
            " user2-x@harvest.example",
        )
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("user1-x@x.com", "user2-x@x.com"),
        ("1user@x.com", "22user@x.com"),
        ("team.7.alpha@x.com", "team_8_alpha@x.com"),  # a number's own punctuation is not the template's
        # Numbered wave tags are numbers too: every account of every wave fills `user{n}-w{n}`.
        ("user1-w1@x.com", "user2-w1@x.com"),
        ("user1-w1@x.com", "user1-w2@x.com"),
    ],
)
def test_the_same_template_with_other_numbers_is_a_pattern_wherever_the_number_is(first, second):
    assert signals(links_of(fact(1, first), fact(2, second, minutes=1))) == [(1, 2, "email_pattern")]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # The first accounts of two sign-up waves: they share a number, not a template.
        ("user1-x@harvest.example", "user1-y@harvest.example"),
        ("user1-x@harvest.example", "user2-y@harvest.example"),
        ("ring7-a@x.com", "ring7-b@x.com"),
        ("user1x@x.com", "user1@x.com"),
    ],
)
def test_the_same_number_in_two_templates_is_no_pattern(first, second):
    assert links_of(fact(1, first), fact(2, second, minutes=1)) == []


def test_gmail_dots_and_tags_are_read_before_the_template():
    # One scheme's accounts on Gmail, however they are dotted or tagged: `user{n}x`.
    links = links_of(fact(1, "u.ser1-x+a@gmail.com"), fact(2, "user2-x@googlemail.com", minutes=5))
    assert [(link.signal, link.weight) for link in links] == [("email_pattern", 0.4)]


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
            "numbered addresses on gmail.com within 60 minutes, one template (user{n}): user1@gmail.com,"
            " user2@gmail.com",
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


def burst(domain_of, *, ua, count=5, spacing=4.0, network="203.0.113"):
    """`count` sign-ups from one /24 with one user agent, `spacing` minutes apart; `domain_of(n)` is the n-th's
    address. Names are distinct and have no number."""
    return [
        fact(n, f"{name}@{domain_of(n)}", ip=f"{network}.{10 + n}", ua=ua, minutes=spacing * (n - 1))
        for n, name in enumerate(NAMES[:count], 1)
    ]


def burst_links(facts):
    return [link for link in signup_links(facts, policy=POLICY) if link.signal == "signup_burst"]


def test_a_burst_of_one_browser_is_a_crowds_burst():
    # A class at one lab's browsers, a team at its office: the string is the browser build's, not a person's.
    links = burst_links(burst(lambda n: "gmail.com", ua=CHROME))
    assert {(link.weight, link.evidence) for link in links} == {
        (0.2, "both among 5 sign-ups from 203.0.113.0/24 within 16 minutes")
    }


def test_a_burst_of_one_program_from_one_network_is_a_scripts():
    links = burst_links(burst(lambda n: "gmail.com", ua=SCRIPT_UA))
    assert len(links) == 10
    assert {(link.weight, link.evidence) for link in links} == {
        (
            0.35,
            "both among 5 sign-ups from 203.0.113.0/24 by one scripted client (python-requests/2.32.3) within 16"
            " minutes",
        )
    }


def test_a_programs_burst_on_one_private_domain_counts_more_and_on_a_webmail_domain_not():
    private = burst_links(burst(lambda n: "harvest.example", ua=SCRIPT_UA))
    assert {(link.weight, link.evidence) for link in private} == {
        (
            0.5,
            "both among 5 sign-ups from 203.0.113.0/24 by one scripted client (python-requests/2.32.3) within 16"
            " minutes, both with addresses on harvest.example, not a webmail provider",
        )
    }
    # Pairs whose addresses are on two domains (or on one webmail provider) share only the program's burst.
    mixed = burst_links(burst(lambda n: "harvest.example" if n <= 2 else "gmail.com", ua=SCRIPT_UA))
    assert {(link.low, link.high): link.weight for link in mixed} == {
        (1, 2): 0.5, (1, 3): 0.35, (1, 4): 0.35, (1, 5): 0.35, (2, 3): 0.35, (2, 4): 0.35, (2, 5): 0.35,
        (3, 4): 0.35, (3, 5): 0.35, (4, 5): 0.35,
    }  # fmt: skip


def test_a_programs_burst_is_counted_apart_from_the_browsers_on_its_network():
    # Five scripted sign-ups among five people's on one campus /24, interleaved: the script's burst is its own five.
    script = [
        fact(n, f"{NAMES[n - 1]}zq@gmail.com", ip=f"203.0.113.{n}", ua=SCRIPT_UA, minutes=2 * n) for n in range(1, 6)
    ]
    campus = [
        fact(10 + n, f"{NAMES[n - 1]}@uni.example", ip=f"203.0.113.{50 + n}", ua=CHROME, minutes=2 * n + 1)
        for n in range(1, 6)
    ]
    links = burst_links(script + campus)
    scripted = {(link.low, link.high) for link in links if link.weight == 0.35}
    assert scripted == {(a, b) for a in range(1, 6) for b in range(a + 1, 6)}
    assert {link.evidence for link in links if link.weight == 0.35} == {
        "both among 5 sign-ups from 203.0.113.0/24 by one scripted client (python-requests/2.32.3) within 8 minutes"
    }
    # Everyone else in the network's burst of ten is a crowd's.
    assert {link.weight for link in links if (link.low, link.high) not in scripted} == {0.2}


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
