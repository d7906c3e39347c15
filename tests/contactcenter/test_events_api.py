"""The signed channel-event API: signatures, idempotency, ordering, close-once, contact matching,
bad input and tenant isolation."""

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from activities.models import Activity, ActivitySource, ActivityType, FeedEntry
from contactcenter import services
from contactcenter.models import (
    ChannelEvent,
    ChannelSecret,
    ClosedInteraction,
    Interaction,
    InteractionMessage,
    InteractionStatus,
    MessageKind,
)
from crm.models import Contact
from tests.factories import ContactFactory, QueueFactory, TeamFactory

from .conftest import sign

pytestmark = pytest.mark.django_db

T0 = timezone.now().replace(microsecond=0) - timedelta(hours=1)


def event(event_id, type_, *, at=0, channel="sms", conv="conv-1", **extra):
    payload = {
        "event_id": event_id,
        "type": type_,
        "channel": channel,
        "interaction_id": conv,
        "occurred_at": (T0 + timedelta(seconds=at)).isoformat(),
    }
    payload.update(extra)
    return payload


def msg(event_id, text, *, at, direction="inbound", mid=None, **extra):
    return event(
        event_id,
        "message",
        at=at,
        message={"id": mid or event_id, "text": text, "direction": direction},
        **extra,
    )


def test_a_conversation_closes_into_one_closed_row_and_one_activity(post_event, sms_queue, team):
    # given an opened SMS conversation with two messages
    contact = {"phone": "+1 (555) 010-2000", "name": "Ada Caller"}
    assert (
        post_event(event("e1", "interaction.opened", queue_id=sms_queue.pk, contact=contact)).status_code
        == 201
    )
    assert post_event(msg("e2", "Hello, my order is late", at=10)).status_code == 201
    assert post_event(msg("e3", "Let me check", at=40, direction="outbound")).status_code == 201
    # when it closes
    response = post_event(event("e4", "interaction.closed", at=100, summary="Late order"))
    # then one closed row with the stats, and one activity linked to it, in the feed once
    assert response.status_code == 201
    assert response.json()["interaction_status"] == "closed"
    closed = ClosedInteraction.objects.get()
    assert closed.type == ActivityType.SMS
    assert closed.message_count == 2
    assert closed.first_message == "Hello, my order is late"
    assert closed.duration_seconds == 100
    assert closed.summary == "Late order"
    assert closed.team == team and closed.queue == sms_queue
    assert closed.activity_logged is True
    activity = Activity.objects.get()
    assert activity.source == ActivitySource.INTERACTION
    assert activity.type == ActivityType.SMS
    assert activity.source_object == closed
    assert activity.dedup_key == f"interaction:{closed.pk}"
    assert activity.first_message == "Hello, my order is late"
    assert activity.occurred_at == T0
    assert activity.contact == closed.contact
    assert closed.contact.phones == ["+15550102000"]
    assert FeedEntry.objects.filter(contact=closed.contact).count() == 1


def test_a_repeated_event_is_acknowledged_and_ignored(post_event, sms_queue):
    # given an accepted message event
    payload = msg("dup-1", "Only once", at=5, queue_id=sms_queue.pk)
    assert post_event(payload).status_code == 201
    # when the channel delivers it again (and a third time)
    again = post_event(payload)
    post_event(payload)
    # then it is acknowledged as a duplicate and nothing is stored twice
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert InteractionMessage.objects.count() == 1
    assert ChannelEvent.objects.count() == 1


def test_same_message_id_under_a_new_event_id_is_stored_once(post_event, sms_queue):
    post_event(msg("a", "Hi", at=1, mid="m-1", queue_id=sms_queue.pk))
    post_event(msg("b", "Hi", at=1, mid="m-1"))
    assert InteractionMessage.objects.count() == 1


def test_interaction_is_closed_exactly_once(post_event, sms_queue):
    """Repeated and concurrent closes (different event ids) write one row and one activity."""
    post_event(event("o", "interaction.opened", queue_id=sms_queue.pk, contact={"phone": "+15550001111"}))
    assert post_event(event("c1", "interaction.closed", at=50)).status_code == 201
    assert post_event(event("c2", "interaction.closed", at=70)).status_code == 201
    assert ClosedInteraction.objects.count() == 1
    assert ClosedInteraction.objects.get().duration_seconds == 50
    assert Activity.objects.count() == 1


def test_message_arriving_after_the_close_is_stored_and_counted(post_event, sms_queue):
    # given a conversation closed before its messages arrived
    post_event(
        event("o", "interaction.opened", at=0, queue_id=sms_queue.pk, contact={"phone": "+15550003333"})
    )
    post_event(event("c", "interaction.closed", at=60))
    closed = ClosedInteraction.objects.get()
    assert closed.message_count == 0 and closed.first_message == ""
    # when the messages arrive late, out of order
    post_event(msg("m2", "second", at=30))
    post_event(msg("m1", "first", at=10))
    # then they are stored and the closed row and its activity follow
    closed.refresh_from_db()
    assert InteractionMessage.objects.count() == 2
    assert closed.message_count == 2
    assert closed.first_message == "first"
    assert Activity.objects.get().first_message == "first"
    assert ClosedInteraction.objects.count() == 1 and Activity.objects.count() == 1


