"""A private RabbitMQ node for the tests of Celery on RabbitMQ and of the scaled-out deployment."""

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.processes import _stop, free_port


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
