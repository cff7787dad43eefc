"""`manage.py redteam --base-url URL [--budget N] [--accounts K] [--report DIR] [--days N] [--model SLUG ...]`:
attack a running Moat over HTTP the way a model thief would, measure what the copies are worth, write a report and
store the summary (the console's red-team page and cost to clone read the latest). Every model `--model` names
(default: every model with an active full version and a held-out set) is attacked by the retraining campaigns, in
its own units, and by the attacks that fit its kind (`redteam.model_kinds`), each model with its own section in the
report. `--record FILE` stores a summary.json written by a run elsewhere (e.g. `make redteam`'s own platform)
without attacking anything.

Run it with the attacked platform's own settings: its database holds the registry (the full model the copies are
measured against), the tiers' prices and the stored runs; its WATERMARK_SECRET decides the watermark verdict; and
EMAIL_FILE_PATH is where the attackers' verification emails arrive (unless --mail-dir says otherwise)."""

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from redteam.client import ClientError
from redteam.exercise import run_exercise
from redteam.measure import DEFAULT_DAYS
from redteam.report import write_report
from redteam.services import redteam_run_record


class Command(BaseCommand):
    help = "Run the model-extraction red-team exercise against a running platform and report what a thief gets."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", help="The platform to attack, e.g. http://127.0.0.1:8000.")
        parser.add_argument("--budget", type=int, default=10_000, help="Answered queries per campaign (10,000).")
        parser.add_argument("--accounts", type=int, default=5, help="Accounts of the sybil ring (5).")
        parser.add_argument("--report", type=Path, default=Path("redteam-report"), help="Report folder.")
        parser.add_argument(
            "--days",
            type=int,
            default=DEFAULT_DAYS,
            help=f"Recommend daily quotas under which one account needs more than this many days to clone "
            f"({DEFAULT_DAYS}: a billing month).",
        )
        parser.add_argument(
            "--mail-dir", type=Path, default=None, help="Where the platform writes emails (EMAIL_FILE_PATH)."
        )
        parser.add_argument("--max-minutes", type=float, default=30.0, help="Stop every campaign after this long.")
        parser.add_argument("--seed", type=int, default=None, help="Seed of the attackers' choices (random).")
        parser.add_argument("--record", type=Path, default=None, help="Only store this summary.json.")
        parser.add_argument(
            "--model",
            action="append",
            dest="models",
            default=None,
            help="A model to attack (repeatable; default: every model with an active full version and a held-out set).",
        )

    def handle(self, *args, **options) -> None:
        if options["record"] is not None:
            try:
                summary = json.loads(options["record"].read_text(encoding="utf-8"))
                run = redteam_run_record(summary=summary, report_dir=str(options["record"].parent.resolve()))
            except (OSError, ValueError, KeyError) as exc:
                raise CommandError(f"Cannot record {options['record']}: {exc}") from exc
            self.stdout.write(f"Recorded the red-team run of {run.finished_at:%Y-%m-%d %H:%M} (#{run.pk}).")
            return
        if not options["base_url"]:
            raise CommandError("--base-url is required (or --record FILE).")
        if options["budget"] < 1 or options["accounts"] < 1 or options["days"] < 1:
            raise CommandError("--budget, --accounts and --days must be at least 1.")
        try:
            summary = run_exercise(
                base_url=options["base_url"].rstrip("/"),
                budget=options["budget"],
                sybil_accounts=options["accounts"],
                days=options["days"],
                mail_dir=options["mail_dir"] or Path(settings.EMAIL_FILE_PATH),
                max_minutes=options["max_minutes"],
                seed=options["seed"],
                models=options["models"],
                progress=lambda line: self.stdout.write(line),
            )
        except (ClientError, RuntimeError) as exc:
            raise CommandError(str(exc)) from exc
        report = write_report(summary, options["report"])
        run = redteam_run_record(summary=summary, report_dir=str(options["report"].resolve()))
        for target in summary["targets"]:
            result = {True: "met", False: "NOT MET", None: "not measured"}[target["met"]]
            self.stdout.write(f"[{result}] {target['text']}: {target['detail']}")
        self.stdout.write(f"Report: {report} (run #{run.pk} stored)")
