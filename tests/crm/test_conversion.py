"""Lead conversion: a contact (new or linked by email), optionally an account, the lead marked converted,
and one lead_conversion activity on both the contact and the lead, exactly once.

Guards against fatfreecrm #224 / SuiteCRM #10791 (lead history lost or duplicated on conversion)."""

import re
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import close_old_connections, connection
from django.urls import reverse

from activities.models import Activity, ActivityType, FeedEntry
from crm import services
from crm.models import Account, Contact, Lead, LeadStatus, Role
from tests.factories import AccountFactory, ActivityFactory, ContactFactory, LeadFactory, MembershipFactory


def test_convert_creates_contact_and_logs_one_activity_on_both(tenant, team, agent_member):
    # given a lead of the agent's team with a note in its history
    lead = LeadFactory(tenant=tenant, team=team, email="Ada@Example.test", phone="+1 (555) 010", name="Ada")
    ActivityFactory(tenant=tenant, team=team, lead=lead, summary="first call")
    # when
    result = services.lead_convert(tenant=tenant, actor=agent_member.user, lead=lead)
    # then the contact carries the lead's data and the lead is marked converted
    contact = result.contact
    assert (contact.name, contact.emails, contact.phones, contact.team) == (
        "Ada",
        ["ada@example.test"],
        ["+1555010"],
        team,
    )
    lead.refresh_from_db()
    assert lead.status == LeadStatus.CONVERTED
    assert lead.converted_contact == contact
    assert lead.converted_by == agent_member.user
    assert lead.converted_at is not None
    # and exactly one lead_conversion activity, carrying both the contact and the lead
    conversions = Activity.objects.for_tenant(tenant).filter(type=ActivityType.LEAD_CONVERSION)
    assert conversions.count() == 1
    activity = conversions.get()
    assert (activity.contact, activity.lead, activity.user, activity.team) == (
        contact,
        lead,
        agent_member.user,
        team,
    )
    # it is on the contact's rows and on the lead's rows of the feed
    feed = FeedEntry.objects.for_tenant(tenant)
    assert feed.filter(contact=contact, type=ActivityType.LEAD_CONVERSION).count() == 1
    assert feed.filter(lead=lead, type=ActivityType.LEAD_CONVERSION).count() == 1


def test_convert_links_existing_contact_by_email_instead_of_duplicating(tenant, team, agent_member):
    # given a contact of the tenant with the lead's address (and one in another tenant that must be ignored)
    existing = ContactFactory(tenant=tenant, team=team, emails=["bob@example.test"])
    lead = LeadFactory(tenant=tenant, team=team, email="BOB@example.test")
    contacts_before = Contact.objects.for_tenant(tenant).count()
    # when
    result = services.lead_convert(tenant=tenant, actor=agent_member.user, lead=lead)
    # then
    assert result.contact == existing
    assert result.linked_existing_contact
    assert Contact.objects.for_tenant(tenant).count() == contacts_before


def test_convert_ignores_contacts_of_other_tenants(tenant, other_tenant, team, agent_member):
    # given the lead's address exists only in another tenant
    foreign = ContactFactory(tenant=other_tenant, emails=["carol@example.test"])
    lead = LeadFactory(tenant=tenant, team=team, email="carol@example.test")
    # when
    result = services.lead_convert(tenant=tenant, actor=agent_member.user, lead=lead)
    # then a new contact is created in the lead's tenant
    assert result.contact != foreign
    assert result.contact.tenant == tenant
    assert not result.linked_existing_contact


def test_convert_with_new_account(tenant, team, agent_member):
    lead = LeadFactory(tenant=tenant, team=team)
    result = services.lead_convert(
        tenant=tenant, actor=agent_member.user, lead=lead, create_account_name="Acme Widgets"
    )
    assert result.account.name == "Acme Widgets"
    assert result.account.tenant == tenant
    assert result.contact.account == result.account
    assert result.activity.account == result.account
    lead.refresh_from_db()
    assert lead.converted_account == result.account


