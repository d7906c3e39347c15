"""Per-entity timelines: merge order and keyset paging, every entry kind, filters, real-time polling,
lead-history carry-over, account roll-up, visibility and isolation."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from activities import timeline
from activities.models import ActivityType, Direction
from activities.services import activity_log
from contactcenter.models import Channel, TicketStatus
from crm.models import Role
from tests.conftest import REQUEST_TRANSACTION_QUERIES
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ClosedInteractionFactory,
    ContactFactory,
    IncomingEmailFactory,
    LeadFactory,
    QueueFactory,
    TicketFactory,
)

pytestmark = pytest.mark.django_db
T0 = timezone.now().replace(microsecond=0) - timedelta(days=1)


def _ids(response):
    """Feed ids of the entries rendered, in page order."""
    import re

    return [
        int(x) for x in re.findall(r'data-testid="timeline-entry" data-id="(\d+)"', response.content.decode())
    ]


def _merged_history(tenant, team, contact, n_activities=7, n_interactions=6):
    rows = []
    for i in range(n_activities):
        rows.append(
            ActivityFactory(
                tenant=tenant, team=team, contact=contact, occurred_at=T0 + timedelta(minutes=2 * i)
            )
        )
    for i in range(n_interactions):
        rows.append(
            ClosedInteractionFactory(
                tenant=tenant, team=team, contact=contact, started_at=T0 + timedelta(minutes=2 * i + 1)
            )
        )
    return sorted(rows, key=lambda r: getattr(r, "occurred_at", None) or r.started_at, reverse=True)


def test_timeline_merges_activities_and_interactions_newest_first_10_per_page(
    tenant, team, admin_member, client_for
):
    # given 7 activities and 6 closed interactions of one contact, interleaved in time
    contact = ContactFactory(tenant=tenant, team=team)
    expected = [r.pk for r in _merged_history(tenant, team, contact)]
    client = client_for(admin_member)
    url = reverse("crm:contact-timeline", args=[contact.pk])

    # when the first page and then "load older" are fetched
    first = client.get(url)
    older_url = first.context["older_url"]
    second = client.get(older_url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="timeline-older")

    # then page 1 is the 10 newest of both sources, page 2 the remaining 3, no overlap
    assert first.status_code == 200
    assert _ids(first) == expected[:10]
    assert _ids(second) == expected[10:]
    assert second.context["older_url"] is None
    assert "Load older" not in second.content.decode()


def test_keyset_breaks_timestamp_ties_by_id_without_skipping_or_repeating(tenant, team, admin_member):
    # given 25 rows sharing one timestamp
    contact = ContactFactory(tenant=tenant, team=team)
    rows = [ActivityFactory(tenant=tenant, team=team, contact=contact, occurred_at=T0) for _ in range(25)]
    filters = timeline.TimelineFilters()

    # when paging through all of them
    seen, before = [], None
    for _ in range(5):
        page = timeline.timeline_page(
            membership=admin_member, kind="contact", pk=contact.pk, filters=filters, before=before
        )
        seen += [r.entry.id for r in page.rows]
        if not page.older_cursor:
            break
        before = timeline.decode_cursor(page.older_cursor)

    # then every row appears exactly once, by id descending
    assert seen == sorted((r.pk for r in rows), reverse=True)


def test_load_older_without_javascript_is_a_full_page(tenant, team, admin_member, client_for):
    contact = ContactFactory(tenant=tenant, team=team)
    expected = [r.pk for r in _merged_history(tenant, team, contact)]
    client = client_for(admin_member)
    first = client.get(reverse("crm:contact-timeline", args=[contact.pk]))

    deep = client.get(first.context["older_url"])

    assert deep.status_code == 200
    assert "<html" in deep.content.decode()
    assert _ids(deep) == expected[10:]
    assert "Back to the newest" in deep.content.decode()


def test_bad_cursor_is_a_clear_400(tenant, team, admin_member, client_for):
    contact = ContactFactory(tenant=tenant, team=team)
    response = client_for(admin_member).get(
        reverse("crm:contact-timeline", args=[contact.pk]) + "?before=zzz"
    )
    assert response.status_code == 400
    assert b"Bad cursor" in response.content


def test_every_entry_kind_shows_its_context(tenant, team, admin_member, client_for):
    # given one of every kind of entry on a contact
    account = AccountFactory(tenant=tenant)
    contact = ContactFactory(tenant=tenant, team=team, account=account, name="Carla Contact")
    email = IncomingEmailFactory(
        tenant=tenant,
        subject="Quarterly pricing",
        sender="buyer@client.test",
        snippet="Could you send the sheet",
    )
    activity_log(
        tenant=tenant,
        type=ActivityType.EMAIL,
        direction=Direction.INBOUND,
        team=team,
        contact=contact,
        summary="Quarterly pricing",
        source_object=email,
        occurred_at=T0,
    )
    queue = QueueFactory(tenant=tenant, name="Billing chat", channel=Channel.WEBCHAT)
    ClosedInteractionFactory(
        tenant=tenant,
        team=team,
        contact=contact,
        queue=queue,
        channel=Channel.WEBCHAT,
        first_message="Hello, my invoice is wrong",
        message_count=7,
        started_at=T0 + timedelta(minutes=1),
    )
    logged = ClosedInteractionFactory(
        tenant=tenant,
        team=team,
        contact=contact,
        queue=QueueFactory(tenant=tenant, name="Phones", channel=Channel.VOICE),
        channel=Channel.VOICE,
        first_message="Caller asked about delivery",
        message_count=3,
        activity_logged=True,
        started_at=T0 + timedelta(minutes=2),
    )
    activity_log(
        tenant=tenant,
        type=ActivityType.CALL,
        source="interaction",
        team=team,
        contact=contact,
        summary="Delivery call",
        source_object=logged,
        occurred_at=T0 + timedelta(minutes=2),
    )
    ticket = TicketFactory(
        tenant=tenant, subject="Broken hinge", status=TicketStatus.PENDING, contact=contact
    )
    activity_log(
        tenant=tenant,
        type=ActivityType.TICKET,
        team=team,
        contact=contact,
        summary="Ticket opened",
        source_object=ticket,
        occurred_at=T0 + timedelta(minutes=3),
    )
    lead = LeadFactory(tenant=tenant, team=team, name="Larry Lead")
    activity_log(
        tenant=tenant,
        type=ActivityType.LEAD_CONVERSION,
        team=team,
        contact=contact,
        lead=lead,
        summary="Lead converted",
        occurred_at=T0 + timedelta(minutes=4),
    )

    # when the admin opens the timeline
    response = client_for(admin_member).get(reverse("crm:contact-timeline", args=[contact.pk]))
    html = response.content.decode()

    # then each entry carries its type-specific context
    assert response.status_code == 200
    assert len(_ids(response)) == 5  # the logged interaction is represented by its activity only
    assert 'data-testid="email-context"' in html
    assert "Quarterly pricing" in html and "buyer@client.test" in html and "Could you send the sheet" in html
    assert "Billing chat" in html and "Hello, my invoice is wrong" in html and "7 messages" in html
    assert "Phones" in html and "Caller asked about delivery" in html and "3 messages" in html
    assert "Broken hinge" in html and "Pending" in html
    assert reverse("crm:lead-detail", args=[lead.pk]) in html
    assert reverse("crm:contact-detail", args=[contact.pk]) in html
    for label in ("Email", "Chat", "Call", "Ticket", "Lead conversion"):
        assert f"<strong>{label}</strong>" in html


def test_redacted_email_shows_only_who_when_direction(tenant, team, agent_member, client_for):
    """Guards against twenty#15780 / espocrm#1008: teammates reading email content without permission."""
    contact = ContactFactory(tenant=tenant, team=team)
    email = IncomingEmailFactory(tenant=tenant, subject="Secret merger", snippet="Confidential numbers")
    activity_log(
        tenant=tenant,
        type=ActivityType.EMAIL,
        direction=Direction.INBOUND,
        team=team,
        contact=contact,
        summary="Secret merger",
        first_message="Confidential numbers",
        source_object=email,
        occurred_at=T0,
    )

    response = client_for(agent_member).get(reverse("crm:contact-timeline", args=[contact.pk]))
    html = response.content.decode()

    assert len(_ids(response)) == 1
    assert 'data-testid="redacted"' in html
    assert "Secret merger" not in html and "Confidential numbers" not in html
    assert "Inbound" in html


