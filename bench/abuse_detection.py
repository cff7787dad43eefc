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
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import django

django.setup()

from django.conf import settings  # noqa: E402 - after django.setup()
from django.db import transaction  # noqa: E402

from abuse import simulation  # noqa: E402
from abuse.extraction import extraction_risk  # noqa: E402
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
    first_at: float = 0.0
    frozen_at: float | None = None
    throttled: bool = False


def _organization(email: str, tier: str, *, ip: str, signed_up: datetime) -> Organization:
    organization = Organization.objects.create(name=email.split("@")[0], tier=Tier.objects.get(code=tier))
    user = User.objects.create_user(email=email, password=None, email_verified_at=signed_up)
    Membership.objects.create(organization=organization, user=user, role=Role.OWNER)
    SignupRecord.objects.create(
        user=user, organization=organization, ip_address=ip, user_agent="Mozilla/5.0 (X11; Linux) Chrome/140",
        email=email, email_canonical=email, email_domain=email.split("@")[1], created_at=signed_up,
    )  # fmt: skip
    apikey_create(organization=organization, name="bench", created_by=None)
    return organization


def _scenarios(honest_users: int) -> list[tuple[str, str, str, list[list]]]:
    """(label, kind, tier, [calls per account])."""
    attacks = 3_000
    free, pro = {"queries": attacks}, {"queries": attacks, "tier": "pro"}
    rows = [
        ("uniform random", "attacker", "free", [simulation.uniform_random_attacker(seed=1, **free)]),
        ("uniform random", "attacker", "pro", [simulation.uniform_random_attacker(seed=2, **pro)]),
        ("boundary probing", "attacker", "free", [simulation.boundary_prober(seed=3, **free)]),
        ("boundary probing", "attacker", "pro", [simulation.boundary_prober(seed=4, **pro)]),
        ("perturbation walk", "attacker", "free", [simulation.perturbation_walker(seed=5, **free)]),
        ("perturbation walk", "attacker", "pro", [simulation.perturbation_walker(seed=6, **pro)]),
        ("recon, then boundary probing", "attacker", "free", [simulation.recon_then_attack(seed=7, **free)]),
        ("sybil ring: natural data, 5 accounts", "ring", "free",
         simulation.sybil_ring(accounts=5, seed=8, strategy="natural_data", queries_per_account=800)),
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
    return rows


def _accounts(run: str, honest_users: int, base: datetime) -> list[Account]:
    accounts: list[Account] = []
    for index, (label, kind, tier, streams) in enumerate(_scenarios(honest_users)):
        for number, calls in enumerate(streams, 1):
            if kind == "ring":
                # One operator: one /24, numbered addresses on one domain, minutes apart.
                email, ip = f"clone{run}n{number}@gmail.com", f"203.0.113.{10 + number}"
                signed_up = base - timedelta(minutes=30 - 3 * number)
            else:
                email, ip = f"{kind}{index}-{number}-{run}@org{index}.example", f"198.{index % 200}.{number}.7"
                signed_up = base - timedelta(days=3, hours=index)
            organization = _organization(email, tier, ip=ip, signed_up=signed_up)
            accounts.append(Account(label=f"{label} ({tier})", kind=kind, organization=organization, calls=calls))
    return accounts


def _inputs_until(account: Account, moment: float) -> int:
    return sum(len(call.inputs) for call in account.calls if call.at <= moment)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--honest-users", type=int, default=20)
    parser.add_argument("--hours", type=float, default=8.0, help="Simulated time the jobs run over.")
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
        simulated_calls_log(account.calls, organization=account.organization, start=base)
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
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
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
        },
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
    print(f"{'scenario':52} {'accounts':>8} {'queries to freeze':>18} {'seconds to freeze':>18}")
    for row in report["attacks"]:
        queries = f"{row['queries_to_freeze']:,}" if row["frozen"] else f"not frozen ({row['queries_sent']:,} sent)"
        seconds = f"{row['seconds_to_freeze']:,.0f}" if row["frozen"] else "-"
        print(f"{row['scenario']:52} {row['accounts']:>8} {queries:>18} {seconds:>18}")
    honest = report["honest"]
    print(f"honest customers: {honest['accounts']} ({honest['queries']:,} queries): "
          f"{honest['frozen']} frozen (false positives), {honest['throttled']} throttled")  # fmt: skip
    print(f"{report['ticks']} job runs in {report['seconds']}s ({report['prepare_seconds']}s to replay the traffic)")
    print(f"scoring one window of 5,000 inputs: {report['scoring_5000_inputs_seconds']}s (median of 5)")


if __name__ == "__main__":
    main()