def test_convert_with_foreign_account_is_rejected_and_nothing_written(
    tenant, other_tenant, team, agent_member
):
    lead = LeadFactory(tenant=tenant, team=team)
    foreign_account = AccountFactory(tenant=other_tenant)
    with pytest.raises(ValidationError) as exc:
        services.lead_convert(tenant=tenant, actor=agent_member.user, lead=lead, account=foreign_account)
    assert "account" in exc.value.message_dict
    lead.refresh_from_db()
    assert lead.converted_at is None
    assert not Activity.objects.for_tenant(tenant).filter(type=ActivityType.LEAD_CONVERSION).exists()


def test_converting_twice_is_a_clear_error(tenant, team, agent_member):
    lead = LeadFactory(tenant=tenant, team=team)
    services.lead_convert(tenant=tenant, actor=agent_member.user, lead=lead)
    with pytest.raises(services.LeadAlreadyConverted) as exc:
        services.lead_convert(tenant=tenant, actor=agent_member.user, lead=lead)
    assert "already converted" in str(exc.value.message_dict["lead"])
    assert Activity.objects.for_tenant(tenant).filter(type=ActivityType.LEAD_CONVERSION).count() == 1
    assert Contact.objects.for_tenant(tenant).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_double_convert_converts_once():
    """Two requests converting the same lead at once: the row lock lets one win, the other gets the error."""
    from tests.factories import MembershipFactory, TeamFactory, TenantFactory, UserFactory

    tenant = TenantFactory()
    team = TeamFactory(tenant=tenant)
    user = UserFactory()
    MembershipFactory(tenant=tenant, user=user, role=Role.AGENT, teams=[team])
    lead = LeadFactory(tenant=tenant, team=team)
    barrier = threading.Barrier(2)
    outcomes = []

    def convert():
        try:
            barrier.wait()
            services.lead_convert(tenant=tenant, actor=user, lead=Lead.objects.get(pk=lead.pk))
            outcomes.append("ok")
        except services.LeadAlreadyConverted:
            outcomes.append("already")
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=convert) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["already", "ok"]
    assert Activity.objects.for_tenant(tenant).filter(type=ActivityType.LEAD_CONVERSION).count() == 1
    assert Contact.objects.for_tenant(tenant).count() == 1


def test_convert_view_converts_and_redirects(tenant, team, agent_member, client_for):
    lead = LeadFactory(tenant=tenant, team=team)
    account = AccountFactory(tenant=tenant, team=team)
    client = client_for(agent_member)
    response = client.post(reverse("crm:lead-convert", args=[lead.pk]), {"account": account.pk})
    assert response.status_code == 302
    lead.refresh_from_db()
    assert lead.converted_contact.account == account
    # converting again through the page shows the clear error, nothing more is written
    response = client.post(reverse("crm:lead-convert", args=[lead.pk]), {})
    assert response.status_code == 422
    assert "already converted" in response.content.decode()
    assert Activity.objects.for_tenant(tenant).filter(type=ActivityType.LEAD_CONVERSION).count() == 1


def test_convert_view_rejects_foreign_account_choice(tenant, other_tenant, team, agent_member, client_for):
    lead = LeadFactory(tenant=tenant, team=team)
    foreign_account = AccountFactory(tenant=other_tenant)
    response = client_for(agent_member).post(
        reverse("crm:lead-convert", args=[lead.pk]), {"account": foreign_account.pk}
    )
    assert response.status_code == 422
    assert "Select a valid choice" in response.content.decode()
    lead.refresh_from_db()
    assert lead.converted_at is None


def test_convert_view_creates_account_by_name(tenant, team, manager_member, client_for):
    lead = LeadFactory(tenant=tenant, team=team)
    response = client_for(manager_member).post(
        reverse("crm:lead-convert", args=[lead.pk]), {"create_account_name": "New Co"}
    )
    assert response.status_code == 302
    assert Account.objects.for_tenant(tenant).filter(name="New Co").count() == 1


