"""The query log becomes a table range-partitioned by month on created_at (PostgreSQL declarative partitioning).

Why monthly: billing periods are calendar months (UTC), retention is counted in months, and the risk job's 24 h
window touches one partition, two at a month's turn. Daily partitions would mean hundreds of tables whose planning
every query and every flush pays for; yearly ones would make retention a year coarse.

What changes in the database, not in Django's model state (SeparateDatabaseAndState):
- a partitioned table's primary key and unique constraints must contain the partition key, so the database key is
  (id, created_at) while Django keeps `id` as the model's primary key (ids still come from one identity sequence,
  so `id` stays unique in practice and every ORM lookup by pk works);
- the flush's idempotency key is the unique (request_id, created_at): a record flushed twice carries the same
  created_at (it is in the record), so the second insert conflicts and is skipped. That constraint is also in the
  model state (Meta.constraints), where request_id alone is no longer unique;
- the single-column indexes Django made for the two foreign keys go: (organization_id, created_at) and
  (api_key_id, created_at) serve every lookup they served, and each index is work for every flushed row;
- a DEFAULT partition receives records whose month has no partition yet (a skewed clock, beat down for months):
  the flush never fails on them, and `querylog_partitions_ensure` moves them into their month's partition.

Existing rows are copied into the new table inside this migration's transaction (then the old table is dropped):
nothing is lost and a failure rolls everything back. The copy takes time proportional to the log (10 s for a
million rows, measured on a 2-core machine); flushes wait on the table's lock meanwhile, and their records wait in
Redis. The partitions for every month that has rows, up to three months ahead of now, are created here so a fresh
install needs no beat run.

The SQL is written out here rather than imported from `serving.predictions.partitions`: a migration must keep
doing what it did when that module changes.
"""

from datetime import UTC, datetime

from django.db import migrations, models

TABLE = "predictions_querylog"
OLD = "predictions_querylog_unpartitioned"
AHEAD_MONTHS = 3  # as QUERY_LOG_PARTITIONS_AHEAD's default; beat keeps the horizon from then on

# Indexes on the partitioned table (each partition gets its own copy). The names are Django's, so the model state
# and the database agree.
PARTITIONED_INDEXES = (
    f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, created_at)",
    f"ALTER TABLE {TABLE} ADD CONSTRAINT predictions_querylog_request_id_created_at_uniq "
    "UNIQUE (request_id, created_at)",
    f"CREATE INDEX predictions_organiz_da5c23_idx ON {TABLE} (organization_id, created_at)",
    f"CREATE INDEX predictions_api_key_bb35f9_idx ON {TABLE} (api_key_id, created_at)",
    f"CREATE INDEX predictions_querylog_created_at_bfa7bfbc ON {TABLE} (created_at)",
)
# The indexes of the plain table as migration 0004 left it.
PLAIN_INDEXES = (
    f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id)",
    f"ALTER TABLE {TABLE} ADD CONSTRAINT predictions_querylog_request_id_key UNIQUE (request_id)",
    f"CREATE INDEX predictions_organiz_da5c23_idx ON {TABLE} (organization_id, created_at)",
    f"CREATE INDEX predictions_api_key_bb35f9_idx ON {TABLE} (api_key_id, created_at)",
    f"CREATE INDEX predictions_querylog_created_at_bfa7bfbc ON {TABLE} (created_at)",
    f"CREATE INDEX predictions_querylog_api_key_id_e78c8284 ON {TABLE} (api_key_id)",
    f"CREATE INDEX predictions_querylog_organization_id_d1596ad0 ON {TABLE} (organization_id)",
)


def _month_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def _set_aside(cursor, *, new_name: str) -> None:
    """Rename the current table and free the names the new one takes: its constraints and indexes are dropped
    (the table is dropped after the copy; only its rows matter) and its identity sequence renamed."""
    cursor.execute(f"SELECT pg_get_serial_sequence('{TABLE}', 'id')")
    (sequence,) = cursor.fetchone()
    cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {new_name}")
    cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {new_name}_id_seq")
    cursor.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('p', 'u')", [new_name]
    )
    for (name,) in cursor.fetchall():
        cursor.execute(f'ALTER TABLE {new_name} DROP CONSTRAINT "{name}"')
    cursor.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s", [new_name]
    )
    for (name,) in cursor.fetchall():
        cursor.execute(f'DROP INDEX "{name}"')


def _copy_rows_and_drop(cursor, *, source: str, conflict: str) -> None:
    # LIKE kept the column order, so SELECT * lines up; the sequence continues after the highest id copied.
    cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {source} ON CONFLICT {conflict} DO NOTHING")  # noqa: S608  # nosec B608 - table names are this module's constants
    cursor.execute(
        f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM {TABLE}"  # noqa: S608  # nosec B608
    )
    cursor.execute(f"DROP TABLE {source}")


def partition(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        _set_aside(cursor, new_name=OLD)
        cursor.execute(
            f"CREATE TABLE {TABLE} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY) "
            "PARTITION BY RANGE (created_at)"
        )
        cursor.execute(f"SELECT MIN(created_at) FROM {OLD}")  # noqa: S608  # nosec B608 - a constant table name
        (oldest,) = cursor.fetchone()
        now = _month_start(datetime.now(UTC))
        month = _month_start(oldest) if oldest and oldest < now else now
        last = now
        for _ in range(AHEAD_MONTHS):
            last = _next_month(last)
        while month <= last:
            end = _next_month(month)
            cursor.execute(
                f"CREATE TABLE {TABLE}_p{month:%Y_%m} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)", [month, end]
            )
            month = end
        cursor.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
        # Rows first, indexes after: one index build per partition is faster than maintaining them row by row.
        _copy_rows_and_drop(cursor, source=OLD, conflict="")
        for statement in PARTITIONED_INDEXES:
            cursor.execute(statement)


def unpartition(apps, schema_editor) -> None:
    """Back to one plain table (migration 0004's), every row kept."""
    partitioned = f"{TABLE}_partitioned"
    with schema_editor.connection.cursor() as cursor:
        _set_aside(cursor, new_name=partitioned)
        cursor.execute(
            f"CREATE TABLE {TABLE} (LIKE {partitioned} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY)"
        )
        for statement in PLAIN_INDEXES:
            cursor.execute(statement)
        # Two rows of one request id at different times cannot come from the flush (a record keeps its time); should
        # a hand-made pair exist, the plain table's unique request id keeps the first.
        _copy_rows_and_drop(cursor, source=partitioned, conflict="(request_id)")


class Migration(migrations.Migration):
    dependencies = [
        ("predictions", "0004_querylog_input_row_bytes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(partition, unpartition)],
            state_operations=[
                migrations.AlterField(
                    model_name="querylog",
                    name="request_id",
                    field=models.UUIDField(
                        help_text="Idempotency: a record reaches PostgreSQL once (unique with its created_at)."
                    ),
                ),
                migrations.AlterField(
                    model_name="querylog",
                    name="organization",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=models.deletion.DO_NOTHING,
                        related_name="+",
                        to="accounts.organization",
                    ),
                ),
                migrations.AlterField(
                    model_name="querylog",
                    name="api_key",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=models.deletion.DO_NOTHING,
                        related_name="+",
                        to="apikeys.apikey",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="querylog",
                    constraint=models.UniqueConstraint(
                        fields=("request_id", "created_at"), name="predictions_querylog_request_id_created_at_uniq"
                    ),
                ),
            ],
        ),
    ]
