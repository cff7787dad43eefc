"""The query log at scale: the flush rate and the abuse risk job's time with 10 million rows logged.

Works on a scratch database of its own (`moat_scale_<pid>`, created on the PostgreSQL server of DATABASE_URL,
migrated, dropped at the end even on failure), a Redis logical database of its own (`--redis-db`, refused unless
empty, emptied at the end: the streams and the cache) and a temporary model artifact folder: it never touches
the platform's data (in `make bench`, those of its embedded servers). Steps:
1. migrate, register the demo models (`train_demo_model`), make the monthly partitions of the last `--months` months
   (`querylog_partitions_ensure`, the beat task's service), create `--organizations` organizations with a key each;
2. measure the flush on the empty table: records of 1 input and of 100 (the digits' 64-byte rows) appended to the
   Redis streams, timed through the real `querylog_flush` until the streams are empty (the median of 3 rounds);
3. fill the log to `--rows` rows, spread evenly over the months and unevenly over the organizations (a few heavy
   customers, a long tail), generated inside PostgreSQL (INSERT ... SELECT over generate_series: no client
   round trip, faster than COPY from Python), month by month as the log grows; raw inputs (real digits, from
   scikit-learn's set) only on the last 90 days' predictions, as the retention job leaves them;
4. VACUUM (ANALYZE) and CHECKPOINT (an old log is vacuumed long since: the fill's 5 GB must not be written out
   during the measurements), then measure the flush again, into the full table;
5. time the real risk job (`extraction_risk_assess_all`: every organization with traffic in its 24 h window,
   scored) after the models' reference profiles are fitted (a once-per-model cost, not the job's), and metering's
   reads (a day's usage aggregation, a month's usage of the heaviest organization); EXPLAIN every query-log query
   they sent and record which partitions each read.
Writes bench/results/querylog-at-scale.json.

Run alone (PostgreSQL and Redis from the environment, as `make run` or `manage.py` find them):
    .venv/bin/python bench/querylog_at_scale.py --rows 10000000
`make bench` (bin/bench) runs it after bench/querylog_flush.py with its defaults.
"""

import argparse
import json
import os
import re
import shutil
import tempfile
import time
from collections import deque
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

RESULTS = Path(__file__).parent / "results"
FLUSH_RECORDS = {1: 20_000, 100: 2_000}  # inputs per record: records appended (as bench/querylog_flush.py)
FLUSH_ROUNDS = 3
INPUT_DAYS = 90  # QUERY_LOG_RAW_INPUT_RETENTION_DAYS' default: older rows have had their inputs pruned


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows in the query log (default 10,000,000)")
    parser.add_argument("--months", type=int, default=13, help="months the rows span, up to now (default 13)")
    parser.add_argument("--organizations", type=int, default=1000, help="organizations the rows belong to")
    parser.add_argument("--redis-db", type=int, default=14, help="an empty Redis logical database to use")
    return parser.parse_args()


def _redis_url_with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":  # the database is a query parameter
        return f"unix://{parts.path}?{urlencode({**dict(parse_qsl(parts.query)), 'db': str(db)})}"
    return urlunsplit(parts._replace(path=f"/{db}"))


