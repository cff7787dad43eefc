"""How fast one flusher moves the query log from Redis to PostgreSQL: records/s and rows/s, and its CPU per record.

Run by `make bench` (bin/bench) after the platform is stopped, so that no other flusher takes the records: appends
records of 1 and of 100 inputs (the digits' 64-byte rows) for the latest enterprise key, then times
`querylog_flush` until the streams are empty. The flusher shares the web workers' cores in `make run`, so its CPU per
record is what a prediction's durable log costs the machine besides the request itself. Writes
bench/results/querylog-flush.json.
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
from serving.predictions.querylog import QueryRecord, querylog_append, querylog_flush, querylog_pending  # noqa: E402

RESULTS = Path(__file__).parent / "results"
RECORDS = {1: 20_000, 100: 2_000}  # inputs per record: records appended


def record(key: ApiKey, rows: np.ndarray) -> QueryRecord:
    n = rows.shape[0]
    return QueryRecord(
        organization_id=key.organization_id, api_key_id=key.pk, tier_code="enterprise", endpoint="predict",
        status=200, latency_us=300, client_ip="127.0.0.1", user_agent="bench", model_slug="digits",
        model_version="bench", variant="full", inputs=rows.tobytes(), input_row_bytes=rows.shape[1],
        labels=["3"] * n, clean_labels=["3"] * n, confidences=[0.97] * n, watermarked=[False] * n,
    )  # fmt: skip


def measure(key: ApiKey, inputs: int, count: int) -> dict[str, float]:
    rng = np.random.default_rng(inputs)
    while querylog_pending():  # what the stopped platform left, some of it pending until it may be claimed
        querylog_flush()
        time.sleep(0.5)
    for _ in range(count):
        querylog_append(record(key, rng.integers(0, 17, size=(inputs, 64), dtype=np.uint8)))
    wall, cpu = time.perf_counter(), time.process_time()
    while querylog_pending():
        querylog_flush()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "records": count,
        "records_per_second": round(count / wall),
        "rows_per_second": round(count * inputs / wall),
        "flusher_cpu_us_per_record": round(cpu / count * 1e6, 1),
    }


def main() -> None:
    key = ApiKey.objects.filter(organization__tier__code="enterprise").latest("id")
    results = {f"{inputs} input(s) a record": measure(key, inputs, count) for inputs, count in RECORDS.items()}
    print(f"{'records':22} {'records/s':>10} {'rows/s':>10} {'flusher CPU/record':>19}")
    for name, figures in results.items():
        print(f"{name:22} {figures['records_per_second']:10,} {figures['rows_per_second']:10,} "
              f"{figures['flusher_cpu_us_per_record']:16.1f} us")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "querylog-flush.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
