"""Several web hosts on one machine, for tests of a scaled-out deployment: each host is a network namespace of its own
(`ip netns`, a veth pair into a bridge the test makes), running the platform's web server on its own address, with
HAProxy (deploy/haproxy.cfg, the sample the README gives) in front. Needs root and Debian's iproute2 and haproxy."""

import itertools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

from tests.processes import _answers, _process, free_port, process_env

WEB_PORT = 8000
_networks = itertools.count()


def missing_requirements() -> str | None:
    """Why this machine cannot run several hosts, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "haproxy"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (bin/test installs it)"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)  # noqa: S603, S607 - iproute2, our arguments


@dataclass(frozen=True)
class Network:
    """A bridge in the test's own namespace (the balancer's side, `gateway`) and one namespace per host."""

    name: str
    gateway: str
    host_addresses: tuple[str, ...]

    def namespace(self, index: int) -> str:
        return f"{self.name}h{index}"


@contextmanager
def network(hosts: int) -> Iterator[Network]:
    """A /24 of its own (chosen from this process's id, so concurrent sessions do not collide), torn down after."""
    serial = next(_networks) % 10
    name = f"mt{os.getpid() % 100000}n{serial}"
    subnet = f"10.{200 + os.getpid() % 50}.{(os.getpid() * 10 + serial) % 250}"
    net = Network(name, f"{subnet}.1", tuple(f"{subnet}.{10 + i}" for i in range(hosts)))
    bridge = f"{name}br"
    _remove(net, hosts)  # what a killed session of the same pid may have left
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{net.gateway}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for index, address in enumerate(net.host_addresses):
            namespace, outside = net.namespace(index), f"{name}v{index}"
            _ip("netns", "add", namespace)
            _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            _ip("link", "set", outside, "master", bridge, "up")
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            _ip("-n", namespace, "route", "add", "default", "via", net.gateway)
        yield net
    finally:
        _remove(net, hosts)


def _remove(net: Network, hosts: int) -> None:
    for index in range(hosts):
        subprocess.run(["ip", "netns", "del", net.namespace(index)], capture_output=True)  # noqa: S603, S607
    subprocess.run(["ip", "link", "del", f"{net.name}br"], capture_output=True)  # noqa: S603, S607


def _haproxy_config(path: Path, *, listeners: list[tuple[str, str]]) -> None:
    """Plain TCP relays (bind address, target) for the services a host must reach on this namespace's loopback."""
    lines = ["defaults", "    mode tcp", "    timeout connect 5s", "    timeout client 1h", "    timeout server 1h"]
    for index, (bind, target) in enumerate(listeners):
        lines += [f"listen relay{index}", f"    bind {bind}", f"    server target {target}"]
    path.write_text("\n".join(lines) + "\n")


def _haproxy(config: Path, *, env: dict[str, str], log_path: Path, ready) -> Iterator[subprocess.Popen]:
    return _process(["haproxy", "-db", "-f", str(config)], env=env, log_path=log_path, ready=ready)


def _listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, int(port))) == 0


def reachable_from_hosts(url: str, net: Network, relays: list[tuple[str, str]]) -> str:
    """The URL a host's process must use for a service this process reaches at `url`: a Unix socket is the same
    file in every namespace; a loopback TCP address is not, so it gets a relay on the gateway (added to `relays`)."""
    parts = urlsplit(url)
    if parts.scheme == "unix" or not parts.hostname or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return url
    port = parts.port or {"postgres": 5432, "postgresql": 5432, "redis": 6379, "amqp": 5672}[parts.scheme]
    relay = f"{net.gateway}:{free_port()}"
    relays.append((relay, f"127.0.0.1:{port}"))
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{userinfo}{relay}"))


@dataclass(frozen=True)
class Deployment:
    """The balancer's URL, each host's own URL (reachable from the test), and each host's web-server process."""

    url: str
    host_urls: tuple[str, ...]
    processes: tuple[subprocess.Popen, ...]
    network: Network
    admin_socket: Path


