"""`manage.py run_abuse_jobs`: run every abuse job once, synchronously, in the order beat runs them."""

from django.core.management.base import BaseCommand

from abuse.rings import signup_rings_refresh
from abuse.risk import extraction_risk_assess_all


class Command(BaseCommand):
    help = "Refresh the sign-up rings, then score extraction risk (throttling or freezing above the thresholds)."

    def handle(self, *args, **options) -> None:
        rings = signup_rings_refresh()
        self.stdout.write(f"sign-up rings: {len(rings)} active ring(s) found by this run")
        assessments = extraction_risk_assess_all()
        flagged = [a for a in assessments if a.level != "normal"]
        self.stdout.write(f"extraction risk: {len(assessments)} assessment(s), {len(flagged)} above a threshold")
        for assessment in sorted(flagged, key=lambda a: -a.score):
            subject = (
                f"organization {assessment.organization_id}"
                if assessment.organization_id
                else (f"ring {assessment.ring_id}")
            )
            self.stdout.write(f"  {subject}: {assessment.score}/100 ({assessment.level}) {assessment.explanation}")