def test_type_filter_and_search_update_the_window_in_place(tenant, team, admin_member, client_for):
    contact = ContactFactory(tenant=tenant, team=team)
    call = ActivityFactory(
        tenant=tenant, team=team, contact=contact, type=ActivityType.CALL, summary="Renewal call"
    )
    note = ActivityFactory(
        tenant=tenant, team=team, contact=contact, type=ActivityType.NOTE, summary="Renewal memo"
    )
    chat = ClosedInteractionFactory(tenant=tenant, team=team, contact=contact, summary="Chat about shipping")
    url = reverse("crm:contact-timeline", args=[contact.pk])
    client = client_for(admin_member)
    hx = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "timeline-body"}

    by_type = client.get(url, {"type": "call"}, **hx)
    by_chat = client.get(url, {"type": "chat"}, **hx)
    by_word = client.get(url, {"q": "renewal"}, **hx)
    both = client.get(url, {"q": "renewal", "type": "note"}, **hx)
    nothing = client.get(url, {"q": "zebra"}, **hx)

    assert by_type.templates[0].name == "activities/timeline/_timeline.html"
    assert "<html" not in by_type.content.decode()
    assert _ids(by_type) == [call.pk]
    assert _ids(by_chat) == [chat.pk]
    assert set(_ids(by_word)) == {call.pk, note.pk}
    assert _ids(both) == [note.pk]
    assert _ids(nothing) == [] and "No activity matches." in nothing.content.decode()


