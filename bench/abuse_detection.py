"""Detection benchmark: how fast the abuse jobs freeze extraction campaigns, and whom they freeze by mistake.

Simulated honest customers and attackers (abuse.simulation: the real demo model answers, at each tier's pace) are
replayed into the real query log (Redis stream, then the real flush into PostgreSQL) with their own timestamps on
a shared timeline in the past. The real jobs then run on a simulated clock, every ASSESS_EVERY seconds as beat
runs them: the ring job once the sign-ups exist, the risk job at each tick with `now` set to the tick. An account's
detection delay is measured from its first query to the first tick that left its keys frozen: the queries it had
sent by then (its whole ring's, for a ring) and the seconds.

Run with `make bench-abuse` (its own embedded PostgreSQL and Redis under .moat/bench-abuse); prints a table and
writes bench/results/abuse-detection.json.
"""

import argparse
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import django

django.setup()

from django.conf import settings  # noqa: E402 - after django.setup()
from django.db import transaction  # noqa: E402

from abuse import simulation  # noqa: E402
from abuse.extraction import extraction_risk  # noqa: E402
from abuse.models import Ring, RingStatus  # noqa: E402
from abuse.replay import simulated_calls_log  # noqa: E402
from abuse.rings import signup_rings_refresh  # noqa: E402
from abuse.risk import extraction_risk_assess_all  # noqa: E402
from accounts.models import Membership, Organization, Role, SignupRecord, User  # noqa: E402
from apikeys.models import ApiKey, KeyState  # noqa: E402
from apikeys.services import apikey_create  # noqa: E402
from tiers.models import Tier  # noqa: E402

ASSESS_EVERY = 30.0  # seconds: the beat period of abuse.assess_extraction_risk
RESULTS = Path(__file__).parent / "results" / "abuse-detection.json"


@dataclass
class Account:
    label: str  # the scenario
    kind: str  # "attacker", "ring" or "honest"
    organization: Organization
    calls: list
    model_slug: str = "digits"
    first_at: float = 0.0
    frozen_at: float | None = None
    throttled: bool = False


def _organization(email: str, tier: str, *, ip: str, signed_up: datetime, user_agent: str) -> Organization:
    organization = Organization.objects.create(name=email.split("@")[0], tier=Tier.objects.get(code=tier))
    user = User.objects.create_user(email=email, password=None, email_verified_at=signed_up)
    Membership.objects.create(organization=organization, user=user, role=Role.OWNER)
    SignupRecord.objects.create(
        user=user, organization=organization, ip_address=ip, user_agent=user_agent,
        email=email, email_canonical=email, email_domain=email.split("@")[1], created_at=signed_up,
    )  # fmt: skip
    apikey_create(organization=organization, name="bench", created_by=None)
    return organization


def _model_scenarios(model: simulation.SimulatedModel, honest_users: int) -> list[tuple[str, str, str, list[list]]]:
    """Every other model's rows, labelled with its slug: the same attacks in its own units, a ring, and honest
    customers sending its natural inputs."""
    slug, attacks = model.slug, 3_000
    rows = []
    for tier, seed in (("free", 21), ("pro", 31)):
        common = {"queries": attacks, "tier": tier, "model": model}
        rows += [
            (f"{slug}: uniform random", "attacker", tier, [simulation.uniform_random_attacker(seed=seed, **common)]),
            (f"{slug}: boundary probing", "attacker", tier, [simulation.boundary_prober(seed=seed + 1, **common)]),
            (f"{slug}: interpolation probing", "attacker", tier,
             [simulation.interpolation_prober(seed=seed + 2, **common)]),
            (f"{slug}: perturbation walk", "attacker", tier, [simulation.perturbation_walker(seed=seed + 3, **common)]),
        ]  # fmt: skip
    rows.append((f"{slug}: sybil ring: natural data, 5 accounts", "ring", "free", simulation.sybil_ring(
        accounts=5, seed=41, strategy="natural_data", queries_per_account=800, model=model)))  # fmt: skip
    rows.append((f"{slug}: single natural-data retrainer (not expected)", "attacker", "free",
                 [simulation.natural_data_retrainer(seed=42, queries=attacks, model=model)]))  # fmt: skip
    for n in range(honest_users):
        tier = "pro" if n % 2 else "free"
        calls = simulation.honest_user(seed=600 + n, calls=300, tier=tier, model=model)
        rows.append((f"{slug}: honest {tier} #{n}", "honest", tier, [calls]))
    rows.append((f"{slug}: honest pro, heavy", "honest", "pro", [simulation.honest_user(
        seed=998, calls=400, tier="pro", calls_per_minute=6.0, batch=(40, 60), model=model)]))  # fmt: skip
    return rows


