"""Drive wrk against a running Moat and report requests/s and latency for the prediction path next to a plain view.

Run it through `make bench` (bin/bench), which starts the platform as `make run` serves it and makes the keys.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
LUA = """
wrk.method = "{method}"
wrk.headers["Content-Type"] = "application/json"
{auth}
{body}
"""


def natural_inputs(n: int) -> list[list[float]]:
    """Natural digits (the digits model's inputs)."""
    from sklearn.datasets import load_digits

    data = load_digits().data
    return data[np.random.default_rng(0).choice(len(data), size=n, replace=False)].tolist()


def natural_measurements(n: int) -> list[list[float]]:
    """Natural breast-cancer measurements (the tabular model's inputs, 30 features)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer().data
    return data[np.random.default_rng(0).choice(len(data), size=n, replace=False)].tolist()


def v2_body(rows: list[list[float]]) -> str:
    """The Open Inference Protocol's request for the same rows (one FP32 tensor, row-major JSON data)."""
    tensor = {
        "name": "input",
        "shape": [len(rows), len(rows[0])],
        "datatype": "FP32",
        "data": [v for row in rows for v in row],
    }
    return json.dumps({"inputs": [tensor]})


def run_wrk(url: str, *, method: str, key: str | None, body: str | None, seconds: int, connections: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "request.lua"
        body_line = ""
        if body is not None:
            (Path(folder) / "body.json").write_text(body)
            body_line = f'wrk.body = io.open("{Path(folder) / "body.json"}"):read("*a")'
        auth = f'wrk.headers["Authorization"] = "Bearer {key}"' if key else ""
        script.write_text(LUA.format(method=method, auth=auth, body=body_line))
        output = subprocess.run(  # noqa: S603
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    latency = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+\w+)", output).group(1)) for p in ("50", "99")}
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return {
        "requests_per_second": rps,
        "p50_ms": latency["50"],
        "p99_ms": latency["99"],
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def _median(rounds: list[dict], field: str) -> float:
    return float(np.median([r[field] for r in rounds]))


def interleaved_with_peer(args: argparse.Namespace, *, predict: str, pro: str, common: dict) -> dict:
    """Moat and the peer (and, for the hello, a bare WSGI app on gunicorn) in alternating rounds of each scenario
    (Moat, peer, Moat, peer, ...), so that the machine's drift falls on both: medians of requests/s and p99, and
    Moat's ratios to the peer and to the bare WSGI hello."""
    single, batch = json.dumps({"inputs": natural_inputs(1)}), json.dumps({"inputs": natural_inputs(100)})
    peer_predict = f"{args.peer_url}/v1/models/digits/predict"
    scenarios = {
        "hello / plain view": {
            "moat": lambda: run_wrk(f"{args.base_url}/healthz", method="GET", key=None, body=None, **common),
            "peer": lambda: run_wrk(f"{args.peer_url}/healthz", method="GET", key=None, body=None, **common),
            "bare WSGI": lambda: run_wrk(f"{args.bare_url}/", method="GET", key=None, body=None, **common),
        },
        "predict, 1 input (pro)": {
            "moat": lambda: run_wrk(predict, method="POST", key=pro, body=single, **common),
            "peer": lambda: run_wrk(peer_predict, method="POST", key=pro, body=single, **common),
        },
        "predict, 100 inputs (pro)": {
            "moat": lambda: run_wrk(predict, method="POST", key=pro, body=batch, **common),
            "peer": lambda: run_wrk(peer_predict, method="POST", key=pro, body=batch, **common),
        },
    }
    run_wrk(peer_predict, method="POST", key=pro, body=single, seconds=3, connections=args.connections)  # warm-up
    report: dict = {}
    print(f"\ninterleaved with the peer: medians of {args.peer_rounds} rounds each")
    print(f"{'scenario':28} {'stack':10} {'req/s':>9} {'p99 ms':>8}")
    for name, stacks in scenarios.items():
        rounds: dict[str, list[dict]] = {stack: [] for stack in stacks}
        for _ in range(args.peer_rounds):
            for stack, run in stacks.items():
                rounds[stack].append(run())
        figures = {
            stack: {"requests_per_second": _median(found, "requests_per_second"), "p99_ms": _median(found, "p99_ms"),
                    "rounds": [f["requests_per_second"] for f in found]}
            for stack, found in rounds.items()
        }  # fmt: skip
        for stack, found in figures.items():
            print(f"{name:28} {stack:10} {found['requests_per_second']:9.0f} {found['p99_ms']:8.2f}")
        report[name] = figures
    bare = report["hello / plain view"]["bare WSGI"]["requests_per_second"]
    for name, figures in report.items():
        moat, peer = figures["moat"]["requests_per_second"], figures["peer"]["requests_per_second"]
        figures["moat_to_peer"] = round(moat / peer, 3)
        figures["moat_to_bare_wsgi_hello"] = round(moat / bare, 3)
        p99 = f"p99 {figures['moat']['p99_ms']:.1f} ms against the peer's {figures['peer']['p99_ms']:.1f} ms"
        print(f"{name}: Moat at {moat / peer:.2f}x the peer, {moat / bare:.0%} of a bare WSGI hello ({p99})")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--pro-key", required=True)
    parser.add_argument("--enterprise-key", required=True)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--pair-rounds", type=int, default=3, help="alternating /v1 and /v2 rounds per size")
    parser.add_argument(
        "--peer-url", help="the peer stack (../shared/bench-peer under uvicorn), for interleaved rounds"
    )
    parser.add_argument("--bare-url", help="a bare WSGI hello on the same web server (gunicorn sync)")
    parser.add_argument("--peer-rounds", type=int, default=5, help="interleaved Moat/peer rounds per scenario")
    parser.add_argument("--label", default="api", help="names the results file: bench/results/<label>.json")
    parser.add_argument(
        "--peer-only",
        action="store_true",
        help="only the rounds against the peer (needs --peer-url, --bare-url)",
    )
    args = parser.parse_args()
    common = {"seconds": args.seconds, "connections": args.connections}
    predict = f"{args.base_url}/v1/models/digits/predict"
    if args.peer_only:
        if not (args.peer_url and args.bare_url):
            parser.error("--peer-only needs --peer-url and --bare-url")
        run_wrk(predict, method="POST", key=args.pro_key, body=json.dumps({"inputs": natural_inputs(1)}),
                seconds=3, connections=args.connections)  # fmt: skip
        against_peer = interleaved_with_peer(args, predict=predict, pro=args.pro_key, common=common)
        _write_results(args.label, {"against_peer": against_peer})
        return
    single = json.dumps({"inputs": natural_inputs(1)})
    batch = json.dumps({"inputs": natural_inputs(100)})
    tabular_single = json.dumps({"inputs": natural_measurements(1)})
    tabular_batch = json.dumps({"inputs": natural_measurements(100)})
    infer = f"{args.base_url}/v2/models/digits/infer"
    tabular = f"{args.base_url}/v1/models/breast-cancer/predict"
    pro, enterprise = args.pro_key, args.enterprise_key
    # Warm up first (the workers' first requests load the models; beat's first jobs run at start-up), so that the
    # plain view, measured first, is not measured on a machine still starting.
    warm = {"seconds": 3, "connections": args.connections}
    run_wrk(f"{args.base_url}/healthz", method="GET", key=None, body=None, **warm)
    run_wrk(predict, method="POST", key=pro, body=single, **warm)
    run_wrk(tabular, method="POST", key=pro, body=tabular_single, **warm)
    run_wrk(infer, method="POST", key=pro, body=v2_body(natural_inputs(1)), **warm)
    results = {
        "plain view (GET /healthz)": run_wrk(f"{args.base_url}/healthz", method="GET", key=None, body=None, **common),
        "predict, 1 input (pro)": run_wrk(predict, method="POST", key=pro, body=single, **common),
        "v2 infer, 1 input (pro)": run_wrk(infer, method="POST", key=pro, body=v2_body(natural_inputs(1)), **common),
        "predict, 100 inputs (pro)": run_wrk(predict, method="POST", key=pro, body=batch, **common),
        "v2 infer, 100 inputs (pro)": run_wrk(
            infer, method="POST", key=pro, body=v2_body(natural_inputs(100)), **common
        ),
        "predict, 1 input (enterprise)": run_wrk(predict, method="POST", key=enterprise, body=single, **common),
        "breast-cancer, 1 input (pro)": run_wrk(tabular, method="POST", key=pro, body=tabular_single, **common),
        "breast-cancer, 100 inputs (pro)": run_wrk(tabular, method="POST", key=pro, body=tabular_batch, **common),
        "breast-cancer, 1 input (enterprise)": run_wrk(
            tabular, method="POST", key=enterprise, body=tabular_single, **common
        ),
    }
    baseline = results["plain view (GET /healthz)"]["requests_per_second"]
    print(f"{'scenario':38} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs plain':>9} {'non-2xx':>8}")
    for name, figures in results.items():
        ratio = figures["requests_per_second"] / baseline
        figures["ratio_to_plain_view"] = round(ratio, 3)
        print(
            f"{name:38} {figures['requests_per_second']:9.0f} {figures['p50_ms']:8.2f} {figures['p99_ms']:8.2f} "
            f"{ratio:9.0%} {figures['non_2xx']:8d}"
        )
    # The Open Inference Protocol's cost: /v1 predict and /v2 infer on the same model and rows, in alternating
    # rounds (v1, v2, v1, v2, ...) so that the machine's drift falls on both; the median of the rounds' ratios.
    pairs: dict = {}
    for size, rows in (("1 input", natural_inputs(1)), ("100 inputs", natural_inputs(100))):
        ratios = []
        for _ in range(args.pair_rounds):
            v1 = run_wrk(predict, method="POST", key=pro, body=json.dumps({"inputs": rows}), **common)
            v2 = run_wrk(infer, method="POST", key=pro, body=v2_body(rows), **common)
            ratios.append(v2["requests_per_second"] / v1["requests_per_second"])
        pairs[size] = {"rounds": [round(r, 3) for r in ratios], "median_ratio": round(float(np.median(ratios)), 3)}
        rounds = ", ".join(f"{r:.0%}" for r in ratios)
        print(f"/v2 infer against /v1 predict, {size}: {pairs[size]['median_ratio']:.0%} of its requests/s "
              f"(median of {args.pair_rounds} alternating rounds: {rounds})")  # fmt: skip
    for name in ("predict, 100 inputs (pro)", "breast-cancer, 100 inputs (pro)"):
        print(f"predictions/s with batches of 100, {name}: {results[name]['requests_per_second'] * 100:,.0f}")
    against_peer = (
        interleaved_with_peer(args, predict=predict, pro=pro, common=common) if args.peer_url and args.bare_url else {}
    )
    _write_results(args.label, {"results": results, "v2_against_v1": pairs, "against_peer": against_peer})


def _write_results(label: str, figures: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    machine = {"processor": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}
    (RESULTS / f"api-{label}.json").write_text(json.dumps({"machine": machine, **figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
