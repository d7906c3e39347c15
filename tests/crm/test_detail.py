"""Contact, lead and account detail pages: tabs, the timeline inside, the issue-5 action placeholders,
and 404s for other tenants' and other teams' records."""

import pytest
from django.urls import reverse

from activities.services import activity_log
from crm.models import Role
from tests.factories import AccountFactory, ContactFactory, LeadFactory

pytestmark = pytest.mark.django_db


def test_contact_detail_activity_tab_is_the_timeline(tenant, team, admin_member, client_for):
    contact = ContactFactory(tenant=tenant, team=team, name="Dana Detail")
    entry, _ = activity_log(tenant=tenant, type="call", team=team, contact=contact, summary="Intro call")
    client = client_for(admin_member)

    activity = client.get(reverse("crm:contact-detail", args=[contact.pk]))
    details = client.get(reverse("crm:contact-detail", args=[contact.pk]), {"tab": "details"})

    html = activity.content.decode()
    assert activity.status_code == 200
    assert 'id="timeline-body"' in html and "Intro call" in html
    assert f'data-id="{entry.pk}"' in html
    assert "crm/partials/_contact_actions.html" in [t.name for t in activity.templates]
    assert 'data-testid="contact-details"' in details.content.decode()
    assert 'id="timeline-body"' not in details.content.decode()


def test_contact_details_tab_lists_the_leads_it_was_converted_from(tenant, team, admin_member, client_for):
    contact = ContactFactory(tenant=tenant, team=team)
    lead = LeadFactory(tenant=tenant, team=team, name="Origin Lead", converted_contact=contact)
    response = client_for(admin_member).get(
        reverse("crm:contact-detail", args=[contact.pk]), {"tab": "details"}
    )
    assert "Origin Lead" in response.content.decode()
    assert reverse("crm:lead-detail", args=[lead.pk]) in response.content.decode()


def test_lead_and_account_detail_pages_show_their_timelines(tenant, team, admin_member, client_for):
    account = AccountFactory(tenant=tenant, team=team, name="Initrode")
    contact = ContactFactory(tenant=tenant, team=team, account=account, name="Ian Contact")
    lead = LeadFactory(tenant=tenant, team=team, converted_contact=contact)
    activity_log(tenant=tenant, type="note", team=team, lead=lead, summary="Lead note")
    activity_log(tenant=tenant, type="call", team=team, contact=contact, summary="Account call")
    client = client_for(admin_member)

    lead_page = client.get(reverse("crm:lead-detail", args=[lead.pk]))
    account_page = client.get(reverse("crm:account-detail", args=[account.pk]))

    assert "Lead note" in lead_page.content.decode()
    assert "crm/partials/_lead_actions.html" in [t.name for t in lead_page.templates]
    assert reverse("crm:contact-detail", args=[contact.pk]) in lead_page.content.decode()
    assert "Account call" in account_page.content.decode() and "Ian Contact" in account_page.content.decode()


@pytest.mark.parametrize("kind", ["contact", "lead", "account"])
@pytest.mark.parametrize("role", [Role.ADMIN, Role.MANAGER, Role.AGENT])
def test_detail_of_other_tenant_or_team_is_404_like_missing(
    kind, role, tenant, other_tenant, team, other_team, make_member, client_for
):
    factory = {"contact": ContactFactory, "lead": LeadFactory, "account": AccountFactory}[kind]
    member = make_member(tenant, role, teams=[team])
    foreign = factory(tenant=other_tenant)
    other_teams = factory(tenant=tenant, team=other_team)
    own_team = factory(tenant=tenant, team=team)
    client = client_for(member)
    name = f"crm:{kind}-detail"

    missing = client.get(reverse(name, args=[999_999_999]))
    foreign_response = client.get(reverse(name, args=[foreign.pk]))
    other_team_response = client.get(reverse(name, args=[other_teams.pk]))

    assert missing.status_code == 404
    assert foreign_response.status_code == 404 and foreign_response.content == missing.content
    if role == Role.ADMIN:
        assert other_team_response.status_code == 200
    else:
        assert other_team_response.status_code == 404 and other_team_response.content == missing.content
    assert client.get(reverse(name, args=[own_team.pk])).status_code == 200


# --- Isolation matrix of the entity pages (issue 4) -------------------------------------------------

ENTITY_ID_URLS = {
    "crm:contact-detail": "contact",
    "crm:lead-detail": "lead",
    "crm:account-detail": "account",
    "crm:contact-timeline": "contact",
    "crm:lead-timeline": "lead",
    "crm:account-timeline": "account",
}
# Variants of the same URLs a browser asks for: modal, in-place filter, load older, real-time poll.
VARIANTS = [
    ({}, {}),
    ({}, {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "modal-root"}),
    ({"type": "call"}, {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "timeline-body"}),
    (
        {"before": "MjAyNi0wMS0wMVQwMDowMDowMCswMDowMHwx"},
        {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "timeline-older"},
    ),
    ({"after": "start"}, {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "timeline-poll"}),
]


def test_every_entity_page_with_an_id_is_in_the_matrix():
    from django.urls import get_resolver

    names = set()
    for pattern in get_resolver().url_patterns:
        if getattr(pattern, "namespace", None) == "crm":
            for sub in pattern.url_patterns:
                route = str(sub.pattern)
                entity_page = route.startswith(("contacts/", "leads/", "accounts/"))
                if "<int:pk>" in route and entity_page and sub.name.endswith(("-detail", "-timeline")):
                    names.add(f"crm:{sub.name}")
    assert names == set(ENTITY_ID_URLS)


@pytest.mark.parametrize("url_name", sorted(ENTITY_ID_URLS))
@pytest.mark.parametrize("role", [Role.ADMIN, Role.MANAGER, Role.AGENT])
def test_isolation_matrix(url_name, role, tenant, other_tenant, team, other_team, make_member, client_for):
    factory = {"contact": ContactFactory, "lead": LeadFactory, "account": AccountFactory}[
        ENTITY_ID_URLS[url_name]
    ]
    member = make_member(tenant, role, teams=[team])
    foreign = factory(tenant=other_tenant)
    other_teams = factory(tenant=tenant, team=other_team)
    client = client_for(member)

    for params, headers in VARIANTS:
        missing = client.get(reverse(url_name, args=[999_999_999]), params, **headers)
        assert missing.status_code == 404
        targets = [foreign] if role == Role.ADMIN else [foreign, other_teams]
        for obj in targets:
            response = client.get(reverse(url_name, args=[obj.pk]), params, **headers)
            assert response.status_code == 404, (params, headers)
            assert response.content == missing.content
