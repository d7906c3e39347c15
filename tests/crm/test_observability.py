"""Health, readiness, metrics and structured logs (issue 10)."""

import json
import logging

import pytest
from django.test import Client, override_settings

from crm import observability
from crm.devtools.services import free_port
from tests.factories import MailboxFactory

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_database_migrations_and_redis(client, settings):
    response = client.get("/readyz")
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"] == "ok"
    assert ("redis" in body["checks"]) and response.status_code in (200, 503)
    if settings.REDIS_URL:
        assert body["checks"]["redis"] == "ok"
        assert response.status_code == 200


def test_readyz_reports_redis_down_as_not_ready(client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"].startswith("unavailable")


def test_metrics_loopback_only_without_token(client):
    response = client.get("/metrics", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 403
    client.get("/login/")
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'crm_http_request_duration_seconds_count{method="GET",route="login/",status="2xx"}' in text


@override_settings(METRICS_TOKEN="s3cret-token")
def test_metrics_token_required_when_set():
    client = Client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200


def test_mailbox_metrics_are_aggregated(client, tenant, other_tenant):
    MailboxFactory(tenant=tenant, status="active")
    MailboxFactory(tenant=other_tenant, status="needs_attention", failure_count=3)
    text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert 'crm_mailboxes{status="active"} 1.0' in text
    assert 'crm_mailboxes{status="needs_attention"} 1.0' in text
    assert "crm_mailbox_failures 3.0" in text
    assert "tenant" not in text.split("crm_mailboxes")[1][:200]


def test_request_id_is_echoed_or_made(client):
    assert len(client.get("/healthz")["X-Request-ID"]) == 32
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123-def")["X-Request-ID"] == "abc-123-def"
    assert client.get("/healthz", HTTP_X_REQUEST_ID="<script>")["X-Request-ID"] != "<script>"


def test_log_records_carry_request_tenant_and_user(client_for, admin_member, caplog):
    captured = []

    class Capture(logging.Handler):
        def emit(self, record):
            captured.append(record)

    handler = Capture()
    handler.addFilter(observability.ContextFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        client = client_for(admin_member)
        client.get("/no-such-page/", HTTP_X_REQUEST_ID="req-0123456789")
    finally:
        logger.removeHandler(handler)
    record = next(r for r in captured if "Not Found" in r.getMessage())
    assert record.request_id == "req-0123456789"
    assert record.tenant_id == admin_member.tenant_id
    assert record.user_id == admin_member.user_id


def test_json_formatter_writes_the_context_fields():
    from pythonjsonlogger.json import JsonFormatter

    formatter = JsonFormatter(
        "%(levelname)s %(message)s %(request_id)s %(tenant_id)s %(user_id)s %(task_id)s"
    )
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    token = observability.request_id_var.set("rid-1")
    try:
        observability.ContextFilter().filter(record)
    finally:
        observability.request_id_var.reset(token)
    line = json.loads(formatter.format(record))
    assert line["message"] == "hello" and line["request_id"] == "rid-1" and "tenant_id" in line


@pytest.mark.django_db(transaction=True)
def test_healthz_answers_while_the_database_is_unreachable(client, monkeypatch):
    """Liveness is the process's, not the database's: it opens no tenant transaction."""
    from django.db import connection

    def refuse(*args, **kwargs):
        raise AssertionError("/healthz touched the database")

    monkeypatch.setattr(connection, "ensure_connection", refuse)
    monkeypatch.setattr(connection, "cursor", refuse)
    assert client.get("/healthz").status_code == 200
