"""API keys: admins create (shown once, stored hashed) and revoke them; other roles and tenants cannot."""

import hashlib
import re

import pytest
from django.urls import reverse

from crm import services
from crm.models import ApiKey, Role
from tests.conftest import REQUEST_TRANSACTION_QUERIES


def test_admin_creates_key_shown_once_and_stored_hashed(tenant, admin_member, client_for):
    client = client_for(admin_member)
    response = client.post(reverse("crm:api-keys"), {"name": "Newsletter tool"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    raw = re.search(r'data-testid="new-key-value">([^<]+)<', html).group(1)
    key = ApiKey.objects.for_tenant(tenant).get()
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(ApiKey.objects.values().get())  # the raw key is not stored anywhere on the row
    assert key.prefix == raw[:12] and key.created_by == admin_member.user
    # listing again never shows it
    assert raw not in client.get(reverse("crm:api-keys")).content.decode()
    assert services.api_key_authenticate(raw) == key


def test_empty_name_shows_error(tenant, admin_member, client_for):
    response = client_for(admin_member).post(reverse("crm:api-keys"), {"name": ""})
    assert response.status_code == 422
    assert "This field is required" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_revoke(tenant, admin_member, client_for):
    key, raw = services.api_key_create(tenant=tenant, actor=admin_member.user, name="X")
    response = client_for(admin_member).post(reverse("crm:api-key-revoke", args=[key.pk]))
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None and key.revoked_by == admin_member.user
    assert services.api_key_authenticate(raw) is None


@pytest.mark.parametrize("role", [Role.AGENT, Role.MANAGER])
def test_non_admins_cannot_manage_keys(role, tenant, team, admin_member, make_member, client_for):
    key, _ = services.api_key_create(tenant=tenant, actor=admin_member.user, name="X")
    client = client_for(make_member(tenant, role, teams=[team]))
    assert client.get(reverse("crm:api-keys")).status_code == 403
    assert client.post(reverse("crm:api-keys"), {"name": "mine"}).status_code == 403
    assert client.post(reverse("crm:api-key-revoke", args=[key.pk])).status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None
    assert ApiKey.objects.count() == 1


def test_other_tenants_key_is_404_like_missing_and_not_listed(
    tenant, other_tenant, admin_member, foreign_member, client_for
):
    foreign, _ = services.api_key_create(tenant=other_tenant, actor=foreign_member.user, name="Theirs")
    client = client_for(admin_member)
    missing = client.post(reverse("crm:api-key-revoke", args=[99999999]))
    response = client.post(reverse("crm:api-key-revoke", args=[foreign.pk]))
    assert missing.status_code == response.status_code == 404
    assert response.content == missing.content
    foreign.refresh_from_db()
    assert foreign.revoked_at is None
    assert "Theirs" not in client.get(reverse("crm:api-keys")).content.decode()


@pytest.mark.parametrize("count", [1, 6])
def test_key_list_query_count_is_pinned(count, tenant, admin_member, client_for, django_assert_num_queries):
    for n in range(count):
        key, _ = services.api_key_create(tenant=tenant, actor=admin_member.user, name=f"K{n}")
    services.api_key_revoke(tenant=tenant, actor=admin_member.user, api_key=key)
    client = client_for(admin_member)
    client.get(reverse("crm:api-keys"))  # warm up session
    with django_assert_num_queries(4 + REQUEST_TRANSACTION_QUERIES):  # session, user, membership + page
        client.get(reverse("crm:api-keys"))


def test_admin_site_never_shows_the_hash(tenant, admin_member, client):
    key, _ = services.api_key_create(tenant=tenant, actor=admin_member.user, name="X")
    admin_member.user.is_staff = True
    admin_member.user.save()
    client.force_login(admin_member.user)
    change = client.get(reverse("admin:crm_apikey_change", args=[key.pk]))
    assert change.status_code == 200
    assert key.key_hash not in change.content.decode()
    assert client.get(reverse("admin:crm_apikey_add")).status_code == 403
