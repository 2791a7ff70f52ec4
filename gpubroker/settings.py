"""GPUBroker settings: one module, every knob an environment variable (see .env.example)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from resilience.redis_options import redis_options

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")


def env_or(name: str, default: str) -> str:
    """A variable's text, or `default` when it is unset or blank: `DATABASE_URL=` in a .env
    or a compose file means "not set", not "a URL with nothing in it"."""
    return env(name, default="").strip() or default


DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-secret-key-change-me"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS by default when DEBUG is off; each switchable by its own variable, e.g.
# SECURE_SSL_REDIRECT=false behind a proxy that terminates TLS, or for a plain-HTTP local run.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # probes speak plain HTTP
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
if env("SECURE_PROXY_SSL_HEADER", default=""):  # e.g. HTTP_X_FORWARDED_PROTO,https
    SECURE_PROXY_SSL_HEADER = tuple(env.list("SECURE_PROXY_SSL_HEADER"))
# Scripts only from our own static files (htmx is django-htmx's bundled copy); the admin's
# styles set a few inline style attributes, so styles may be inline.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",  # the trigram index on offer names (providers.indexes)
    "django_htmx",
    "django_celery_beat",
    "ninja",  # serves the API docs' Swagger UI from its own static files, no CDN
    "providers",
    "marketplace",
    "health",
    "broker",
    "resilience",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "gpubroker.middleware.AsyncWhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "gpubroker.json_errors.JsonErrorsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

# Failed logins (django-axes): after AXES_FAILURE_LIMIT failures from one IP address, or for one
# username, that address or user is locked out for AXES_COOLOFF_MINUTES (HTTP 429).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

ROOT_URLCONF = "gpubroker.urls"
WSGI_APPLICATION = "gpubroker.wsgi.application"
ASGI_APPLICATION = "gpubroker.asgi.application"

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
            ],
        },
    },
]

# Embedded default: SQLite under var/ (WAL so web, worker and beat can share it).
DATABASES = {
    "default": env.db_url_config(
        env_or("DATABASE_URL", f"sqlite:///{VAR_DIR / 'gpubroker.sqlite3'}")
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif env.bool("DATABASE_POOL", default=False):
    # Under ASGI (set by gpubroker/asgi.py) every request runs its ORM calls in a context of
    # its own, so a persistent connection per context would be one per request, left open
    # for CONN_MAX_AGE: Postgres runs out. A pool hands connections back at each request's end.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "pool": {
            "min_size": 2,
            # One for each thread that may hold one at once: the site's 16 (gpubroker/asgi.py),
            # the broker's 4 database threads and its recorder, and a few to spare.
            "max_size": env.int("DATABASE_POOL_SIZE", default=24),
            # Seconds a request waits for a connection (psycopg's default is 30): with
            # Postgres gone, a JSON path answers its 503 in this time, not after the client
            # has given up.
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=5),
        }
    }
    # With a pool, Django hands psycopg's ConnectionPool.check_connection to the pool: a pooled
    # connection the server dropped is replaced before use, not a 500.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # A kept connection that the server dropped is replaced before use, not a 500.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="").strip()
# Seconds a Redis command (or connection) may take before Redis counts as unreachable: Redis
# holds caches and live stats, so pages go on without it rather than wait (docs/faults.md).
REDIS_TIMEOUT = env.float("REDIS_TIMEOUT", default=1.0)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="gpubroker"),
            "OPTIONS": redis_options(REDIS_TIMEOUT),
        }
    }
else:
    # Shared by web, worker and beat through the database (see README, "Two commands").
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "gpubroker_cache",
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_or("STATIC_ROOT", str(BASE_DIR / "staticfiles"))

LOGIN_URL = "admin:login"

# --- Celery -----------------------------------------------------------------------------
# Without REDIS_URL the broker is kombu's filesystem transport under var/, so `make run`
# needs nothing but Python.
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_or("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR),
        "data_folder_out": str(BROKER_DIR),
        "processed_folder": str(VAR_DIR / "broker-processed"),
        "control_folder": str(VAR_DIR / "broker-control"),
        "store_processed": False,
    }
else:  # Redis: a down broker is an error within REDIS_TIMEOUT, not a request that hangs
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "socket_timeout": REDIS_TIMEOUT,
        "socket_connect_timeout": REDIS_TIMEOUT,
    }
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_TIMEOUT
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
# One message at a time per worker process: a poll that waits behind a long one could take it.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = TIME_ZONE

# --- Providers ----------------------------------------------------------------------------
PROVIDER_REGISTRY_PATH = BASE_DIR / "providers" / "provider_registry.json"
PROVIDER_REGISTRY = json.loads(PROVIDER_REGISTRY_PATH.read_text())

# Per-provider knobs, generated from the registry: <PREFIX>_API_KEY, _ENABLED, _BASE_URL,
# _RATE_LIMIT (requests/minute), _TIMEOUT (seconds), plus any extra URLs a provider has.
for _slug, _entry in PROVIDER_REGISTRY.items():
    _p = _entry["env_prefix"]
    # Stripped: a key pasted with its newline is the most common copy-paste slip.
    globals()[f"{_p}_API_KEY"] = env(f"{_p}_API_KEY", default="").strip()
    globals()[f"{_p}_ENABLED"] = env.bool(f"{_p}_ENABLED", default=True)
    globals()[f"{_p}_BASE_URL"] = env_or(f"{_p}_BASE_URL", _entry["base_url"])
    globals()[f"{_p}_RATE_LIMIT"] = env.int(f"{_p}_RATE_LIMIT", default=_entry["rate_limit"])
    globals()[f"{_p}_TIMEOUT"] = env.float(f"{_p}_TIMEOUT", default=_entry["timeout"])
    for _name, _url in _entry.get("extra_urls", {}).items():
        globals()[f"{_p}_{_name}"] = env_or(f"{_p}_{_name}", _url)

# Fernet keys for stored credentials: comma-separated, newest first. The first encrypts,
# all decrypt; `manage.py rotate_credentials` re-encrypts under the first.
GPUBROKER_ENCRYPTION_KEYS = env.list("GPUBROKER_ENCRYPTION_KEYS", default=[])
if not GPUBROKER_ENCRYPTION_KEYS and not DEBUG:
    raise ImproperlyConfigured("GPUBROKER_ENCRYPTION_KEYS must be set when DEBUG is off.")

# A poll that is still running is not started again until this many seconds have passed.
PROVIDER_POLL_LOCK_SECONDS = env.int("PROVIDER_POLL_LOCK_SECONDS", default=600)
# A poll's calls, retries and waits together end within this many seconds (a hanging
# provider otherwise costs attempts × timeout + backoff).
PROVIDER_POLL_DEADLINE = env.float("PROVIDER_POLL_DEADLINE", default=90)
# The admin's "Test connection" makes one call inside the request, ended within this long.
PROVIDER_TEST_CONNECTION_SECONDS = env.float("PROVIDER_TEST_CONNECTION_SECONDS", default=10)
# Bearer token for ops automation on the JSON APIs (empty: staff session only).
GPUBROKER_OPS_TOKEN = env("GPUBROKER_OPS_TOKEN", default="").strip()
# Wrong bearer tokens from one IP address: after this many within the window, 429.
GPUBROKER_OPS_TOKEN_FAILURE_LIMIT = env.int("GPUBROKER_OPS_TOKEN_FAILURE_LIMIT", default=10)
GPUBROKER_OPS_TOKEN_FAILURE_WINDOW = env.int("GPUBROKER_OPS_TOKEN_FAILURE_WINDOW", default=900)
HTTP_USER_AGENT = env("HTTP_USER_AGENT", default="GPUBroker/0.1 (+https://github.com/gpubroker)")
# Marketplace (PostgreSQL): a choice of providers/regions/tasks/GPU models is paged by merging
# each facet key's first offers when that reads at most this many index entries (and fewer
# than walking the sort order's index would be expected to); else by the walk
# (marketplace.search.page_ids, docs/performance.md).
MARKETPLACE_NARROW_CHOICE = env.int("MARKETPLACE_NARROW_CHOICE", default=50_000)
# A price sheet older than this many days is called old on its cards and stale on the health
# page (providers/price_sheets/).
PRICE_SHEET_MAX_AGE_DAYS = env.int("PRICE_SHEET_MAX_AGE_DAYS", default=90)
# Ingest flags a price this many times below or above the median for the same GPU (or model)
# across providers as unusual; it is stored and shown, with the flag.
PRICE_UNUSUAL_FACTOR = env.int("PRICE_UNUSUAL_FACTOR", default=5)

# Public catalog API (/api/v1/; docs/catalog-api.md): requests per client IP per minute,
# counted in the shared cache across workers. Behind N reverse proxies, NINJA_NUM_PROXIES=N
# takes the client address from X-Forwarded-For.
API_RATE_LIMIT = env.int("API_RATE_LIMIT", default=120)
NINJA_NUM_PROXIES = env.int("NINJA_NUM_PROXIES", default=0)

# --- Broker (broker app; docs/broker.md) ------------------------------------------------------
# Seconds a process may reuse a broker key it looked up and a model's offers it loaded (0: ask
# the database on every request). A revoked key stops working within this time.
BROKER_CACHE_SECONDS = env.float("BROKER_CACHE_SECONDS", default=1)
# Requests are recorded (usage rows, spend) by a background writer in batches: it waits this
# many seconds after a request ends for others to write with it.
BROKER_RECORD_SECONDS = env.float("BROKER_RECORD_SECONDS", default=0.1)
# Hours of usage records each offer's observed latency and throughput cover (rolled up every
# 5 minutes into providers.Observation: the model pages show them, `latency` routing reads them).
BROKER_OBSERVED_HOURS = env.int("BROKER_OBSERVED_HOURS", default=24)
# A key with a monthly budget, asking no max_tokens, gets this many upstream: the most a
# request can cost is then known, and held of the budget before the call.
BROKER_BUDGET_MAX_TOKENS = env.int("BROKER_BUDGET_MAX_TOKENS", default=4096)
# A process holds up to this many requests' worth of a key's budget at once (at most 1/8 of
# what is left), for BROKER_CACHE_SECONDS, so a request needs no round trip to hold its cost
# (broker/leases.py). 0: every request holds its own.
BROKER_BUDGET_LEASE_REQUESTS = env.int("BROKER_BUDGET_LEASE_REQUESTS", default=32)

# --- Resilience and provider health (resilience app; docs/resilience.md) -------------------
# Breaker, limiter and metrics state is shared by web, worker and beat: in Redis when REDIS_URL
# is set, else in the database (resilience.SharedState rows, updated under a row lock).
PROVIDER_CIRCUIT_BREAKER_THRESHOLD = env.int("PROVIDER_CIRCUIT_BREAKER_THRESHOLD", default=5)
PROVIDER_CIRCUIT_BREAKER_TIMEOUT = env.float("PROVIDER_CIRCUIT_BREAKER_TIMEOUT", default=60)
PROVIDER_CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS = env.int(
    "PROVIDER_CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS", default=3
)
# How long a process trusts a CLOSED breaker it read (a trip elsewhere reaches it by then).
PROVIDER_CIRCUIT_BREAKER_LOCAL_TTL = env.float("PROVIDER_CIRCUIT_BREAKER_LOCAL_TTL", default=1.0)
PROVIDER_RATE_LIMITER_ENABLED = env.bool("PROVIDER_RATE_LIMITER_ENABLED", default=True)
# A call finding the bucket empty waits at most this long for a token, then RateLimitExceeded.
PROVIDER_RATE_LIMITER_MAX_WAIT = env.float("PROVIDER_RATE_LIMITER_MAX_WAIT", default=5)
# A process takes tokens in leases of up to this many seconds' refill, spent without a round trip.
PROVIDER_RATE_LIMITER_LEASE_SECONDS = env.float("PROVIDER_RATE_LIMITER_LEASE_SECONDS", default=1.0)
PROVIDER_CACHE_ENABLED = env.bool("PROVIDER_CACHE_ENABLED", default=True)
PROVIDER_CACHE_TTL = env.int("PROVIDER_CACHE_TTL", default=30)
PROVIDER_CACHE_MAX_TTL = env.int("PROVIDER_CACHE_MAX_TTL", default=300)
PROVIDER_CACHE_MIN_TTL = env.int("PROVIDER_CACHE_MIN_TTL", default=10)
PROVIDER_RETRY_BASE_DELAY = env.float("PROVIDER_RETRY_BASE_DELAY", default=2)
# Also the longest Retry-After waited out in-process; a longer one is raised to the caller.
PROVIDER_RETRY_MAX_DELAY = env.float("PROVIDER_RETRY_MAX_DELAY", default=32)
PROVIDER_RETRY_JITTER = env.float("PROVIDER_RETRY_JITTER", default=1)
PROVIDER_MAX_RETRIES = env.int("PROVIDER_MAX_RETRIES", default=3)
# The most a provider's answer may weigh (decoded), read as a stream and cut off there: a bigger
# one fails the call with BadPayload and the last snapshot stays. The largest real catalog is
# Vast.ai's /bundles/ at its limit of 3,000 offers, about 7 MB (≈2.4 KB an offer in the
# recorded answers): 32 MiB leaves it four times the room.
PROVIDER_MAX_RESPONSE_BYTES = env.int("PROVIDER_MAX_RESPONSE_BYTES", default=32 * 1024 * 1024)
# Success rate, response times and status are computed over this many recent seconds.
PROVIDER_METRICS_WINDOW = env.int("PROVIDER_METRICS_WINDOW", default=300)
# On Redis, a process adds up its call metrics and writes them at most this many seconds later
# (0: at once, a round trip per call).
PROVIDER_METRICS_FLUSH_SECONDS = env.float("PROVIDER_METRICS_FLUSH_SECONDS", default=1.0)
# Token-bucket burst per provider: <PREFIX>_RATE_LIMIT_BURST, default its <PREFIX>_RATE_LIMIT.
for _entry in PROVIDER_REGISTRY.values():
    _p = _entry["env_prefix"]
    globals()[f"{_p}_RATE_LIMIT_BURST"] = env.int(
        f"{_p}_RATE_LIMIT_BURST", default=globals()[f"{_p}_RATE_LIMIT"]
    )

LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"scrub_secrets": {"()": "resilience.secrets.ScrubSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["scrub_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}