def test_events_before_the_opening_event_open_the_interaction(post_event, sms_queue):
    # given a message and a close arriving before the "opened" event
    post_event(msg("m", "first words", at=20, contact={"phone": "+15550004444"}))
    post_event(event("c", "interaction.closed", at=80))
    # when the opening event finally arrives with an earlier time and the queue
    post_event(event("o", "interaction.opened", at=0, queue_id=sms_queue.pk))
    # then the start moves back, the queue is filled in, and the close is still single
    interaction = Interaction.objects.get()
    closed = ClosedInteraction.objects.get()
    assert interaction.started_at == T0
    assert interaction.queue == sms_queue
    assert interaction.status == InteractionStatus.CLOSED
    assert closed.started_at == T0
    assert closed.duration_seconds == 80
    assert Activity.objects.get().occurred_at == T0


def test_transfer_moves_the_queue_and_leaves_a_system_note(post_event, tenant, sms_queue, other_team):
    # given an open conversation
    target = QueueFactory(tenant=tenant, name="Escalations", channel="sms", team=other_team)
    post_event(event("o", "interaction.opened", queue_id=sms_queue.pk))
    # when it is transferred
    response = post_event(event("t", "transfer", at=30, transfer={"to_queue_id": target.pk, "note": "VIP"}))
    # then queue and team follow and a centred system note is in the conversation
    assert response.status_code == 201
    interaction = Interaction.objects.get()
    assert interaction.queue == target and interaction.team == other_team
    note = InteractionMessage.objects.get(kind=MessageKind.SYSTEM)
    assert "Escalations" in note.text and "VIP" in note.text


def test_contact_is_matched_by_normalised_phone_within_the_tenant(
    post_event, tenant, other_tenant, sms_queue
):
    # given the same number in this tenant and another one
    mine = ContactFactory(tenant=tenant, phones=["+15550100000"])
    ContactFactory(tenant=other_tenant, phones=["+15550100000"])
    # when an event carries the number in another format
    post_event(event("o", "interaction.opened", queue_id=sms_queue.pk, contact={"phone": "001 555-010-0000"}))
    # then the tenant's own contact is matched, nothing is created
    assert Interaction.objects.get().contact == mine
    assert Contact.objects.for_tenant(tenant).count() == 1


def test_contact_is_matched_by_email_case_insensitively(post_event, tenant):
    mine = ContactFactory(tenant=tenant, emails=["ada@example.test"], phones=[])
    post_event(event("o", "interaction.opened", channel="webchat", contact={"email": "ADA@Example.TEST"}))
    assert Interaction.objects.get().contact == mine


def test_unknown_contact_is_created_in_the_queue_team(post_event, tenant, sms_queue, team):
    post_event(
        event(
            "o",
            "interaction.opened",
            queue_id=sms_queue.pk,
            contact={"phone": "+44 20 7946 0000", "name": "New"},
        )
    )
    contact = Contact.objects.for_tenant(tenant).get()
    assert contact.name == "New" and contact.phones == ["+442079460000"] and contact.team == team


# --- Signatures -------------------------------------------------------------------------------------


def _assert_rejected(response, status=401, field="signature"):
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json()["field"] == field
    assert Interaction.objects.count() == 0
    assert ChannelEvent.objects.count() == 0


def test_bad_signature_is_rejected(client, channel_secret, sms_queue):
    body = json.dumps(event("e", "interaction.opened")).encode()
    headers = sign(channel_secret, body)
    headers["HTTP_X_CRM_SIGNATURE"] = "sha256=" + "0" * 64
    response = client.generic(
        "POST", "/api/v1/contactcenter/events", body, content_type="application/json", **headers
    )
    _assert_rejected(response)


def test_body_changed_after_signing_is_rejected(client, channel_secret):
    body = json.dumps(event("e", "interaction.opened")).encode()
    headers = sign(channel_secret, body)
    tampered = body.replace(b"conv-1", b"conv-2")
    response = client.generic(
        "POST", "/api/v1/contactcenter/events", tampered, content_type="application/json", **headers
    )
    _assert_rejected(response)


@pytest.mark.parametrize("skew", [-301, 301, -3600])
def test_stale_or_future_timestamp_is_rejected(post_event, skew):
    _assert_rejected(post_event(event("e", "interaction.opened"), timestamp=int(time.time()) + skew))


def test_missing_signature_headers_are_rejected(client):
    response = client.post("/api/v1/contactcenter/events", {}, content_type="application/json")
    _assert_rejected(response)


def test_unknown_key_is_rejected(post_event):
    _assert_rejected(post_event(event("e", "interaction.opened"), headers={"HTTP_X_CRM_KEY": "ck_nope"}))


def test_rotated_secret_stops_working_and_new_one_works(post_event, tenant, channel_secret):
    # when an admin rotates the secret
    new_row, new_secret = services.channel_secret_rotate(tenant=tenant)
    new_row.plaintext = new_secret
    # then the old one is refused and the new one accepted
    _assert_rejected(post_event(event("e", "interaction.opened")))
    assert post_event(event("e", "interaction.opened"), secret=new_row).status_code == 201


