"""Pages: the interactions grid, the message viewer, live chats; visibility and the isolation matrix."""

from datetime import timedelta

import pytest
from django.urls import get_resolver
from django.utils import timezone

from activities.models import Direction
from contactcenter import services
from contactcenter.models import Channel, InteractionStatus, MessageKind, Ticket
from tests.conftest import REQUEST_TRANSACTION_QUERIES
from tests.factories import (
    ClosedInteractionFactory,
    ContactFactory,
    InteractionFactory,
    InteractionMessageFactory,
    QueueFactory,
    TeamFactory,
    TicketFactory,
)

pytestmark = pytest.mark.django_db


def _closed(tenant, team, **kw):
    queue = kw.pop("queue", None) or QueueFactory(tenant=tenant, channel=kw.pop("channel", "sms"), team=team)
    contact = kw.pop("contact", None) or ContactFactory(tenant=tenant, team=team)
    interaction = InteractionFactory(
        tenant=tenant, queue=queue, channel=queue.channel, team=team, contact=contact, status="closed"
    )
    return ClosedInteractionFactory(tenant=tenant, interaction=interaction, team=team, contact=contact, **kw)


# --- Grid -------------------------------------------------------------------------------------------


def test_grid_lists_the_tenants_closed_interactions_with_a_pinned_query_count(
    client_for, tenant, team, admin_member, django_assert_num_queries
):
    # given a few closed interactions
    for _ in range(3):
        _closed(tenant, team)
    client = client_for(admin_member)
    client.get("/interactions/")  # warm caches (content types, session)
    # then the page takes a fixed number of queries, whatever the number of rows
    with django_assert_num_queries(6 + REQUEST_TRANSACTION_QUERIES):
        response = client.get("/interactions/")
    assert response.content.decode().count('data-testid="interaction-row"') == 3
    for _ in range(10):
        _closed(tenant, team)
    with django_assert_num_queries(6 + REQUEST_TRANSACTION_QUERIES):
        response = client.get("/interactions/")
    assert response.content.decode().count('data-testid="interaction-row"') == 13


def test_grid_pages_by_keyset(client_for, tenant, team, admin_member, monkeypatch):
    from contactcenter import selectors

    monkeypatch.setattr(selectors, "PAGE_SIZE", 2)
    monkeypatch.setattr(selectors.closed_interaction_page, "__kwdefaults__", {"cursor": "", "limit": 2})
    now = timezone.now()
    rows = [
        _closed(tenant, team, started_at=now - timedelta(minutes=i), summary=f"row {i}") for i in range(5)
    ]
    client = client_for(admin_member)
    seen = []
    url = "/interactions/"
    for _ in range(10):
        if not url:
            break
        response = client.get(url)
        page = response.context["page"]
        seen += [r.pk for r in page.rows]
        url = f"/interactions/?after={page.next_cursor}" if page.next_cursor else None
    assert seen == [r.pk for r in rows]
    assert client.get("/interactions/?after=not-a-cursor").status_code == 200


def test_grid_filters(client_for, tenant, team, admin_member):
    voice_queue = QueueFactory(tenant=tenant, channel="voice", name="Phones", team=team)
    ada = ContactFactory(tenant=tenant, name="Ada Lovelace", team=team)
    hit = _closed(tenant, team, queue=voice_queue, contact=ada, direction=Direction.OUTBOUND)
    _closed(tenant, team)
    old = _closed(tenant, team, started_at=timezone.now() - timedelta(days=30))
    client = client_for(admin_member)

    def ids(query):
        return [r.pk for r in client.get(f"/interactions/?{query}").context["page"].rows]

    assert ids("channel=voice") == [hit.pk]
    assert ids(f"queue={voice_queue.pk}") == [hit.pk]
    assert ids("contact=lovel") == [hit.pk]
    assert ids("direction=outbound") == [hit.pk]
    day = (timezone.localdate() - timedelta(days=30)).isoformat()
    assert ids(f"date_from={day}&date_to={day}") == [old.pk]
    assert ids("contact=%25") == []  # a LIKE wildcard typed by the user matches literally


def test_grid_filter_choices_are_narrowed_to_the_tenant(client_for, tenant, other_tenant, admin_member):
    foreign_queue = QueueFactory(tenant=other_tenant, name="Foreign queue")
    response = client_for(admin_member).get(f"/interactions/?queue={foreign_queue.pk}")
    body = response.content.decode()
    assert "Foreign queue" not in body
    assert response.context["filter"].form.errors["queue"]


def test_grid_shows_an_agent_only_their_teams_rows(client_for, tenant, team, other_team, agent_member):
    mine = _closed(tenant, team)
    _closed(tenant, other_team)
    own = _closed(tenant, other_team, agent=agent_member.user)
    rows = client_for(agent_member).get("/interactions/").context["page"].rows
    assert {r.pk for r in rows} == {mine.pk, own.pk}


