"""Django admin: a tenant's staff admin sees and edits only their tenant; superusers see all."""

import pytest
from django.urls import reverse

from activities.models import Activity
from crm.models import Contact, Role
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ContactFactory,
    MembershipFactory,
    TeamFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_admin(tenant, team):
    user = UserFactory(is_staff=True)
    return MembershipFactory(tenant=tenant, user=user, role=Role.ADMIN, teams=[team])


@pytest.fixture
def foreign_rows(other_tenant):
    team = TeamFactory(tenant=other_tenant, name="Foreign team")
    account = AccountFactory(tenant=other_tenant, name="Foreign Account Ltd")
    contact = ContactFactory(tenant=other_tenant, name="Foreign Contact", account=account, team=team)
    activity = ActivityFactory(tenant=other_tenant, summary="foreign activity", contact=contact)
    return {"team": team, "account": account, "contact": contact, "activity": activity}


@pytest.mark.parametrize("kind", ["contact", "account", "activity", "team"])
def test_foreign_change_page_is_404_like_a_missing_one(client, staff_admin, foreign_rows, kind):
    # given
    client.force_login(staff_admin.user)
    obj = foreign_rows[kind]
    opts = obj._meta
    # when
    foreign = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
    missing = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[99_999_999]))
    # then
    assert foreign.status_code == missing.status_code == 404


@pytest.mark.parametrize("view", ["delete", "history"])
def test_foreign_delete_and_history_are_404(client, staff_admin, foreign_rows, view):
    client.force_login(staff_admin.user)
    contact = foreign_rows["contact"]
    response = client.get(reverse(f"admin:crm_contact_{view}", args=[contact.pk]))
    assert response.status_code == 404


def test_foreign_post_changes_nothing(client, staff_admin, foreign_rows):
    client.force_login(staff_admin.user)
    contact = foreign_rows["contact"]
    response = client.post(
        reverse("admin:crm_contact_change", args=[contact.pk]), {"name": "hijacked", "status": "customer"}
    )
    assert response.status_code == 404
    contact.refresh_from_db()
    assert contact.name == "Foreign Contact"


def test_changelists_never_show_foreign_rows(client, staff_admin, foreign_rows, tenant):
    ContactFactory(tenant=tenant, name="Home Contact")
    ActivityFactory(tenant=tenant, summary="home activity")
    client.force_login(staff_admin.user)
    contacts = client.get(reverse("admin:crm_contact_changelist")).content.decode()
    assert "Home Contact" in contacts and "Foreign Contact" not in contacts
    activities = client.get(reverse("admin:activities_activity_changelist")).content.decode()
    assert "home activity" in activities and "foreign activity" not in activities
    teams = client.get(reverse("admin:crm_team_changelist")).content.decode()
    assert "Foreign team" not in teams
    tenants = client.get(reverse("admin:crm_tenant_changelist")).content.decode()
    assert "Other Test" not in tenants


def test_choice_fields_offer_only_the_tenants_rows(client, staff_admin, foreign_rows, team):
    client.force_login(staff_admin.user)
    page = client.get(reverse("admin:activities_activity_add")).content.decode()
    assert team.name in page
    assert "Foreign team" not in page
    membership_page = client.get(reverse("admin:crm_membership_add")).content.decode()
    assert "Foreign team" not in membership_page


def test_autocomplete_does_not_leak_foreign_rows(client, staff_admin, foreign_rows, tenant):
    AccountFactory(tenant=tenant, name="Home Account Ltd")
    client.force_login(staff_admin.user)
    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "crm", "model_name": "contact", "field_name": "account", "term": "Account"},
    )
    assert response.status_code == 200
    names = [r["text"] for r in response.json()["results"]]
    assert "Home Account Ltd" in names
    assert "Foreign Account Ltd" not in names


def test_posting_a_foreign_choice_is_rejected(client, staff_admin, foreign_rows, tenant):
    client.force_login(staff_admin.user)
    response = client.post(
        reverse("admin:crm_contact_add"),
        {
            "name": "New",
            "status": "prospect",
            "account": foreign_rows["account"].pk,
            "team": foreign_rows["team"].pk,
        },
    )
    assert response.status_code == 200  # form redisplayed with errors
    assert "Select a valid choice" in response.content.decode()
    assert not Contact.objects.filter(name="New").exists()


def test_created_rows_land_in_the_admins_tenant(client, staff_admin, tenant):
    client.force_login(staff_admin.user)
    response = client.post(
        reverse("admin:crm_contact_add"), {"name": "Created In Admin", "status": "prospect"}
    )
    assert response.status_code == 302
    assert Contact.objects.get(name="Created In Admin").tenant_id == tenant.pk


def test_staff_agent_without_admin_role_has_no_admin_access(client, tenant, team):
    user = UserFactory(is_staff=True)
    MembershipFactory(tenant=tenant, user=user, role=Role.AGENT, teams=[team])
    client.force_login(user)
    assert client.get(reverse("admin:crm_contact_changelist")).status_code == 403


def test_users_changelist_lists_only_members(client, staff_admin, foreign_member):
    client.force_login(staff_admin.user)
    page = client.get(reverse("admin:auth_user_changelist")).content.decode()
    assert staff_admin.user.email in page
    assert foreign_member.user.email not in page
    foreign = client.get(reverse("admin:auth_user_change", args=[foreign_member.user.pk]))
    assert foreign.status_code == 404


def test_tenant_admin_cannot_grant_superuser(client, staff_admin, tenant):
    client.force_login(staff_admin.user)
    page = client.get(reverse("admin:auth_user_change", args=[staff_admin.user.pk])).content.decode()
    assert 'name="is_superuser"' not in page


def test_superuser_sees_every_tenant(client, foreign_rows, tenant):
    ActivityFactory(tenant=tenant, summary="home activity")
    root = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(root)
    page = client.get(reverse("admin:activities_activity_changelist")).content.decode()
    assert "home activity" in page and "foreign activity" in page
    assert Activity.objects.count() == 2