def _scenarios(honest_users: int) -> list[tuple[str, str, str, list[list]]]:
    """(label, kind, tier, [calls per account]) of the digits demo."""
    attacks = 3_000
    free, pro = {"queries": attacks}, {"queries": attacks, "tier": "pro"}
    rows = [
        ("uniform random", "attacker", "free", [simulation.uniform_random_attacker(seed=1, **free)]),
        ("uniform random", "attacker", "pro", [simulation.uniform_random_attacker(seed=2, **pro)]),
        ("boundary probing", "attacker", "free", [simulation.boundary_prober(seed=3, **free)]),
        ("boundary probing", "attacker", "pro", [simulation.boundary_prober(seed=4, **pro)]),
        ("perturbation walk", "attacker", "free", [simulation.perturbation_walker(seed=5, **free)]),
        ("perturbation walk", "attacker", "pro", [simulation.perturbation_walker(seed=6, **pro)]),
        ("interpolation probing", "attacker", "free", [simulation.interpolation_prober(seed=12, **free)]),
        ("interpolation probing", "attacker", "pro", [simulation.interpolation_prober(seed=13, **pro)]),
        ("recon, then boundary probing", "attacker", "free", [simulation.recon_then_attack(seed=7, **free)]),
        ("sybil ring: natural data, 5 accounts", "ring", "free",
         simulation.sybil_ring(accounts=5, seed=8, strategy="natural_data", queries_per_account=800)),
        (ISSUE_RING, "ring", "free",
         simulation.sybil_ring(accounts=8, seed=10, strategy="natural_data", queries_per_account=400)),
        (LIKELY_RING, "ring", "free",
         simulation.sybil_ring(accounts=8, seed=11, strategy="natural_data", queries_per_account=400)),
        ("single natural-data retrainer (not expected)", "attacker", "free",
         [simulation.natural_data_retrainer(seed=9, **free)]),
    ]  # fmt: skip
    for n in range(honest_users):
        tier = "pro" if n % 2 else "free"
        rows.append(
            (f"honest {tier} #{n}", "honest", tier, [simulation.honest_user(seed=100 + n, calls=300, tier=tier)])
        )
    # A heavy honest pro customer: natural digits at a steady, high pace all day.
    rows.append(("honest pro, heavy", "honest", "pro", [
        simulation.honest_user(seed=999, calls=400, tier="pro", calls_per_minute=6.0, batch=(40, 60))
    ]))  # fmt: skip
    # Honest people whose sign-ups come close to a ring's (see `_signup`): none of them may be linked into one.
    for label, count, seed in ((COLLEAGUES, 5, 300), (SEMESTER, 8, 400), (STRANGERS, 5, 500)):
        streams = [simulation.honest_user(seed=seed + n, calls=300, tier="free") for n in range(count)]
        rows.append((label, "honest", "free", streams))
    return rows


# Sign-ups of the scenarios whose accounts come together (user agents as browsers and programs send them).
ISSUE_RING = "sybil ring: 8, user{n}-x@ one private domain"
LIKELY_RING = "likely ring: 8, one program, 10 min apart"
COLLEAGUES = "honest colleagues: one company's domain and office over days"
SEMESTER = "honest class: one university's domain and /24 in 21 minutes"
STRANGERS = "honest strangers: numbered gmail.com names 5 minutes apart"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
BROWSERS = [
    CHROME,
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Safari/605.1.15",
    CHROME + " Edg/131.0.0.0",
]
SCRIPT = "python-requests/2.32.3"
AGENT = "Mozilla/5.0 (X11; Linux) Chrome/140"  # everyone else's
NAMES = ["ann", "bob", "cid", "dan", "eve", "fay", "gus", "hal"]


