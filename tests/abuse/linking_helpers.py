"""Shared sign-up facts and helpers of the ring-builder tests."""

from datetime import UTC, datetime, timedelta

from abuse.linking import (
    LinkingPolicy,
    SignupFact,
    signup_links,
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