def test_secret_is_encrypted_at_rest(channel_secret):
    stored = ChannelSecret.objects.get(pk=channel_secret.pk).secret_encrypted
    assert channel_secret.plaintext not in stored


def test_get_is_not_allowed(client):
    assert client.get("/api/v1/contactcenter/events").status_code == 405


# --- Bad input: 4xx JSON naming the field, nothing written -------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (event("e", "interaction.opened", channel="pigeon"), "channel"),
        (event("e", "interaction.opened", channel="email"), "channel"),
        (event("e", "teleport"), "type"),
        ({**event("e", "interaction.opened"), "event_id": ""}, "event_id"),
        ({**event("e", "interaction.opened"), "interaction_id": 5}, "interaction_id"),
        ({**event("e", "interaction.opened"), "occurred_at": "yesterday"}, "occurred_at"),
        ({**event("e", "interaction.opened"), "occurred_at": "2026-01-01T10:00:00"}, "occurred_at"),
        (event("e", "interaction.opened", queue_id=999999), "queue_id"),
        (event("e", "interaction.opened", queue_id="abc"), "queue_id"),
        (event("e", "interaction.opened", direction="sideways"), "direction"),
        (event("e", "interaction.opened", contact="Ada"), "contact"),
        (event("e", "interaction.opened", contact={"phone": "call me"}), "contact.phone"),
        (event("e", "interaction.opened", contact={"email": "not-an-address"}), "contact.email"),
        (event("e", "interaction.opened", agent_email="stranger@example.test"), "agent_email"),
        (event("e", "message"), "message"),
        (event("e", "message", message={"text": ""}), "message.text"),
        (event("e", "message", message={"text": "x" * 10_001}), "message.text"),
        (event("e", "transfer", transfer={}), "transfer"),
        (["not", "an", "object"], "body"),
    ],
)
def test_bad_input_gets_a_json_error_naming_the_field(post_event, payload, field):
    response = post_event(payload)
    assert 400 <= response.status_code < 500
    assert response.json()["field"] == field
    assert response.json()["error"]
    assert Interaction.objects.count() == 0
    assert ChannelEvent.objects.count() == 0
    assert Contact.objects.count() == 0


def test_malformed_json_is_rejected(post_event):
    response = post_event(b'{"event_id": "e", "type": ')
    assert response.status_code == 400
    assert response.json()["field"] == "body"


def test_oversized_body_is_rejected(post_event):
    response = post_event(msg("e", "x" * 300_000, at=1))
    assert response.status_code == 413
    assert response.json()["field"] == "body"
    assert Interaction.objects.count() == 0


def test_queue_of_another_channel_is_rejected(post_event, tenant):
    voice = QueueFactory(tenant=tenant, channel="voice")
    response = post_event(event("e", "interaction.opened", queue_id=voice.pk))
    assert response.status_code == 400 and response.json()["field"] == "queue_id"


def test_other_tenants_queue_is_rejected_like_a_missing_one(post_event, other_tenant):
    """Foreign secondary keys in the body (cf. Chatwoot CVE-2026-115725) are unknown, not borrowed."""
    foreign = QueueFactory(tenant=other_tenant, channel="sms", team=TeamFactory(tenant=other_tenant))
    foreign_response = post_event(event("e", "interaction.opened", queue_id=foreign.pk))
    missing_response = post_event(event("e", "interaction.opened", queue_id=foreign.pk + 1000))
    assert foreign_response.status_code == 400
    assert foreign_response.json()["field"] == "queue_id"
    assert foreign_response.json()["error"].replace(str(foreign.pk), "N") == missing_response.json()[
        "error"
    ].replace(str(foreign.pk + 1000), "N")
    assert Interaction.objects.count() == 0


def test_a_failure_mid_event_writes_nothing(post_event, sms_queue, monkeypatch):
    """One transaction: if applying fails after the contact was created, nothing stays."""

    def boom(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(services, "message_add", boom)
    with pytest.raises(RuntimeError):
        post_event(msg("e", "hi", at=1, queue_id=sms_queue.pk, contact={"phone": "+15550009999"}))
    assert Contact.objects.count() == 0
    assert Interaction.objects.count() == 0
    assert ChannelEvent.objects.count() == 0


def test_events_land_in_the_signing_tenant_only(post_event, tenant, other_tenant):
    # given another tenant with its own secret and the same conversation id
    foreign_row, foreign_secret = services.channel_secret_create(tenant=other_tenant)
    foreign_row.plaintext = foreign_secret
    post_event(event("e", "interaction.opened"))
    post_event(event("e", "interaction.opened"), secret=foreign_row)
    # then each tenant has its own interaction and the event ids do not collide across tenants
    assert Interaction.objects.for_tenant(tenant).count() == 1
    assert Interaction.objects.for_tenant(other_tenant).count() == 1
    assert ChannelEvent.objects.count() == 2
