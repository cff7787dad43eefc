"""The embedded servers that stand in for PostgreSQL and Redis on a machine that has none."""


def test_a_deep_checkout_puts_the_redis_socket_where_a_unix_socket_fits(tmp_path):
    from embedded import _SOCKET_PATH_MAX, _redis_socket_path

    shallow = tmp_path / "redis"
    deep = tmp_path / ("d" * 120) / "redis"
    assert _redis_socket_path(shallow) == shallow / "redis.sock"
    assert len(str(_redis_socket_path(deep))) <= _SOCKET_PATH_MAX
    assert _redis_socket_path(deep) == _redis_socket_path(deep)  # stable, so a second run finds the server


def _clean_env(**extra: str) -> dict[str, str]:
    import os
    import sys
    from pathlib import Path

    dropped = {
        "DATABASE_URL",
        "REDIS_URL",
        "DJANGO_SETTINGS_MODULE",
        "SECRET_KEY",
        "WATERMARK_SECRET",
        "OUTPUT_NOISE_SECRET",
    }
    env = {name: value for name, value in os.environ.items() if name not in dropped}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env | extra


def test_manage_py_in_a_second_terminal_finds_the_platform_make_run_serves_with_nothing_exported(tmp_path, db):
    """bin/run records its servers in <state>/platform.env and keeps its secrets in the state folder; a command run
    with none of its variables set reads them there."""
    import subprocess
    import sys

    from django.conf import settings

    from tests.processes import database_url_for_tests

    state = tmp_path / "state"
    state.mkdir()
    (state / "platform.env").write_text(
        f"DATABASE_URL={database_url_for_tests()}\nREDIS_URL={settings.REDIS_URL}\nMOAT_EMBEDDED=\n"
    )
    for name in ("secret_key", "watermark_secret", "output_noise_secret"):
        (state / name).write_text(f"a-local-{name}-of-fifty-characters-or-more-xxxxxxxxxxxxxxx\n")

    found = subprocess.run(
        [sys.executable, "manage.py", "showmigrations", "registry"],
        cwd=settings.BASE_DIR, env=_clean_env(MOAT_STATE_DIR=str(state)), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    elsewhere = subprocess.run(
        [sys.executable, "manage.py", "showmigrations", "registry"],
        cwd=settings.BASE_DIR, env=_clean_env(MOAT_STATE_DIR=str(tmp_path / "none")), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip

    assert found.returncode == 0, found.stderr[-2000:]
    assert "[X] 0005_drop_input_shape_columns" in found.stdout
    # Where make run never ran, settings still fail loudly: no secret is made up for a deployment.
    assert elsewhere.returncode != 0 and "SECRET_KEY" in elsewhere.stderr


def test_the_local_environment_restarts_the_embedded_servers_it_recorded(tmp_path, monkeypatch):
    import embedded

    state = tmp_path / "state"
    state.mkdir()
    (state / "platform.env").write_text(
        "DATABASE_URL=postgres://ignored\nREDIS_URL=redis://elsewhere:6379/0\nMOAT_EMBEDDED=DATABASE_URL\n"
    )
    (state / "secret_key").write_text("kept\n")
    started = []
    monkeypatch.setattr(embedded, "ensure_postgres", lambda folder: started.append(folder) or "postgres://embedded")
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "WATERMARK_SECRET", "OUTPUT_NOISE_SECRET"):
        monkeypatch.delenv(name, raising=False)

    found = embedded.local_environment(state)

    assert found == {
        "DATABASE_URL": "postgres://embedded",
        "REDIS_URL": "redis://elsewhere:6379/0",
        "SECRET_KEY": "kept",
    }
    assert started == [state]
    assert embedded.local_environment(tmp_path / "never-ran") == {}
