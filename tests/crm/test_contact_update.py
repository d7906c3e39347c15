"""Contact updates log what changed from what to what, attributed to the user; edits by the same user
within ten minutes merge into one entry (as Twenty does); a save with no real change logs nothing."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from activities.models import Activity, ActivityType
from crm import services
from crm.models import ContactStatus
from tests.factories import AccountFactory, ContactFactory, TeamFactory


def _updates(tenant, contact):
    return Activity.objects.for_tenant(tenant).filter(contact=contact, type=ActivityType.CONTACT_UPDATE)


def test_significant_change_logs_diff_attributed_to_user(tenant, team, agent_member):
    contact = ContactFactory(tenant=tenant, team=team, name="Ada", status=ContactStatus.PROSPECT)
    _, activity = services.contact_update(
        tenant=tenant,
        actor=agent_member.user,
        contact=contact,
        data={"name": "Ada Lovelace", "status": ContactStatus.CUSTOMER},
    )
    assert activity.user == agent_member.user
    assert activity.created_by == agent_member.user
    assert activity.changes["name"]["from"] == "Ada"
    assert activity.changes["name"]["to"] == "Ada Lovelace"
    assert activity.changes["status"]["from"] == "Prospect"
    assert activity.changes["status"]["to"] == "Customer"
    assert "name: Ada → Ada Lovelace" in activity.summary
    contact.refresh_from_db()
    assert contact.name == "Ada Lovelace"


def test_every_significant_field_is_diffed(tenant, team, other_team, agent_member, manager_member):
    account = AccountFactory(tenant=tenant, name="Acme")
    contact = ContactFactory(tenant=tenant, team=team, emails=["a@x.test"], phones=["+1555"])
    _, activity = services.contact_update(
        tenant=tenant,
        actor=agent_member.user,
        contact=contact,
        data={
            "emails": ["B@x.test", "a@x.test"],
            "phones": ["+1 556"],
            "owner": manager_member.user,
            "team": other_team,
            "account": account,
        },
    )
    changes = activity.changes
    assert changes["emails"]["to"] == "b@x.test, a@x.test"
    assert changes["phones"] == {**changes["phones"], "from": "+1555", "to": "+1556"}
    assert changes["owner"]["from"] == ""
    assert changes["team"] == {**changes["team"], "from": "Sales", "to": "Support"}
    assert changes["account"]["to"] == "Acme"
    assert activity.account == account
    assert activity.team == other_team


def test_no_real_change_logs_nothing(tenant, team, agent_member):
    contact = ContactFactory(tenant=tenant, team=team, name="Ada", emails=["a@x.test"])
    _, activity = services.contact_update(
        tenant=tenant,
        actor=agent_member.user,
        contact=contact,
        data={"name": "Ada", "emails": ["A@X.test "], "team": team, "status": contact.status},
    )
    assert activity is None
    assert not _updates(tenant, contact).exists()


def test_edits_within_ten_minutes_merge_keeping_original_from(tenant, team, agent_member):
    contact = ContactFactory(tenant=tenant, team=team, name="Ada", status=ContactStatus.PROSPECT)
    _, first = services.contact_update(
        tenant=tenant, actor=agent_member.user, contact=contact, data={"name": "Ada L"}
    )
    _, second = services.contact_update(
        tenant=tenant,
        actor=agent_member.user,
        contact=contact,
        data={"name": "Ada Lovelace", "status": ContactStatus.CUSTOMER},
    )
    assert second.pk == first.pk
    assert _updates(tenant, contact).count() == 1
    second.refresh_from_db()
    assert second.changes["name"]["from"] == "Ada"
    assert second.changes["name"]["to"] == "Ada Lovelace"
    assert second.changes["status"]["to"] == "Customer"


def test_edits_after_ten_minutes_make_a_new_entry(tenant, team, agent_member):
    contact = ContactFactory(tenant=tenant, team=team, name="Ada")
    _, first = services.contact_update(
        tenant=tenant, actor=agent_member.user, contact=contact, data={"name": "B"}
    )
    Activity.objects.filter(pk=first.pk).update(occurred_at=timezone.now() - timedelta(minutes=11))
    _, second = services.contact_update(
        tenant=tenant, actor=agent_member.user, contact=contact, data={"name": "C"}
    )
    assert second.pk != first.pk
    assert second.changes["name"]["from"] == "B"
    assert _updates(tenant, contact).count() == 2


def test_edits_by_another_user_do_not_merge(tenant, team, agent_member, manager_member):
    contact = ContactFactory(tenant=tenant, team=team, name="Ada")
    _, first = services.contact_update(
        tenant=tenant, actor=agent_member.user, contact=contact, data={"name": "B"}
    )
    _, second = services.contact_update(
        tenant=tenant, actor=manager_member.user, contact=contact, data={"name": "C"}
    )
    assert second.pk != first.pk
    assert second.user == manager_member.user
    # and the first user's next edit starts a new entry: someone else's update came in between
    _, third = services.contact_update(
        tenant=tenant, actor=agent_member.user, contact=contact, data={"name": "D"}
    )
    assert third.pk not in (first.pk, second.pk)


def test_changing_back_within_the_window_removes_the_entry(tenant, team, agent_member):
    contact = ContactFactory(tenant=tenant, team=team, name="Ada")
    services.contact_update(tenant=tenant, actor=agent_member.user, contact=contact, data={"name": "Typo"})
    _, activity = services.contact_update(
        tenant=tenant, actor=agent_member.user, contact=contact, data={"name": "Ada"}
    )
    assert activity is None
    assert not _updates(tenant, contact).exists()


def test_foreign_references_rejected_and_nothing_written(
    tenant, other_tenant, team, agent_member, foreign_member
):
    contact = ContactFactory(tenant=tenant, team=team, name="Ada")
    for data in (
        {"team": TeamFactory(tenant=other_tenant)},
        {"account": AccountFactory(tenant=other_tenant)},
        {"owner": foreign_member.user},
        {"tenant": other_tenant},
    ):
        with pytest.raises(ValidationError):
            services.contact_update(tenant=tenant, actor=agent_member.user, contact=contact, data=data)
    contact.refresh_from_db()
    assert (contact.team, contact.account, contact.owner, contact.tenant) == (team, None, None, tenant)
    assert not _updates(tenant, contact).exists()


def test_edit_view_saves_and_logs(tenant, team, agent_member, client_for):
    contact = ContactFactory(tenant=tenant, team=team, name="Ada", emails=["a@x.test"], phones=[])
    response = client_for(agent_member).post(
        reverse("crm:contact-edit", args=[contact.pk]),
        {
            "name": "Ada L",
            "emails": "a@x.test\nb@x.test",
            "phones": "",
            "team": team.pk,
            "status": "customer",
        },
    )
    assert response.status_code == 302
    activity = _updates(tenant, contact).get()
    assert set(activity.changes) == {"name", "emails", "status"}


def test_edit_view_ignores_fields_it_does_not_offer(tenant, other_tenant, team, agent_member, client_for):
    """Mass assignment (Vikunja CVE-2026-123526 class): tenant / created_by in the body change nothing."""
    contact = ContactFactory(tenant=tenant, team=team, name="Ada", emails=[], phones=[])
    response = client_for(agent_member).post(
        reverse("crm:contact-edit", args=[contact.pk]),
        {
            "name": "Ada",
            "team": team.pk,
            "status": contact.status,
            "tenant": other_tenant.pk,
            "tenant_id": other_tenant.pk,
        },
    )
    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.tenant == tenant
    assert not _updates(tenant, contact).exists()


def test_edit_view_rejects_foreign_and_other_team_choices(
    tenant, other_tenant, team, other_team, agent_member, client_for
):
    contact = ContactFactory(tenant=tenant, team=team, name="Ada", emails=[], phones=[])
    client = client_for(agent_member)
    for field, value in (
        ("team", TeamFactory(tenant=other_tenant).pk),
        ("team", other_team.pk),  # a team of the tenant the agent is not in
        ("account", AccountFactory(tenant=other_tenant).pk),
    ):
        data = {"name": "Ada", "team": team.pk, "status": contact.status, field: value}
        response = client.post(reverse("crm:contact-edit", args=[contact.pk]), data)
        assert response.status_code == 422
        assert 'data-testid="error-' + field + '"' in response.content.decode()
    contact.refresh_from_db()
    assert contact.team == team


def test_edit_view_bad_email_shows_error_and_changes_nothing(tenant, team, agent_member, client_for):
    contact = ContactFactory(tenant=tenant, team=team, name="Ada", emails=["a@x.test"], phones=[])
    response = client_for(agent_member).post(
        reverse("crm:contact-edit", args=[contact.pk]),
        {"name": "Changed", "emails": "not-an-address", "team": team.pk, "status": contact.status},
    )
    assert response.status_code == 422
    assert "is not an email address" in response.content.decode()
    contact.refresh_from_db()
    assert contact.name == "Ada"


@pytest.mark.parametrize("method", ["get", "post"])
def test_edit_view_foreign_or_other_team_contact_is_404(
    method, tenant, other_tenant, team, other_team, agent_member, client_for
):
    client = client_for(agent_member)
    missing = getattr(client, method)(reverse("crm:contact-edit", args=[999999]))
    assert missing.status_code == 404
    for contact in (
        ContactFactory(tenant=other_tenant, name="X"),
        ContactFactory(tenant=tenant, team=other_team, name="X"),
    ):
        response = getattr(client, method)(reverse("crm:contact-edit", args=[contact.pk]), {"name": "Hacked"})
        assert response.status_code == 404
        assert response.content == missing.content
        contact.refresh_from_db()
        assert contact.name == "X"


def test_django_admin_edit_is_logged_through_the_service(tenant, team, admin_member, client):
    admin_member.user.is_staff = True
    admin_member.user.save()
    contact = ContactFactory(tenant=tenant, team=team, name="Ada", emails=["a@x.test"], phones=[])
    client.force_login(admin_member.user)
    response = client.post(
        reverse("admin:crm_contact_change", args=[contact.pk]),
        {"name": "Ada Admin", "emails": "a@x.test", "phones": "", "team": team.pk, "status": contact.status},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    activity = _updates(tenant, contact).get()
    assert activity.changes["name"]["to"] == "Ada Admin"
    assert activity.created_by == admin_member.user