def test_search_does_not_reveal_words_of_redacted_emails(tenant, team, agent_member):
    contact = ContactFactory(tenant=tenant, team=team)
    ActivityFactory(
        tenant=tenant, team=team, contact=contact, type=ActivityType.EMAIL, summary="acquisition plan"
    )
    filters = timeline.TimelineFilters(q="acquisition")

    page = timeline.timeline_page(membership=agent_member, kind="contact", pk=contact.pk, filters=filters)

    assert page.rows == []


def test_poll_returns_only_newer_rows_once(tenant, team, admin_member, client_for):
    # given an open timeline
    contact = ContactFactory(tenant=tenant, team=team)
    ActivityFactory(tenant=tenant, team=team, contact=contact, occurred_at=T0)
    client = client_for(admin_member)
    url = reverse("crm:contact-timeline", args=[contact.pk])
    poll_url = client.get(url).context["poll_url"]
    hx = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "timeline-poll"}

    # when nothing happened, then the poll swaps nothing
    assert client.get(poll_url, **hx).status_code == 204

    # when a new activity is logged, then the next poll returns it with a poller moved past it
    new, _ = activity_log(
        tenant=tenant, type=ActivityType.CALL, team=team, contact=contact, summary="Fresh call"
    )
    polled = client.get(poll_url, **hx)
    assert polled.status_code == 200
    assert _ids(polled) == [new.pk]
    next_poll = polled.context["poll_url"]
    assert 'id="timeline-poll"' in polled.content.decode()

    # and polling again from the new cursor shows nothing twice
    assert client.get(next_poll, **hx).status_code == 204


def test_poll_keeps_the_filters(tenant, team, admin_member, client_for):
    contact = ContactFactory(tenant=tenant, team=team)
    client = client_for(admin_member)
    url = reverse("crm:contact-timeline", args=[contact.pk])
    poll_url = client.get(url, {"type": "call"}).context["poll_url"]
    ActivityFactory(tenant=tenant, team=team, contact=contact, type=ActivityType.NOTE)

    response = client.get(poll_url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="timeline-poll")

    assert "type=call" in poll_url
    assert response.status_code == 204


