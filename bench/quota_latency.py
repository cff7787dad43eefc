"""What the quota check adds to a request: p50/p99 of the Redis calls as the app makes them.

Run by `make bench` (bin/bench) against the platform's Redis: the quota script with its query-log record (what
every admitted request pays), the plain XADD of the same record (what the path paid before quotas), and a PING
(the round-trip floor). Writes bench/results/quota-latency.json.
"""

import json
import os
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

import numpy as np  # noqa: E402

from apikeys.models import ApiKey  # noqa: E402
from core.redis import redis_client  # noqa: E402
from serving.predictions.querylog import QueryRecord, querylog_append  # noqa: E402
from serving.quotas.limiter import quota_consume  # noqa: E402
from tiers.cache import tier_snapshot  # noqa: E402

RESULTS = Path(__file__).parent / "results"
CALLS = 20_000


def record(key: ApiKey) -> QueryRecord:
    return QueryRecord(
        organization_id=key.organization_id, api_key_id=key.pk, tier_code="enterprise", endpoint="predict",
        status=200, latency_us=300, client_ip="127.0.0.1", user_agent="bench", inputs=bytes(64), input_row_bytes=64,
        labels=["3"], clean_labels=["3"], confidences=[0.97], watermarked=[False],
    )  # fmt: skip


def measure(call) -> dict[str, float]:
    for _ in range(500):
        call()
    samples = np.empty(CALLS)
    for i in range(CALLS):
        started = time.perf_counter()
        call()
        samples[i] = time.perf_counter() - started
    return {"p50_us": round(float(np.percentile(samples, 50)) * 1e6, 1),
            "p99_us": round(float(np.percentile(samples, 99)) * 1e6, 1)}  # fmt: skip


def main() -> None:
    key = ApiKey.objects.select_related("organization").filter(organization__tier__code="enterprise").latest("id")
    tier = tier_snapshot(code="enterprise")
    connection = redis_client()
    results = {
        "PING (round-trip floor)": measure(connection.ping),
        "XADD of the record alone (no quota)": measure(lambda: querylog_append(record(key))),
        "quota script + record (one EVALSHA)": measure(
            lambda: quota_consume(
                organization_id=key.organization_id,
                key_id=key.pk,
                tier=tier,
                cost=1,
                billable=True,
                record=record(key),
            )
        ),
    }
    print(f"{'Redis call from the app':40} {'p50 us':>8} {'p99 us':>8}")
    for name, figures in results.items():
        print(f"{name:40} {figures['p50_us']:8.1f} {figures['p99_us']:8.1f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quota-latency.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
