"""Tickets: created from a contact or an interaction, status changes, each logged as a ticket activity."""

import pytest

from activities.models import Activity, ActivityType, FeedEntry
from contactcenter import services
from contactcenter.models import Ticket, TicketStatus
from tests.factories import ContactFactory, InteractionFactory, TeamFactory, TicketFactory

pytestmark = pytest.mark.django_db


def test_creating_a_ticket_from_a_contact_logs_a_ticket_activity(client_for, tenant, team, manager_member):
    # given a contact of the manager's team
    contact = ContactFactory(tenant=tenant, team=team)
    client = client_for(manager_member)
    assert client.get(f"/tickets/new/?contact={contact.pk}").status_code == 200
    # when the manager creates a ticket
    response = client.post(
        "/tickets/new/",
        {"subject": "Broken widget", "description": "It broke", "contact": contact.pk, "team": team.pk},
    )
    # then the ticket exists and the contact's timeline shows it with subject and status
    ticket = Ticket.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/tickets/{ticket.pk}/"
    assert ticket.contact == contact and ticket.created_by == manager_member.user
    activity = Activity.objects.get()
    assert activity.type == ActivityType.TICKET
    assert activity.source_object == ticket
    assert activity.dedup_key == f"ticket:{ticket.pk}:created"
    assert "Broken widget" in activity.summary and "opened" in activity.summary
    assert FeedEntry.objects.filter(contact=contact, type="ticket").count() == 1


def test_creating_a_ticket_from_an_interaction_takes_its_contact(client_for, tenant, team, admin_member):
    contact = ContactFactory(tenant=tenant, team=team)
    interaction = InteractionFactory(tenant=tenant, contact=contact, team=team)
    client = client_for(admin_member)
    page = client.get(f"/tickets/new/?interaction={interaction.pk}")
    assert page.status_code == 200 and contact.name in page.content.decode()
    client.post(
        "/tickets/new/", {"subject": "Follow up", "interaction": interaction.pk, "contact": contact.pk}
    )
    ticket = Ticket.objects.get()
    assert ticket.interaction == interaction and ticket.contact == contact


def test_each_status_change_logs_one_activity(client_for, tenant, team, manager_member):
    ticket = services.ticket_create(tenant=tenant, actor=manager_member.user, subject="Refund", team=team)
    client = client_for(manager_member)
    # when the status moves twice
    assert (
        client.post(f"/tickets/{ticket.pk}/status/", {"status": "pending", "version": 0}).status_code == 302
    )
    assert (
        client.post(f"/tickets/{ticket.pk}/status/", {"status": "resolved", "version": 1}).status_code == 302
    )
    # then three ticket activities: opened, open->pending, pending->resolved
    summaries = list(Activity.objects.order_by("id").values_list("summary", flat=True))
    assert len(summaries) == 3
    assert "open → pending" in summaries[1] and "pending → resolved" in summaries[2]
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.RESOLVED and ticket.status_version == 2


def test_a_double_submitted_status_change_is_logged_once(client_for, tenant, team, manager_member):
    ticket = services.ticket_create(tenant=tenant, actor=manager_member.user, subject="Refund", team=team)
    client = client_for(manager_member)
    client.post(f"/tickets/{ticket.pk}/status/", {"status": "closed", "version": 0})
    again = client.post(f"/tickets/{ticket.pk}/status/", {"status": "closed", "version": 0})
    assert again.status_code == 400
    assert "changed meanwhile" in again.content.decode()
    assert Activity.objects.count() == 2


def test_bad_status_is_an_error_next_to_the_field(client_for, tenant, team, manager_member):
    ticket = services.ticket_create(tenant=tenant, actor=manager_member.user, subject="Refund", team=team)
    client = client_for(manager_member)
    response = client.post(f"/tickets/{ticket.pk}/status/", {"status": "exploded", "version": 0})
    assert response.status_code == 400
    assert 'data-testid="status-error"' in response.content.decode()
    same = client.post(f"/tickets/{ticket.pk}/status/", {"status": "open", "version": 0})
    assert "already open" in same.content.decode()
    assert Activity.objects.count() == 1


def test_missing_subject_is_an_error_and_nothing_is_created(client_for, admin_member):
    response = client_for(admin_member).post("/tickets/new/", {"subject": ""})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert Ticket.objects.count() == 0 and Activity.objects.count() == 0


def test_foreign_ids_in_the_form_are_refused(client_for, tenant, other_tenant, admin_member):
    """Tenant-B ids in the body (cf. Sentry #104990, Chatwoot CVE-2026-115725) are form errors."""
    foreign_contact = ContactFactory(tenant=other_tenant)
    foreign_team = TeamFactory(tenant=other_tenant)
    foreign_interaction = InteractionFactory(tenant=other_tenant)
    response = client_for(admin_member).post(
        "/tickets/new/",
        {
            "subject": "Sneaky",
            "contact": foreign_contact.pk,
            "team": foreign_team.pk,
            "interaction": foreign_interaction.pk,
        },
    )
    body = response.content.decode()
    assert "That contact does not exist." in body and "That interaction does not exist." in body
    assert "Select a valid choice" in body
    assert Ticket.objects.count() == 0


def test_agent_cannot_pick_a_team_they_are_not_in(client_for, tenant, other_team, agent_member):
    response = client_for(agent_member).post("/tickets/new/", {"subject": "x", "team": other_team.pk})
    assert "Select a valid choice" in response.content.decode()
    assert Ticket.objects.count() == 0


def test_ticket_list_shows_only_visible_tickets(
    client_for, tenant, team, other_team, agent_member, other_tenant
):
    TicketFactory(tenant=tenant, team=team, subject="Mine to see")
    TicketFactory(tenant=tenant, team=other_team, subject="Other team")
    TicketFactory(tenant=other_tenant, subject="Other tenant")
    body = client_for(agent_member).get("/tickets/").content.decode()
    assert "Mine to see" in body and "Other team" not in body and "Other tenant" not in body


def test_ticket_subject_is_escaped(client_for, tenant, team, admin_member):
    ticket = TicketFactory(tenant=tenant, team=team, subject="<script>alert(1)</script>")
    body = client_for(admin_member).get(f"/tickets/{ticket.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;" in body
