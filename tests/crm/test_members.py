"""Members and teams managed in the app: admins manage their tenant, managers the agents of their teams,
agents nothing; another tenant's rows are a 404 like missing ones and are never changed."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse

from crm import services
from crm.models import Membership, Role, Team
from tests.conftest import PASSWORD
from tests.factories import ContactFactory, TeamFactory, UserFactory

User = get_user_model()
STRONG = "Kestrel-Harbour-73"
MISSING = 999_999_999


def _add(client, **overrides):
    data = {
        "email": "new.person@example.test",
        "first_name": "New",
        "last_name": "Person",
        "password": STRONG,
        "role": "agent",
        "teams": [],
    }
    data.update(overrides)
    return client.post(reverse("crm:member-add"), {k: v for k, v in data.items() if v is not None})


def _edit(client, member, **data):
    return client.post(reverse("crm:member-edit", args=[member.pk]), data)


def _row(membership):
    membership.refresh_from_db()
    return (membership.role, membership.can_manage_email, membership.is_active, membership.tenant_id)


def _team_ids(membership):
    return set(membership.teams.values_list("id", flat=True))


def _signs_in(email, password) -> bool:
    response = Client().post(reverse("login"), {"username": email, "password": password})
    return response.status_code == 302


def _logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- the list --------------------------------------------------------------------------------------------


def test_admin_lists_every_member_of_the_tenant_only(
    tenant, team, admin_member, agent_member, foreign_member, make_member, client_for
):
    # given an inactive member with the email permission, and a member of another tenant
    removed = make_member(
        tenant, Role.AGENT, teams=[team], email=True, first_name="Rita", last_name="Removed"
    )
    removed.is_active = False
    removed.save()
    # when
    response = client_for(admin_member).get(reverse("crm:member-list"))
    # then
    html = response.content.decode()
    assert response.status_code == 200
    for member in (admin_member, agent_member, removed):
        assert member.user.email in html
        assert f'data-testid="member-{member.pk}"' in html
    assert "Rita Removed" in html and "removed</span>" in html
    assert "Sales" in html and "Support" in html
    assert foreign_member.user.email not in html
    assert foreign_member.user.get_full_name() not in html


def test_manager_lists_the_members_of_their_teams(
    tenant, team, other_team, manager_member, agent_member, make_member, client_for
):
    elsewhere = make_member(tenant, Role.AGENT, teams=[other_team])
    html = client_for(manager_member).get(reverse("crm:member-list")).content.decode()
    assert agent_member.user.email in html and manager_member.user.email in html
    assert elsewhere.user.email not in html
    # the agent of their team is editable, they themselves are not
    assert reverse("crm:member-edit", args=[agent_member.pk]) in html
    assert reverse("crm:member-edit", args=[manager_member.pk]) not in html


def test_agents_get_403_on_the_pages(tenant, team, agent_member, client_for):
    client = client_for(agent_member)
    assert client.get(reverse("crm:member-list")).status_code == 403
    assert client.get(reverse("crm:member-add")).status_code == 403
    assert _add(client, teams=[team.pk]).status_code == 403
    assert client.get(reverse("crm:team-list")).status_code == 403
    assert client.post(reverse("crm:team-list"), {"name": "Mine"}).status_code == 403
    assert not User.objects.filter(email="new.person@example.test").exists()
    assert not Team.objects.filter(name="Mine").exists()


@pytest.mark.parametrize("role, shown", [(Role.ADMIN, True), (Role.MANAGER, True), (Role.AGENT, False)])
def test_navigation_links_for_admins_and_managers(role, shown, tenant, team, make_member, client_for):
    html = client_for(make_member(tenant, role, teams=[team])).get(reverse("home")).content.decode()
    assert (reverse("crm:member-list") in html) is shown
    assert (reverse("crm:team-list") in html) is shown


# Every request: session, user, then the request's tenant transaction (savepoint in tests, set the tenant,
# the memberships, ..., reset the tenant, release): 7 queries around the page's own.
@pytest.mark.parametrize(
    "role, count, expected", [("admin", 1, 9), ("admin", 6, 9), ("manager", 1, 10), ("manager", 6, 10)]
)
def test_member_list_query_count_is_pinned(
    role,
    count,
    expected,
    tenant,
    team,
    other_team,
    admin_member,
    manager_member,
    make_member,
    client_for,
    django_assert_num_queries,
):
    for _ in range(count):
        make_member(tenant, Role.AGENT, teams=[team, other_team])
    client = client_for(admin_member if role == "admin" else manager_member)
    client.get(reverse("crm:member-list"))  # warm up the session
    # + (a manager's teams), the members, their teams
    with django_assert_num_queries(expected):
        response = client.get(reverse("crm:member-list"))
    assert response.status_code == 200


@pytest.mark.parametrize("count", [1, 6])
def test_team_list_query_count_is_pinned(count, tenant, admin_member, client_for, django_assert_num_queries):
    for n in range(count):
        TeamFactory(tenant=tenant, name=f"Team {n}")
    client = client_for(admin_member)
    client.get(reverse("crm:team-list"))
    with django_assert_num_queries(8):  # the 7 of every request (see above) + the teams with member counts
        client.get(reverse("crm:team-list"))


# --- adding members ----------------------------------------------------------------------------------------


def test_admin_adds_a_member_who_can_sign_in(tenant, team, other_team, admin_member, client_for):
    response = _add(
        client_for(admin_member),
        email="New.Person@Example.TEST",
        role="manager",
        teams=[team.pk, other_team.pk],
        can_manage_email="on",
    )
    assert response.status_code == 302 and response["Location"] == reverse("crm:member-list")
    user = User.objects.get(email="new.person@example.test")
    member = Membership.objects.get(user=user)
    assert (member.tenant_id, member.role, member.can_manage_email, member.is_active) == (
        tenant.pk,
        Role.MANAGER,
        True,
        True,
    )
    assert _team_ids(member) == {team.pk, other_team.pk}
    assert (user.first_name, user.last_name, user.is_staff, user.is_superuser) == (
        "New",
        "Person",
        False,
        False,
    )
    assert _signs_in("new.person@example.test", STRONG)


@pytest.mark.parametrize(
    "password, message",
    [("short1", "too short"), ("password123", "too common"), ("12345678901", "entirely numeric")],
)
def test_weak_password_is_refused_with_clear_errors(password, message, tenant, admin_member, client_for):
    response = _add(client_for(admin_member), password=password)
    assert response.status_code == 422
    html = response.content.decode()
    assert 'data-testid="error-password"' in html and message in html
    assert password not in html  # the password is never echoed back
    assert not User.objects.filter(email="new.person@example.test").exists()


def test_password_similar_to_the_name_is_refused(tenant, admin_member, client_for):
    response = _add(client_for(admin_member), email="marguerite@example.test", password="Marguerite!")
    assert response.status_code == 422 and "too similar" in response.content.decode()


def test_another_tenants_user_cannot_be_added_or_attached(
    tenant, other_tenant, admin_member, foreign_member, client_for
):
    # given a user of another tenant
    foreign_user = foreign_member.user
    before = User.objects.filter(pk=foreign_user.pk).values().get()
    # when an admin adds their email (in another case), with the foreign user's id posted alongside
    response = _add(
        client_for(admin_member),
        email=foreign_user.email.upper(),
        first_name="Impostor",
        user=foreign_user.pk,
        user_id=foreign_user.pk,
    )
    # then a clear error that names no tenant and no person, and nothing changes
    assert response.status_code == 422
    html = response.content.decode()
    assert "already exists" in html
    assert other_tenant.name not in html
    assert foreign_user.first_name not in html and foreign_user.last_name not in html
    assert not Membership.objects.filter(tenant=tenant, user=foreign_user).exists()
    assert User.objects.filter(pk=foreign_user.pk).values().get() == before
    assert User.objects.filter(email__iexact=foreign_user.email).count() == 1


def test_an_existing_member_gets_a_clear_error(tenant, team, admin_member, agent_member, client_for):
    response = _add(client_for(admin_member), email=agent_member.user.email)
    assert response.status_code == 422
    assert "already a member of this tenant" in response.content.decode()
    agent_member.is_active = False
    agent_member.save()
    response = _add(client_for(admin_member), email=agent_member.user.email)
    assert "reactivate them" in response.content.decode()


def test_add_ignores_fields_it_does_not_offer(
    tenant, other_tenant, team, admin_member, foreign_member, client_for
):
    response = _add(
        client_for(admin_member),
        teams=[team.pk],
        tenant=other_tenant.pk,
        tenant_id=other_tenant.pk,
        user=foreign_member.user.pk,
        is_staff="on",
        is_superuser="on",
        is_active="",
        username="someone-else",
        time_zone="Pacific/Apia",
    )
    assert response.status_code == 302
    user = User.objects.get(email="new.person@example.test")
    assert (user.username, user.is_staff, user.is_superuser, user.is_active) == (
        "new.person@example.test",
        False,
        False,
        True,
    )
    member = Membership.objects.get(user=user)
    assert (member.tenant_id, member.is_active, member.time_zone) == (tenant.pk, True, "")
    assert not Membership.objects.filter(tenant=other_tenant, user=user).exists()


def test_foreign_team_id_is_refused_on_add(tenant, other_tenant, admin_member, foreign_member, client_for):
    foreign_team = foreign_member.teams.get()
    response = _add(client_for(admin_member), teams=[foreign_team.pk])
    assert response.status_code == 422
    assert 'data-testid="error-teams"' in response.content.decode()
    assert foreign_team.name not in response.content.decode()
    assert not User.objects.filter(email="new.person@example.test").exists()
    assert foreign_team.memberships.count() == 1


def test_manager_adds_an_agent_to_their_team(tenant, team, manager_member, client_for):
    response = _add(client_for(manager_member), teams=[team.pk], can_manage_email="on")
    assert response.status_code == 302
    member = Membership.objects.get(user__email="new.person@example.test")
    assert (member.role, member.can_manage_email, _team_ids(member)) == (Role.AGENT, True, {team.pk})


@pytest.mark.parametrize(
    "overrides",
    [
        {"role": "admin"},
        {"role": "manager"},
        {"teams": []},  # an agent outside every team of theirs
        {"teams": "OTHER"},  # a team of the tenant that is not theirs
    ],
    ids=["admin", "manager", "no-team", "other-team"],
)
def test_manager_cannot_add_beyond_their_rights(
    overrides, tenant, team, other_team, manager_member, client_for
):
    data = {"teams": [team.pk], **overrides}
    if data["teams"] == "OTHER":
        data["teams"] = [other_team.pk]
    response = _add(client_for(manager_member), **data)
    assert response.status_code == 422
    assert not User.objects.filter(email="new.person@example.test").exists()


def test_manager_add_form_offers_only_agent_and_their_teams(
    tenant, team, other_team, manager_member, client_for
):
    html = client_for(manager_member).get(reverse("crm:member-add")).content.decode()
    assert 'value="agent"' in html and 'value="admin"' not in html and 'value="manager"' not in html
    assert f'value="{team.pk}"' in html and f'value="{other_team.pk}"' not in html


# --- editing members ----------------------------------------------------------------------------------------


def test_admin_edits_role_teams_and_email_permission(
    tenant, team, other_team, admin_member, agent_member, client_for
):
    response = _edit(
        client_for(admin_member), agent_member, role="manager", teams=[other_team.pk], can_manage_email="on"
    )
    assert response.status_code == 302
    assert _row(agent_member) == (Role.MANAGER, True, True, tenant.pk)
    assert _team_ids(agent_member) == {other_team.pk}


def test_edit_ignores_fields_it_does_not_offer(
    tenant, other_tenant, team, admin_member, agent_member, foreign_member, client_for
):
    user_before = User.objects.filter(pk=agent_member.user_id).values().get()
    response = _edit(
        client_for(admin_member),
        agent_member,
        role="agent",
        teams=[team.pk],
        tenant=other_tenant.pk,
        tenant_id=other_tenant.pk,
        user=foreign_member.user_id,
        user_id=foreign_member.user_id,
        is_staff="on",
        is_superuser="on",
        is_active="",
        email="taken@evil.test",
        first_name="Renamed",
        time_zone="Pacific/Apia",
    )
    assert response.status_code == 302
    agent_member.refresh_from_db()
    assert (agent_member.tenant_id, agent_member.user_id, agent_member.is_active, agent_member.time_zone) == (
        tenant.pk,
        User.objects.get(pk=user_before["id"]).pk,
        True,
        "",
    )
    assert User.objects.filter(pk=agent_member.user_id).values().get() == user_before


def test_foreign_team_id_is_refused_on_edit(
    tenant, team, admin_member, agent_member, foreign_member, client_for
):
    foreign_team = foreign_member.teams.get()
    response = _edit(client_for(admin_member), agent_member, role="agent", teams=[team.pk, foreign_team.pk])
    assert response.status_code == 422
    assert 'data-testid="error-teams"' in response.content.decode()
    assert _team_ids(agent_member) == {team.pk}
    assert foreign_team.memberships.count() == 1


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MANAGER, Role.AGENT])
def test_foreign_member_ids_are_404_like_missing_and_unchanged(
    role, tenant, team, other_tenant, foreign_member, make_member, client_for
):
    client = client_for(make_member(tenant, role, teams=[team]))
    before = _row(foreign_member)
    data = {"role": "agent", "teams": [], "can_manage_email": ""}
    for name, method in [
        ("crm:member-edit", "get"),
        ("crm:member-edit", "post"),
        ("crm:member-deactivate", "post"),
        ("crm:member-reactivate", "post"),
    ]:
        missing = getattr(client, method)(reverse(name, args=[MISSING]), data)
        response = getattr(client, method)(reverse(name, args=[foreign_member.pk]), data)
        assert missing.status_code == response.status_code == 404, name
        assert response.content == missing.content
    assert _row(foreign_member) == before
    assert _team_ids(foreign_member) == {foreign_member.teams.get().pk}


def test_manager_moves_an_agent_among_their_own_teams_only(
    tenant, team, other_team, make_member, manager_member, client_for
):
    # given a manager of Sales and Backoffice, and an agent of Sales and Support (not the manager's)
    backoffice = TeamFactory(tenant=tenant, name="Backoffice")
    manager_member.teams.add(backoffice)
    agent = make_member(tenant, Role.AGENT, teams=[team, other_team])
    client = client_for(manager_member)
    # the form offers the manager's teams only
    html = client.get(reverse("crm:member-edit", args=[agent.pk])).content.decode()
    assert f'value="{backoffice.pk}"' in html and f'value="{other_team.pk}"' not in html
    # when the manager moves the agent from Sales to Backoffice and grants the email permission
    response = _edit(client, agent, role="agent", teams=[backoffice.pk], can_manage_email="on")
    # then Support (not theirs) is kept
    assert response.status_code == 302
    assert _team_ids(agent) == {backoffice.pk, other_team.pk}
    assert _row(agent)[:2] == (Role.AGENT, True)
    # and posting a team that is not theirs is refused
    response = _edit(client, agent, role="agent", teams=[backoffice.pk, other_team.pk, team.pk])
    assert response.status_code == 422
    assert _team_ids(agent) == {backoffice.pk, other_team.pk}


def test_manager_cannot_promote_an_agent(tenant, team, manager_member, agent_member, client_for):
    for role in ("manager", "admin"):
        response = _edit(client_for(manager_member), agent_member, role=role, teams=[team.pk])
        assert response.status_code == 422
        assert _row(agent_member)[0] == Role.AGENT


@pytest.mark.parametrize("target_role", [Role.ADMIN, Role.MANAGER])
def test_manager_cannot_edit_admins_or_other_managers(
    target_role, tenant, team, manager_member, make_member, client_for
):
    target = make_member(tenant, target_role, teams=[team])
    before = _row(target)
    client = client_for(manager_member)
    assert client.get(reverse("crm:member-edit", args=[target.pk])).status_code == 403
    response = _edit(client, target, role="agent", teams=[team.pk], can_manage_email="")
    assert response.status_code == 403
    assert client.post(reverse("crm:member-deactivate", args=[target.pk])).status_code == 403
    assert _row(target) == before


def test_manager_cannot_edit_themselves(tenant, team, manager_member, client_for):
    client = client_for(manager_member)
    assert client.get(reverse("crm:member-edit", args=[manager_member.pk])).status_code == 403
    response = _edit(client, manager_member, role="admin", teams=[team.pk])
    assert response.status_code == 403
    assert _row(manager_member)[0] == Role.MANAGER


def test_manager_cannot_remove_or_add_back_members(tenant, team, manager_member, agent_member, client_for):
    client = client_for(manager_member)
    assert client.post(reverse("crm:member-deactivate", args=[agent_member.pk])).status_code == 403
    assert _row(agent_member)[2] is True
    Membership.objects.filter(pk=agent_member.pk).update(is_active=False)
    assert client.post(reverse("crm:member-reactivate", args=[agent_member.pk])).status_code == 403
    assert _row(agent_member)[2] is False


def test_other_teams_member_is_404_for_managers_and_agents(tenant, other_team, make_member, client_for):
    elsewhere = make_member(tenant, Role.AGENT, teams=[other_team])
    before = _row(elsewhere)
    for role in (Role.MANAGER, Role.AGENT):
        client = client_for(make_member(tenant, role, teams=[TeamFactory(tenant=tenant)]))
        missing = client.get(reverse("crm:member-edit", args=[MISSING]))
        response = client.get(reverse("crm:member-edit", args=[elsewhere.pk]))
        assert missing.status_code == response.status_code == 404
        assert response.content == missing.content
        posted = _edit(client, elsewhere, role="agent", can_manage_email="on")
        assert posted.status_code == 404
    assert _row(elsewhere) == before


def test_agent_gets_403_on_a_teammate(tenant, team, agent_member, make_member, client_for):
    teammate = make_member(tenant, Role.AGENT, teams=[team])
    client = client_for(agent_member)
    assert client.get(reverse("crm:member-edit", args=[teammate.pk])).status_code == 403
    assert _edit(client, teammate, role="agent", can_manage_email="on", teams=[team.pk]).status_code == 403
    assert client.post(reverse("crm:member-deactivate", args=[teammate.pk])).status_code == 403
    assert _edit(client, agent_member, role="admin", teams=[team.pk]).status_code == 403
    assert _row(teammate)[1:3] == (False, True) and _row(agent_member)[0] == Role.AGENT


# --- the last admin -----------------------------------------------------------------------------------------


def test_the_last_active_admin_cannot_be_demoted_or_removed(tenant, team, admin_member, client_for):
    client = client_for(admin_member)
    response = _edit(client, admin_member, role="manager", teams=[team.pk])
    assert response.status_code == 422
    assert "last active admin" in response.content.decode()
    response = client.post(reverse("crm:member-deactivate", args=[admin_member.pk]), follow=True)
    assert "last active admin" in response.content.decode()
    assert _row(admin_member)[0::2] == (Role.ADMIN, True)


def test_an_inactive_admin_does_not_count(tenant, team, admin_member, make_member, client_for):
    removed_admin = make_member(tenant, Role.ADMIN, teams=[team])
    removed_admin.is_active = False
    removed_admin.save()
    response = _edit(client_for(admin_member), admin_member, role="agent", teams=[team.pk])
    assert response.status_code == 422
    assert _row(admin_member)[0] == Role.ADMIN


def test_with_two_admins_one_may_step_down_but_not_both(tenant, team, admin_member, make_member, client_for):
    second = make_member(tenant, Role.ADMIN, teams=[team])
    assert _edit(client_for(admin_member), second, role="agent", teams=[team.pk]).status_code == 302
    assert _row(second)[0] == Role.AGENT
    assert _edit(client_for(admin_member), admin_member, role="agent", teams=[team.pk]).status_code == 422
    # a removed admin is refused too
    services.membership_update(tenant=tenant, actor=admin_member.user, membership=second, role=Role.ADMIN)
    services.membership_deactivate(tenant=tenant, actor=admin_member.user, membership=second)
    with pytest.raises(ValidationError, match="last active admin"):
        services.membership_deactivate(tenant=tenant, actor=admin_member.user, membership=admin_member)


@pytest.mark.django_db(transaction=True)
def test_two_admins_demoting_each_other_at_once_leave_one_admin():
    import threading

    from django.db import connection

    from tests.factories import MembershipFactory, TenantFactory

    tenant = TenantFactory()
    first = MembershipFactory(tenant=tenant, user=UserFactory(), role=Role.ADMIN)
    second = MembershipFactory(tenant=tenant, user=UserFactory(), role=Role.ADMIN)
    barrier = threading.Barrier(2)
    outcomes = []

    def demote(actor, target):
        try:
            barrier.wait()
            services.membership_update(tenant=tenant, actor=actor.user, membership=target, role=Role.AGENT)
            outcomes.append("ok")
        except (PermissionDenied, ValidationError) as exc:
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=demote, args=(first, second)),
        threading.Thread(target=demote, args=(second, first)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["MemberPermissionDenied", "ok"]
    assert Membership.objects.filter(tenant=tenant, role=Role.ADMIN, is_active=True).count() == 1


# --- removing and adding back; changes apply on the next request, in every session -----------------------


def test_removal_applies_to_every_session_on_the_next_request(
    tenant, team, admin_member, make_member, client_for
):
    # given a member signed in twice (two browsers)
    victim = make_member(tenant, Role.MANAGER, teams=[team])
    first, second = _logged_in(victim.user), _logged_in(victim.user)
    assert first.get(reverse("crm:member-list")).status_code == 200
    assert second.get(reverse("crm:member-list")).status_code == 200
    # when an admin removes them
    response = client_for(admin_member).post(reverse("crm:member-deactivate", args=[victim.pk]))
    assert response.status_code == 302
    # then both sessions lose the tenant on their next request
    for client in (first, second):
        response = client.get(reverse("crm:member-list"))
        assert response.status_code == 403
        assert 'data-testid="no-membership"' in response.content.decode()
        assert client.get(reverse("crm:contact-list")).status_code == 403
    # and adding them back restores access, as the manager they were
    assert (
        client_for(admin_member).post(reverse("crm:member-reactivate", args=[victim.pk])).status_code == 302
    )
    assert first.get(reverse("crm:member-list")).status_code == 200
    assert second.get(reverse("crm:member-list")).status_code == 200


def test_role_change_applies_to_every_session_on_the_next_request(
    tenant, team, admin_member, make_member, client_for
):
    # given a second admin signed in twice
    other_admin = make_member(tenant, Role.ADMIN, teams=[team])
    first, second = _logged_in(other_admin.user), _logged_in(other_admin.user)
    assert first.get(reverse("crm:api-keys")).status_code == 200
    assert second.get(reverse("crm:api-keys")).status_code == 200
    # when they are demoted to agent in yet another session
    response = _edit(client_for(admin_member), other_admin, role="agent", teams=[team.pk])
    assert response.status_code == 302
    # then both of their sessions are agents from their next request
    for client in (first, second):
        assert client.get(reverse("crm:api-keys")).status_code == 403
        assert client.get(reverse("crm:member-list")).status_code == 403
        badge = client.get(reverse("home")).content.decode()
        assert '<span class="badge text-bg-secondary">Agent</span>' in badge


def test_admin_removes_and_adds_back(tenant, team, admin_member, agent_member, client_for):
    client = client_for(admin_member)
    response = client.post(reverse("crm:member-deactivate", args=[agent_member.pk]), follow=True)
    assert "was removed" in response.content.decode()
    assert _row(agent_member)[2] is False
    assert agent_member.user.is_active  # the user (perhaps in other tenants) is untouched
    assert _signs_in(agent_member.user.email, PASSWORD)
    client.post(reverse("crm:member-reactivate", args=[agent_member.pk]))
    assert _row(agent_member)[2] is True


def test_deactivate_and_reactivate_are_post_only(tenant, admin_member, agent_member, client_for):
    client = client_for(admin_member)
    assert client.get(reverse("crm:member-deactivate", args=[agent_member.pk])).status_code == 405
    assert _row(agent_member)[2] is True


# --- services hold the rules without the views --------------------------------------------------------------


def test_services_refuse_what_the_views_refuse(
    tenant, other_tenant, team, other_team, make_member, foreign_member
):
    manager = make_member(tenant, Role.MANAGER, teams=[team])
    agent = make_member(tenant, Role.AGENT, teams=[team])
    admin = make_member(tenant, Role.ADMIN)
    with pytest.raises(PermissionDenied):
        services.membership_create(
            tenant=tenant,
            actor=manager.user,
            email="x@example.test",
            password=STRONG,
            role=Role.ADMIN,
            teams=[team],
        )
    with pytest.raises(PermissionDenied):
        services.membership_create(
            tenant=tenant, actor=agent.user, email="x@example.test", password=STRONG, teams=[team]
        )
    with pytest.raises(PermissionDenied):
        services.membership_update(
            tenant=tenant, actor=manager.user, membership=agent, teams=[team, other_team]
        )
    with pytest.raises(PermissionDenied):
        services.membership_update(
            tenant=tenant, actor=manager.user, membership=admin, can_manage_email=False
        )
    with pytest.raises(PermissionDenied):
        services.membership_deactivate(tenant=tenant, actor=manager.user, membership=agent)
    with pytest.raises(PermissionDenied):
        services.team_create(tenant=tenant, actor=manager.user, name="Managers' own")
    # another tenant's member, team or actor
    with pytest.raises(ValidationError):
        services.membership_update(
            tenant=tenant, actor=admin.user, membership=foreign_member, role=Role.AGENT
        )
    with pytest.raises(ValidationError):
        services.membership_update(
            tenant=tenant, actor=admin.user, membership=agent, teams=[foreign_member.teams.get()]
        )
    with pytest.raises(PermissionDenied):
        services.membership_update(
            tenant=tenant, actor=foreign_member.user, membership=agent, role=Role.ADMIN
        )
    assert _row(agent)[:3] == (Role.AGENT, False, True) and _team_ids(agent) == {team.pk}
    assert _row(foreign_member)[0] == Role.ADMIN
    assert Team.objects.for_tenant(tenant).count() == 2


# --- teams --------------------------------------------------------------------------------------------------


def test_admin_creates_and_renames_teams(tenant, admin_member, client_for):
    client = client_for(admin_member)
    response = client.post(reverse("crm:team-list"), {"name": "  Field   sales "})
    assert response.status_code == 302
    created = Team.objects.for_tenant(tenant).get(name="Field sales")
    response = client.post(reverse("crm:team-edit", args=[created.pk]), {"name": "Inside sales"})
    assert response.status_code == 302
    created.refresh_from_db()
    assert created.name == "Inside sales"
    assert "Inside sales" in client.get(reverse("crm:team-list")).content.decode()


def test_team_names_are_unique_per_tenant(tenant, other_tenant, team, other_team, admin_member, client_for):
    client = client_for(admin_member)
    response = client.post(reverse("crm:team-list"), {"name": "sales"})
    assert response.status_code == 422
    assert "A team with this name already exists" in response.content.decode()
    response = client.post(reverse("crm:team-edit", args=[other_team.pk]), {"name": "SALES"})
    assert response.status_code == 422
    assert "A team with this name already exists" in response.content.decode()
    other_team.refresh_from_db()
    assert other_team.name == "Support"
    assert client.post(reverse("crm:team-list"), {"name": ""}).status_code == 422
    # the same name in another tenant is fine
    foreign = services.team_create(
        tenant=other_tenant,
        actor=_admin_of(other_tenant),
        name="Sales",
    )
    assert foreign.tenant_id == other_tenant.pk
    assert Team.objects.for_tenant(tenant).count() == 2


def _admin_of(tenant):
    return Membership.objects.create(tenant=tenant, user=UserFactory(), role=Role.ADMIN).user


def test_delete_an_unused_team(tenant, admin_member, client_for):
    spare = TeamFactory(tenant=tenant, name="Spare")
    response = client_for(admin_member).post(reverse("crm:team-delete", args=[spare.pk]))
    assert response.status_code == 302
    assert not Team.objects.filter(pk=spare.pk).exists()


@pytest.mark.parametrize("used_by", ["member", "removed member", "contact"])
def test_a_used_team_cannot_be_deleted(used_by, tenant, admin_member, make_member, client_for):
    spare = TeamFactory(tenant=tenant, name="Spare")
    if used_by == "contact":
        ContactFactory(tenant=tenant, team=spare)
    else:
        member = make_member(tenant, Role.AGENT, teams=[spare])
        member.is_active = used_by == "member"
        member.save()
    client = client_for(admin_member)
    assert (
        'data-testid="team-in-use"' in client.get(reverse("crm:team-edit", args=[spare.pk])).content.decode()
    )
    response = client.post(reverse("crm:team-delete", args=[spare.pk]), follow=True)
    html = response.content.decode()
    assert "is still used by" in html and ("contacts" if used_by == "contact" else "members") in html
    assert Team.objects.filter(pk=spare.pk).exists()


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MANAGER, Role.AGENT])
def test_foreign_team_ids_are_404_like_missing_and_unchanged(
    role, tenant, team, foreign_member, make_member, client_for
):
    foreign_team = foreign_member.teams.get()
    client = client_for(make_member(tenant, role, teams=[team]))
    for name, method in [("crm:team-edit", "get"), ("crm:team-edit", "post"), ("crm:team-delete", "post")]:
        missing = getattr(client, method)(reverse(name, args=[MISSING]), {"name": "Hijacked"})
        response = getattr(client, method)(reverse(name, args=[foreign_team.pk]), {"name": "Hijacked"})
        assert missing.status_code == response.status_code == 404, name
        assert response.content == missing.content
    foreign_team.refresh_from_db()
    assert foreign_team.name != "Hijacked"


def test_managers_see_their_teams_read_only(tenant, team, other_team, manager_member, client_for):
    client = client_for(manager_member)
    response = client.get(reverse("crm:team-list"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Sales" in html and "Support" not in html
    assert 'data-testid="team-create-form"' not in html
    assert client.post(reverse("crm:team-list"), {"name": "Mine"}).status_code == 403
    # their own team: visible, not theirs to change (403); another team: 404 like a missing one
    assert client.get(reverse("crm:team-edit", args=[team.pk])).status_code == 403
    assert client.post(reverse("crm:team-edit", args=[team.pk]), {"name": "Renamed"}).status_code == 403
    assert client.post(reverse("crm:team-delete", args=[team.pk])).status_code == 403
    assert client.get(reverse("crm:team-edit", args=[other_team.pk])).status_code == 404
    assert set(Team.objects.for_tenant(tenant).values_list("name", flat=True)) == {"Sales", "Support"}


def test_team_form_ignores_fields_it_does_not_offer(tenant, other_tenant, admin_member, client_for):
    response = client_for(admin_member).post(
        reverse("crm:team-list"),
        {"name": "Night shift", "tenant": other_tenant.pk, "tenant_id": other_tenant.pk},
    )
    assert response.status_code == 302
    assert Team.objects.get(name="Night shift").tenant_id == tenant.pk
    assert not Team.objects.for_tenant(other_tenant).exists()