@contextmanager
def deployment(
    *,
    tmp_path: Path,
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
    on_network: Network | None = None,
) -> Iterator[Deployment]:
    """Two web hosts behind HAProxy running deploy/haproxy.cfg, sharing this test's PostgreSQL and Redis (or the
    REDIS_URL in `extra_env`, e.g. a Redis Cluster listening on the gateway of `on_network`, a network the caller
    made first). Yields once HAProxy sees every host up."""
    with ExitStack() as stack:
        net = on_network or stack.enter_context(network(2))
        if len(net.host_addresses) != 2:
            raise ValueError("deploy/haproxy.cfg names two hosts")
        base_env = process_env(extra_env)
        relays: list[tuple[str, str]] = []
        service_env = {
            name: reachable_from_hosts(base_env[name], net, relays)
            for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
            if base_env.get(name)
        }
        if relays:
            config = tmp_path / "relays.cfg"
            _haproxy_config(config, listeners=relays)
            stack.enter_context(
                _haproxy(
                    config,
                    env=dict(os.environ),
                    log_path=tmp_path / "relays.log",
                    ready=lambda: all(_listening(bind) for bind, _ in relays),
                )
            )

        lb_port = free_port()
        url = f"http://127.0.0.1:{lb_port}"
        host_urls = tuple(f"http://{address}:{WEB_PORT}" for address in net.host_addresses)
        processes = []
        for index, address in enumerate(net.host_addresses):
            env = {
                **base_env,
                **service_env,
                "MOAT_HOST": address,
                "MOAT_PORT": str(WEB_PORT),
                "WEB_CONCURRENCY": str(workers),
                "TRUSTED_PROXIES": net.gateway,
                "ALLOWED_HOSTS": f"127.0.0.1,localhost,{address}",
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"metrics-{index}"),
            }
            processes.append(
                stack.enter_context(
                    _process(
                        ["ip", "netns", "exec", net.namespace(index), "bash", str(settings.BASE_DIR / "bin" / "web")],
                        env=env,
                        log_path=tmp_path / f"web-{index}.log",
                        ready=lambda u=host_urls[index]: _answers(u + "/healthz"),
                    )
                )
            )
        lb_env = {
            **os.environ,
            "MOAT_LB_BIND": f"127.0.0.1:{lb_port}",
            "MOAT_PUBLIC_HOST": "localhost",
            "MOAT_LB_ADMIN": str(tmp_path / "haproxy.sock"),
            **{f"MOAT_WEB_{i + 1}": f"{address}:{WEB_PORT}" for i, address in enumerate(net.host_addresses)},
        }
        stack.enter_context(
            _haproxy(
                settings.BASE_DIR / "deploy" / "haproxy.cfg",
                env=lb_env,
                log_path=tmp_path / "haproxy.log",
                ready=lambda: _answers(url + "/healthz"),
            )
        )
        _wait_until_every_server_is_up(tmp_path / "haproxy.sock", len(net.host_addresses))
        yield Deployment(url, host_urls, tuple(processes), net, tmp_path / "haproxy.sock")


def balancer_command(admin_socket: Path, command: str) -> str:
    """One command on HAProxy's admin socket (deploy/haproxy.cfg's `stats socket`), e.g. `show stat`."""
    with socket.socket(socket.AF_UNIX) as admin:
        admin.settimeout(5)
        admin.connect(str(admin_socket))
        admin.sendall(command.encode() + b"\n")
        answer = b""
        while chunk := admin.recv(65536):
            answer += chunk
    return answer.decode()


def servers_up(admin_socket: Path) -> int:
    """How many of the web backend's servers HAProxy considers up."""
    rows = [line.split(",") for line in balancer_command(admin_socket, "show stat").splitlines()]
    return sum(1 for row in rows if len(row) > 17 and row[0] == "web" and row[1] != "BACKEND" and row[17] == "UP")


def _wait_until_every_server_is_up(admin_socket: Path, hosts: int) -> None:
    # Until a server's first check passes, HAProxy sends it nothing: a test of "both hosts" would quietly test one.
    deadline = time.monotonic() + 15
    while servers_up(admin_socket) < hosts:
        if time.monotonic() > deadline:
            raise RuntimeError(f"HAProxy saw {servers_up(admin_socket)} of {hosts} web hosts up")
        time.sleep(0.1)