ARGS = _arguments()
# Before Django reads its settings: the bench's own Redis database, model folder, and no task leaves the process.
ARTIFACTS = tempfile.mkdtemp(prefix="moat-scale-models-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
if os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = _redis_url_with_db(os.environ["REDIS_URL"], ARGS.redis_db)
os.environ.update(
    MODEL_ARTIFACT_DIR=ARTIFACTS, CELERY_TASK_ALWAYS_EAGER="true", LOG_LEVEL="WARNING",
    EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
)  # fmt: skip

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import DatabaseError, connection, connections  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from core.redis import redis_client  # noqa: E402
from serving.predictions import querylog  # noqa: E402
from serving.predictions.partitions import TABLE, add_months, month_start, querylog_partitions_ensure  # noqa: E402


def _create_scratch_database() -> tuple[str, str]:
    """Create the scratch database beside the configured one and point Django at it; returns (original, scratch)."""
    original = settings.DATABASES["default"]["NAME"]
    scratch = f"moat_scale_{os.getpid()}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{scratch}"')
    connections.close_all()
    settings.DATABASES["default"]["NAME"] = scratch
    connection.settings_dict["NAME"] = scratch
    return original, scratch


def _drop_scratch_database(original: str, scratch: str) -> None:
    connections.close_all()
    settings.DATABASES["default"]["NAME"] = original
    connection.settings_dict["NAME"] = original
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    connections.close_all()


def _organizations(count: int) -> list[tuple[int, int, str]]:
    """`count` organizations (the tiers in turn, most of them free) with one key each: (organization, key, tier)."""
    from accounts.models import Organization
    from apikeys.models import ApiKey
    from tiers.models import Tier

    tiers = {tier.code: tier for tier in Tier.objects.filter(code__in=["free", "pro", "enterprise"])}
    codes = ["free"] * 6 + ["pro"] * 3 + ["enterprise"]
    organizations = Organization.objects.bulk_create(
        Organization(name=f"scale-{n}", tier=tiers[codes[n % len(codes)]]) for n in range(count)
    )
    keys = ApiKey.objects.bulk_create(
        ApiKey(organization=org, name="bench", key_hash=f"{org.pk:064x}", display=f"mk_...{org.pk % 10000:04d}")
        for org in organizations
    )
    return [(key.organization_id, key.pk, key.organization.tier.code) for key in keys]


def _record(organization_id: int, key_id: int, rows: np.ndarray) -> querylog.QueryRecord:
    n = rows.shape[0]
    return querylog.QueryRecord(
        organization_id=organization_id, api_key_id=key_id, tier_code="enterprise", endpoint="predict", status=200,
        latency_us=300, client_ip="127.0.0.1", user_agent="bench", model_slug="digits", model_version="bench",
        variant="full", inputs=rows.tobytes(), input_row_bytes=rows.shape[1], labels=["3"] * n,
        clean_labels=["3"] * n, confidences=[0.97] * n, watermarked=[False] * n,
    )  # fmt: skip


def _measure_flush(organization_id: int, key_id: int, pool: np.ndarray) -> dict[str, dict]:
    """Records/s (= rows/s into PostgreSQL: one row a record) and inputs/s of one flusher draining the streams.
    The records are the bench's own organization's, deleted afterwards: the log keeps only the filled rows."""
    from serving.predictions.models import QueryLog

    results = {}
    since = timezone.now() - timedelta(minutes=1)
    rng = np.random.default_rng(7)
    for inputs, count in FLUSH_RECORDS.items():
        rounds = []  # (wall, cpu) of each round; the median round is reported (the machine is shared)
        for _ in range(FLUSH_ROUNDS):
            for _ in range(count):
                querylog.querylog_append(_record(organization_id, key_id, pool[rng.integers(0, len(pool), inputs)]))
            wall, cpu = time.perf_counter(), time.process_time()
            while querylog.querylog_pending():
                querylog.querylog_flush(batch_size=settings.QUERY_LOG_FLUSH_BATCH)
            rounds.append((time.perf_counter() - wall, time.process_time() - cpu))
        wall, cpu = sorted(rounds)[len(rounds) // 2]
        results[f"{inputs} input(s) a record"] = {
            "records": count,
            "rows_per_second": round(count / wall),
            "inputs_per_second": round(count * inputs / wall),
            "flusher_cpu_us_per_record": round(cpu / count * 1e6, 1),
            "rows_per_second_of_each_round": [round(count / w) for w, _ in rounds],
        }
    QueryLog.objects.filter(organization_id=organization_id, created_at__gte=since).delete()
    return results


_FILL = f"""
INSERT INTO {TABLE} (request_id, created_at, organization_id, api_key_id, tier_code, endpoint, model_slug,
    model_version, variant, client_ip, user_agent, latency_us, status, error_code, batch_size, inputs,
    input_row_bytes, input_hashes, labels, clean_labels, confidences, watermarked, limit_window)
SELECT gen_random_uuid(), s.at, o.organization_id, o.key_id, o.tier_code, s.endpoint, 'digits', 'bench',
    'defended', '198.51.100.7'::inet, 'bench/1.0', 900 + (s.c * 2000)::int, s.status,
    CASE s.status WHEN 429 THEN 'rate_limited' WHEN 404 THEN 'model_not_found' ELSE '' END,
    CASE WHEN s.served THEN 1 ELSE 0 END,
    CASE WHEN s.served AND s.at >= %(inputs_since)s THEN p.inputs END,
    CASE WHEN s.served AND s.at >= %(inputs_since)s THEN 64 ELSE 0 END,
    CASE WHEN s.served THEN sha256(p.inputs) END,
    CASE WHEN s.served THEN ARRAY[p.label] ELSE '{{}}' END,
    CASE WHEN s.served THEN ARRAY[p.label] ELSE '{{}}' END,
    CASE WHEN s.served THEN ARRAY[0.5 + s.c / 2] ELSE '{{}}' END,
    CASE WHEN s.served THEN ARRAY[false] ELSE '{{}}' END,
    CASE s.status WHEN 429 THEN 'organization_minute' ELSE '' END
FROM (
    SELECT %(start)s::timestamptz + random() * (%(end)s::timestamptz - %(start)s::timestamptz) AS at,
        floor(power(random(), 3) * %(organizations)s)::int AS o, floor(random() * %(pool)s)::int AS p, random() AS c,
        r < 0.98 AS served, CASE WHEN r < 0.99 THEN 'predict' ELSE 'models' END AS endpoint,
        CASE WHEN r < 0.98 THEN 200 WHEN r < 0.995 THEN 429 ELSE 404 END AS status
    FROM (SELECT random() AS r FROM generate_series(1, %(rows)s)) AS g
) AS s
JOIN bench_organizations o ON o.n = s.o
JOIN bench_inputs p ON p.n = s.p
"""  # noqa: S608 - the table name is this code's constant


def _fill(organizations: list[tuple[int, int, str]], pool: np.ndarray, labels: np.ndarray) -> float:
    """Fill the query log to ARGS.rows rows, month by month up to now; returns the seconds it took."""
    now = timezone.now()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE bench_organizations (n int PRIMARY KEY, organization_id bigint, "
                       "key_id bigint, tier_code text)")  # fmt: skip
        cursor.executemany(
            "INSERT INTO bench_organizations VALUES (%s, %s, %s, %s)",
            [(n, *organization) for n, organization in enumerate(organizations)],
        )
        cursor.execute("CREATE TEMP TABLE bench_inputs (n int PRIMARY KEY, inputs bytea, label text)")
        cursor.executemany(
            "INSERT INTO bench_inputs VALUES (%s, %s, %s)",
            [(n, row.tobytes(), str(label)) for n, (row, label) in enumerate(zip(pool, labels, strict=True))],
        )
        first = add_months(month_start(now), -ARGS.months + 1)
        span = (now - first).total_seconds()
        month, written = first, 0
        while month < now:
            end = min(add_months(month, 1), now)
            target = round(ARGS.rows * (now - first if end == now else end - first).total_seconds() / span)
            cursor.execute(
                _FILL,
                {"start": month, "end": end, "rows": target - written, "organizations": len(organizations),
                 "pool": len(pool), "inputs_since": now - timedelta(days=INPUT_DAYS)},
            )  # fmt: skip
            written = target
            print(f"  {month:%Y-%m}: {written:,} rows ({time.perf_counter() - started:.0f} s)", flush=True)
            month = add_months(month, 1)
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        # An old log is vacuumed and checkpointed long since: without this, autovacuum and the checkpointer would
        # work through the fill's 5 GB during the measurements that follow and slow them down, which size does not.
        cursor.execute(f"VACUUM (ANALYZE) {TABLE}")
        try:
            cursor.execute("CHECKPOINT")
        except DatabaseError:  # neither superuser nor pg_checkpoint: the checkpointer writes it out on its own
            print("  (no CHECKPOINT: this role may not run it)")
    return seconds


_PARTITION = re.compile(rf"{TABLE}_(?:p\d{{4}}_\d{{2}}|default)(?!\w)")


def _scans(queries: list[dict]) -> list[tuple[str, list[str]]]:
    """For every captured SELECT of the query log, its text (shortened) and how its plan reads the log: "Index Scan
    <partition> (<index>)", "Bitmap Index Scan (<index>)", "Seq Scan <partition>"... (EXPLAIN of the same SQL, not
    executed again)."""
    read = []
    with connection.cursor() as cursor:
        for query in queries:
            sql = query["sql"]
            if TABLE not in sql or not sql.lstrip().upper().startswith("SELECT"):
                continue
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
            stack, scans = [cursor.fetchone()[0][0]["Plan"]], set()
            while stack:
                node = stack.pop()
                relation, index = node.get("Relation Name", ""), node.get("Index Name", "")
                if relation.startswith(TABLE) or index.startswith(TABLE):
                    scans.add(" ".join(filter(None, [node["Node Type"], relation, index and f"({index})"])))
                stack.extend(node.get("Plans", []))
            read.append((" ".join(sql.split())[:200], sorted(scans)))
    return read


def _time_risk_job() -> dict:
    from abuse.profiles import model_profiles_ensure
    from abuse.risk import extraction_risk_assess_all

    model_profiles_ensure()  # once per model version, not per run
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), count(DISTINCT organization_id) FROM {TABLE} WHERE created_at >= %s",  # noqa: S608
            [now - settings.ABUSE_RISK_WINDOW],
        )
        window_rows, window_organizations = cursor.fetchone()
    connection.queries_log = deque(maxlen=10**6)  # Django keeps 9,000; the job sends more
    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        assessments = extraction_risk_assess_all(now=now)
        seconds = time.perf_counter() - started
    querylog_queries = [q for q in captured.captured_queries if TABLE in q["sql"]]
    scans: dict[str, int] = {}
    for _, query_scans in _scans(querylog_queries):
        for scan in query_scans:
            scans[scan] = scans.get(scan, 0) + 1
    return {
        "seconds": round(seconds, 2),
        "window_rows": window_rows,
        "window_organizations": window_organizations,
        "assessments_stored": len(assessments),
        "queries": len(captured.captured_queries),
        "query_log_queries": len(querylog_queries),
        "query_log_seconds": round(sum(float(q["time"]) for q in querylog_queries), 2),
        "partitions_read": sorted({name for scan in scans for name in _PARTITION.findall(scan)}),
        "scans": scans,  # how the job's queries read the log, and how many of them read it so
    }


