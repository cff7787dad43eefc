"""The signals that link two sign-ups, their weights and the lists they rely on, each with its reason."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from types import MappingProxyType

from accounts.emails import (
    DOT_INSENSITIVE_DOMAINS,
    HYPHEN_TAG_DOMAINS,
    PLUS_TAG_DOMAINS,
)

# --- Signals and their weights -------------------------------------------------------------------------------------

SAME_IP = "same_ip"
SAME_SUBNET = "same_subnet"
SAME_USER_AGENT_BURST = "same_user_agent_burst"
EMAIL_PATTERN = "email_pattern"
PLUS_ADDRESS = "plus_address"
DOTTED_LOCAL_PART = "dotted_local_part"
DISPOSABLE_DOMAIN = "disposable_domain"
SIGNUP_BURST = "signup_burst"
SAME_CARD = "same_card"

SIGNALS = (
    SAME_IP,
    SAME_SUBNET,
    SAME_USER_AGENT_BURST,
    EMAIL_PATTERN,
    PLUS_ADDRESS,
    DOTTED_LOCAL_PART,
    DISPOSABLE_DOMAIN,
    SIGNUP_BURST,
    SAME_CARD,
)

# How strongly each signal alone says "one operator", 0..1. With the default link threshold of 0.5, the signals at
# 0.5 and above link a pair on their own; the others only together (noisy-OR, see `pair_weight`).
WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        # One card is one cardholder: people do not lend their card to open a stranger's account. Not 1.0: a
        # company card can pay for two teams' separate organizations.
        SAME_CARD: 0.95,
        # Two addresses that deliver to one mailbox (tags, or dots on Gmail) are one person: nobody else receives
        # that verification email. Not 1.0: a shared team inbox is one mailbox for several people.
        PLUS_ADDRESS: 0.9,
        DOTTED_LOCAL_PART: 0.9,
        # `user1@x.com`, `user2@x.com`: a script's naming. On an organization's own domain the numbered names are
        # handed out by one administrator, so the pattern is strong at any distance in time. (Strangers on
        # big providers are weaker: see EMAIL_PATTERN_SHARED_DOMAIN_WEIGHT.)
        EMAIL_PATTERN: 0.6,
        # The same public address: one device or one script when minutes apart. The weight falls linearly with
        # the time between the sign-ups, to SAME_IP_FAR_WEIGHT at `ip_window`: hours apart, an address is as
        # likely a household, an office NAT, a VPN exit or a mobile carrier's CGNAT shared by strangers.
        SAME_IP: 0.7,
        # A /24 (or an IPv6 /64) within hours: the same ISP pool, office, campus or hosting range. Many honest
        # people share one, so it only supports other evidence.
        SAME_SUBNET: 0.25,
        # Several sign-ups from one network (or one company domain) within minutes: scripted sign-ups look like
        # this, but so does a classroom or a team onboarding together. A burst of one scripted client weighs more:
        # SCRIPTED_BURST_WEIGHT, SCRIPTED_BURST_PRIVATE_DOMAIN_WEIGHT.
        SIGNUP_BURST: 0.2,
        # The same browser's user-agent string within minutes: barely evidence. Browsers now report a reduced
        # string (Chrome: one string per major version and platform), so every student of a lab and most of an
        # office send the very same one. A scripted client's string is another matter: SCRIPTED_CLIENT_WEIGHT.
        SAME_USER_AGENT_BURST: 0.05,
        # Both on throwaway domains within a burst window: wanting no traceable address is suspicious, but a
        # disposable domain is shared by every user of that service and says nothing about who.
        DISPOSABLE_DOMAIN: 0.15,
    }
)
# Numbered addresses on a provider that strangers share (gmail.com, outlook.com, a disposable service...): among
# tens of thousands of sign-ups, `alex1990@gmail.com` and `alex1987@gmail.com` meet by chance, so this needs one
# more signal (a /24, a burst) to link, and counts only within `LinkingPolicy.shared_domain_pattern_window`.
EMAIL_PATTERN_SHARED_DOMAIN_WEIGHT = 0.4
# SAME_IP's weight at the far end of `ip_window`.
SAME_IP_FAR_WEIGHT = 0.3

# --- Joint readings: what a fraud team sees in signals that come together ------------------------------------------
# Noisy-OR treats signals as independent coincidences, which they are not: an organization's people share its
# domain, its network and, through its IT department, its browser build, all at once. What an office, a classroom
# or a team onboarding never shows is a client that is not a browser (nobody fills in a sign-up form with
# python-requests), so the weights below read the signals together with the client that sent them.
#
# The same non-browser client (`is_scripted_client`) within minutes: a script's. Alone it is no link (0.3), with
# the same /24 it reaches the likely-ring level (0.475; see `LinkingPolicy.likely_link_threshold`).
SCRIPTED_CLIENT_WEIGHT = 0.3
# SIGNUP_BURST's weight when the burst is `burst_size` sign-ups from one network by one non-browser client: one
# script opening accounts in a row. With the /24 every pair of the burst shares, a pair reaches 0.51, a ring.
SCRIPTED_BURST_WEIGHT = 0.35
# ...and when both addresses are on one domain that is not a webmail provider: a private domain shared by no crowd
# of strangers, whose accounts one script opens from one network within minutes, is one operator's (0.7375 with
# the /24 and the client). A shared webmail domain says nothing of the kind, so it adds nothing.
SCRIPTED_BURST_PRIVATE_DOMAIN_WEIGHT = 0.5

# Ring score: the mean weight of the links holding a group together, then each member beyond two removes this
# share of the remaining doubt (see `ring_score`).
MEMBER_DOUBT_FACTOR = 0.8

# Big providers whose users are strangers to each other: numbered names there need a window and more evidence, and
# a burst of sign-ups "from gmail.com" is just traffic.
FREE_MAIL_DOMAINS = frozenset(
    DOT_INSENSITIVE_DOMAINS
    | PLUS_TAG_DOMAINS
    | HYPHEN_TAG_DOMAINS
    | {
        "aol.com",
        "gmx.de",
        "web.de",
        "t-online.de",
        "mail.ru",
        "inbox.ru",
        "bk.ru",
        "list.ru",
        "rambler.ru",
        "qq.com",
        "163.com",
        "126.com",
        "yeah.net",
        "sina.com",
        "naver.com",
        "daum.net",
        "hanmail.net",
        "rediffmail.com",
        "tutanota.com",
        "tuta.io",
        "laposte.net",
        "orange.fr",
        "free.fr",
        "libero.it",
        "seznam.cz",
        "wp.pl",
        "o2.pl",
        "interia.pl",
        "yahoo.co.uk",
        "yahoo.fr",
        "yahoo.de",
        "yahoo.co.jp",
        "yahoo.co.in",
        "hotmail.co.uk",
        "hotmail.fr",
        "hotmail.de",
        "hotmail.it",
        "outlook.fr",
        "outlook.de",
        "live.co.uk",
        "live.fr",
    }
)

# Addresses that are not the client's own public address: a private network, the carrier-grade NAT range, or a
# proxy in front of the app that was not configured as trusted. Linking on them would link every sign-up that came
# through that proxy (every sign-up from 127.0.0.1 in a development setup). Named explicitly rather than through
# `ipaddress`' `is_private`, which in Python 3.11 also covers the documentation ranges (203.0.113.0/24, 2001:db8::/32)
# and other special-purpose blocks.
UNLINKABLE_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # RFC 1918
        "100.64.0.0/10",  # RFC 6598 carrier-grade NAT: never a client's public address
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local
        "172.16.0.0/12",  # RFC 1918
        "192.168.0.0/16",  # RFC 1918
        "224.0.0.0/3",  # multicast, reserved, broadcast
        "::/127",  # unspecified and loopback
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
    )
)
# (netmask, network) as integers: a membership test is one AND per network.
UNLINKABLE_V4 = tuple((int(n.netmask), int(n.network_address)) for n in UNLINKABLE_NETWORKS if n.version == 4)
UNLINKABLE_V6 = tuple((int(n.netmask), int(n.network_address)) for n in UNLINKABLE_NETWORKS if n.version == 6)
IPV4_PREFIX = 24
IPV6_PREFIX = 64

# A template must keep this many characters besides its numbers and separators (and a letter) to be a pattern:
# `a1@`, `a2@` or `12@`, `13@` are too short to be anyone's naming scheme.
MIN_PATTERN_STEM = 3
# User-agent strings are long; evidence quotes this much.
EVIDENCE_USER_AGENT_CHARS = 120

# A numbered address's template: the local part with each run of digits (and the separators around it, the
# number's own punctuation: `user.1`, `user_2`, `user-3`) as a placeholder, wherever it is. `user1-x` and
# `user2-x` share `user{n}x`; `user1-x` and `user1-y` do not, whatever number they share.
NUMBER_IN_LOCAL_PART = re.compile(r"[._-]*\d+[._-]*")
DIGITS = re.compile(r"\d+")
NUMBER_PLACEHOLDER = "{n}"

# Browsers send "Mozilla/5.0 (platform) engine ..."; anything else on a sign-up form is a program (an HTTP library,
# curl), and so is a browser that says it is driven by one. Deliberately lenient, so that no honest browser is ever
# taken for a program: a string that merely looks like a browser's counts as one. A script that sends a browser's
# string is then read like a lab's browsers, and its naming, a likely ring or its traffic must give it away.
BROWSER_PREFIX = "mozilla/5.0 ("
AUTOMATION_MARKERS = (
    "headless",
    "phantomjs",
    "selenium",
    "webdriver",
    "puppeteer",
    "playwright",
    "python",
    "curl/",
    "wget/",
    "okhttp",
    "go-http-client",
    "java/",
    "libwww",
    "scrapy",
    "node-fetch",
    "axios/",
)


def is_scripted_client(user_agent: str) -> bool:
    """Whether a (non-empty) user-agent string is a program's rather than a browser's: `python-requests/2.32.3`,
    `curl/8.5.0`, `Mozilla/5.0 (X11; Linux x86_64) ... HeadlessChrome/131.0.0.0 ...` are; every other string that
    starts like a browser's is not."""
    agent = user_agent.strip().lower()
    if not agent:
        return False
    return not agent.startswith(BROWSER_PREFIX) or any(marker in agent for marker in AUTOMATION_MARKERS)
