"""What the ring builder reads (sign-up facts) and answers (links, ring candidates), and its policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# --- Data ----------------------------------------------------------------------------------------------------------

# How sure a ring is. Both are scored as one actor; only a certain ring freezes its members for one member's own
# conduct (see `abuse.risk`).
CERTAIN = "certain"
LIKELY = "likely"


@dataclass(frozen=True)
class SignupFact:
    """What is known about one organization's sign-up (an organization with several members has several)."""

    organization_id: int
    email: str  # as typed
    ip_address: str | None  # IPv4 or IPv6, as the request reported it
    user_agent: str
    created_at: datetime  # aware
    card_fingerprint: str | None = None  # Stripe's card fingerprint, once the organization has a card


@dataclass(frozen=True)
class Link:
    """Evidence that two organizations have one operator: one signal, its weight, and what a reviewer can check."""

    low: int  # organization ids, low < high
    high: int
    signal: str  # one of SIGNALS
    weight: float  # 0..1
    evidence: str


@dataclass(frozen=True)
class RingCandidate:
    """A group of organizations that the links tie to one operator."""

    members: tuple[int, ...]  # sorted organization ids, at least two
    links: tuple[Link, ...]  # every link between two members, sorted
    score: float  # 0..100, see `ring_score`
    level: str = CERTAIN  # CERTAIN: held together by links of `ring_link_threshold`; LIKELY: of the likely one


@dataclass(frozen=True)
class LinkingPolicy:
    """Windows and thresholds. The defaults are the calibrated ones; the pipeline overrides them from
    `settings.ABUSE_LINKING_POLICY` (tests, calibration)."""

    # The same public address counts for a day: a script reuses its proxy for a while; beyond a day an address has
    # usually changed hands (dynamic residential addresses, carrier NAT).
    ip_window: timedelta = timedelta(hours=24)
    # A /24 is shared by far more people than an address, so it only counts within a working session.
    subnet_window: timedelta = timedelta(hours=6)
    # One browser build is common: only sign-ups minutes apart count, the pace of someone clicking through the form.
    user_agent_window: timedelta = timedelta(minutes=15)
    # A burst is `burst_size` sign-ups from one network (or one company's domain) within `burst_window`; two
    # disposable-domain sign-ups also count only within it. Five in half an hour is far above what one /24 or one
    # company sends us at the expected sign-up rate, and as many as a small ring needs to be worth running.
    burst_window: timedelta = timedelta(minutes=30)
    burst_size: int = 5
    # Numbered names on a shared provider (gmail.com...) count only within a day of each other: a campaign opens
    # its accounts together, while `name+year` strangers are spread over the month.
    shared_domain_pattern_window: timedelta = timedelta(hours=24)
    # Each fact is paired with at most this many earlier facts of each group it belongs to. One is enough for a
    # group to stay connected; four makes every pair of a five-account ring explicit evidence and survives a few
    # unrelated sign-ups interleaved in a shared group, while keeping the pairs linear in the number of facts.
    lookback: int = 4
    # A pair is connected when its combined weight reaches this: any strong signal alone, weak ones only together.
    ring_link_threshold: float = 0.5
    # A likely ring's pairs need only this: the evidence a ring has before it is certain, like one script's sign-ups
    # from one /24 that are too slow to be a burst (0.475). Its merged traffic is scored from then on, so that a ring
    # is frozen as a ring before its copy is any good rather than once its sign-ups have proven it. Above every
    # honest crowd measured (a class from one /24 in one burst, all on one browser: 0.43; numbered strangers on
    # gmail.com with one browser: 0.43) and above a lone shared-provider pattern (0.4), which millions of strangers
    # meet. Organizations of a certain ring are never part of a likely one. At or above `ring_link_threshold`,
    # there are no likely rings.
    likely_link_threshold: float = 0.45
    # A group is a ring when its score reaches this: a lone pair needs a combined weight of 0.6 (mid-strength
    # evidence between two accounts is routinely a coincidence), any group of three or more connected pairs does.
    # A likely ring needs the same score from its weaker links: four accounts or more at 0.45-0.5.
    ring_score_threshold: float = 60.0

    def __post_init__(self) -> None:
        windows = (
            self.ip_window,
            self.subnet_window,
            self.user_agent_window,
            self.burst_window,
            self.shared_domain_pattern_window,
        )
        if any(window <= timedelta(0) for window in windows):
            raise ValueError("linking windows must be positive")
        if self.burst_size < 2:
            raise ValueError("burst_size must be at least 2")
        if self.lookback < 1:
            raise ValueError("lookback must be at least 1")
        if not 0 < self.ring_link_threshold <= 1:
            raise ValueError("ring_link_threshold must be in (0, 1]")
        if not 0 < self.likely_link_threshold <= 1:
            raise ValueError("likely_link_threshold must be in (0, 1]")
        if not 0 <= self.ring_score_threshold <= 100:
            raise ValueError("ring_score_threshold must be in [0, 100]")
