"""POST /api/v1/activities: per-tenant keys, idempotency, and a JSON error naming the field for every bad
input, with nothing half-written. GET /api/v1/schema serves the OpenAPI description."""

import json

import pytest
from django.urls import reverse

from activities.api import BODY_MAX, MAX_BODY_BYTES, SUMMARY_MAX
from activities.models import Activity, ActivitySource
from crm import services as crm_services
from tests.factories import ContactFactory

URL = "/api/v1/activities"


@pytest.fixture
def api_key(tenant, admin_member):
    _, raw = crm_services.api_key_create(tenant=tenant, actor=admin_member.user, name="Newsletter")
    return raw


@pytest.fixture
def contact(tenant, team):
    return ContactFactory(tenant=tenant, team=team, emails=["ada@example.test"])


@pytest.fixture
def post(client, api_key):
    def _post(body, *, key=api_key, idem="req-1", content_type="application/json", raw=None):
        headers = {}
        if key is not None:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
        if idem is not None:
            headers["HTTP_IDEMPOTENCY_KEY"] = idem
        data = raw if raw is not None else json.dumps(body)
        return client.post(URL, data=data, content_type=content_type, **headers)

    return _post


def _body(contact, **extra):
    return {
        "type": "email",
        "source": "campaign",
        "summary": "Spring newsletter",
        "contact_id": contact.pk,
        **extra,
    }


def test_create_by_contact_id(post, tenant, team, contact):
    response = post(_body(contact, direction="outbound", occurred_at="2026-03-01T10:00:00+01:00"))
    assert response.status_code == 201
    data = response.json()
    activity = Activity.objects.get(pk=data["id"])
    assert (activity.tenant, activity.contact, activity.team) == (tenant, contact, team)
    assert (activity.type, activity.source, activity.direction) == (
        "email",
        ActivitySource.CAMPAIGN,
        "outbound",
    )
    assert activity.dedup_key == "api:req-1"
    assert activity.occurred_at.isoformat() == "2026-03-01T09:00:00+00:00"


def test_create_by_contact_email_defaults_to_external(post, contact):
    body = {"type": "call", "summary": "Called from dialer", "contact_email": "ADA@example.test"}
    response = post(body)
    assert response.status_code == 201
    activity = Activity.objects.get(pk=response.json()["id"])
    assert activity.contact == contact
    assert activity.source == ActivitySource.EXTERNAL


def test_same_idempotency_key_twice_creates_one(post, contact):
    first = post(_body(contact))
    second = post(_body(contact))
    assert first.status_code == 201
    assert second.status_code == 200
    assert second["Idempotent-Replayed"] == "true"
    assert first.json() == second.json()
    assert Activity.objects.count() == 1


def test_same_idempotency_key_with_different_body_is_409(post, contact):
    post(_body(contact))
    response = post(_body(contact, summary="Something else"))
    assert response.status_code == 409
    assert response.json()["field"] == "Idempotency-Key"
    assert Activity.objects.get().summary == "Spring newsletter"


def test_replay_of_a_deleted_activity_does_not_resurrect_it(post, contact, admin_member):
    from activities import services

    activity = Activity.objects.get(pk=post(_body(contact)).json()["id"])
    services.activity_delete(membership=admin_member, activity=activity)
    response = post(_body(contact))
    assert response.status_code == 200
    assert Activity.objects.count() == 1
    activity.refresh_from_db()
    assert activity.is_deleted


