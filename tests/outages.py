"""Stand-ins for an unreachable PostgreSQL inside the test process. The real outage (a server stopped and started
under load) is in tests/faults/test_postgres_restart.py; these pin each code path's answer to it."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import OperationalError, connection


@contextmanager
def postgres_unreachable() -> Iterator[None]:
    """Every query of this thread's connection fails as it does while PostgreSQL restarts."""

    def refuse(execute, sql, params, many, context):
        raise OperationalError("connection to server on socket failed: Connection refused")

    with connection.execute_wrapper(refuse):
        yield