def test_contact_shows_converted_lead_history_marked_and_lead_keeps_it(
    tenant, team, admin_member, client_for
):
    """Guards against fatfreecrm#224 / SuiteCRM#10791: lead history lost on conversion."""
    # given a lead with history, later converted into a contact
    lead = LeadFactory(tenant=tenant, team=team, name="Lena Lead")
    before, _ = activity_log(tenant=tenant, type=ActivityType.CALL, team=team, lead=lead, occurred_at=T0)
    contact = ContactFactory(tenant=tenant, team=team)
    lead.converted_contact = contact
    lead.converted_at = T0 + timedelta(hours=1)
    lead.status = "converted"
    lead.save()
    after, _ = activity_log(
        tenant=tenant, type=ActivityType.NOTE, team=team, contact=contact, occurred_at=T0 + timedelta(hours=2)
    )
    client = client_for(admin_member)

    # when both timelines are opened
    contact_page = client.get(reverse("crm:contact-timeline", args=[contact.pk]))
    lead_page = client.get(reverse("crm:lead-timeline", args=[lead.pk]))

    # then the contact shows both, the lead's row marked, and the lead still shows its own
    assert _ids(contact_page) == [after.pk, before.pk]
    marked = [r for r in contact_page.context["rows"] if r.from_lead_id]
    assert [r.entry.id for r in marked] == [before.pk]
    assert "from lead Lena Lead" in contact_page.content.decode()
    assert _ids(lead_page) == [before.pk]


def test_account_rolls_up_contacts_and_toggle_shows_own_only(tenant, team, admin_member, client_for):
    account = AccountFactory(tenant=tenant, team=team)
    contact = ContactFactory(tenant=tenant, team=team, account=account)
    via_contact, _ = activity_log(tenant=tenant, type=ActivityType.CALL, team=team, contact=contact)
    own, _ = activity_log(tenant=tenant, type=ActivityType.NOTE, team=team, account=account)
    elsewhere = ActivityFactory(tenant=tenant, team=team, contact=ContactFactory(tenant=tenant))
    client = client_for(admin_member)
    url = reverse("crm:account-timeline", args=[account.pk])

    rolled = client.get(url)
    own_only = client.get(url, {"scope": "own"})

    assert via_contact.account_id == account.pk
    assert set(_ids(rolled)) == {via_contact.pk, own.pk}
    assert _ids(own_only) == [own.pk]
    assert elsewhere.pk not in _ids(rolled)


def test_timeline_rows_follow_team_visibility(
    tenant, team, other_team, agent_member, manager_member, client_for
):
    # given a contact of the agent's team with rows of both teams, one of them the agent's own
    contact = ContactFactory(tenant=tenant, team=team)
    mine_team = ActivityFactory(tenant=tenant, team=team, contact=contact, occurred_at=T0)
    other = ActivityFactory(
        tenant=tenant, team=other_team, contact=contact, occurred_at=T0 + timedelta(minutes=1)
    )
    own = ActivityFactory(
        tenant=tenant,
        team=other_team,
        user=agent_member.user,
        contact=contact,
        occurred_at=T0 + timedelta(minutes=2),
    )
    url = reverse("crm:contact-timeline", args=[contact.pk])

    as_agent = client_for(agent_member).get(url)
    as_manager = client_for(manager_member).get(url)

    assert _ids(as_agent) == [own.pk, mine_team.pk]
    assert _ids(as_manager) == [mine_team.pk]
    assert other.pk not in _ids(as_agent)


@pytest.mark.parametrize("kind", ["contact", "lead", "account"])
def test_timeline_of_other_tenant_or_team_is_404_like_missing(
    kind, tenant, other_tenant, team, other_team, make_member, client_for
):
    factories = {"contact": ContactFactory, "lead": LeadFactory, "account": AccountFactory}
    agent = make_member(tenant, Role.AGENT, teams=[team])
    foreign = factories[kind](tenant=other_tenant)
    other_teams = factories[kind](tenant=tenant, team=other_team)
    client = client_for(agent)
    name = f"crm:{kind}-timeline"

    missing = client.get(reverse(name, args=[999_999_999]))
    responses = [client.get(reverse(name, args=[obj.pk])) for obj in (foreign, other_teams)]
    responses += [client.get(reverse(name, args=[obj.pk]), HTTP_HX_REQUEST="true") for obj in (foreign,)]

    assert missing.status_code == 404
    for response in responses:
        assert response.status_code == 404
        assert response.content == missing.content


