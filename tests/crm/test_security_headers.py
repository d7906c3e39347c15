"""Security headers: the Content-Security-Policy (django-csp) on every kind of page, the email body's own
stricter policy left alone, and the production-only headers and cookie flags (HSTS, secure cookies)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.urls import reverse

from activities.models import ActivityType, Direction
from crm.models import Role
from tests.factories import (
    ActivityFactory,
    ContactFactory,
    EmailLocationFactory,
    IncomingEmailFactory,
    MailboxFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]

SITE_POLICY = {
    "default-src": {"'self'"},
    "script-src": {"'self'"},
    "style-src": {"'self'"},
    "img-src": {"'self'", "data:"},
    "font-src": {"'self'"},
    "connect-src": {"'self'"},
    "frame-src": {"'self'"},
    "frame-ancestors": {"'none'"},
    "form-action": {"'self'"},
    "base-uri": {"'self'"},
    "object-src": {"'none'"},
}


def parse_csp(header: str) -> dict[str, set[str]]:
    policy = {}
    for directive in filter(None, (part.strip() for part in header.split(";"))):
        name, *values = directive.split()
        assert name not in policy, f"{name} twice in {header!r}"
        policy[name] = set(values)
    return policy


def assert_site_policy(response):
    assert "Content-Security-Policy" in response, f"no CSP on {response.request['PATH_INFO']}"
    assert parse_csp(response["Content-Security-Policy"]) == SITE_POLICY
    # no value that would re-open inline code anywhere
    assert "unsafe" not in response["Content-Security-Policy"]


@pytest.fixture
def data(tenant, team, make_member):
    admin = make_member(tenant, Role.ADMIN, teams=[team], email=True)
    contact = ContactFactory(tenant=tenant, team=team, name="Ada Header")
    ActivityFactory(tenant=tenant, team=team, contact=contact, type=ActivityType.NOTE, summary="hello")
    location = EmailLocationFactory(
        tenant=tenant,
        mailbox=MailboxFactory(tenant=tenant, owner=admin.user),
        email=IncomingEmailFactory(tenant=tenant, body_html="<p>Hi <b>there</b></p>", subject="Hello"),
    )
    email = location.email
    ActivityFactory(
        tenant=tenant,
        team=team,
        type=ActivityType.EMAIL,
        direction=Direction.INBOUND,
        user=admin.user,
        summary=email.subject,
        dedup_key=f"email:{email.pk}",
        source_id=email.pk,
    )
    return {"admin": admin, "contact": contact, "email": email}


def test_login_page_carries_the_site_policy(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert_site_policy(response)


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx-partial"])
def test_grids_timelines_and_pages_carry_the_site_policy(client_for, data, htmx):
    client = client_for(data["admin"])
    contact = data["contact"]
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    urls = [
        reverse("home"),
        reverse("activities:grid"),
        reverse("crm:contact-list"),
        reverse("crm:contact-detail", args=[contact.pk]),
        reverse("crm:contact-timeline", args=[contact.pk]),
        reverse("activities:analytics"),
        reverse("emailsync:email-detail", args=[data["email"].pk]),
    ]
    for url in urls:
        response = client.get(url, **headers)
        assert response.status_code == 200, url
        assert_site_policy(response)


def test_error_pages_carry_the_site_policy(client_for, data):
    response = client_for(data["admin"]).get(reverse("crm:contact-detail", args=[999_999]))
    assert response.status_code == 404
    assert_site_policy(response)


def test_admin_pages_carry_the_site_policy(client, data):
    superuser = UserFactory(is_staff=True, is_superuser=True)
    assert_site_policy(client.get(reverse("admin:login")))
    client.force_login(superuser)
    contact = data["contact"]
    for url in (
        reverse("admin:index"),
        reverse("admin:crm_contact_changelist"),
        reverse("admin:crm_contact_change", args=[contact.pk]),
        reverse("admin:crm_contact_add"),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_site_policy(response)


def test_email_body_keeps_its_own_stricter_policy(client_for, data):
    client = client_for(data["admin"])
    url = reverse("emailsync:email-body", args=[data["email"].pk])
    for query in ("", "?images=1"):
        response = client.get(url + query)
        assert response.status_code == 200
        # exactly one header, the view's own: django-csp neither replaced nor merged into it
        assert len(response.headers.get("Content-Security-Policy").split(",")) == 1
        policy = parse_csp(response["Content-Security-Policy"])
        assert policy["default-src"] == {"'none'"}
        assert policy["frame-ancestors"] == {"'self'"}  # framed by our own email page only
        assert policy["form-action"] == {"'none'"} and policy["base-uri"] == {"'none'"}
        assert "script-src" not in policy  # so default-src 'none' forbids every script
        assert "sandbox" in policy
    assert parse_csp(client.get(url)["Content-Security-Policy"])["img-src"] == {"data:"}


def test_the_widget_script_and_endpoints_are_not_blocked_by_the_site_policy(client, tenant, team):
    """The widget runs on other origins: our policy is irrelevant to the embedding page (a CSP header on
    a script or JSON response is ignored), and nothing in it must turn the responses away."""
    from contactcenter import services
    from contactcenter.models import Channel
    from tests.factories import QueueFactory

    queue = QueueFactory(tenant=tenant, team=team, channel=Channel.WEBCHAT)
    widget = services.widget_config_create(tenant=tenant, queue=queue, allowed_origins=["https://shop.test"])
    script = client.get(f"/widget/{widget.public_key}.js")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    started = client.post(
        f"/widget/{widget.public_key}/chats",
        data=json.dumps({"name": "Vic", "email": "vic@example.test", "text": "Hello"}),
        content_type="application/json",
        HTTP_ORIGIN="https://shop.test",
    )
    assert started.status_code == 201
    assert started["Access-Control-Allow-Origin"] == "https://shop.test"


def _production(code: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    env.update(
        DJANGO_ENV="production",
        DJANGO_SETTINGS_MODULE="crm.settings",
        SECRET_KEY="x" * 20 + "-a-long-random-production-secret-key-0123456789",
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="crm.example.com",
        LOG_LEVEL="WARNING",
    )
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_send_hsts_secure_cookies_referrer_policy_and_the_csp():
    # The login page rendered through the whole middleware stack of the production settings (no database
    # needed for an anonymous GET), over HTTPS as the proxy reports it, and once over plain HTTP. Only the
    # static files storage is swapped: the manifest storage needs a collectstatic run.
    result = _production(
        """
import json
from django.conf import settings
from django.test import Client, override_settings
static = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
storages = {**settings.STORAGES, "staticfiles": static}
client = Client()
with override_settings(STORAGES=storages):
    https = client.get("/login/", HTTP_HOST="crm.example.com", HTTP_X_FORWARDED_PROTO="https")
    http = client.get("/login/", HTTP_HOST="crm.example.com")
csrf = https.cookies["csrftoken"]
print(json.dumps({
    "status": https.status_code,
    "headers": dict(https.headers),
    "csrf_cookie_secure": bool(csrf["secure"]),
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "session_cookie_httponly": settings.SESSION_COOKIE_HTTPONLY,
    "http_status": http.status_code,
    "http_location": http.get("Location"),
}))
"""
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    headers = out["headers"]
    assert out["status"] == 200
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert parse_csp(headers["Content-Security-Policy"]) == SITE_POLICY
    assert out["csrf_cookie_secure"] and out["session_cookie_secure"] and out["session_cookie_httponly"]
    assert out["http_status"] == 301 and out["http_location"] == "https://crm.example.com/login/"
