"""The public widget endpoints: starting a chat, the visitor's own chat only, CORS, rate limits, ending."""

import json

import pytest
from django.core.cache import cache

from activities.models import Activity, ActivitySource, ActivityType
from contactcenter import services
from contactcenter.models import (
    Channel,
    ClosedInteraction,
    Interaction,
    InteractionMessage,
    InteractionStatus,
    WidgetChat,
)
from crm.models import Contact
from tests.factories import ContactFactory, QueueFactory, TeamFactory

pytestmark = pytest.mark.django_db

ORIGIN = "https://shop.example"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def chat_queue(tenant, team):
    return QueueFactory(tenant=tenant, name="Website", channel=Channel.WEBCHAT, team=team)


@pytest.fixture
def widget(tenant, chat_queue):
    return services.widget_config_create(tenant=tenant, queue=chat_queue, allowed_origins=[ORIGIN])


def call(client, method, path, data=None, *, origin=ORIGIN, token=None):
    headers = {}
    if origin:
        headers["HTTP_ORIGIN"] = origin
    if token:
        headers["HTTP_X_WIDGET_TOKEN"] = token
    body = json.dumps(data).encode() if data is not None else b""
    return client.generic(method, path, body, content_type="application/json", **headers)


def start(client, widget, name="Vera Visitor", email="vera@example.test", text="Hi there", **kw):
    return call(
        client,
        "POST",
        f"/widget/{widget.public_key}/chats",
        {"name": name, "email": email, "text": text},
        **kw,
    )


