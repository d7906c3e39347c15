"""Settings, read from the environment (one file, toggled by env, HackSoft / Saleor style).

Variables (all documented in README.md):
DATABASE_URL, REDIS_URL, SECRET_KEY, DEBUG, ALLOWED_HOSTS, TIME_ZONE, FIELD_ENCRYPTION_KEYS,
CSRF_TRUSTED_ORIGINS, EMAILSYNC_ALLOW_PRIVATE_HOSTS, DJANGO_ENV, DATABASE_REPLICA_URL.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# "production" switches on every deploy-time safety setting; anything else is development.
DJANGO_ENV = os.environ.get("DJANGO_ENV", "development")
PRODUCTION = DJANGO_ENV == "production"
DEBUG = env_bool("DEBUG", default=not PRODUCTION)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_ENV=production")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-0123456789abcdef"  # noqa: S105

# Old keys still accepted for signatures (sessions, grid cursors, widget tokens) while rotating SECRET_KEY.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_htmx",
    "django_tables2",
    "django_filters",
    "axes",
    "crm",
    "activities",
    "contactcenter",
    "emailsync",
]

MIDDLEWARE = [
    "crm.observability.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "crm.middleware.TenantMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "crm.urls"
WSGI_APPLICATION = "crm.wsgi.application"

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
                "crm.context_processors.tenancy",
            ],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL", "")
if not DATABASE_URL:
    # `make run` / `make test` export DATABASE_URL (a private embedded PostgreSQL when none is given).
    DATABASE_URL = "postgres://postgres@127.0.0.1:5432/crm"


def database(url: str) -> dict:
    """One DATABASES entry from a URL, with the options every alias shares."""
    db = dj_database_url.parse(url, conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")))
    db["CONN_HEALTH_CHECKS"] = True
    db.setdefault("OPTIONS", {})
    # JIT compilation pays off for long analytical scans, not for page queries: with row estimates that
    # are poor (prefix text search) it added ~40 ms to queries that run in a few (measured on the bench
    # data). Client-side binding (Django's default) on purpose: server-side prepared statements reuse a
    # plan built for one tenant on another (DESIGN.md).
    db["OPTIONS"].setdefault("options", "-c jit=off")
    return db


DATABASES = {"default": database(DATABASE_URL)}
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DATABASE_NAME") or None}

# Row-level security (crm/rls.py): policies are always installed. Enforced (the default), every request
# and task acts as the restricted role DATABASE_RLS_ROLE and sees only the tenant it sets; off is an
# escape hatch only (connections then carry the explicit bypass).
DATABASE_RLS_ENFORCE = env_bool("DATABASE_RLS_ENFORCE", default=True)
DATABASE_RLS_ROLE = os.environ.get("DATABASE_RLS_ROLE", "crm_app")
# When set, `migrate` (running as the owner) gives that role LOGIN with this password, so web and workers
# can connect as it directly (docker compose does): then not even a raw connection can see another tenant.
DATABASE_APP_PASSWORD = os.environ.get("DATABASE_APP_PASSWORD", "")


def replica_database(url: str) -> dict:
    """The read replica's entry (crm/db_router.py): the same options as the primary, plus a name in
    pg_stat_activity, a short connect timeout (an unreachable replica falls back to the primary quickly),
    read-only transactions, and, with RLS enforced, the restricted role for the whole session, so even a
    query outside a tenant transaction sees no tenant rows there."""
    db = database(url)
    options = db["OPTIONS"]
    options.setdefault("application_name", "replica")
    options.setdefault("connect_timeout", 2)
    options["options"] += " -c default_transaction_read_only=on"
    if DATABASE_RLS_ENFORCE:
        options["options"] += f" -c role={DATABASE_RLS_ROLE}"
    # Never created, flushed or migrated by the test runner: in tests it is the test database itself.
    db["TEST"] = {"MIRROR": "default"}
    return db


# Optional read replica (README "Beyond one machine"): only views marked @replica_reads read from it
# (the activity grid and its count, analytics); everything else, and every write, uses the primary.
DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "")
# After a write (a POST or the like) the user's reads stay on the primary this long (read-your-writes).
DATABASE_REPLICA_PIN_SECONDS = int(os.environ.get("DATABASE_REPLICA_PIN_SECONDS", "10"))
DATABASE_ROUTERS: list[str] = []
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = replica_database(DATABASE_REPLICA_URL)
    DATABASE_ROUTERS = ["crm.db_router.ReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "crm.auth.EmailBackend"]
# Login throttling (django-axes): 5 failed attempts for one login from one address lock that pair out for
# 15 minutes; a successful login resets the count.
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Redis / Celery -------------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
# Without Redis, tasks run in-process (make run on a bare machine); with it, real workers consume them.
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
# Reliability (README "Operations"): a task is acknowledged only after it ran (acks_late) and put back
# when its worker process dies (reject_on_worker_lost); with Redis a message taken by a worker that was
# SIGKILLed is redelivered once the visibility timeout has passed (CELERY_VISIBILITY_TIMEOUT, longer than
# the hard time limit below, or a long task would run twice). One message prefetched per process.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600")),
    "socket_connect_timeout": 2,
}
# A request that enqueues while Redis is down must not hang: connect for at most 2 s and retry a publish
# twice within about a second, then the caller logs the failure (emailsync.services.enqueue) and the
# outbox reconciler / beat fan-out re-dispatch from the rows later.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Workers keep reconnecting to a restarted Redis for as long as it takes.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TASK_SOFT_TIME_LIMIT = 600
CELERY_TASK_TIME_LIMIT = 660
# Queues (README "Operations"): one per kind of work, so each kind gets workers of its own and a mail
# sync backlog never delays outgoing mail: `sync` (mailbox syncs, the fan-out's target), `mail` (outgoing
# mail) and `default` (everything else: the beat fan-out and reconcilers, the analytics fold, ping). The
# names come from CELERY_DEFAULT_QUEUE / CELERY_SYNC_QUEUE / CELERY_MAIL_QUEUE (the tests give each
# session private ones). A worker started without -Q consumes all three (make run, one machine);
# `celery -A crm worker -Q sync` consumes syncs only.
TASK_QUEUE_NAMES = {
    kind: os.environ.get(f"CELERY_{kind.upper()}_QUEUE", "").strip() or kind
    for kind in ("default", "sync", "mail")
}
CELERY_TASK_DEFAULT_QUEUE = TASK_QUEUE_NAMES["default"]
CELERY_TASK_ROUTES = {
    "emailsync.tasks.sync_mailbox_task": {"queue": TASK_QUEUE_NAMES["sync"]},
    "emailsync.tasks.send_outgoing_email_task": {"queue": TASK_QUEUE_NAMES["mail"]},
}
# Declared like the queues Celery creates on demand (a direct exchange and routing key of the same name).
CELERY_TASK_QUEUES = {name: {"exchange": name, "routing_key": name} for name in TASK_QUEUE_NAMES.values()}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict = {}
# emailsync: fan out due mailboxes (one task per mailbox; the lease keeps it to one sync at a time).
CELERY_BEAT_SCHEDULE["emailsync-dispatch-due-mailboxes"] = {
    "task": "emailsync.tasks.dispatch_due_mailboxes",
    "schedule": 30.0,
}
# emailsync: the outbox reconciler re-dispatches outgoing emails queued longer than this without a send.
OUTGOING_REDISPATCH_SECONDS = int(os.environ.get("OUTGOING_REDISPATCH_SECONDS", "300"))
CELERY_BEAT_SCHEDULE["emailsync-redispatch-queued-outgoing"] = {
    "task": "emailsync.tasks.redispatch_queued_outgoing",
    "schedule": 60.0,
}
# activities: fold buffered analytics increments into the daily aggregates.
CELERY_BEAT_SCHEDULE["activities-analytics-fold"] = {
    "task": "activities.tasks.analytics_fold",
    "schedule": 60.0,
}

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Secrets at rest ------------------------------------------------------------------------------
# Comma-separated Fernet keys; the first encrypts, all decrypt (MultiFernet), so keys can be rotated.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS")
if not FIELD_ENCRYPTION_KEYS:
    if PRODUCTION:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS must be set when DJANGO_ENV=production")
    FIELD_ENCRYPTION_KEYS = ["ZGV2LW9ubHktZmllbGQta2V5LWRvLW5vdC11c2UtISE="]

# Mail servers on loopback / private ranges are refused unless this is set (tests, local Dovecot).
EMAILSYNC_ALLOW_PRIVATE_HOSTS = env_bool("EMAILSYNC_ALLOW_PRIVATE_HOSTS", default=False)

# --- Security -------------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# Content-Security-Policy on every response (django-csp's middleware). No inline script or style, no
# eval: behaviours live in static/js (event delegation on data-* attributes), styles in static/css.
# A view that sets its own header keeps it: the email body (emailsync.views.email_body) has a stricter one.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-src": ["'self'"],  # the sanitised email body, served by this site into a sandboxed iframe
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
}

# Structured logs: JSON lines with request / tenant / user / task ids (LOG_FORMAT=plain for humans).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "json" if PRODUCTION else "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "crm.logcontext.ContextFilter"}},
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s tenant=%(tenant_id)s "
            "user=%(user_id)s task=%(task_id)s] %(message)s"
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s "
            "%(request_id)s %(tenant_id)s %(user_id)s %(task_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# /metrics: with a token, scrapers send "Authorization: Bearer <token>"; without one, loopback only.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

DJANGO_TABLES2_TEMPLATE = "django_tables2/bootstrap5.html"