def test_grid_htmx_returns_the_partial(client_for, tenant, team, admin_member):
    _closed(tenant, team)
    response = client_for(admin_member).get("/interactions/", HTTP_HX_REQUEST="true")
    assert "<html" not in response.content.decode()
    assert "HX-Request" in response["Vary"]


def test_open_interactions_are_listed_separately(client_for, tenant, team, admin_member):
    contact = ContactFactory(tenant=tenant, name="Still Talking", team=team)
    InteractionFactory(tenant=tenant, team=team, contact=contact, status=InteractionStatus.OPEN)
    _closed(tenant, team, contact=ContactFactory(tenant=tenant, name="Done Already", team=team))
    body = client_for(admin_member).get("/interactions/open/").content.decode()
    assert "Still Talking" in body and "Done Already" not in body


# --- Viewer -----------------------------------------------------------------------------------------


def test_viewer_renders_bubbles_toolbar_and_escapes_text(client_for, tenant, team, admin_member):
    closed = _closed(tenant, team, message_count=3)
    interaction = closed.interaction
    now = timezone.now()
    InteractionMessageFactory(
        tenant=tenant,
        interaction=interaction,
        direction="inbound",
        text="<img src=x onerror=alert(1)>",
        sent_at=now,
    )
    InteractionMessageFactory(
        tenant=tenant,
        interaction=interaction,
        direction="outbound",
        text="see https://example.test/x?a=1&b=2",
        sent_at=now + timedelta(seconds=1),
    )
    InteractionMessageFactory(
        tenant=tenant,
        interaction=interaction,
        kind=MessageKind.SYSTEM,
        direction="none",
        text="Transferred to Billing",
        sent_at=now + timedelta(seconds=2),
    )
    response = client_for(admin_member).get(f"/interactions/{closed.pk}/messages/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "<img src=x" not in body and "&lt;img src=x onerror=alert(1)&gt;" in body
    assert 'data-testid="message-inbound"' in body and 'data-testid="message-outbound"' in body
    assert 'data-testid="system-event"' in body
    assert 'data-testid="viewer-count">3<' in body
    assert closed.queue.name in body and "SMS" in body


def test_viewer_as_htmx_is_a_modal_partial(client_for, tenant, team, admin_member):
    closed = _closed(tenant, team)
    response = client_for(admin_member).get(f"/interactions/{closed.pk}/messages/", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "data-cc-modal" in body and "<html" not in body


def test_viewer_of_a_long_conversation_takes_constant_queries(
    client_for, tenant, team, admin_member, django_assert_max_num_queries
):
    closed = _closed(tenant, team)
    InteractionMessageFactory.create_batch(300, tenant=tenant, interaction=closed.interaction)
    client = client_for(admin_member)
    client.get(f"/interactions/{closed.pk}/messages/")
    # 6, plus the queue, contact and interaction fetched by tenant rather than joined by key alone
    # (TenantQuerySet.with_related): constant however long the conversation.
    with django_assert_max_num_queries(9 + REQUEST_TRANSACTION_QUERIES):
        response = client.get(f"/interactions/{closed.pk}/messages/")
    assert response.content.decode().count("cc-msg ") == 300


# --- Live chats -------------------------------------------------------------------------------------


def test_live_chats_list_open_webchats_of_the_agents_teams(
    client_for, tenant, team, other_team, agent_member
):
    mine_queue = QueueFactory(tenant=tenant, channel=Channel.WEBCHAT, team=team)
    other_queue = QueueFactory(tenant=tenant, channel=Channel.WEBCHAT, team=other_team)
    InteractionFactory(
        tenant=tenant, queue=mine_queue, team=team, contact=ContactFactory(tenant=tenant, name="Mine Visitor")
    )
    InteractionFactory(
        tenant=tenant,
        queue=other_queue,
        team=other_team,
        contact=ContactFactory(tenant=tenant, name="Hidden Visitor"),
    )
    body = client_for(agent_member).get("/live-chats/").content.decode()
    assert "Mine Visitor" in body and "Hidden Visitor" not in body


def test_agent_replies_and_ends_a_chat(client_for, tenant, team, agent_member):
    queue = QueueFactory(tenant=tenant, channel=Channel.WEBCHAT, team=team)
    chat = InteractionFactory(
        tenant=tenant, queue=queue, team=team, contact=ContactFactory(tenant=tenant, team=team)
    )
    client = client_for(agent_member)
    # when the agent replies (htmx) and ends the chat
    reply = client.post(
        f"/live-chats/{chat.pk}/reply/", {"text": "Hello <b>there</b>"}, HTTP_HX_REQUEST="true"
    )
    assert reply.status_code == 200 and "Hello &lt;b&gt;there&lt;/b&gt;" in reply.content.decode()
    empty = client.post(f"/live-chats/{chat.pk}/reply/", {"text": "  "}, HTTP_HX_REQUEST="true")
    assert empty.status_code == 400
    assert client.post(f"/live-chats/{chat.pk}/end/").status_code == 302
    # then the chat is closed with the agent as its agent, and it is in the grid
    chat.refresh_from_db()
    assert chat.status == InteractionStatus.CLOSED and chat.agent == agent_member.user
    assert chat.closed.message_count == 1
    assert chat.closed.pk in [r.pk for r in client.get("/interactions/").context["page"].rows]


# --- Isolation matrix -------------------------------------------------------------------------------

ID_URLS = {
    "contactcenter:messages": ("GET", "/interactions/{pk}/messages/", "closed"),
    "contactcenter:live-chat": ("GET", "/live-chats/{pk}/", "chat"),
    "contactcenter:live-chat-messages": ("GET", "/live-chats/{pk}/messages/", "chat"),
    "contactcenter:live-chat-reply": ("POST", "/live-chats/{pk}/reply/", "chat"),
    "contactcenter:live-chat-end": ("POST", "/live-chats/{pk}/end/", "chat"),
    "contactcenter:ticket-detail": ("GET", "/tickets/{pk}/", "ticket"),
    "contactcenter:ticket-status": ("POST", "/tickets/{pk}/status/", "ticket"),
}


def test_every_contactcenter_url_with_an_id_is_in_the_matrix():
    resolver = get_resolver()
    names = set()
    for pattern in resolver.url_patterns:
        if getattr(pattern, "namespace", None) == "contactcenter":
            for sub in pattern.url_patterns:
                if "pk" in str(sub.pattern):
                    names.add(f"contactcenter:{sub.name}")
    assert names == set(ID_URLS)


def _objects(tenant, team):
    webchat = QueueFactory(tenant=tenant, channel=Channel.WEBCHAT, team=team)
    chat = InteractionFactory(tenant=tenant, queue=webchat, team=team, contact=ContactFactory(tenant=tenant))
    return {
        "closed": _closed(tenant, team),
        "chat": chat,
        "ticket": TicketFactory(tenant=tenant, team=team),
    }


@pytest.mark.parametrize("name", sorted(ID_URLS))
@pytest.mark.parametrize("role", ["admin", "manager", "agent"])
def test_isolation_matrix(name, role, client_for, tenant, team, other_tenant, make_member):
    """Another tenant's object, another team's object and a missing id answer the same 404 and stay
    untouched (Zulip/Sentry/GitLab-style matrix; cf. Prospero CVE-2026-19539, WhaTicket CVE-2026-111709)."""
    method, template, kind = ID_URLS[name]
    viewer_team = TeamFactory(tenant=tenant, name="Viewers")
    member = make_member(tenant, role, teams=[viewer_team])
    foreign = _objects(other_tenant, TeamFactory(tenant=other_tenant))[kind]
    other_team_obj = _objects(tenant, team)[kind]
    client = client_for(member)
    data = {"text": "hi", "status": "closed", "version": 0}

    def fetch(pk):
        url = template.format(pk=pk)
        return client.get(url) if method == "GET" else client.post(url, data)

    missing = fetch(999_999_999)
    assert missing.status_code == 404
    targets = [foreign] if role == "admin" else [foreign, other_team_obj]
    for obj in targets:
        response = fetch(obj.pk)
        assert response.status_code == 404
        assert response.content == missing.content
    # nothing was written to the objects
    if kind == "chat":
        for obj in targets:
            obj.refresh_from_db()
            assert obj.status == InteractionStatus.OPEN
            assert not obj.messages.exists()
    if kind == "ticket":
        assert not Ticket.objects.filter(status="closed").exists()


def test_ticket_create_with_a_foreign_or_hidden_context_id_is_404(
    client_for, tenant, other_tenant, other_team, agent_member
):
    foreign_contact = ContactFactory(tenant=other_tenant)
    hidden_contact = ContactFactory(tenant=tenant, team=other_team)
    foreign_interaction = InteractionFactory(tenant=other_tenant)
    client = client_for(agent_member)
    assert client.get(f"/tickets/new/?contact={foreign_contact.pk}").status_code == 404
    assert client.get(f"/tickets/new/?contact={hidden_contact.pk}").status_code == 404
    assert client.get(f"/tickets/new/?interaction={foreign_interaction.pk}").status_code == 404


def test_closed_interaction_from_a_chat_is_in_the_contacts_feed_once(tenant, team, admin_member):
    from activities.models import FeedEntry

    queue = QueueFactory(tenant=tenant, channel=Channel.WEBCHAT, team=team)
    widget = services.widget_config_create(tenant=tenant, queue=queue, allowed_origins=[])
    started = services.widget_chat_start(widget=widget, name="Tim", email="tim@example.test", text="hello")
    services.chat_end(interaction=started.chat.interaction, by="visitor")
    services.chat_end(interaction=started.chat.interaction, by="agent", actor=admin_member.user)
    contact = started.chat.interaction.contact
    entries = FeedEntry.objects.for_tenant(tenant).filter(contact=contact)
    assert entries.count() == 1
    assert entries.get().type == "chat" and entries.get().first_message == "hello"
