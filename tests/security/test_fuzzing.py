"""Schemathesis against the served OpenAPI document, with a valid key, every check and every phase: 0 failures.

Run against the real web server (granian, as `make run` starts it) once with a pro key (the defended model and its
output defenses) and once with an enterprise key (the full model, probabilities). Every check runs with
schemathesis' own expectations: no 5xx, responses conform to the document (status, content type, headers, schema),
schema-valid requests are accepted, invalid ones rejected with 4xx, a request without or with a wrong key gets 401
(`ignored_auth`), unsupported methods get 405 with `Allow`. The image format's strategy is in schemathesis_hooks.py.
The document itself (valid OpenAPI 3.1, every /v1 route and nothing else) is tests/serving/predictions/test_schema.py.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import OrganizationFactory, member, raw_key_for
from tests.processes import web_server
from tiers.models import Tier

pytestmark = pytest.mark.django_db(transaction=True)

HERE = Path(__file__).parent
FUZZED_TIERS = ("pro", "enterprise")


@pytest.fixture
def keys(registered_digits, registered_breast_cancer) -> dict[str, str]:
    """A key per fuzzed tier. The rate windows are opened wide: this run is about the handling of input, and the
    limits have tests of their own (a run that mostly met 429 would fail on schemathesis' rate-limit warning)."""
    Tier.objects.filter(code__in=FUZZED_TIERS).update(
        requests_per_minute=1_000_000, requests_per_hour=1_000_000, requests_per_day=1_000_000
    )
    return {
        code: raw_key_for(
            member(organization=OrganizationFactory(tier=Tier.objects.get(code=code))).membership.organization
        )
        for code in FUZZED_TIERS
    }


def _schemathesis(base_url: str, key: str, workdir: Path) -> subprocess.CompletedProcess:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file", str(HERE / "schemathesis.toml"),
        "run", f"{base_url}/api/openapi.json",
        "--url", base_url,
        "--header", f"Authorization: Bearer {key}",
        "--checks", "all",
        "--no-color",
        "--output-truncate", "true",
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HERE / "schemathesis_hooks.py")}
    return subprocess.run(  # noqa: S603 - our own command against our loopback server
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )


def test_schemathesis_finds_no_failure_with_every_check(keys, tmp_path, capsys):
    with web_server(log_path=tmp_path / "web.log") as (base_url, _):
        runs = {tier: _schemathesis(base_url, key, tmp_path) for tier, key in keys.items()}

    for tier, run in runs.items():
        assert run.returncode == 0, f"{tier} key:\n{run.stdout[-15000:]}\n{run.stderr[-3000:]}"
        assert "No issues found" in run.stdout, run.stdout[-5000:]
        generated, passed = map(int, re.search(r"(\d+) generated, (\d+) passed", run.stdout).groups())
        assert generated == passed
        assert generated >= 300, f"{tier}: only {generated} cases ran"
        with capsys.disabled():  # the figure the README quotes
            print(f"\nschemathesis, {tier} key: {generated} cases, every check, 0 failures")
    log = (tmp_path / "web.log").read_text()
    assert "Traceback" not in log
    for key in keys.values():
        assert key not in log