@pytest.mark.parametrize("method", ["get", "post"])
def test_convert_view_foreign_or_other_team_lead_is_404(
    method, tenant, other_tenant, team, other_team, agent_member, client_for
):
    foreign = LeadFactory(tenant=other_tenant)
    other_teams = LeadFactory(tenant=tenant, team=other_team)
    client = client_for(agent_member)
    missing = getattr(client, method)(reverse("crm:lead-convert", args=[999999]))
    for lead in (foreign, other_teams):
        response = getattr(client, method)(reverse("crm:lead-convert", args=[lead.pk]))
        assert response.status_code == 404
        assert response.content == missing.content
        lead.refresh_from_db()
        assert lead.converted_at is None


def test_admin_action_converts_lead(tenant, team, admin_member, client):
    admin_member.user.is_staff = True
    admin_member.user.save()
    lead = LeadFactory(tenant=tenant, team=team)
    client.force_login(admin_member.user)
    response = client.post(
        reverse("admin:crm_lead_changelist"),
        {"action": "convert_leads", "_selected_action": [lead.pk]},
    )
    assert response.status_code == 302
    lead.refresh_from_db()
    assert lead.converted_at is not None
    assert (
        Activity.objects.for_tenant(tenant).filter(type=ActivityType.LEAD_CONVERSION, lead=lead).count() == 1
    )


def test_a_contact_outside_the_converters_teams_is_linked_but_not_named_by_the_conversion(
    tenant, team, other_team, agent_member, client_for
):
    """Converting links a lead to the tenant's existing contact with its email (no duplicate), even one
    in another team; the conversion's own outputs (message, redirect, the lead's "converted to" line and
    badge, the convert form) do not name that contact or link to it for an agent who cannot see it.
    (The conversion activity on the lead's timeline still names it, like any activity row names its
    related entities: see README, Known gaps.)"""
    hidden = ContactFactory(
        tenant=tenant, team=other_team, name="Hidden Colleague Contact", emails=["x@ex.test"]
    )
    lead = LeadFactory(tenant=tenant, team=team, email="x@ex.test")
    client = client_for(agent_member)
    response = client.post(reverse("crm:lead-convert", args=[lead.pk]), {})
    lead.refresh_from_db()
    assert lead.converted_contact_id == hidden.pk  # linked, not duplicated
    assert Contact.objects.filter(tenant=tenant, emails__contains=["x@ex.test"]).count() == 1
    assert response.url == reverse("crm:lead-detail", args=[lead.pk])  # not the hidden contact's page
    detail = client.get(response.url).content.decode()
    message = re.search(r'<div[^>]*class="[^"]*alert[^"]*"[^>]*>(.*?)</div>', detail, re.S).group(1)
    assert "a contact outside your teams" in message and "Hidden Colleague Contact" not in message
    converted = re.search(r'data-testid="converted-contact"[^>]*>(.*?)</', detail, re.S).group(1)
    badge = re.search(r'data-testid="lead-converted"[^>]*>(.*?)</span>', detail, re.S).group(1)
    for text in (converted, badge):
        assert "outside your teams" in text and "Hidden" not in text and f"/contacts/{hidden.pk}/" not in text
    form = client.get(reverse("crm:lead-convert", args=[lead.pk])).content.decode()
    assert "Hidden Colleague Contact" not in form and "a contact outside your teams" in form
    # Someone who may see the contact still gets its name and link.
    admin = client_for(MembershipFactory(tenant=tenant, role=Role.ADMIN, teams=[team]).user)
    page = admin.get(reverse("crm:lead-detail", args=[lead.pk])).content.decode()
    assert f'href="/contacts/{hidden.pk}/" data-testid="converted-contact">Hidden Colleague Contact' in page
