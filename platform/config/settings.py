"""Moat settings, read from the environment (12-factor).

Nothing here exists only in production: every difference between a laptop and a deployment is an environment
variable, and a production secret never has a default. `SECRET_KEY`, `DATABASE_URL` and `REDIS_URL` are required;
`bin/run` and the test settings provide them on a machine that has none.
"""

import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from core.redis import is_cluster_url

BASE_DIR = Path(__file__).resolve().parents[2]

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY")
if not SECRET_KEY.strip():
    raise ImproperlyConfigured("SECRET_KEY is empty: set it in the environment.")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The absolute address used in emails; never derived from the request's Host header.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.postgres",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "axes",
    "core.apps.CoreConfig",
    "tiers.apps.TiersConfig",
    "accounts.apps.AccountsConfig",
    "legal.apps.LegalConfig",
    "apikeys.apps.ApiKeysConfig",
    "portal.apps.PortalConfig",
    "console.apps.ConsoleConfig",
    "abuse.apps.AbuseConfig",
    "serving.registry.apps.RegistryConfig",
    "serving.predictions.apps.PredictionsConfig",
    "billing.metering.apps.MeteringConfig",
    "billing.payments.apps.PaymentsConfig",
    "billing.dashboard.apps.DashboardConfig",
    "redteam.apps.RedTeamConfig",
    "monitoring.apps.MonitoringConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "legal.middleware.TermsAcceptanceMiddleware",
    "axes.middleware.AxesMiddleware",
]

# The /v1/ API's own, shorter middleware (config/wsgi.py): its calls carry a bearer key, never a cookie, so sessions,
# CSRF, users, messages, the Terms redirect and django-axes have nothing to do there; the security headers and
# CommonMiddleware's Host check (ALLOWED_HOSTS) stay.
API_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.SecurityHeadersMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.portal",
            ],
        },
    },
]

