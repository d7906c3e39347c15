"""Logs, metrics and health: what an operator needs to run the product.

- Every log record carries request_id, tenant_id, user_id and task_id (contextvars set by the request
  middleware, TenantMiddleware and Celery's task signals); the JSON formatter (python-json-logger)
  writes them. Secrets never reach a record: nothing here logs parameters or bodies.
- Prometheus metrics (prometheus_client): request latency per route, Celery task runs and failures,
  and mailbox sync state (status counts, oldest successful sync), served at /metrics.
- /healthz answers while the process runs; /readyz checks the database, Redis and pending migrations.
"""

import secrets
import time
import uuid

from celery import signals as celery_signals
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from . import rls
from .logcontext import ContextFilter, request_id_var, task_id_var, tenant_id_var, user_id_var

__all__ = ["ContextFilter", "request_id_var", "tenant_id_var", "user_id_var", "task_id_var"]

REGISTRY = CollectorRegistry(auto_describe=True)
REQUEST_LATENCY = Histogram(
    "crm_http_request_duration_seconds",
    "Latency of HTTP requests by route and status class.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
TASK_RUNS = Counter(
    "crm_celery_task_runs_total",
    "Celery task runs by task and outcome.",
    ["task", "state"],
    registry=REGISTRY,
)


class RequestContextMiddleware:
    """Request id (incoming X-Request-ID if sane, else a new one), latency metric, response header."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        rid = (
            incoming if 8 <= len(incoming) <= 64 and incoming.replace("-", "").isalnum() else uuid.uuid4().hex
        )
        # Set (not reset) per request: Django logs the response ("Not Found: ...") after the middleware
        # chain returns, and that record should carry this request's ids too. The next request overwrites.
        request_id_var.set(rid)
        tenant_id_var.set(None)
        user_id_var.set(None)
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None else "unmatched"
        REQUEST_LATENCY.labels(request.method, route, f"{response.status_code // 100}xx").observe(
            time.perf_counter() - started
        )
        response["X-Request-ID"] = rid
        return response


@celery_signals.task_prerun.connect
def _task_started(task_id=None, task=None, **kwargs):
    task_id_var.set(task_id)


@celery_signals.task_postrun.connect
def _task_finished(task_id=None, task=None, state=None, **kwargs):
    TASK_RUNS.labels(getattr(task, "name", "unknown"), state or "UNKNOWN").inc()
    task_id_var.set(None)


@celery_signals.task_failure.connect
def _task_failed(sender=None, **kwargs):
    TASK_RUNS.labels(getattr(sender, "name", "unknown"), "FAILURE_RAISED").inc()


class MailboxCollector:
    """Mailbox sync state at scrape time. Deliberately cross-tenant and aggregated: no tenant data."""

    def describe(self):
        # Without describe(), registering the collector runs collect() (a database query) at import time.
        return [
            GaugeMetricFamily("crm_mailboxes", "Mailboxes by sync status.", labels=["status"]),
            GaugeMetricFamily("crm_mailbox_sync_lag_seconds", "Seconds since the oldest successful sync."),
            GaugeMetricFamily("crm_mailbox_failures", "Consecutive sync failures summed over mailboxes."),
        ]

    def collect(self):
        from emailsync.models import Mailbox

        by_status = GaugeMetricFamily("crm_mailboxes", "Mailboxes by sync status.", labels=["status"])
        lag = GaugeMetricFamily(
            "crm_mailbox_sync_lag_seconds", "Seconds since the least recent successful sync."
        )
        errors = GaugeMetricFamily("crm_mailbox_failures", "Consecutive sync failures summed over mailboxes.")
        try:
            # Deliberately cross-tenant: platform metrics, aggregated (a transaction of its own: /metrics
            # runs outside the request transactions).
            with rls.tenant_transaction(bypass=True):
                rows = list(Mailbox.objects.values_list("status", "last_sync_at", "failure_count"))
            counts: dict[str, int] = {}
            oldest = None
            failures = 0
            for status, last_sync, failure_count in rows:
                counts[status] = counts.get(status, 0) + 1
                failures += failure_count
                if status == "active" and last_sync is not None and (oldest is None or last_sync < oldest):
                    oldest = last_sync
        except Exception:  # noqa: BLE001 - a scrape during a database outage reports nothing, not a 500
            return
        for status, n in counts.items():
            by_status.add_metric([status], n)
        lag.add_metric([], (timezone.now() - oldest).total_seconds() if oldest else 0)
        errors.add_metric([], failures)
        yield by_status
        yield lag
        yield errors


REGISTRY.register(MailboxCollector())


@require_GET
def metrics(request):
    token = settings.METRICS_TOKEN
    if token:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(supplied, token):
            return HttpResponse("A valid metrics token is required.", status=401, content_type="text/plain")
    elif request.META.get("REMOTE_ADDR") not in {"127.0.0.1", "::1"}:
        return HttpResponse("Metrics are served to loopback only unless METRICS_TOKEN is set.", status=403)
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request):
    checks: dict[str, str] = {}
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        checks["migrations"] = "ok" if not pending else f"{len(pending)} pending"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["database"] = f"unavailable: {exc.__class__.__name__}"
        checks.setdefault("migrations", "unknown")
    if settings.REDIS_URL:
        try:
            import redis

            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            checks["redis"] = f"unavailable: {exc.__class__.__name__}"
    else:
        checks["redis"] = "not configured (tasks run in-process)"
    ready = all(v == "ok" or v.startswith("not configured") for v in checks.values())
    return JsonResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503
    )
