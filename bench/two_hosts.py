"""Two web hosts behind HAProxy against one host, on the same machine: the scale-out layout's cost, not a speed-up.

Both layouts run at once and take turns (one host, two hosts, one host, ...), each with two web workers in all: one
host of 2 workers reached directly, as `make bench` measures it, and two hosts of 1 worker each (network namespaces,
tests/hosts.py) behind HAProxy running deploy/haproxy.cfg. On one machine the two hosts share its cores, so the
ratio says what the balancer, the extra hop and the shared Redis cost, and that nothing serialises across hosts.
Also measured, for the README's capacity table: Redis commands and Redis CPU time per request (everything Redis ran
and spent during a round, the Celery flusher's share included, over the requests answered).

Run it through `make bench` (bin/bench: it needs root for the namespaces, and HAProxy). Alone:
    python bench/two_hosts.py --pro-key KEY [--seconds 10] [--rounds 3]
with the bench's environment (bin/bench exports it). Writes bench/results/two-hosts.json.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

import numpy as np  # noqa: E402
from api_load import natural_inputs, run_wrk  # noqa: E402

from core.redis import redis_client  # noqa: E402
from tests.hosts import deployment, missing_requirements  # noqa: E402
from tests.processes import celery_beat, celery_worker, web_server  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def redis_calls() -> dict[str, int]:
    """Calls of each command Redis has run (a quota script's own commands included), from INFO commandstats."""
    return {
        name.removeprefix("cmdstat_"): int(stats["calls"])
        for name, stats in redis_client().info("commandstats").items()
    }


def redis_cpu_seconds() -> float:
    """CPU time the Redis server has used (user + system), from INFO cpu."""
    cpu = redis_client().info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def measured_round(url: str, *, key: str, body: str, seconds: int, connections: int) -> dict:
    before, cpu_before = redis_calls(), redis_cpu_seconds()
    found = run_wrk(url, method="POST", key=key, body=body, seconds=seconds, connections=connections)
    after, cpu_after = redis_calls(), redis_cpu_seconds()
    answered = found["requests_per_second"] * seconds
    found["redis_cpu_us_per_request"] = (cpu_after - cpu_before) * 1e6 / answered if answered else None
    per_request = {name: (calls - before.get(name, 0)) / answered for name, calls in after.items()}
    found["redis_commands_per_request"] = sum(per_request.values())
    found["redis_calls_per_request"] = {name: round(n, 3) for name, n in sorted(per_request.items()) if n >= 0.01}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pro-key", required=True)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if why := missing_requirements():
        sys.exit(f"two hosts cannot run here: {why}")

    bodies = {
        "predict, 1 input (pro)": json.dumps({"inputs": natural_inputs(1)}),
        "predict, 100 inputs (pro)": json.dumps({"inputs": natural_inputs(100)}),
    }
    report: dict = {"rounds": args.rounds, "seconds": args.seconds, "connections": args.connections}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        with (
            # The query log is flushed as in production (beat queues a flush every 2 s): its share of Redis counts.
            celery_worker(log_path=tmp / "worker.log", concurrency=1),
            celery_beat(log_path=tmp / "beat.log"),
            web_server(log_path=tmp / "one-host.log", workers=2) as (one_host, _),
            deployment(tmp_path=tmp, workers=1) as two_hosts,
        ):
            layouts = {"one host, 2 workers": one_host, "two hosts, HAProxy, 1 worker each": two_hosts.url}
            for base in layouts.values():  # warm-up: each worker loads the models at its first request
                run_wrk(f"{base}/v1/models/digits/predict", method="POST", key=args.pro_key,
                        body=bodies["predict, 1 input (pro)"], seconds=2, connections=args.connections)  # fmt: skip
            print(
                f"{'scenario':28} {'layout':40} {'req/s':>7} {'p99 ms':>8} {'Redis cmds/req':>15} {'Redis CPU/req':>14}"
            )
            for scenario, body in bodies.items():
                rounds: dict[str, list[dict]] = {layout: [] for layout in layouts}
                for _ in range(args.rounds):
                    for layout, base in layouts.items():
                        rounds[layout].append(
                            measured_round(
                                f"{base}/v1/models/digits/predict",
                                key=args.pro_key,
                                body=body,
                                seconds=args.seconds,
                                connections=args.connections,
                            )
                        )
                figures = {}
                for layout, found in rounds.items():
                    figures[layout] = {
                        field: float(np.median([r[field] for r in found]))
                        for field in (
                            "requests_per_second",
                            "p99_ms",
                            "redis_commands_per_request",
                            "redis_cpu_us_per_request",
                        )
                    }
                    figures[layout]["non_2xx"] = sum(r["non_2xx"] for r in found)
                    figures[layout]["redis_calls_per_request"] = found[-1]["redis_calls_per_request"]
                    f = figures[layout]
                    print(
                        f"{scenario:28} {layout:40} {f['requests_per_second']:7.0f} {f['p99_ms']:8.2f}"
                        f" {f['redis_commands_per_request']:15.2f} {f['redis_cpu_us_per_request']:11.1f} us"
                    )
                one, two = (figures[layout]["requests_per_second"] for layout in layouts)
                figures["two_hosts_to_one"] = round(two / one, 3)
                print(f"{scenario}: two hosts at {two / one:.2f}x one host on the same cores")
                report[scenario] = figures
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "two-hosts.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