def test_script_is_served_with_the_widget_config(client, widget):
    response = client.get(f"/widget/{widget.public_key}.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    body = response.content.decode()
    assert widget.public_key in body and "crm-widget-button" in body


def test_script_escapes_the_title(client, widget):
    widget.title = "</script><script>alert(1)</script>"
    widget.save()
    body = client.get(f"/widget/{widget.public_key}.js").content.decode()
    assert "</script>" not in body
    assert "\\u003c/script\\u003e" in body


def test_unknown_or_disabled_widget_is_404(client, widget):
    assert client.get("/widget/wk_nope.js").status_code == 404
    widget.enabled = False
    widget.save()
    assert client.get(f"/widget/{widget.public_key}.js").status_code == 404
    assert start(client, widget).status_code == 404


def test_starting_a_chat_creates_contact_interaction_and_first_message(client, tenant, widget, team):
    # when a visitor starts a chat
    response = start(client, widget, email="Vera@Example.TEST")
    # then an open web chat interaction exists in the widget's queue, for a new contact
    assert response.status_code == 201
    data = response.json()
    assert data["token"] and data["chat_id"]
    interaction = Interaction.objects.get()
    assert interaction.channel == Channel.WEBCHAT
    assert interaction.status == InteractionStatus.OPEN
    assert interaction.queue == widget.queue and interaction.team == team
    assert interaction.contact.emails == ["vera@example.test"]
    assert interaction.contact.team == team
    assert InteractionMessage.objects.get().text == "Hi there"
    assert response["Access-Control-Allow-Origin"] == ORIGIN


def test_starting_a_chat_matches_an_existing_contact_by_email(client, tenant, widget):
    existing = ContactFactory(tenant=tenant, emails=["vera@example.test"])
    start(client, widget, email="VERA@example.test")
    assert Interaction.objects.get().contact == existing
    assert Contact.objects.count() == 1


@pytest.mark.parametrize(
    ("name", "email", "field"),
    [("", "vera@example.test", "name"), ("Vera", "not-an-email", "email"), ("Vera", "", "email")],
)
def test_bad_start_input_names_the_field_and_writes_nothing(client, widget, name, email, field):
    response = start(client, widget, name=name, email=email)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert Interaction.objects.count() == 0 and Contact.objects.count() == 0


def test_malformed_json_is_rejected(client, widget):
    response = client.generic(
        "POST",
        f"/widget/{widget.public_key}/chats",
        b"{nope",
        content_type="application/json",
        HTTP_ORIGIN=ORIGIN,
    )
    assert response.status_code == 400 and response.json()["field"] == "body"


def test_visitor_and_agent_exchange_messages(client, widget, admin_member):
    # given a started chat
    data = start(client, widget).json()
    chat_id, token = data["chat_id"], data["token"]
    base = f"/widget/{widget.public_key}/chats/{chat_id}"
    # when the visitor writes and an agent replies
    assert (
        call(client, "POST", f"{base}/messages", {"text": "Where is my parcel?"}, token=token).status_code
        == 201
    )
    interaction = Interaction.objects.get()
    services.agent_reply(
        tenant=widget.tenant, actor=admin_member.user, interaction=interaction, text="On its way"
    )
    # then the visitor's poll returns all messages from their side, and after= narrows it
    polled = call(client, "GET", f"{base}/messages", token=token).json()
    assert [m["from"] for m in polled["messages"]] == ["visitor", "visitor", "agent"]
    assert polled["messages"][-1]["text"] == "On its way"
    assert polled["status"] == "open"
    last = polled["messages"][1]["id"]
    assert [
        m["text"]
        for m in call(client, "GET", f"{base}/messages?after={last}", token=token).json()["messages"]
    ] == ["On its way"]
    interaction.refresh_from_db()
    assert interaction.agent == admin_member.user


def test_visitor_cannot_read_or_write_another_chat(client, widget):
    """A visitor trying another chat's id with their own token gets the same 404 as a missing chat
    (cf. WhaTicket CVE-2026-111709: tickets readable by id)."""
    mine = start(client, widget, email="a@example.test").json()
    theirs = start(client, widget, email="b@example.test", text="secret words").json()
    base = f"/widget/{widget.public_key}/chats"
    read = call(client, "GET", f"{base}/{theirs['chat_id']}/messages", token=mine["token"])
    write = call(client, "POST", f"{base}/{theirs['chat_id']}/messages", {"text": "hi"}, token=mine["token"])
    end = call(client, "POST", f"{base}/{theirs['chat_id']}/end", token=mine["token"])
    missing = call(client, "GET", f"{base}/999999/messages", token=mine["token"])
    for response in (read, write, end):
        assert response.status_code == 404
        assert response.content == missing.content
    assert b"secret words" not in read.content
    assert InteractionMessage.objects.filter(text="hi").count() == 0
    assert ClosedInteraction.objects.count() == 0


@pytest.mark.parametrize("token", ["", "garbage", "eyJjIjoxfQ:forged:signature"])
def test_missing_or_forged_token_is_404(client, widget, token):
    data = start(client, widget).json()
    response = call(
        client, "GET", f"/widget/{widget.public_key}/chats/{data['chat_id']}/messages", token=token
    )
    assert response.status_code == 404


def test_token_of_another_tenants_widget_does_not_work_here(client, widget, other_tenant):
    foreign_queue = QueueFactory(
        tenant=other_tenant, channel=Channel.WEBCHAT, team=TeamFactory(tenant=other_tenant)
    )
    foreign = services.widget_config_create(
        tenant=other_tenant, queue=foreign_queue, allowed_origins=[ORIGIN]
    )
    foreign_chat = start(client, foreign).json()
    # the foreign chat's id and token used through this tenant's widget key
    response = call(
        client,
        "GET",
        f"/widget/{widget.public_key}/chats/{foreign_chat['chat_id']}/messages",
        token=foreign_chat["token"],
    )
    assert response.status_code == 404


def test_preflight_from_an_allowed_origin_gets_cors_headers(client, widget):
    response = call(client, "OPTIONS", f"/widget/{widget.public_key}/chats")
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Widget-Token" in response["Access-Control-Allow-Headers"]
    assert "Origin" in response["Vary"]


def test_other_origins_are_refused_without_cors_headers(client, widget):
    preflight = call(client, "OPTIONS", f"/widget/{widget.public_key}/chats", origin="https://evil.example")
    post = start(client, widget, origin="https://evil.example")
    for response in (preflight, post):
        assert response.status_code == 403
        assert "Access-Control-Allow-Origin" not in response
    assert Interaction.objects.count() == 0


def test_visitor_rate_limit(client, widget, settings):
    settings.WIDGET_RATE_LIMITS = {"visitor": (3, 60)}
    data = start(client, widget).json()
    url = f"/widget/{widget.public_key}/chats/{data['chat_id']}/messages"
    codes = [call(client, "GET", url, token=data["token"]).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    limited = call(client, "GET", url, token=data["token"])
    assert limited.json()["error"] and limited["Retry-After"]


def test_start_rate_limit_per_address(client, widget, settings):
    settings.WIDGET_RATE_LIMITS = {"start": (2, 600)}
    codes = [start(client, widget, email=f"v{i}@example.test").status_code for i in range(3)]
    assert codes == [201, 201, 429]
    assert Interaction.objects.count() == 2


def test_tenant_rate_limit(client, widget, settings):
    settings.WIDGET_RATE_LIMITS = {"tenant": (4, 60)}
    first = start(client, widget).json()
    second = start(client, widget, email="other@example.test").json()
    url = f"/widget/{widget.public_key}/chats/{{}}/messages"
    codes = [
        call(client, "GET", url.format(first["chat_id"]), token=first["token"]).status_code,
        call(client, "GET", url.format(second["chat_id"]), token=second["token"]).status_code,
        call(client, "GET", url.format(first["chat_id"]), token=first["token"]).status_code,
    ]
    assert codes == [200, 200, 429]


def test_visitor_ending_the_chat_closes_it_once_with_a_chat_activity(client, widget, team):
    # given a chat with messages
    data = start(client, widget).json()
    base = f"/widget/{widget.public_key}/chats/{data['chat_id']}"
    call(client, "POST", f"{base}/messages", {"text": "thanks"}, token=data["token"])
    # when the visitor ends it (twice: a double click)
    assert call(client, "POST", f"{base}/end", token=data["token"]).json() == {"status": "closed"}
    assert call(client, "POST", f"{base}/end", token=data["token"]).status_code == 200
    # then it is closed once, as a chat activity with source interaction, in the contact's timeline
    closed = ClosedInteraction.objects.get()
    assert closed.type == ActivityType.CHAT
    assert closed.message_count == 2 and closed.first_message == "Hi there"
    activity = Activity.objects.get()
    assert activity.source == ActivitySource.INTERACTION and activity.contact == closed.contact
    assert activity.team == team
    assert WidgetChat.objects.get().ended_at is not None
    # and the visitor's poll says closed, and writing is refused with a field error
    assert call(client, "GET", f"{base}/messages", token=data["token"]).json()["status"] == "closed"
    late = call(client, "POST", f"{base}/messages", {"text": "one more"}, token=data["token"])
    assert late.status_code == 400 and late.json()["field"] == "text"


def test_oversized_message_is_refused(client, widget):
    data = start(client, widget).json()
    url = f"/widget/{widget.public_key}/chats/{data['chat_id']}/messages"
    response = call(client, "POST", url, {"text": "x" * 10_001}, token=data["token"])
    assert response.status_code == 400 and response.json()["field"] == "text"
    assert InteractionMessage.objects.count() == 1


def test_widget_needs_a_webchat_queue_of_its_tenant(tenant, other_tenant):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.widget_config_create(
            tenant=tenant, queue=QueueFactory(tenant=tenant, channel="sms"), allowed_origins=[]
        )
    with pytest.raises(ValidationError):
        services.widget_config_create(
            tenant=tenant, queue=QueueFactory(tenant=other_tenant, channel="webchat"), allowed_origins=[]
        )
