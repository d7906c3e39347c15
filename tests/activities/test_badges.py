"""Activity badges on the contacts, leads and accounts grids: one query per page of entities,
visibility applied, the same rows the timeline shows."""

import re

import pytest
from django.urls import reverse

from activities import timeline
from activities.services import activity_log
from tests.conftest import REQUEST_TRANSACTION_QUERIES
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ClosedInteractionFactory,
    ContactFactory,
    LeadFactory,
)

pytestmark = pytest.mark.django_db


def _badges(response) -> dict[int, str]:
    html = response.content.decode()
    rows = re.findall(
        r'data-testid="grid-row" data-pk="(\d+)".*?data-testid="activity-badge"[^>]*>([^<]+)</a>', html, re.S
    )
    return {int(pk): label for pk, label in rows}


def test_badges_count_activities_and_interactions(tenant, team, admin_member, client_for):
    # given contacts with 4 activities + 2 interactions, 1 interaction, and nothing
    busy = ContactFactory(tenant=tenant, team=team, name="A busy")
    single = ContactFactory(tenant=tenant, team=team, name="B single")
    quiet = ContactFactory(tenant=tenant, team=team, name="C quiet")
    ActivityFactory.create_batch(4, tenant=tenant, team=team, contact=busy)
    ClosedInteractionFactory.create_batch(2, tenant=tenant, team=team, contact=busy)
    ClosedInteractionFactory(tenant=tenant, team=team, contact=single)
    # an interaction represented by its activity counts once
    logged = ClosedInteractionFactory(tenant=tenant, team=team, contact=single, activity_logged=True)
    activity_log(tenant=tenant, type="chat", team=team, contact=single, source_object=logged)
    # rows of another tenant never count
    ActivityFactory(tenant=ContactFactory().tenant)

    response = client_for(admin_member).get(reverse("crm:contact-list"))

    assert _badges(response) == {busy.pk: "6 Activities", single.pk: "2 Activities", quiet.pk: "No activity"}


def test_badge_label_singular_and_none():
    assert timeline.badge_label(0) == "No activity"
    assert timeline.badge_label(1) == "1 Activity"
    assert timeline.badge_label(6) == "6 Activities"
    assert timeline.badge_label(12345) == "12,345 Activities"


def test_badges_count_only_what_the_viewer_may_see(tenant, team, other_team, agent_member, admin_member):
    contact = ContactFactory(tenant=tenant, team=team)
    ActivityFactory.create_batch(2, tenant=tenant, team=team, contact=contact)
    ActivityFactory.create_batch(3, tenant=tenant, team=other_team, contact=contact)
    ActivityFactory(tenant=tenant, team=other_team, contact=contact, user=agent_member.user)

    as_agent = timeline.badge_counts(membership=agent_member, kind="contact", ids=[contact.pk])
    as_admin = timeline.badge_counts(membership=admin_member, kind="contact", ids=[contact.pk])

    assert as_agent == {contact.pk: 3}
    assert as_admin == {contact.pk: 6}


def test_contact_badge_includes_converted_lead_history_like_its_timeline(tenant, team, admin_member):
    contact = ContactFactory(tenant=tenant, team=team)
    lead = LeadFactory(tenant=tenant, team=team, converted_contact=contact)
    activity_log(tenant=tenant, type="call", team=team, lead=lead)
    activity_log(tenant=tenant, type="lead_conversion", team=team, lead=lead, contact=contact)
    activity_log(tenant=tenant, type="note", team=team, contact=contact)

    counts = timeline.badge_counts(membership=admin_member, kind="contact", ids=[contact.pk])
    lead_counts = timeline.badge_counts(membership=admin_member, kind="lead", ids=[lead.pk])
    page = timeline.timeline_page(
        membership=admin_member, kind="contact", pk=contact.pk, filters=timeline.TimelineFilters()
    )

    assert counts == {contact.pk: 3} == {contact.pk: len(page.rows)}
    assert lead_counts == {lead.pk: 2}


def test_account_badge_rolls_up_contacts(tenant, team, admin_member):
    account = AccountFactory(tenant=tenant, team=team)
    contact = ContactFactory(tenant=tenant, team=team, account=account)
    activity_log(tenant=tenant, type="call", team=team, contact=contact)
    activity_log(tenant=tenant, type="note", team=team, account=account)

    assert timeline.badge_counts(membership=admin_member, kind="account", ids=[account.pk]) == {account.pk: 2}


@pytest.mark.parametrize("kind", ["contact", "lead", "account"])
def test_grid_query_count_is_the_same_for_5_and_50_rows(
    kind, tenant, team, admin_member, client_for, django_assert_num_queries
):
    """A page of 50 rows with badges costs the same number of queries as a page of 5 (no N+1)."""
    factory = {"contact": ContactFactory, "lead": LeadFactory, "account": AccountFactory}[kind]
    client = client_for(admin_member)
    url = reverse(f"crm:{kind}-list")
    account = AccountFactory(tenant=tenant, team=team)

    def make(n):
        for _ in range(n):
            extra = {"account": account} if kind == "contact" else {}
            obj = factory(tenant=tenant, team=team, owner=admin_member.user, **extra)
            ActivityFactory(tenant=tenant, team=team, **{kind: obj})
            ClosedInteractionFactory(tenant=tenant, team=team, **{kind: obj})
            if kind == "contact":
                LeadFactory(tenant=tenant, team=team, converted_contact=obj)

    make(4)  # plus the account itself on the accounts grid: 5 rows
    if kind != "account":
        make(1)
    client.get(url)  # warm the per-process content-type / session caches
    expected = QUERIES[kind]
    with django_assert_num_queries(expected + REQUEST_TRANSACTION_QUERIES):
        small = client.get(url)
    make(50)
    with django_assert_num_queries(expected + REQUEST_TRANSACTION_QUERIES):
        big = client.get(url)

    assert len(small.context["rows"]) == 5
    assert len(big.context["rows"]) == 50


# session, user, memberships (middleware) + owner and team choice lists + the page + the page's teams (and
# contacts' accounts) by tenant (TenantQuerySet.with_related, not joined by key alone) + the badge GROUP BY;
# contacts add the account choice list (LIMIT 301) and the leads converted into the page's contacts.
QUERIES = {"contact": 11, "lead": 8, "account": 8}