def _time_metering(heaviest: int) -> dict:
    from billing.metering.services import usage_aggregate_day
    from serving.quotas.limiter import monthly_usage_from_database

    now = timezone.now()
    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        usage_aggregate_day(day=now.date())
        day_seconds = time.perf_counter() - started
        started = time.perf_counter()
        monthly_usage_from_database(organization_id=heaviest, period=f"{now:%Y%m}")
        month_seconds = time.perf_counter() - started
    return {
        "usage_aggregate_day_seconds": round(day_seconds, 3),
        "monthly_usage_of_the_heaviest_organization_seconds": round(month_seconds, 3),
        "scans": dict(_scans(captured.captured_queries)),
    }


def main() -> None:
    if redis_client().dbsize():
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        raise SystemExit(f"Redis database {ARGS.redis_db} is not empty: pick an empty one with --redis-db.")
    original, scratch = _create_scratch_database()
    try:
        print(f"== scratch database {scratch}: migrate, demo models, partitions, {ARGS.organizations} organizations")
        call_command("migrate", verbosity=0)
        call_command("train_demo_model", "--if-missing", verbosity=0)
        now = timezone.now()
        querylog_partitions_ensure(now=add_months(month_start(now), -ARGS.months + 1), ahead=ARGS.months + 2)
        *organizations, (flush_organization, flush_key, _) = _organizations(ARGS.organizations + 1)
        from serving.ml.digits import load_digits_split

        split = load_digits_split()
        pool, labels = split.X_train.astype(np.uint8), split.y_train  # codes = intensities 0..16
        heaviest_organization = organizations[0][0]
        print("== the flush into the empty log")
        flush_empty = _measure_flush(flush_organization, flush_key, pool)
        print(f"== filling the log with {ARGS.rows:,} rows over {ARGS.months} months")
        fill_seconds = _fill(organizations, pool, labels)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*), pg_total_relation_size('{TABLE}_default') FROM {TABLE}")  # noqa: S608
            total_rows, _ = cursor.fetchone()
            cursor.execute(
                "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = %s::regclass",
                [TABLE],
            )
            (total_bytes,) = cursor.fetchone()
        print(f"== the flush into the log of {total_rows:,} rows")
        flush_full = _measure_flush(flush_organization, flush_key, pool)
        print("== the risk job over its window")
        risk = _time_risk_job()
        print("== metering's reads")
        metering = _time_metering(heaviest_organization)
    finally:
        _drop_scratch_database(original, scratch)
        redis_client().flushdb()  # empty when the bench began, and the bench's alone since
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
    results = {
        "rows": total_rows,
        "months": ARGS.months,
        "organizations": ARGS.organizations,
        "fill_seconds": round(fill_seconds, 1),
        "fill_rows_per_second": round(ARGS.rows / fill_seconds),
        "table_bytes_with_indexes": int(total_bytes),
        "flush_into_empty_log": flush_empty,
        "flush_into_full_log": flush_full,
        "risk_job": risk,
        "metering": metering,
    }
    print(f"{'flush':26} {'empty log rows/s':>17} {'full log rows/s':>16} {'inputs/s (full)':>16}")
    for name in flush_full:
        empty, full = flush_empty[name], flush_full[name]
        print(f"{name:26} {empty['rows_per_second']:17,} {full['rows_per_second']:16,} "
              f"{full['inputs_per_second']:16,}")  # fmt: skip
    read = ", ".join(risk["partitions_read"])
    print(f"risk job: {risk['seconds']} s for {risk['window_organizations']:,} organizations, "
          f"{risk['window_rows']:,} rows in its window; partitions read: {read}")  # fmt: skip
    print(f"metering: a day {metering['usage_aggregate_day_seconds']} s, the heaviest organization's month "
          f"{metering['monthly_usage_of_the_heaviest_organization_seconds']} s")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "querylog-at-scale.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