def _signup(label: str, kind: str, index: int, number: int, run: str) -> tuple[str, str, str, timedelta]:
    """The `number`-th account of a scenario: its address, IP, user agent, and how long before the traffic began
    it signed up."""
    if label == ISSUE_RING:
        # Issue 14's ring: eight within two minutes from one /24 by one program, the number inside the local part.
        return (
            f"user{number}-x@harvest-{run}.example",
            f"198.51.100.{10 + number}",
            SCRIPT,
            timedelta(minutes=30 - number / 4),
        )
    if label == LIKELY_RING:
        # One program's sign-ups from one /24 with unrelated webmail names, too slow for a burst: a likely ring.
        name = NAMES[number - 1]
        return f"{name}q{run}@gmail.com", f"192.0.2.{10 + number}", SCRIPT, timedelta(minutes=90 - 10 * number)
    if kind == "ring":
        # One operator: one /24, numbered addresses on one domain, minutes apart.
        return (
            f"clone{run}i{index}n{number}@gmail.com",
            f"203.0.{113 + index % 100}.{10 + number}",
            AGENT,
            timedelta(minutes=30 - 3 * number),
        )
    if label == COLLEAGUES:
        # Two a day, minutes apart, from the office /24 on various browsers.
        name = NAMES[number - 1]
        return (
            f"{name}@acme-{run}.example",
            f"198.18.7.{20 + number}",
            BROWSERS[number % 4],
            timedelta(days=(number + 1) // 2, minutes=4 * (number % 2)),
        )
    if label == SEMESTER:
        name = NAMES[number - 1]
        return (
            f"{name}@uni-{run}.example",
            f"198.18.8.{number}",
            BROWSERS[number % 4],
            timedelta(minutes=60 - 3 * number),
        )
    if label == STRANGERS:
        return (
            f"alex{1980 + number}x{run}@gmail.com",
            f"{23 + number}.{number}.9.7",
            CHROME,
            timedelta(hours=3, minutes=-5 * number),
        )
    return (
        f"{kind}{index}-{number}-{run}@org{index}.example", f"198.{index % 200}.{number}.7", AGENT,
        timedelta(days=3, hours=index),
    )  # fmt: skip


def _accounts(run: str, honest_users: int, base: datetime) -> list[Account]:
    cancer = simulation.breast_cancer_model()
    scenarios = [(*row, "digits") for row in _scenarios(honest_users)]
    scenarios += [(*row, cancer.slug) for row in _model_scenarios(cancer, max(4, honest_users // 2))]
    accounts: list[Account] = []
    for index, (label, kind, tier, streams, slug) in enumerate(scenarios):
        for number, calls in enumerate(streams, 1):
            email, ip, agent, before = _signup(label, kind, index, number, run)
            organization = _organization(email, tier, ip=ip, signed_up=base - before, user_agent=agent)
            accounts.append(
                Account(label=f"{label} ({tier})", kind=kind, organization=organization, calls=calls, model_slug=slug)
            )
    return accounts


def _inputs_until(account: Account, moment: float) -> int:
    return sum(len(call.inputs) for call in account.calls if call.at <= moment)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--honest-users", type=int, default=20)
    parser.add_argument("--hours", type=float, default=8.0, help="Simulated time the jobs run over.")
    parser.add_argument("--results", type=Path, default=RESULTS, help="Where to write the JSON report.")
    options = parser.parse_args()
    run = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    horizon = options.hours * 3600
    base = datetime.now(UTC) - timedelta(seconds=horizon + 60)
    started = time.perf_counter()

    with transaction.atomic():
        accounts = _accounts(run, options.honest_users, base)
    for account in accounts:
        account.calls = [call for call in account.calls if call.at <= horizon]
        account.first_at = next((call.at for call in account.calls if len(call.inputs)), 0.0)
        simulated_calls_log(account.calls, organization=account.organization, start=base, model_slug=account.model_slug)
    signup_rings_refresh(now=base)
    prepared = time.perf_counter() - started

    ticks = 0
    tick = ASSESS_EVERY
    while tick <= horizon:
        extraction_risk_assess_all(now=base + timedelta(seconds=tick))
        ticks += 1
        frozen = set(
            ApiKey.objects.filter(organization__in=[a.organization for a in accounts if a.frozen_at is None],
                                  state=KeyState.FROZEN).values_list("organization_id", flat=True)
        )  # fmt: skip
        for account in accounts:
            if account.frozen_at is None and account.organization.pk in frozen:
                account.frozen_at = tick
        tick += ASSESS_EVERY
    for account in accounts:
        account.throttled = Organization.objects.get(pk=account.organization.pk).throttle_factor < 1

    report = _report(accounts, ticks=ticks, prepared=prepared, seconds=time.perf_counter() - started)
    report["scoring_5000_inputs_seconds"] = _scoring_time()
    options.results.parent.mkdir(parents=True, exist_ok=True)
    options.results.write_text(json.dumps(report, indent=2) + "\n")
    _print(report)


@dataclass
class Row:
    scenario: str
    accounts: int
    frozen: bool
    queries_to_freeze: int | None  # the whole ring's, for a ring
    seconds_to_freeze: float | None
    queries_sent: int


def _report(accounts: list[Account], *, ticks: int, prepared: float, seconds: float) -> dict:
    rows: list[Row] = []
    for label in dict.fromkeys(a.label for a in accounts if a.kind != "honest"):
        group = [a for a in accounts if a.label == label]
        frozen_at = min((a.frozen_at for a in group if a.frozen_at is not None), default=None)
        first = min(a.first_at for a in group)
        rows.append(Row(
            scenario=label,
            accounts=len(group),
            frozen=frozen_at is not None and all(a.frozen_at is not None for a in group),
            queries_to_freeze=sum(_inputs_until(a, frozen_at) for a in group) if frozen_at is not None else None,
            seconds_to_freeze=round(frozen_at - first, 1) if frozen_at is not None else None,
            queries_sent=sum(_inputs_until(a, float("inf")) for a in group),
        ))  # fmt: skip
    honest = [a for a in accounts if a.kind == "honest"]
    honest_by_model = {
        slug: {
            "accounts": len(group),
            "queries": sum(_inputs_until(a, float("inf")) for a in group),
            "frozen": sum(a.frozen_at is not None for a in group),
            "throttled": sum(a.throttled for a in group),
        }
        for slug in dict.fromkeys(a.model_slug for a in honest)
        for group in [[a for a in honest if a.model_slug == slug]]
    }
    label_of = {a.organization.pk: a.label for a in accounts}
    rings = [
        {"level": ring.level, "score": ring.score,
         "members": dict(Counter(label_of[m.organization_id] for m in ring.memberships.all()))}
        for ring in Ring.objects.filter(status=RingStatus.ACTIVE).prefetch_related("memberships").order_by("pk")
    ]  # fmt: skip
    return {
        "settings": {
            "throttle_score": settings.ABUSE_THROTTLE_SCORE,
            "freeze_score": settings.ABUSE_FREEZE_SCORE,
            "assess_every_seconds": ASSESS_EVERY,
            "window_hours": settings.ABUSE_RISK_WINDOW.total_seconds() / 3600,
        },
        "attacks": [asdict(row) for row in rows],
        "honest": {
            "accounts": len(honest),
            "queries": sum(_inputs_until(a, float("inf")) for a in honest),
            "frozen": sum(a.frozen_at is not None for a in honest),
            "throttled": sum(a.throttled for a in honest),
            "by_model": honest_by_model,
        },
        "rings": rings,
        "ticks": ticks,
        "prepare_seconds": round(prepared, 1),
        "seconds": round(seconds, 1),
    }


def _scoring_time() -> float:
    """Median seconds to score the heaviest window the job reads: 5,000 inputs all in one class (PRADA's per-class
    distances) and every one a step of a perturbation walk."""
    profile = simulation.reference_profile()
    window = simulation.window_from_calls(simulation.perturbation_walker(seed=1, queries=5_000, tier="pro"))
    timings = []
    for _ in range(5):
        began = time.perf_counter()
        extraction_risk(window, profile, normal_volume=10_000)
        timings.append(time.perf_counter() - began)
    return round(sorted(timings)[2], 3)


def _print(report: dict) -> None:
    print(f"{'scenario':60} {'accounts':>8} {'queries to freeze':>18} {'seconds to freeze':>18}")
    for row in report["attacks"]:
        queries = f"{row['queries_to_freeze']:,}" if row["frozen"] else f"not frozen ({row['queries_sent']:,} sent)"
        seconds = f"{row['seconds_to_freeze']:,.0f}" if row["frozen"] else "-"
        print(f"{row['scenario']:60} {row['accounts']:>8} {queries:>18} {seconds:>18}")
    honest = report["honest"]
    print(f"honest customers: {honest['accounts']} ({honest['queries']:,} queries): "
          f"{honest['frozen']} frozen (false positives), {honest['throttled']} throttled")  # fmt: skip
    for slug, figures in honest["by_model"].items():
        print(f"  of {slug}: {figures['accounts']} ({figures['queries']:,} queries): {figures['frozen']} frozen,"
              f" {figures['throttled']} throttled")  # fmt: skip
    for ring in report["rings"]:
        members = ", ".join(f"{count} of {label}" for label, count in ring["members"].items())
        print(f"{ring['level']} ring (score {ring['score']:.0f}): {members}")
    print(f"{report['ticks']} job runs in {report['seconds']}s ({report['prepare_seconds']}s to replay the traffic)")
    print(f"scoring one window of 5,000 inputs: {report['scoring_5000_inputs_seconds']}s (median of 5)")


if __name__ == "__main__":
    main()
