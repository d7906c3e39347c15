"""Saved views: own and team-shared views; another tenant's or another team's view is a 404."""

import pytest

from activities.models import SavedView
from crm.models import Role
from tests.factories import TeamFactory

CREATE = "/activities/views/"


def open_url(view):
    return f"/activities/views/{view.pk}/"


@pytest.mark.django_db
def test_save_current_filters_and_open_them(tenant, agent_member, client_for):
    client = client_for(agent_member)
    response = client.post(
        CREATE, {"name": "My calls", "query": "?type=call&cursor=abc&bogus=1&direction=inbound"}
    )
    assert response.status_code == 302
    view = SavedView.objects.get(owner=agent_member.user)
    assert view.tenant_id == tenant.id and view.team_id is None
    assert view.query == "type=call&direction=inbound"  # only grid parameters, never a cursor
    opened = client.get(open_url(view))
    assert opened.status_code == 302 and opened["Location"] == "/activities/?type=call&direction=inbound"
    assert "My calls" in client.get("/activities/").content.decode()


@pytest.mark.django_db
def test_shared_view_visible_to_team_only(tenant, team, other_team, agent_member, make_member, client_for):
    view = SavedView.objects.create(
        tenant=tenant, owner=agent_member.user, name="Team view", query="type=call", team=team
    )
    private = SavedView.objects.create(tenant=tenant, owner=agent_member.user, name="Private", query="")
    teammate = make_member(tenant, Role.AGENT, teams=[team])
    outsider = make_member(tenant, Role.AGENT, teams=[other_team])

    teammate_page = client_for(teammate).get("/activities/").content.decode()
    assert "Team view" in teammate_page and "Private" not in teammate_page
    assert client_for(teammate).get(open_url(view)).status_code == 302
    assert client_for(teammate).get(open_url(private)).status_code == 404

    assert "Team view" not in client_for(outsider).get("/activities/").content.decode()
    assert client_for(outsider).get(open_url(view)).status_code == 404


@pytest.mark.django_db
def test_other_tenants_view_is_404_like_a_missing_one(tenant, agent_member, foreign_member, client_for):
    view = SavedView.objects.create(tenant=tenant, owner=agent_member.user, name="Mine", query="")
    client = client_for(foreign_member)
    foreign = client.get(open_url(view))
    missing = client.get("/activities/views/999999/")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.content == missing.content
    assert client.post(f"/activities/views/{view.pk}/delete/").status_code == 404
    assert SavedView.objects.filter(pk=view.pk).exists()


@pytest.mark.django_db
def test_share_only_with_own_team(tenant, agent_member, other_team, client_for):
    client = client_for(agent_member)
    client.post(CREATE, {"name": "Sneaky", "query": "", "team": other_team.pk})
    assert not SavedView.objects.filter(name="Sneaky").exists()
    foreign_team = TeamFactory()
    client.post(CREATE, {"name": "Sneaky2", "query": "", "team": foreign_team.pk})
    assert not SavedView.objects.filter(name="Sneaky2").exists()


@pytest.mark.django_db
def test_duplicate_or_blank_name_gives_message_and_keeps_existing(tenant, agent_member, client_for):
    client = client_for(agent_member)
    client.post(CREATE, {"name": "Calls", "query": "type=call"})
    response = client.post(CREATE, {"name": "Calls", "query": "type=email"}, follow=True)
    assert "already have a view named" in response.content.decode()
    assert list(SavedView.objects.values_list("query", flat=True)) == ["type=call"]
    response = client.post(CREATE, {"name": "  ", "query": ""}, follow=True)
    assert "not saved" in response.content.decode()
    assert SavedView.objects.count() == 1


@pytest.mark.django_db
def test_only_the_owner_deletes(tenant, team, agent_member, make_member, client_for):
    view = SavedView.objects.create(
        tenant=tenant, owner=agent_member.user, name="Shared", query="", team=team
    )
    teammate = make_member(tenant, Role.AGENT, teams=[team])
    assert client_for(teammate).post(f"/activities/views/{view.pk}/delete/").status_code == 404
    assert client_for(agent_member).post(f"/activities/views/{view.pk}/delete/").status_code == 302
    assert not SavedView.objects.filter(pk=view.pk).exists()
