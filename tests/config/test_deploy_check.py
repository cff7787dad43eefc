"""`manage.py check --deploy` is clean with production variables, and DEBUG stays off unless asked for."""

import os
import subprocess
import sys
import tempfile

from django.conf import settings

PRODUCTION_ENV = {
    "SECRET_KEY": "k3y-for-the-deploy-check-only-Q7!k9#zR2@vL5$wN8^xT1&yU4*",
    "HTTPS_ONLY": "true",
    "ALLOWED_HOSTS": "api.moat.example",
    "SITE_URL": "https://api.moat.example",
    "WATERMARK_SECRET": "deploy-check-watermark-secret",
    "OUTPUT_NOISE_SECRET": "deploy-check-noise-secret",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in {"DEBUG", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}
        },
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": settings.REDIS_URL,
        # An empty state folder: in a checkout where `make run` ran, manage.py would otherwise fill in what these
        # tests leave out (the secret key among them) from .moat/platform.env.
        "MOAT_STATE_DIR": tempfile.mkdtemp(prefix="moat-deploy-check-"),
        **env,
    }
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_variables():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_debug_is_off_unless_asked_for():
    result = _manage("shell", "-c", "from django.conf import settings; print(settings.DEBUG)", env=PRODUCTION_ENV)
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_settings_refuse_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = _manage("check", env={**env, "SECRET_KEY": ""})
    assert result.returncode != 0


def test_check_deploy_fails_while_the_benchmark_switch_turns_quotas_off():
    result = _manage("check", "--deploy", env={**PRODUCTION_ENV, "MOAT_BENCHMARK_WITHOUT_QUOTA": "true"})
    assert result.returncode != 0
    assert "moat.E001" in result.stderr + result.stdout
