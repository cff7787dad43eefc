"""What "PostgreSQL is unavailable" looks like to the code, for the few places that answer it differently."""

from django.db import InterfaceError, OperationalError

# Raised when PostgreSQL cannot be reached, restarts under a session, or drops it (psycopg2's connection errors, a
# closed connection). Transient by nature: the answer is 503 with Retry-After, never a 500 page.
DATABASE_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
