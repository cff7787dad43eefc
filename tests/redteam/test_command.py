"""`manage.py redteam`: refuses to run without a target; `--record` stores a summary written elsewhere."""

import json

import pytest
from django.core.management import CommandError, call_command

from redteam.models import RedTeamRun

pytestmark = pytest.mark.django_db


def test_the_command_needs_a_platform_to_attack():
    with pytest.raises(CommandError, match="--base-url"):
        call_command("redteam")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("redteam", "--base-url", "http://127.0.0.1:9", "--budget", "0")


def test_record_stores_a_summary_json_without_attacking_anything(summary, tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    call_command("redteam", "--record", str(path))
    run = RedTeamRun.objects.get()
    assert run.summary == summary and run.report_dir == str(tmp_path)


def test_record_refuses_a_file_that_is_not_a_summary(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("[1, 2]")
    with pytest.raises(CommandError, match="Cannot record"):
        call_command("redteam", "--record", str(path))
    assert not RedTeamRun.objects.exists()