# --- Data stores -------------------------------------------------------------------------------------------
DATABASES = {"default": env.db_url("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})
# Fail fast when PostgreSQL is unreachable rather than hanging a worker.
DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One Redis (redis://, rediss://, unix://) or a Redis Cluster named by some of its nodes:
# redis+cluster://host1:port1,host2:port2/ (core.redis parses it, and refuses what it cannot serve).
REDIS_URL = env.str("REDIS_URL")
REDIS_IS_CLUSTER = is_cluster_url(REDIS_URL)
if REDIS_IS_CLUSTER and not env.str("CELERY_BROKER_URL", default=""):
    raise ImproperlyConfigured(
        "REDIS_URL names a Redis Cluster, which Celery's Redis transport cannot use as a broker: set "
        "CELERY_BROKER_URL (a RabbitMQ amqp:// URL, or a single Redis's redis:// URL)."
    )
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=0.5)
CACHES = {
    "default": {
        # Errors are never ignored: a cache that swallows Redis failures silently turns a limit into no limit.
        # Django's RedisCache, which also reaches a Redis Cluster (core.cache).
        "BACKEND": "core.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "moat",
        "OPTIONS": {"socket_timeout": REDIS_SOCKET_TIMEOUT, "socket_connect_timeout": REDIS_SOCKET_TIMEOUT},
    }
}


def _celery_url(redis_url: str) -> str:
    """Kombu spells a Unix-socket Redis `redis+socket://`; redis-py spells it `unix://`."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url


# Longest a RabbitMQ delivery may stay unacknowledged before the broker closes the worker's channel (and requeues
# everything it holds): a Stripe retry's countdown (up to 1 h, held by the worker until due) plus a wait for a free
# pool process behind the longest task (30 min) plus its own run (30 min), with an hour to spare.
# tests/config/test_celery_rabbitmq.py derives the bound from the tasks.
RABBITMQ_CONSUMER_TIMEOUT_SECONDS = 3 * 3600


def celery_transport_settings(broker_url: str) -> dict[str, object]:
    """Celery's transport settings for the broker the URL names (lowercase Celery names).

    RabbitMQ (amqp://, amqps://): publisher confirms (a publish returns once the broker has the message) and the
    durable default queue (of persistent messages), each worker consumer declaring its acknowledgement timeout
    (RabbitMQ 3.12+ honours `x-consumer-timeout`; older nodes need `consumer_timeout` in rabbitmq.conf).
    Redis: the visibility timeout (an unacknowledged task is redelivered after it), longer than any task.
    """
    from kombu import Exchange, Queue

    if broker_url.split("://", 1)[0] in ("amqp", "amqps", "pyamqp"):
        consumer_timeout_ms = RABBITMQ_CONSUMER_TIMEOUT_SECONDS * 1000
        default_queue = Queue(
            "celery",
            Exchange("celery", type="direct", durable=True),
            routing_key="celery",
            durable=True,
            consumer_arguments={"x-consumer-timeout": consumer_timeout_ms},
        )
        return {"broker_transport_options": {"confirm_publish": True}, "task_queues": [default_queue]}
    return {"broker_transport_options": {"visibility_timeout": 3600}, "task_queues": None}


# --- Celery: JSON only, bounded tasks, the transport's options by the broker URL's scheme -----------------------
# Redis (the default: REDIS_URL) for one machine; RabbitMQ (an amqp:// URL) when several machines share the queue.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=_celery_url(REDIS_URL))
_CELERY_TRANSPORT = celery_transport_settings(CELERY_BROKER_URL)
CELERY_BROKER_TRANSPORT_OPTIONS = _CELERY_TRANSPORT["broker_transport_options"]
CELERY_TASK_QUEUES = _CELERY_TRANSPORT["task_queues"]  # None: Celery's default queue (Redis has no declarations)
# RabbitMQ's (the Redis transport has none): a worker host that vanished without closing its connection misses two
# beats and RabbitMQ requeues its unacknowledged tasks within a minute (with Celery's default, 120 s, four).
CELERY_BROKER_HEARTBEAT = 30
CELERY_TASK_DEFAULT_DELIVERY_MODE = "persistent"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
# One message reserved per pool process: a task never waits behind a busy sibling while another worker is idle.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# A task message whose worker died this many times (acks_late redelivers it) is parked, not run again (core.jobs).
TASK_MAX_WORKER_LOSSES = env.int("TASK_MAX_WORKER_LOSSES", default=3)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    "flush-query-log": {
        "task": "predictions.flush_query_log",
        "schedule": timedelta(seconds=2),
        # A flush queued behind a slow one is redundant: let it lapse rather than pile up.
        "options": {"expires": 10},
    },
    "prune-query-log-inputs": {"task": "predictions.prune_query_log_inputs", "schedule": timedelta(hours=24)},
    # The query log's monthly partitions: created months ahead (hourly: a no-op unless a month is missing or records
    # wait in the default partition), dropped whole past the retention (daily).
    "ensure-query-log-partitions": {
        "task": "predictions.ensure_query_log_partitions",
        "schedule": timedelta(hours=1),
        "options": {"expires": 1800},
    },
    "drop-expired-query-log-partitions": {
        "task": "predictions.drop_expired_query_log_partitions",
        "schedule": timedelta(hours=24),
    },
    "send-usage-alerts": {
        "task": "billing_dashboard.send_usage_alerts",
        "schedule": timedelta(minutes=5),
        "options": {"expires": 240},
    },
    "sync-spend-caps": {
        "task": "billing_dashboard.sync_spend_caps",
        "schedule": timedelta(seconds=60),
        "options": {"expires": 50},
    },
    "payments-requeue-stripe-events": {
        "task": "payments.requeue_stripe_events",
        "schedule": timedelta(minutes=5),
        "options": {"expires": 240},
    },
    "payments-end-expired-grace-periods": {
        "task": "payments.end_expired_grace_periods",
        "schedule": timedelta(hours=1),
    },
    # Closed days only, after the aggregation that builds them; sent reports are final, so reruns bill nothing twice.
    "payments-report-usage-to-stripe": {"task": "payments.report_usage_to_stripe", "schedule": timedelta(hours=1)},
    # Usage rows are recomputed from the query log; a run queued behind a slow one is redundant.
    # Rings before risk: a ring found now is scored together on the next risk run.
    "abuse-refresh-signup-rings": {
        "task": "abuse.refresh_signup_rings",
        "schedule": timedelta(seconds=60),
        "options": {"expires": 50},
    },
    "abuse-assess-extraction-risk": {
        "task": "abuse.assess_extraction_risk",
        "schedule": timedelta(seconds=30),
        "options": {"expires": 25},
    },
    "aggregate-usage": {
        "task": "metering.aggregate_usage",
        "schedule": timedelta(seconds=60),
        "options": {"expires": 50},
    },
}

# --- Auth ----------------------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # Axes first: a locked-out IP or account is refused before the password hash runs.
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.EmailBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "portal:overview"
LOGOUT_REDIRECT_URL = "accounts:login"
PASSWORD_RESET_TIMEOUT = 60 * 60 * 3
EMAIL_VERIFICATION_MAX_AGE = timedelta(days=3)

AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
# Counted per IP and, separately, per account: a botnet rotating IPs still locks the one account it targets.
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_USERNAME_FORM_FIELD = "email"
AXES_USERNAME_CALLABLE = "accounts.lockout.lockout_username"
AXES_CLIENT_IP_CALLABLE = "accounts.lockout.lockout_client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "accounts.lockout.AccountScopedResetHandler"
AXES_VERBOSE = False
# Password-reset requests (accounts.throttles), per client IP and per account, in fixed windows; fails closed.
PASSWORD_RESET_LIMIT_PER_IP = env.int("PASSWORD_RESET_LIMIT_PER_IP", default=10)
PASSWORD_RESET_LIMIT_PER_ACCOUNT = env.int("PASSWORD_RESET_LIMIT_PER_ACCOUNT", default=3)
PASSWORD_RESET_WINDOW_SECONDS = env.int("PASSWORD_RESET_WINDOW_SECONDS", default=3600)

# --- Sign-up policy ------------------------------------------------------------------------------------------
# Disposable domains are refused unless listed here (a customer's own domain that happens to be on the list).
DISPOSABLE_EMAIL_ALLOWLIST = env.list("DISPOSABLE_EMAIL_ALLOWLIST", default=[])


def _trusted_proxies(entries: list[str]) -> list[str]:
    """The entries, each checked to be an IP address or network now, rather than failing every request later."""
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES: {entry!r} is not an IP address or network (e.g. 10.0.0.0/8, 192.0.2.10, fd00::/8)."
            ) from exc
    return entries


# Addresses of proxies allowed to set X-Forwarded-For (IPs or CIDRs). Empty: REMOTE_ADDR is the client.
TRUSTED_PROXIES = _trusted_proxies(env.list("TRUSTED_PROXIES", default=[]))

# --- Email -----------------------------------------------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(BASE_DIR / ".moat" / "mail"))
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Moat <no-reply@moat.local>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- API keys --------------------------------------------------------------------------------------------------
API_KEY_PREFIX = env.str("API_KEY_PREFIX", default="moat_live_")

# --- Serving ---------------------------------------------------------------------------------------------------
# Where model artifacts live (a shared volume when several machines serve).
MODEL_ARTIFACT_DIR = env.str("MODEL_ARTIFACT_DIR", default=str(BASE_DIR / ".moat" / "models"))
# Keys of the output defenses. Separate from SECRET_KEY so rotating that never changes which inputs carry a
# watermark (old copies must stay provable) or what noise an input gets.
WATERMARK_SECRET = env.str("WATERMARK_SECRET")
OUTPUT_NOISE_SECRET = env.str("OUTPUT_NOISE_SECRET")
# The largest request body the API reads; larger ones get 413 before any parsing.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=2 * 1024 * 1024)
# How long a web process trusts its in-memory copy of a key's state; freezes take effect within this time.
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=2.0)
# Raw inputs in the query log are pruned after this many days (hashes and labels stay).
QUERY_LOG_RAW_INPUT_RETENTION_DAYS = env.int("QUERY_LOG_RAW_INPUT_RETENTION_DAYS", default=90)
QUERY_LOG_FLUSH_BATCH = env.int("QUERY_LOG_FLUSH_BATCH", default=1000)
# The query log is partitioned by month. Whole months kept before the current one: the partitions older than that are
# dropped (serving/predictions/partitions.py). 13 keeps a year of per-call evidence behind every invoice and usage
# row (disputes, card chargebacks up to 120 days, a year-over-year question) besides the current month; daily usage
# (billing/metering UsageDay) is kept apart and outlives it. Under 2 the previous month, whose late records metering
# still counts on the 1st, could go.
QUERY_LOG_RETENTION_MONTHS = env.int("QUERY_LOG_RETENTION_MONTHS", default=13)
if QUERY_LOG_RETENTION_MONTHS < 2:
    raise ImproperlyConfigured("QUERY_LOG_RETENTION_MONTHS must be at least 2 (the current and previous months).")
# Months partitioned ahead of the current one (beat creates them hourly; a record of a month without one waits in the
# default partition, never lost).
QUERY_LOG_PARTITIONS_AHEAD = env.int("QUERY_LOG_PARTITIONS_AHEAD", default=3)
if QUERY_LOG_PARTITIONS_AHEAD < 1:
    raise ImproperlyConfigured("QUERY_LOG_PARTITIONS_AHEAD must be at least 1 (next month's, before it starts).")
# Records a flusher read but never acknowledged (it was killed) are taken over by another after this long.
QUERY_LOG_CLAIM_IDLE_SECONDS = env.float("QUERY_LOG_CLAIM_IDLE_SECONDS", default=60.0)
# Quotas: organizations are spread over this many Redis hash tags (each with its own query-log stream).
QUOTA_SHARDS = env.int("QUOTA_SHARDS", default=16)
# When Redis is unreachable, enterprise keys are still served, each web process admitting at most this fraction of
# the tier's per-minute limit per organization; public tiers get 503.
QUOTA_FALLBACK_FRACTION = env.float("QUOTA_FALLBACK_FRACTION", default=0.1)
# For `make bench` only: measures the API without the quota check (records are still appended). `check --deploy`
# fails while it is on.
BENCHMARK_WITHOUT_QUOTA = env.bool("MOAT_BENCHMARK_WITHOUT_QUOTA", default=False)

# --- Monitoring --------------------------------------------------------------------------------------------------
# The Prometheus scraper's bearer token for /metrics; empty: /metrics answers 404 to everyone.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- Billing -----------------------------------------------------------------------------------------------------
# With no STRIPE_API_KEY the platform runs fully on local metering and invoice previews; upgrade buttons say that
# payments are not configured.
STRIPE_API_KEY = env.str("STRIPE_API_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# Signed webhook timestamps are accepted this far from now, in either direction.
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)
# The billing meter's event name (created by `manage.py sync_stripe_prices`).
STRIPE_METER_EVENT_NAME = env.str("STRIPE_METER_EVENT_NAME", default="moat_predictions")
# After a failed payment the organization keeps its paid tier this many days, then falls back to free.
BILLING_GRACE_PERIOD_DAYS = env.int("BILLING_GRACE_PERIOD_DAYS", default=7)
BILLING_PAYMENTS_ENABLED = bool(STRIPE_API_KEY)

# --- Abuse detection -----------------------------------------------------------------------------------------
# Extraction risk is 0..100: at ABUSE_THROTTLE_SCORE the organization's limits drop to ABUSE_THROTTLE_FACTOR of its
# tier's; at ABUSE_FREEZE_SCORE every key of the organization (and of its ring) is frozen. A throttle the jobs set
# is lifted by them once the score falls below ABUSE_CLEAR_THROTTLE_SCORE (hysteresis: no flapping).
ABUSE_THROTTLE_SCORE = env.int("ABUSE_THROTTLE_SCORE", default=50)
ABUSE_FREEZE_SCORE = env.int("ABUSE_FREEZE_SCORE", default=80)
ABUSE_CLEAR_THROTTLE_SCORE = env.int("ABUSE_CLEAR_THROTTLE_SCORE", default=35)
ABUSE_THROTTLE_FACTOR = env.float("ABUSE_THROTTLE_FACTOR", default=0.25)
# A throttle is a warning (its email says why). An organization the jobs throttled that answers this many more inputs
# while its score stays at the throttle level is frozen: sustained probing (boundary probing scores 54-58, below
# the freeze on its own) ends in a freeze, and an honest customer, never throttled in calibration, is not exposed.
ABUSE_PERSISTENCE_INPUTS = env.int("ABUSE_PERSISTENCE_INPUTS", default=500)
# The sliding window of the query log each score reads, and the most inputs it reads (the latest ones).
ABUSE_RISK_WINDOW = timedelta(hours=env.int("ABUSE_RISK_WINDOW_HOURS", default=24))
ABUSE_RISK_MAX_INPUTS = env.int("ABUSE_RISK_MAX_INPUTS", default=5000)
# Scores are kept over time, one per organization (or ring) per bucket; runs within a bucket rewrite its row.
ABUSE_HISTORY_BUCKET = timedelta(minutes=env.int("ABUSE_HISTORY_BUCKET_MINUTES", default=5))
# An honest organization's daily volume: the tier's median, never below this share of the tier's daily limit.
ABUSE_NORMAL_VOLUME_FLOOR = env.float("ABUSE_NORMAL_VOLUME_FLOOR", default=0.05)
# Sign-ups linked into rings are those of the last ABUSE_RING_LOOKBACK (a shared card links whatever its age).
ABUSE_RING_LOOKBACK = timedelta(days=env.int("ABUSE_RING_LOOKBACK_DAYS", default=30))
# Overrides of abuse.linking.LinkingPolicy's documented defaults (tests and calibration).
ABUSE_LINKING_POLICY: dict = {}

# --- HTTP security -------------------------------------------------------------------------------------------
HTTPS_ONLY = env.bool("HTTPS_ONLY", default=False)
SESSION_COOKIE_SECURE = HTTPS_ONLY
CSRF_COOKIE_SECURE = HTTPS_ONLY
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = HTTPS_ONLY
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if HTTPS_ONLY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS_ONLY
SECURE_HSTS_PRELOAD = HTTPS_ONLY
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
CSRF_FAILURE_VIEW = "core.views.csrf_failure"
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=3 * 1024 * 1024)

# --- i18n, static --------------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env.str("STATICFILES_STORAGE", default="whitenoise.storage.CompressedManifestStaticFilesStorage")
    },
}

# --- Logging: to stdout, no request bodies or keys -------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # core.redaction: no log line ever carries an API key, even one a client pasted into a URL.
    "formatters": {
        "plain": {"()": "core.redaction.RedactingFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stdout"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