def test_modal_partial_for_htmx_and_full_page_directly(tenant, team, admin_member, client_for):
    contact = ContactFactory(tenant=tenant, team=team)
    client = client_for(admin_member)
    url = reverse("crm:contact-timeline", args=[contact.pk])

    modal = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="modal-root")
    page = client.get(url)

    assert 'id="timeline-modal"' in modal.content.decode() and "<html" not in modal.content.decode()
    assert "<html" in page.content.decode() and 'id="timeline-body"' in page.content.decode()
    assert "HX-Request" in modal["Vary"] and "HX-Request" in page["Vary"]


def test_owned_entity_of_other_team_is_visible_to_its_owner(tenant, other_team, agent_member, client_for):
    contact = ContactFactory(tenant=tenant, team=other_team, owner=agent_member.user)
    response = client_for(agent_member).get(reverse("crm:contact-timeline", args=[contact.pk]))
    assert response.status_code == 200


def test_timeline_query_count_does_not_grow_with_the_page(
    tenant, team, admin_member, client_for, django_assert_num_queries
):
    """One query per kind of context for the whole page, never one per entry."""
    contact = ContactFactory(tenant=tenant, team=team)
    client = client_for(admin_member)
    url = reverse("crm:contact-timeline", args=[contact.pk])

    def add_each_kind():
        email = IncomingEmailFactory(tenant=tenant)
        activity_log(tenant=tenant, type=ActivityType.EMAIL, team=team, contact=contact, source_object=email)
        ClosedInteractionFactory(tenant=tenant, team=team, contact=contact)
        ticket = TicketFactory(tenant=tenant)
        activity_log(
            tenant=tenant, type=ActivityType.TICKET, team=team, contact=contact, source_object=ticket
        )

    add_each_kind()
    client.get(url)
    # session, user, memberships, the contact's team by tenant, converted leads, the page, names for the
    # page (presentation), then one query each for the emails, interactions and tickets of the page
    with django_assert_num_queries(11 + REQUEST_TRANSACTION_QUERIES) as small:
        client.get(url)
    for _ in range(3):
        add_each_kind()
    with django_assert_num_queries(len(small.captured_queries)):
        response = client.get(url)
    assert len(_ids(response)) == 10


def test_contact_with_converted_lead_pages_both_histories_in_order(tenant, team, admin_member):
    # given a contact with 8 rows of its own and 7 of the lead converted into it, interleaved in time
    contact = ContactFactory(tenant=tenant, team=team)
    lead = LeadFactory(tenant=tenant, team=team, converted_contact=contact)
    rows = [
        ActivityFactory(
            tenant=tenant,
            team=team,
            occurred_at=T0 + timedelta(minutes=i),
            **({"contact": contact} if i % 2 else {"lead": lead}),
        )
        for i in range(15)
    ]
    filters = timeline.TimelineFilters()

    # when paging
    first = timeline.timeline_page(membership=admin_member, kind="contact", pk=contact.pk, filters=filters)
    second = timeline.timeline_page(
        membership=admin_member,
        kind="contact",
        pk=contact.pk,
        filters=filters,
        before=timeline.decode_cursor(first.older_cursor),
    )

    # then both pages follow one time order over the two histories, with nothing repeated
    expected = [r.pk for r in reversed(rows)]
    assert [r.entry.id for r in first.rows] == expected[:10]
    assert [r.entry.id for r in second.rows] == expected[10:]
    assert second.older_cursor is None
    assert {r.entry.id for r in first.rows + second.rows if r.from_lead_id} == {r.pk for r in rows[::2]}
