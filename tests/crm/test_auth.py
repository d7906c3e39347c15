"""Login at /login/, logout at /logout/, the active tenant in the session and the tenant switcher."""

import pytest
from django.urls import reverse

from activities.models import ActivityType
from crm.middleware import SESSION_KEY
from crm.models import Role
from tests.conftest import PASSWORD
from tests.factories import ActivityFactory, MembershipFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_login_with_email_case_insensitive_then_home(client, admin_member):
    # when
    response = client.post("/login/", {"username": admin_member.user.email.upper(), "password": PASSWORD})
    # then
    assert response.status_code == 302
    assert response["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert admin_member.tenant.name in home.content.decode()


def test_wrong_password_shows_a_clear_error(client, admin_member):
    response = client.post("/login/", {"username": admin_member.user.email, "password": "nope"})
    assert response.status_code == 200
    assert "didn&#x27;t match" in response.content.decode() or "didn't match" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_anonymous_is_sent_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_logout_is_at_slash_logout(client, client_for, admin_member):
    client_for(admin_member)
    response = client.post("/logout/")
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_user_without_membership_gets_a_clear_page_not_a_crash(client):
    user = UserFactory()
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 403
    assert "not a member of any workspace" in response.content.decode()


def test_removed_membership_takes_effect_on_next_request(client, client_for, agent_member):
    client_for(agent_member)
    assert client.get("/").status_code == 200
    agent_member.is_active = False
    agent_member.save()
    assert client.get("/").status_code == 403


def test_switch_tenant_changes_what_home_shows(client, tenant, other_tenant, admin_member):
    # given a user who is admin in both tenants, each with one activity
    MembershipFactory(tenant=other_tenant, user=admin_member.user, role=Role.ADMIN)
    ActivityFactory(tenant=tenant, type=ActivityType.NOTE, summary="first-tenant-note")
    ActivityFactory(tenant=other_tenant, type=ActivityType.NOTE, summary="second-tenant-note")
    client.force_login(admin_member.user)
    client.post(reverse("tenant-switch"), {"tenant": tenant.pk})
    page = client.get("/").content.decode()
    assert "first-tenant-note" in page and "second-tenant-note" not in page
    # when
    response = client.post(reverse("tenant-switch"), {"tenant": other_tenant.pk, "next": "/"})
    # then
    assert response.status_code == 302
    assert client.session[SESSION_KEY] == other_tenant.pk
    page = client.get("/").content.decode()
    assert "second-tenant-note" in page and "first-tenant-note" not in page


def test_switching_to_a_tenant_you_are_not_in_is_refused(client, client_for, admin_member, other_tenant):
    client_for(admin_member)
    client.get("/")
    response = client.post(reverse("tenant-switch"), {"tenant": other_tenant.pk})
    assert response.status_code == 400
    assert client.session[SESSION_KEY] == admin_member.tenant_id


@pytest.mark.parametrize("value", ["", "abc", "99999999"])
def test_switch_tenant_bad_input(client, client_for, admin_member, value):
    client_for(admin_member)
    response = client.post(reverse("tenant-switch"), {"tenant": value})
    assert response.status_code == 400


def test_switch_ignores_offsite_next(client, tenant, admin_member):
    client.force_login(admin_member.user)
    response = client.post(reverse("tenant-switch"), {"tenant": tenant.pk, "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_home_hides_email_content_from_agents_without_permission(client, client_for, tenant, team):
    # given an agent of the team without the email permission, and a teammate's email activity
    agent = MembershipFactory(tenant=tenant, role=Role.AGENT, teams=[team])
    colleague = UserFactory()
    ActivityFactory(
        tenant=tenant, team=team, user=colleague, type=ActivityType.EMAIL, summary="secret-subject"
    )
    # when
    page = client_for(agent).get("/").content.decode()
    # then
    assert "secret-subject" not in page
    assert "Email content hidden" in page


def test_home_shows_only_the_agents_teams(client, client_for, tenant, team, other_team):
    agent = MembershipFactory(tenant=tenant, role=Role.AGENT, teams=[team])
    ActivityFactory(tenant=tenant, team=team, summary="my-team-row")
    ActivityFactory(tenant=tenant, team=other_team, summary="other-team-row")
    ActivityFactory(tenant=tenant, team=TeamFactory(tenant=tenant), user=agent.user, summary="my-own-row")
    page = client_for(agent).get("/").content.decode()
    assert "my-team-row" in page and "my-own-row" in page
    assert "other-team-row" not in page


def test_repeated_wrong_passwords_lock_the_login_out(client, admin_member, settings):
    """Password guessing is throttled per login and address (issue 8); a correct password does not help
    while locked, and another login is unaffected."""
    email = admin_member.user.email
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post("/login/", {"username": email, "password": "wrong-guess"})
        assert response.status_code == 200
    # the last allowed failure locks the pair out, and then even the right password is refused
    assert client.post("/login/", {"username": email, "password": "wrong-guess"}).status_code == 429
    locked = client.post("/login/", {"username": email, "password": PASSWORD})
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    other = MembershipFactory(tenant=admin_member.tenant, role=Role.AGENT)
    assert client.post("/login/", {"username": other.user.email, "password": PASSWORD}).status_code == 302