@pytest.mark.parametrize(
    "change, status, field",
    [
        ({"type": "fax"}, 400, "type"),
        ({"type": "lead_conversion"}, 400, "type"),
        ({"type": None}, 400, "type"),
        ({"source": "manual"}, 400, "source"),
        ({"source": "interaction"}, 400, "source"),
        ({"summary": ""}, 400, "summary"),
        ({"summary": "   "}, 400, "summary"),
        ({"summary": None}, 400, "summary"),
        ({"summary": 42}, 400, "summary"),
        ({"summary": "x" * (SUMMARY_MAX + 1)}, 400, "summary"),
        ({"body": "x" * (BODY_MAX + 1)}, 400, "body"),
        ({"direction": "sideways"}, 400, "direction"),
        ({"occurred_at": "yesterday"}, 400, "occurred_at"),
        ({"occurred_at": "2026-03-01T10:00:00"}, 400, "occurred_at"),
        ({"duration_seconds": -1}, 400, "duration_seconds"),
        ({"duration_seconds": "60"}, 400, "duration_seconds"),
        ({"contact_id": None}, 400, "contact_id"),
        ({"contact_id": "1"}, 400, "contact_id"),
        ({"contact_id": 99999999}, 400, "contact_id"),
        ({"contact_email": "ada@example.test"}, 400, "contact_email"),  # both id and email
        ({"tenant_id": 1}, 400, "tenant_id"),  # mass assignment: unknown fields are refused
        ({"team": 1}, 400, "team"),
        ({"dedup_key": "x"}, 400, "dedup_key"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(post, contact, change, status, field):
    body = _body(contact)
    for name, value in change.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    response = post(body)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json()["field"] == field
    assert response.json()["error"]
    assert not Activity.objects.exists()


def test_contact_of_another_tenant_is_rejected_like_a_missing_one(post, other_tenant, contact):
    foreign = ContactFactory(tenant=other_tenant, emails=["eve@example.test"])
    by_id = post(_body(contact, contact_id=foreign.pk))
    missing = post(_body(contact, contact_id=99999999), idem="req-2")
    assert by_id.status_code == 400 and by_id.json() == missing.json()
    body = {"type": "note", "summary": "x", "contact_email": "eve@example.test"}
    assert post(body, idem="req-3").json()["field"] == "contact_email"
    assert not Activity.objects.exists()


def test_ambiguous_contact_email_is_rejected(post, tenant, contact):
    ContactFactory(tenant=tenant, emails=["ada@example.test"])
    response = post({"type": "note", "summary": "x", "contact_email": "ada@example.test"})
    assert response.status_code == 400
    assert response.json()["field"] == "contact_email"


@pytest.mark.parametrize(
    "raw, field",
    [("{not json", "body"), ("[1, 2]", "body"), ('"text"', "body"), (b"\xff\xfe", "body")],
)
def test_malformed_json(post, raw, field):
    response = post(None, raw=raw)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert not Activity.objects.exists()


def test_oversized_body_is_413(post, contact):
    response = post(None, raw=json.dumps(_body(contact, body="x" * (MAX_BODY_BYTES + 10))))
    assert response.status_code == 413
    assert response.json()["field"] == "body"


def test_wrong_content_type_is_415(post, contact):
    response = post(None, raw="type=note", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["field"] == "Content-Type"


def test_missing_idempotency_key(post, contact):
    response = post(_body(contact), idem=None)
    assert response.status_code == 400
    assert response.json()["field"] == "Idempotency-Key"
    response = post(_body(contact), idem="has space")
    assert response.status_code == 400
    response = post(_body(contact), idem="x" * 151)
    assert response.status_code == 400
    assert not Activity.objects.exists()


@pytest.mark.parametrize("key", [None, "", "crm_nonsense", "Basic abc", "crm_" + "a" * 43])
def test_bad_key_is_401(client, contact, key):
    headers = {"HTTP_IDEMPOTENCY_KEY": "k1"}
    if key is not None:
        headers["HTTP_AUTHORIZATION"] = key if key.startswith("Basic") else f"Bearer {key}"
    response = client.post(URL, data=json.dumps(_body(contact)), content_type="application/json", **headers)
    assert response.status_code == 401
    assert response.json()["field"] == "Authorization"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Activity.objects.exists()


def test_revoked_key_is_401(post, tenant, admin_member, api_key, contact):
    from crm.models import ApiKey

    key = ApiKey.objects.get(key_hash=crm_services.hash_api_key(api_key))
    crm_services.api_key_revoke(tenant=tenant, actor=admin_member.user, api_key=key)
    response = post(_body(contact))
    assert response.status_code == 401
    assert not Activity.objects.exists()


def test_key_of_another_tenant_cannot_reach_this_tenants_contact(post, other_tenant, foreign_member, contact):
    _, foreign_key = crm_services.api_key_create(
        tenant=other_tenant, actor=foreign_member.user, name="Theirs"
    )
    response = post(_body(contact), key=foreign_key)
    assert response.status_code == 400
    assert response.json()["field"] == "contact_id"
    assert not Activity.objects.exists()


def test_idempotency_keys_are_per_tenant(post, other_tenant, foreign_member, contact):
    _, foreign_key = crm_services.api_key_create(
        tenant=other_tenant, actor=foreign_member.user, name="Theirs"
    )
    theirs = ContactFactory(tenant=other_tenant)
    assert post(_body(contact)).status_code == 201
    assert post(_body(theirs), key=foreign_key).status_code == 201
    assert Activity.objects.count() == 2


def test_api_is_csrf_exempt_and_post_only(client, api_key, contact):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    response = csrf_client.post(
        URL,
        data=json.dumps(_body(contact)),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_key}",
        HTTP_IDEMPOTENCY_KEY="csrf-1",
    )
    assert response.status_code == 201
    assert client.get(URL).status_code == 405


def test_api_marks_key_used(post, api_key, contact):
    from crm.models import ApiKey

    post(_body(contact))
    assert ApiKey.objects.get(key_hash=crm_services.hash_api_key(api_key)).last_used_at is not None


@pytest.mark.django_db  # every request but liveness/readiness/metrics runs in a tenant transaction
def test_schema_is_openapi_json(client):
    response = client.get(reverse("activities:api-schema"))
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    post = schema["paths"]["/api/v1/activities"]["post"]
    assert {"201", "200", "400", "401", "409", "413", "415"} <= set(post["responses"])
    assert post["parameters"][0]["name"] == "Idempotency-Key"
