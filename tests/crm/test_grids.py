"""Contacts, leads and accounts grids: search, filters narrowed to the tenant, sorting, paging, team
scoping and isolation."""

import re

import pytest
from django.urls import reverse

from crm.models import ContactStatus, LeadStatus, Role
from tests.factories import AccountFactory, ContactFactory, LeadFactory, TeamFactory

pytestmark = pytest.mark.django_db


def _pks(response) -> list[int]:
    return [int(x) for x in re.findall(r'data-testid="grid-row" data-pk="(\d+)"', response.content.decode())]


def test_contact_search_by_name_email_and_phone(tenant, team, admin_member, client_for):
    ada = ContactFactory(
        tenant=tenant, name="Ada Lovelace", emails=["ada@engine.test"], phones=["+441234567"]
    )
    bob = ContactFactory(tenant=tenant, name="Bob Stone", emails=["bob@x.test", "ceo@bobco.test"])
    ContactFactory(tenant=tenant, name="Cy Other")
    client = client_for(admin_member)
    url = reverse("crm:contact-list")

    assert _pks(client.get(url, {"q": "lovel"})) == [ada.pk]
    assert _pks(client.get(url, {"q": "CEO@BobCo.test"})) == [bob.pk]
    assert _pks(client.get(url, {"q": "+44 1234 567"})) == [ada.pk]
    assert _pks(client.get(url, {"q": "100%_"})) == []


def test_lead_search_by_name_email_company_and_account_by_domain(tenant, admin_member, client_for):
    lead = LeadFactory(tenant=tenant, name="Lea", company="Globex Corp", email="lea@globex.test")
    LeadFactory(tenant=tenant, name="Other", company="Initech")
    account = AccountFactory(tenant=tenant, name="Umbrella", domain="umbrella.example")
    AccountFactory(tenant=tenant, name="Hooli", domain="hooli.example")
    client = client_for(admin_member)

    assert _pks(client.get(reverse("crm:lead-list"), {"q": "globex"})) == [lead.pk]
    assert _pks(client.get(reverse("crm:lead-list"), {"q": "lea@glo"})) == [lead.pk]
    assert _pks(client.get(reverse("crm:account-list"), {"q": "umbrella.ex"})) == [account.pk]


def test_filters_by_owner_team_status_account(tenant, team, other_team, admin_member, client_for):
    account = AccountFactory(tenant=tenant)
    match = ContactFactory(
        tenant=tenant, team=team, owner=admin_member.user, account=account, status=ContactStatus.CUSTOMER
    )
    ContactFactory(tenant=tenant, team=other_team, owner=admin_member.user, account=account)
    ContactFactory(tenant=tenant, team=team, status=ContactStatus.CUSTOMER)
    client = client_for(admin_member)

    response = client.get(
        reverse("crm:contact-list"),
        {"owner": admin_member.user.pk, "team": team.pk, "status": "customer", "account": account.pk},
    )

    assert response.status_code == 200
    assert _pks(response) == [match.pk]


def test_lead_status_filter(tenant, admin_member, client_for):
    new = LeadFactory(tenant=tenant, status=LeadStatus.NEW)
    LeadFactory(tenant=tenant, status=LeadStatus.QUALIFIED)
    assert _pks(client_for(admin_member).get(reverse("crm:lead-list"), {"status": "new"})) == [new.pk]


def test_filter_choices_never_offer_another_tenants_or_teams_rows(
    tenant, other_tenant, team, other_team, agent_member, client_for
):
    # given another tenant's team, account and user, and a team of the same tenant the agent is not in
    foreign_team = TeamFactory(tenant=other_tenant, name="Foreign team")
    foreign_account = AccountFactory(tenant=other_tenant, name="Foreign account")
    ContactFactory(tenant=tenant, team=team)
    client = client_for(agent_member)

    # when the agent opens the grid and tries foreign ids in the filters
    page = client.get(reverse("crm:contact-list"))
    forced = client.get(reverse("crm:contact-list"), {"team": foreign_team.pk, "account": foreign_account.pk})
    other = client.get(reverse("crm:contact-list"), {"team": other_team.pk})

    # then none is offered, and a forced one gets an error next to the field (no foreign data)
    html = page.content.decode()
    assert "Foreign team" not in html and "Foreign account" not in html and other_team.name not in html
    assert team.name in html
    forced_html = forced.content.decode()
    assert "Select a valid choice" in forced_html and "invalid-feedback" in forced_html
    assert "Foreign account" not in forced_html
    assert "Select a valid choice" in other.content.decode()


def test_grid_is_team_scoped(tenant, team, other_team, agent_member, client_for):
    ours = ContactFactory(tenant=tenant, team=team, name="A ours")
    owned = ContactFactory(tenant=tenant, team=other_team, owner=agent_member.user, name="B owned")
    ContactFactory(tenant=tenant, team=other_team, name="C theirs")
    ContactFactory(tenant=tenant, team=None, name="D nobody")
    ContactFactory(name="E foreign")

    assert _pks(client_for(agent_member).get(reverse("crm:contact-list"))) == [ours.pk, owned.pk]


def test_sorting_and_paging(tenant, admin_member, client_for):
    contacts = [ContactFactory(tenant=tenant, name=f"Person {i:03d}") for i in range(55)]
    client = client_for(admin_member)
    url = reverse("crm:contact-list")

    first = client.get(url)
    second = client.get(url, {"page": 2})
    desc = client.get(url, {"sort": "-name"})

    by_name = [c.pk for c in contacts]
    assert _pks(first) == by_name[:50]
    assert _pks(second) == by_name[50:]
    assert first.context["next_url"] and not second.context["next_url"]
    assert _pks(desc)[:3] == by_name[::-1][:3]


def test_bad_page_number_falls_back_to_the_first_page(tenant, admin_member, client_for):
    contact = ContactFactory(tenant=tenant)
    response = client_for(admin_member).get(reverse("crm:contact-list"), {"page": "abc"})
    assert response.status_code == 200
    assert _pks(response) == [contact.pk]


def test_htmx_request_gets_the_grid_partial(tenant, admin_member, client_for):
    ContactFactory(tenant=tenant)
    client = client_for(admin_member)

    partial = client.get(reverse("crm:contact-list"), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="grid")
    history = client.get(
        reverse("crm:contact-list"),
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="grid",
        HTTP_HX_HISTORY_RESTORE_REQUEST="true",
    )

    assert "<html" not in partial.content.decode() and 'id="grid"' in partial.content.decode()
    assert "<html" in history.content.decode()
    assert "HX-Request" in partial["Vary"]


def test_grids_require_login(client):
    for name in ("crm:contact-list", "crm:lead-list", "crm:account-list"):
        assert client.get(reverse(name)).status_code == 302


@pytest.mark.parametrize("name", ["crm:contact-list", "crm:lead-list", "crm:account-list"])
def test_grid_never_lists_another_tenants_rows(name, tenant, other_tenant, make_member, client_for):
    member = make_member(tenant, Role.ADMIN)
    AccountFactory(tenant=other_tenant, name="Zed foreign")
    ContactFactory(tenant=other_tenant, name="Zed foreign")
    LeadFactory(tenant=other_tenant, name="Zed foreign")

    response = client_for(member).get(reverse(name))

    assert response.status_code == 200
    assert "Zed foreign" not in response.content.decode()
