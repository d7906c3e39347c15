"""Mass assignment: every state-changing form and API ignores or refuses the fields it does not offer.

The bug class (shared reference notes, reliability.md section 2.6 "Mass assignment" and scenario 6):
a request carries columns the form or API never offered -- Vikunja CVE-2026-123526 (a read-only
``external_id`` was settable), DoraCMS CVE-2026-120448 (an API key rebound to another ``userId``) -- and
its foreign-key variants, another tenant's id in a field that *is* offered (SuiteCRM CVE-2026-61650,
Sentry PR #108156).

``test_smuggled_fields_are_ignored`` runs one case per endpoint (``CASES``, keyed by URL name) twice:

- ``other_tenant``: the smuggled ids are another tenant's (its team, its member's user, a row of its own);
- ``same_tenant``: the ids are the requester's own tenant's, but outside what the form lets them set (a
  team they are not in, a colleague of that team, another row of the same table).

Each case sends a valid request *plus* ``tenant`` / ``tenant_id`` (another tenant), ``team`` /
``team_id``, ``owner`` / ``owner_id`` / ``agent`` / ``agent_id`` / ``user`` / ``user_id`` /
``created_by`` / ``assignee`` / ``author`` (the smuggled user), ``role=admin``, ``is_staff=on``,
``is_superuser=on``, ``id`` / ``pk`` (another row) and a few columns of its own model (a mailbox's
``secret_encrypted``, a ticket's ``status_version``, an activity's ``source``...). Fields the form does
offer get valid values instead. Then the case re-reads its row: in the requester's tenant, with the
values the endpoint decides (owner = requester, team = the entity's or the requester's team...) and no
foreign key pointing at a smuggled id (``World.assert_clean``). The JSON activities API refuses unknown
fields with a 400 naming the field, which is checked key by key.

``test_offered_field_refuses_foreign_values`` covers the fields a form does offer (a team, an owner, an
account, a role, a contact, an agent's email): another tenant's value, or one outside the requester's
teams or rights, is a form error / JSON 4xx naming the field, and nothing is written. (The crm and
activities forms answer an invalid POST with 422; the ticket and mail forms re-render it with 200, and a
saved view redirects back to the grid with the error as a message: each is asserted as it is.)

Around every case the other tenant is digested whole (every column of every row of every tenant table,
``tests/test_url_isolation_matrix.tenant_snapshot``), the rows named by smuggled ids are re-read, and no
user may have become staff or superuser, no membership may have changed role, no new membership may be
more than an agent. ``test_every_state_changing_endpoint_is_covered`` walks the URL configuration and
fails when a view that accepts POST has no case here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.db.models import Q
from django.test import Client
from django.urls import get_resolver, reverse
from django.utils import timezone
from django.utils.html import escape

from activities.models import Activity, ActivitySource, ActivityType, Direction, SavedView
from contactcenter import services as cc_services
from contactcenter.models import (
    Channel,
    Interaction,
    InteractionMessage,
    InteractionStatus,
    Ticket,
    TicketStatus,
    WidgetChat,
)
from crm import services as crm_services
from crm.middleware import SESSION_KEY
from crm.models import ApiKey, Contact, Membership, Role, Team, Tenant
from emailsync.models import Mailbox, MailboxStatus, OutgoingEmail, SmtpSettings
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ApiKeyFactory,
    ContactFactory,
    InteractionFactory,
    LeadFactory,
    MailboxFactory,
    OutgoingEmailFactory,
    QueueFactory,
    SavedViewFactory,
    SmtpSettingsFactory,
    TeamFactory,
    TicketFactory,
)
from tests.plugins.services import free_port
from tests.test_url_isolation_matrix import _walk, allowed_methods, changed, tenant_snapshot

pytestmark = pytest.mark.django_db

User = get_user_model()
VARIANTS = ("other_tenant", "same_tenant")
USER_KEYS = (
    "owner",
    "owner_id",
    "agent",
    "agent_id",
    "user",
    "user_id",
    "created_by",
    "created_by_id",
    "assignee",
    "assignee_id",
    "author",
    "author_id",
)
ORIGIN = "https://shop.example"
PASSWORD = "Unguessable-horse-42"  # noqa: S105 - a test password for new members


@pytest.fixture(autouse=True)
def _fast_and_local(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMAILSYNC_ALLOW_PRIVATE_HOSTS = True
    settings.WIDGET_RATE_LIMITS = {"visitor": (10_000, 60), "start": (10_000, 60), "tenant": (10_000, 60)}


# --- the world a case runs in ------------------------------------------------------------------------------


@dataclass
class Place:
    """Where smuggled ids point: a tenant, one of its teams and a member of that team."""

    tenant: Tenant
    team: Team
    member: Membership

    @property
    def user(self):
        return self.member.user


def _frozen(row) -> dict:
    values = type(row)._base_manager.filter(pk=row.pk).values().first()
    if isinstance(row, Membership):
        values["teams"] = sorted(row.teams.values_list("pk", flat=True))
    return values


@dataclass
class World:
    variant: str
    tenant: Tenant
    other_tenant: Tenant
    team: Team
    other_team: Team
    admin: Membership
    manager: Membership
    agent: Membership
    foreign: Membership
    colleague: Membership  # same tenant, other_team only
    client_for: Callable
    kept: list = field(default_factory=list)
    armed: tuple | None = None

    def arm(self) -> None:
        """Set-up done, the requests come: digest the other tenant and everyone's privileges now."""
        if self.armed is None:
            self.armed = (tenant_snapshot(self.other_tenant.pk), *_privileges())

    @property
    def elsewhere(self) -> Place:
        """The smuggle target: another tenant, or the requester's tenant outside their team."""
        if self.variant == "other_tenant":
            return Place(self.other_tenant, self.foreign.teams.get(), self.foreign)
        return Place(self.tenant, self.other_team, self.colleague)

    def keep(self, *rows):
        """These rows (named by smuggled ids, or refused writes) must come out of the case unchanged."""
        self.kept.extend((row, _frozen(row)) for row in rows)
        return rows[0] if len(rows) == 1 else rows

    def smuggle(self, *, row=None, offered=(), as_json=False, **extra) -> dict:
        """The fields a form does not offer, pointing at ``elsewhere`` (``offered`` ones left out)."""
        self.arm()
        place = self.elsewhere
        data = {
            "tenant": self.other_tenant.pk,
            "tenant_id": self.other_tenant.pk,
            "team": place.team.pk,
            "team_id": place.team.pk,
            **dict.fromkeys(USER_KEYS, place.user.pk),
            "role": Role.ADMIN.value,
            "is_staff": True if as_json else "on",
            "is_superuser": True if as_json else "on",
        }
        if row is not None:
            data["id"] = data["pk"] = row.pk
        data.update(extra)
        for name in offered:
            data.pop(name, None)
        return data

    def assert_clean(self, row, **expected):
        """Re-read ``row``: in the requester's tenant, no user / team foreign key at a smuggled id, and
        the ``expected`` values."""
        row = type(row)._base_manager.get(pk=row.pk)
        place = self.elsewhere
        for f in row._meta.concrete_fields:
            if not f.is_relation:
                continue
            value = getattr(row, f.attname)
            if f.related_model is Tenant:
                assert value == self.tenant.pk, f"{row._meta.label}.{f.name} = {value}"
            elif f.related_model is User:
                assert value != place.user.pk, f"{row._meta.label}.{f.name} took the smuggled user"
            elif f.related_model is Team:
                assert value != place.team.pk, f"{row._meta.label}.{f.name} took the smuggled team"
        for name, value in expected.items():
            assert getattr(row, name) == value, (
                f"{row._meta.label}.{name}: {getattr(row, name)!r} != {value!r}"
            )
        return row


@pytest.fixture
def world(tenant, other_tenant, team, other_team, admin_member, manager_member, agent_member, foreign_member,
          make_member, client_for):  # fmt: skip
    def _make(variant="other_tenant"):
        return World(
            variant=variant,
            tenant=tenant,
            other_tenant=other_tenant,
            team=team,
            other_team=other_team,
            admin=admin_member,
            manager=manager_member,
            agent=agent_member,
            foreign=foreign_member,
            colleague=make_member(tenant, Role.AGENT, teams=[other_team], email=True),
            client_for=client_for,
        )

    return _make


def _privileges() -> tuple:
    staff = set(User.objects.filter(Q(is_staff=True) | Q(is_superuser=True)).values_list("pk", flat=True))
    roles = dict(Membership.objects.values_list("pk", "role"))
    return staff, roles


def _guarded(w: World, run: Callable[[World], None]) -> None:
    """Run a case; then: the other tenant is untouched, the kept rows too, nobody gained a privilege."""
    run(w)
    assert w.armed is not None, "the case never called smuggle() or arm() before its requests"
    foreign_before, staff_before, roles_before = w.armed
    assert changed(foreign_before, tenant_snapshot(w.other_tenant.pk)) == {}
    for row, before in w.kept:
        assert _frozen(row) == before, f"{row._meta.label} {row.pk} changed"
    staff_after, roles_after = _privileges()
    assert staff_after == staff_before == set(), "somebody became staff or superuser"
    assert {pk: roles_after[pk] for pk in roles_before} == roles_before, "a member's role changed"
    assert {r for pk, r in roles_after.items() if pk not in roles_before} <= {Role.AGENT}, (
        "new member above agent"
    )


# --- helpers ------------------------------------------------------------------------------------------


def _ok_redirect(response):
    assert response.status_code == 302, (response.status_code, response.content[:2000])


def assert_form_error(response, name: str, *, statuses=(200, 422)):
    """A re-rendered form with an error on ``name`` that the page shows."""
    assert response.status_code in statuses, response.status_code
    form = response.context["form"]
    assert name in form.errors, form.errors
    body = response.content.decode()
    assert any(escape(message) in body for message in form.errors[name]), form.errors[name]


def _when(dt) -> str:
    return timezone.localtime(dt).strftime("%Y-%m-%dT%H:%M")


def _contact(w: World, place: Place | None = None, **kwargs):
    place = place or Place(w.tenant, w.team, w.agent)
    return ContactFactory(tenant=place.tenant, team=place.team, owner=place.user, **kwargs)


def _manual_activity(place: Place, **kwargs):
    return ActivityFactory(
        tenant=place.tenant,
        team=place.team,
        user=place.user,
        created_by=place.user,
        type=ActivityType.CALL,
        direction=Direction.OUTBOUND,
        contact=ContactFactory(tenant=place.tenant, team=place.team),
        **kwargs,
    )


def _mailbox_form(port: int, **extra) -> dict:
    return {
        "email_address": "desk@acme.test",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "username": "desk@acme.test",
        "auth_method": "password",
        "secret": "mailbox-pw-1",
        "folders_text": "INBOX",
        **extra,
    }


def _chat(w: World, place: Place | None = None, **kwargs):
    place = place or Place(w.tenant, w.team, w.agent)
    queue = QueueFactory(tenant=place.tenant, team=place.team, channel=Channel.WEBCHAT)
    return InteractionFactory(tenant=place.tenant, queue=queue, team=place.team, **kwargs)


def _api_key(w: World) -> str:
    _, raw = crm_services.api_key_create(tenant=w.tenant, actor=w.admin.user, name="Importer")
    return raw


def _api_post(raw_key: str, body: dict, idem: str):
    return Client().post(
        "/api/v1/activities",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw_key}",
        HTTP_IDEMPOTENCY_KEY=idem,
    )


def _signed_event(w: World, payload: dict):
    row, secret = cc_services.channel_secret_create(tenant=w.tenant, label="gateway")
    body = json.dumps(payload).encode()
    ts = str(int(time.time()))
    return Client().generic(
        "POST",
        "/api/v1/contactcenter/events",
        body,
        content_type="application/json",
        HTTP_X_CRM_KEY=row.key_id,
        HTTP_X_CRM_TIMESTAMP=ts,
        HTTP_X_CRM_SIGNATURE="sha256=" + cc_services.signature_for(secret, ts, body),
    )


def _event(w: World, queue, **extra) -> dict:
    return {
        "event_id": "evt-mass-1",
        "type": "message",
        "channel": Channel.SMS,
        "interaction_id": "conv-mass-1",
        "occurred_at": timezone.now().isoformat(),
        "queue_id": queue.pk,
        "contact": {"phone": "+1 555 010 2030", "name": "Sam Sender"},
        "message": {"id": "m-1", "text": "Hello"},
        **extra,
    }


def _widget(w: World):
    queue = QueueFactory(tenant=w.tenant, team=w.team, channel=Channel.WEBCHAT, name="Website")
    return cc_services.widget_config_create(tenant=w.tenant, queue=queue, allowed_origins=[ORIGIN])


def _widget_call(path: str, data: dict, token: str | None = None):
    headers = {"HTTP_ORIGIN": ORIGIN}
    if token:
        headers["HTTP_X_WIDGET_TOKEN"] = token
    return Client().generic(
        "POST", path, json.dumps(data).encode(), content_type="application/json", **headers
    )


def _widget_chat(w: World):
    widget = _widget(w)
    started = _widget_call(
        f"/widget/{widget.public_key}/chats", {"name": "Vera", "email": "vera@example.test", "text": "Hi"}
    ).json()
    return widget, WidgetChat.objects.get(pk=started["chat_id"]), started["token"]


# --- cases: one per state-changing endpoint ----------------------------------------------------------

CASES: dict[str, Callable[[World], None]] = {}


def case(*names: str):
    def register(fn):
        for name in names:
            CASES[name] = fn
        return fn

    return register


@case("crm:contact-edit")
def contact_edit(w: World):
    contact = _contact(w, status="prospect")
    other = w.keep(_contact(w, w.elsewhere))
    data = {
        "name": "Renamed Person",
        "emails": "renamed@example.test",
        "phones": "",
        "owner": w.agent.user.pk,
        "team": w.team.pk,
        "account": "",
        "status": "customer",
    }
    response = w.client_for(w.agent).post(
        reverse("crm:contact-edit", args=[contact.pk]),
        {**data, **w.smuggle(row=other, offered=("owner", "team"))},
    )
    _ok_redirect(response)
    w.assert_clean(
        contact, name="Renamed Person", owner=w.agent.user, team=w.team, account=None, status="customer"
    )


@case("crm:lead-convert")
def lead_convert(w: World):
    lead = LeadFactory(tenant=w.tenant, team=w.team, owner=w.agent.user, email="convert@prospect.test")
    other = w.keep(_contact(w, w.elsewhere))
    response = w.client_for(w.agent).post(
        reverse("crm:lead-convert", args=[lead.pk]),
        {
            "account": "",
            "create_account_name": "",
            **w.smuggle(row=other, contact=other.pk, converted_contact=other.pk),
        },
    )
    _ok_redirect(response)
    lead = w.assert_clean(lead, status="converted", converted_by=w.agent.user)
    assert lead.converted_contact != other
    w.assert_clean(lead.converted_contact, team=w.team, owner=w.agent.user, emails=["convert@prospect.test"])
    w.assert_clean(Activity.objects.get(lead=lead), team=w.team)


@case("crm:api-keys")
def api_key_create(w: World):
    other = w.keep(ApiKeyFactory(tenant=w.elsewhere.tenant, created_by=w.elsewhere.user))
    response = w.client_for(w.admin).post(
        reverse("crm:api-keys"),
        {
            "name": "Newsletter",
            **w.smuggle(row=other, key_hash="0" * 64, prefix="stolen", revoked_at="2020-01-01"),
        },
    )
    assert response.status_code == 200 and response.context["new_key"]
    key = ApiKey.objects.get(tenant=w.tenant, name="Newsletter")
    w.assert_clean(key, created_by=w.admin.user, revoked_at=None)
    assert key.prefix != "stolen" and key.key_hash != "0" * 64
    assert crm_services.api_key_authenticate(response.context["new_key"]) == key


@case("crm:api-key-revoke")
def api_key_revoke(w: World):
    key = ApiKeyFactory(tenant=w.tenant, created_by=w.admin.user)
    other = w.keep(ApiKeyFactory(tenant=w.elsewhere.tenant))
    response = w.client_for(w.admin).post(reverse("crm:api-key-revoke", args=[key.pk]), w.smuggle(row=other))
    _ok_redirect(response)
    key = w.assert_clean(key, revoked_by=w.admin.user, created_by=w.admin.user)
    assert key.revoked_at is not None


@case("crm:activity-restore")
def activity_restore(w: World):
    own = Place(w.tenant, w.team, w.agent)
    activity = _manual_activity(own, deleted_at=timezone.now(), deleted_by=w.agent.user)
    other = w.keep(_manual_activity(w.elsewhere, deleted_at=timezone.now()))
    response = w.client_for(w.admin).post(
        reverse("crm:activity-restore", args=[activity.pk]), w.smuggle(row=other)
    )
    _ok_redirect(response)
    w.assert_clean(activity, deleted_at=None, team=w.team, user=w.agent.user, created_by=w.agent.user)


def _member_add(w: World, actor: Membership):
    other = w.keep(w.elsewhere.member)
    data = {
        "email": "new.person@acme.test",
        "first_name": "New",
        "last_name": "Person",
        "password": PASSWORD,
        "role": Role.AGENT.value,
        "teams": [w.team.pk],
        "can_manage_email": "on",
    }
    response = w.client_for(actor).post(
        reverse("crm:member-add"),
        {**data, **w.smuggle(row=other, offered=("role",), date_joined="2000-01-01")},
    )
    _ok_redirect(response)
    member = Membership.objects.get(tenant=w.tenant, user__email="new.person@acme.test")
    w.assert_clean(member, role=Role.AGENT, can_manage_email=True, is_active=True)
    assert list(member.teams.all()) == [w.team]
    w.assert_clean(member.user, is_staff=False, is_superuser=False, username="new.person@acme.test")
    assert member.user != other.user and member.pk != other.pk


@case("crm:member-add")
def member_add(w: World):
    _member_add(w, w.admin)
    _member_add_by_manager(w)


def _member_add_by_manager(w: World):
    data = {"email": "by.manager@acme.test", "first_name": "Bym", "password": PASSWORD, "role": "agent",
            "teams": [w.team.pk]}  # fmt: skip
    response = w.client_for(w.manager).post(
        reverse("crm:member-add"), {**data, **w.smuggle(offered=("role",))}
    )
    _ok_redirect(response)
    member = Membership.objects.get(tenant=w.tenant, user__email="by.manager@acme.test")
    w.assert_clean(member, role=Role.AGENT)
    assert list(member.teams.all()) == [w.team]
    w.assert_clean(member.user, is_staff=False, is_superuser=False)


@case("crm:member-edit")
def member_edit(w: World):
    target = w.agent
    user_before = _frozen(target.user)
    other = w.keep(w.elsewhere.member)
    for actor in (w.manager, w.admin):
        response = w.client_for(actor).post(
            reverse("crm:member-edit", args=[target.pk]),
            {"role": "agent", "teams": [w.team.pk], "can_manage_email": "on",
             **w.smuggle(row=other, offered=("role",), is_active="", time_zone="Pacific/Apia")},
        )  # fmt: skip
        _ok_redirect(response)
        member = w.assert_clean(target, user_id=target.user_id, role=Role.AGENT, can_manage_email=True)
        assert member.is_active and member.time_zone == target.time_zone
        assert list(member.teams.all()) == [w.team]
        assert _frozen(target.user) == user_before


@case("crm:member-deactivate", "crm:member-reactivate")
def member_deactivate_and_reactivate(w: World):
    other = w.keep(w.elsewhere.member)
    client = w.client_for(w.admin)
    _ok_redirect(client.post(reverse("crm:member-deactivate", args=[w.agent.pk]), w.smuggle(row=other)))
    w.assert_clean(w.agent, is_active=False, role=Role.AGENT, user_id=w.agent.user_id)
    _ok_redirect(client.post(reverse("crm:member-reactivate", args=[w.agent.pk]), w.smuggle(row=other)))
    w.assert_clean(w.agent, is_active=True, role=Role.AGENT, user_id=w.agent.user_id)


@case("crm:team-list")
def team_create(w: World):
    other = w.keep(w.elsewhere.team)
    response = w.client_for(w.admin).post(
        reverse("crm:team-list"), {"name": "Field sales", **w.smuggle(row=other)}
    )
    _ok_redirect(response)
    team = Team.objects.get(name="Field sales")
    w.assert_clean(team)
    assert team.pk != other.pk


@case("crm:team-edit")
def team_edit(w: World):
    other = w.keep(w.elsewhere.team)
    response = w.client_for(w.admin).post(
        reverse("crm:team-edit", args=[w.team.pk]), {"name": "Inside sales", **w.smuggle(row=other)}
    )
    _ok_redirect(response)
    w.assert_clean(w.team, name="Inside sales")


@case("crm:team-delete")
def team_delete(w: World):
    spare = TeamFactory(tenant=w.tenant, name="Spare")
    other = w.keep(w.elsewhere.team)
    response = w.client_for(w.admin).post(reverse("crm:team-delete", args=[spare.pk]), w.smuggle(row=other))
    _ok_redirect(response)
    assert not Team.objects.filter(pk=spare.pk).exists()


@case("activities:log")
def activity_log(w: World):
    contact = _contact(w)
    other = w.keep(_manual_activity(w.elsewhere))
    data = {"type": "call", "direction": "outbound", "summary": "Discussed renewal", "contact": contact.pk}
    extra = {"source": ActivitySource.EXTERNAL, "dedup_key": "api:stolen", "deleted_at": "2020-01-01"}
    response = w.client_for(w.agent).post(
        reverse("activities:log"), {**data, **w.smuggle(row=other, **extra)}
    )
    _ok_redirect(response)
    activity = Activity.objects.get(tenant=w.tenant, summary="Discussed renewal")
    w.assert_clean(
        activity,
        team=w.team,
        user=w.agent.user,
        created_by=w.agent.user,
        source=ActivitySource.MANUAL,
        dedup_key=None,
        deleted_at=None,
        contact=contact,
    )


@case("activities:edit")
def activity_edit(w: World):
    activity = _manual_activity(Place(w.tenant, w.team, w.agent), summary="Old summary")
    other = w.keep(_manual_activity(w.elsewhere))
    data = {
        "type": "call",
        "direction": "inbound",
        "summary": "New summary",
        "contact": activity.contact_id,
        "occurred_at": _when(activity.occurred_at),
    }
    extra = {"source": ActivitySource.EXTERNAL, "dedup_key": "api:stolen"}
    response = w.client_for(w.agent).post(
        reverse("activities:edit", args=[activity.pk]), {**data, **w.smuggle(row=other, **extra)}
    )
    _ok_redirect(response)
    w.assert_clean(
        activity,
        summary="New summary",
        direction="inbound",
        team=w.team,
        user=w.agent.user,
        created_by=w.agent.user,
        source=ActivitySource.MANUAL,
        dedup_key=None,
    )


@case("activities:delete")
def activity_delete(w: World):
    activity = _manual_activity(Place(w.tenant, w.team, w.agent))
    other = w.keep(_manual_activity(w.elsewhere))
    response = w.client_for(w.agent).post(
        reverse("activities:delete", args=[activity.pk]), w.smuggle(row=other)
    )
    _ok_redirect(response)
    activity = w.assert_clean(activity, deleted_by=w.agent.user, team=w.team, user=w.agent.user)
    assert activity.deleted_at is not None


@case("activities:saved-view-create")
def saved_view_create(w: World):
    other = w.keep(SavedViewFactory(tenant=w.elsewhere.tenant, owner=w.elsewhere.user))
    response = w.client_for(w.agent).post(
        reverse("activities:saved-view-create"),
        {"name": "My calls", "query": "type=call", "team": "", **w.smuggle(row=other, offered=("team",))},
    )
    _ok_redirect(response)
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Saved view “My calls”."]
    view = SavedView.objects.get(tenant=w.tenant, name="My calls")
    w.assert_clean(view, owner=w.agent.user, team=None, query="type=call")


@case("activities:saved-view-delete")
def saved_view_delete(w: World):
    view = SavedViewFactory(tenant=w.tenant, owner=w.agent.user)
    other = w.keep(SavedViewFactory(tenant=w.elsewhere.tenant, owner=w.elsewhere.user))
    response = w.client_for(w.agent).post(
        reverse("activities:saved-view-delete", args=[view.pk]), w.smuggle(row=other)
    )
    _ok_redirect(response)
    assert not SavedView.objects.filter(pk=view.pk).exists()


@case("activities:api-activities")
def activities_api(w: World):
    """The API refuses every field it does not know, naming it; a clean request then succeeds."""
    raw = _api_key(w)
    contact = _contact(w)
    other = w.keep(_manual_activity(w.elsewhere))
    body = {"type": "call", "summary": "From the dialer", "contact_id": contact.pk}
    smuggled = w.smuggle(row=other, as_json=True, source_id=other.pk, dedup_key="x", account_id=1, lead_id=1)
    count = Activity.objects.count()
    for n, (name, value) in enumerate(smuggled.items()):
        response = _api_post(raw, {**body, name: value}, idem=f"smuggle-{n}")
        assert response.status_code == 400, (name, response.content)
        assert response.json() == {"error": f"Unknown field {name!r}.", "field": name}
    assert Activity.objects.count() == count
    response = _api_post(raw, body, idem="clean")
    assert response.status_code == 201
    w.assert_clean(
        Activity.objects.get(pk=response.json()["id"]),
        contact=contact,
        team=w.team,
        source=ActivitySource.EXTERNAL,
        user=None,
        created_by=None,
    )


@case("contactcenter:live-chat-reply")
def live_chat_reply(w: World):
    chat = _chat(w)
    other = w.keep(_chat(w, w.elsewhere))
    response = w.client_for(w.agent).post(
        reverse("contactcenter:live-chat-reply", args=[chat.pk]),
        {"text": "On its way", **w.smuggle(row=other, interaction=other.pk, author_user=w.elsewhere.user.pk,
                                          direction="inbound", kind="system")},
    )  # fmt: skip
    _ok_redirect(response)
    assert not [str(m) for m in get_messages(response.wsgi_request)]
    w.assert_clean(chat, agent=w.agent.user, team=w.team, status=InteractionStatus.OPEN)
    message = InteractionMessage.objects.get(interaction=chat)
    w.assert_clean(
        message, author_user=w.agent.user, direction=Direction.OUTBOUND, kind="message", text="On its way"
    )


@case("contactcenter:live-chat-end")
def live_chat_end(w: World):
    chat = _chat(w, agent=w.agent.user)
    other = w.keep(_chat(w, w.elsewhere))
    response = w.client_for(w.agent).post(
        reverse("contactcenter:live-chat-end", args=[chat.pk]), w.smuggle(row=other)
    )
    _ok_redirect(response)
    w.assert_clean(chat, status=InteractionStatus.CLOSED, agent=w.agent.user, team=w.team)


@case("contactcenter:ticket-create")
def ticket_create(w: World):
    other = w.keep(TicketFactory(tenant=w.elsewhere.tenant, team=w.elsewhere.team))
    data = {"subject": "Printer on fire", "description": "Smoke", "team": w.team.pk, "assignee": ""}
    extra = {"status": TicketStatus.CLOSED, "status_version": 7}
    response = w.client_for(w.agent).post(
        reverse("contactcenter:ticket-create"),
        {**data, **w.smuggle(row=other, offered=("team", "assignee"), **extra)},
    )
    _ok_redirect(response)
    ticket = Ticket.objects.get(tenant=w.tenant, subject="Printer on fire")
    w.assert_clean(
        ticket,
        team=w.team,
        assignee=None,
        created_by=w.agent.user,
        status=TicketStatus.OPEN,
        status_version=0,
    )


@case("contactcenter:ticket-status")
def ticket_status(w: World):
    ticket = TicketFactory(tenant=w.tenant, team=w.team, created_by=w.admin.user, assignee=w.agent.user)
    other = w.keep(TicketFactory(tenant=w.elsewhere.tenant, team=w.elsewhere.team))
    response = w.client_for(w.agent).post(
        reverse("contactcenter:ticket-status", args=[ticket.pk]),
        {"status": "pending", "version": 0, **w.smuggle(row=other, status_version=9, subject="Hijacked")},
    )
    _ok_redirect(response)
    w.assert_clean(
        ticket,
        status=TicketStatus.PENDING,
        status_version=1,
        subject=ticket.subject,
        team=w.team,
        assignee=w.agent.user,
        created_by=w.admin.user,
    )


@case("contactcenter:api-events")
def channel_events(w: World):
    """Signed events read only their documented fields; extras (top level, contact, message) are ignored."""
    queue = QueueFactory(tenant=w.tenant, team=w.team, channel=Channel.SMS)
    other = w.keep(_chat(w, w.elsewhere))
    smuggled = w.smuggle(
        row=other, as_json=True, interaction=other.pk, contact_id=_contact(w, w.elsewhere).pk
    )
    payload = _event(w, queue, **smuggled)
    payload["contact"].update(smuggled)
    # message.id and message.author are the message's own documented fields (strings).
    payload["message"].update({k: v for k, v in smuggled.items() if k not in ("id", "author")})
    payload["message"]["author_user"] = w.elsewhere.user.pk
    response = _signed_event(w, payload)
    assert response.status_code == 201, response.content
    interaction = Interaction.objects.get(external_id="conv-mass-1")
    w.assert_clean(interaction, queue=queue, team=w.team, agent=None)
    contact = w.assert_clean(interaction.contact, team=w.team, owner=None, account=None, name="Sam Sender")
    assert contact != other.contact
    w.assert_clean(InteractionMessage.objects.get(interaction=interaction), author_user=None, text="Hello")


@case("contactcenter:widget-chat-start")
def widget_chat_start(w: World):
    widget = _widget(w)
    other = w.keep(_chat(w, w.elsewhere))
    other_contact = w.keep(_contact(w, w.elsewhere))
    smuggled = w.smuggle(row=other, as_json=True, queue_id=other.queue_id, contact_id=other_contact.pk,
                         interaction_id=other.pk, widget_id=other.pk, chat_id=other.pk)  # fmt: skip
    response = _widget_call(
        f"/widget/{widget.public_key}/chats",
        {"name": "Vera", "email": "vera@example.test", "text": "Hi", **smuggled},
    )
    assert response.status_code == 201, response.content
    chat = w.assert_clean(WidgetChat.objects.get(pk=response.json()["chat_id"]), widget=widget)
    interaction = w.assert_clean(chat.interaction, queue=widget.queue, team=w.team, agent=None)
    assert interaction.contact != other_contact
    w.assert_clean(interaction.contact, team=w.team, owner=None, emails=["vera@example.test"])


@case("contactcenter:widget-messages")
def widget_message(w: World):
    widget, chat, token = _widget_chat(w)
    other = w.keep(_chat(w, w.elsewhere))
    smuggled = w.smuggle(row=other, as_json=True, interaction_id=other.pk, chat_id=other.pk,
                         direction="outbound", kind="system", author_user=w.elsewhere.user.pk)  # fmt: skip
    response = _widget_call(
        f"/widget/{widget.public_key}/chats/{chat.pk}/messages", {"text": "Where is it?", **smuggled}, token
    )
    assert response.status_code == 201, response.content
    message = InteractionMessage.objects.get(pk=response.json()["message"]["id"])
    w.assert_clean(
        message, interaction=chat.interaction, direction=Direction.INBOUND, kind="message", author_user=None
    )


@case("contactcenter:widget-end")
def widget_end(w: World):
    widget, chat, token = _widget_chat(w)
    other = w.keep(_chat(w, w.elsewhere))
    response = _widget_call(
        f"/widget/{widget.public_key}/chats/{chat.pk}/end", w.smuggle(row=other, as_json=True), token
    )
    assert response.status_code == 200, response.content
    w.assert_clean(chat.interaction, status=InteractionStatus.CLOSED, agent=None, team=w.team)


@case("emailsync:mailbox-add")
def mailbox_add(w: World):
    other = w.keep(MailboxFactory(tenant=w.elsewhere.tenant, owner=w.elsewhere.user, team=w.elsewhere.team))
    extra = {"secret_encrypted": "forged", "status": MailboxStatus.DISABLED, "lease_token": 99,
             "messages_imported": 1000, "folders": "Trash"}  # fmt: skip
    response = w.client_for(w.agent).post(
        reverse("emailsync:mailbox-add"), {**_mailbox_form(143), **w.smuggle(row=other, **extra)}
    )
    _ok_redirect(response)
    mailbox = w.assert_clean(
        Mailbox.objects.get(tenant=w.tenant, username="desk@acme.test"),
        owner=w.agent.user,
        team=w.team,
        status=MailboxStatus.ACTIVE,
        lease_token=0,
        messages_imported=0,
        folders=["INBOX"],
    )
    assert mailbox.get_secret() == "mailbox-pw-1"


@case("emailsync:mailbox-edit")
def mailbox_edit(w: World):
    mailbox = MailboxFactory(tenant=w.tenant, owner=w.agent.user, team=w.team, email_address="me@acme.test")
    other = w.keep(MailboxFactory(tenant=w.elsewhere.tenant, owner=w.elsewhere.user, team=w.elsewhere.team))
    extra = {"secret_encrypted": "forged", "lease_token": 99, "messages_imported": 1000}
    response = w.client_for(w.agent).post(
        reverse("emailsync:mailbox-edit", args=[mailbox.pk]),
        {**_mailbox_form(993, secret=""), **w.smuggle(row=other, **extra)},
    )
    _ok_redirect(response)
    mailbox = w.assert_clean(
        mailbox, owner=w.agent.user, team=w.team, port=993, lease_token=0, messages_imported=0
    )
    assert mailbox.get_secret() == "secret"


@case("emailsync:mailbox-test-new")
def mailbox_test_new(w: World):
    other = w.keep(MailboxFactory(tenant=w.elsewhere.tenant, owner=w.elsewhere.user))
    response = w.client_for(w.agent).post(
        reverse("emailsync:mailbox-test-new"), {**_mailbox_form(free_port()), **w.smuggle(row=other)}
    )
    assert response.status_code == 200 and response.context["ok"] is False
    assert not Mailbox.objects.filter(owner=w.agent.user).exists()


@case("emailsync:mailbox-test", "emailsync:mailbox-sync")
def mailbox_test_and_sync(w: World):
    mailbox = MailboxFactory(tenant=w.tenant, owner=w.agent.user, team=w.team, port=free_port())
    other = w.keep(MailboxFactory(tenant=w.elsewhere.tenant, owner=w.elsewhere.user, team=w.elsewhere.team))
    client = w.client_for(w.agent)
    _ok_redirect(client.post(reverse("emailsync:mailbox-test", args=[mailbox.pk]), w.smuggle(row=other)))
    _ok_redirect(client.post(reverse("emailsync:mailbox-sync", args=[mailbox.pk]), w.smuggle(row=other)))
    mailbox = w.assert_clean(mailbox, owner=w.agent.user, team=w.team, status=MailboxStatus.ACTIVE)
    assert mailbox.next_sync_at is not None


@case("crm:operations-mailbox-sync", "crm:operations-outgoing-retry")
def operations_actions(w: World):
    SmtpSettingsFactory(tenant=w.tenant)
    mailbox = MailboxFactory(tenant=w.tenant, owner=w.agent.user, team=w.team, port=free_port())
    failed = OutgoingEmailFactory(
        tenant=w.tenant, author=w.agent.user, subject="Offer", status="failed", error="refused", attempts=3
    )
    other_mailbox = w.keep(
        MailboxFactory(tenant=w.elsewhere.tenant, owner=w.elsewhere.user, team=w.elsewhere.team)
    )
    other_email = w.keep(
        OutgoingEmailFactory(tenant=w.elsewhere.tenant, author=w.elsewhere.user, status="failed", error="x")
    )
    client = w.client_for(w.admin)
    _ok_redirect(
        client.post(
            reverse("crm:operations-mailbox-sync", args=[mailbox.pk]),
            w.smuggle(row=other_mailbox, status="disabled", lease_token=99, email_address="hijack@evil.test"),
        )
    )
    w.assert_clean(
        mailbox, owner=w.agent.user, team=w.team, status=MailboxStatus.ACTIVE, lease_token=0,
        email_address=mailbox.email_address,
    )  # fmt: skip
    _ok_redirect(
        client.post(
            reverse("crm:operations-outgoing-retry", args=[failed.pk]),
            w.smuggle(row=other_email, status="sent", subject="Hijacked", to="victim@evil.test", attempts=0),
        )
    )
    w.assert_clean(failed, author=w.agent.user, subject="Offer", status="queued", to=failed.to, error="")


@case("emailsync:smtp-settings")
def smtp_settings(w: World):
    other = w.keep(SmtpSettingsFactory(tenant=w.other_tenant, host="smtp.other.test"))
    data = {"host": "127.0.0.1", "port": 2525, "security": "none", "username": "u", "from_address": "",
            "secret": "smtp-pw"}  # fmt: skip
    response = w.client_for(w.admin).post(
        reverse("emailsync:smtp-settings"), {**data, **w.smuggle(row=other, secret_encrypted="forged")}
    )
    _ok_redirect(response)
    smtp = w.assert_clean(SmtpSettings.objects.get(tenant=w.tenant), host="127.0.0.1", port=2525)
    assert smtp.pk != other.pk and smtp.get_secret() == "smtp-pw"


@case("emailsync:compose")
def compose(w: World):
    contact = _contact(w, Place(w.tenant, w.team, w.manager), emails=["buyer@customer.test"])
    other_contact = _contact(w, w.elsewhere)
    other = w.keep(
        OutgoingEmailFactory(tenant=w.elsewhere.tenant, author=w.elsewhere.user, contact=other_contact)
    )
    extra = {"contact": other_contact.pk, "status": "sent", "message_id": "<forged@x>", "attempts": 5}
    response = w.client_for(w.manager).post(
        reverse("emailsync:compose", args=[contact.pk]),
        {"to": "buyer@customer.test", "subject": "Offer", "body": "Hi", "action": "draft",
         **w.smuggle(row=other, **extra)},
    )  # fmt: skip
    _ok_redirect(response)
    w.assert_clean(
        OutgoingEmail.objects.get(tenant=w.tenant, subject="Offer"),
        author=w.manager.user,
        contact=contact,
        status="draft",
        message_id="",
        attempts=0,
    )


@case("emailsync:outgoing-detail")
def outgoing_draft_edit(w: World):
    contact = _contact(w, Place(w.tenant, w.team, w.manager))
    draft = OutgoingEmailFactory(tenant=w.tenant, author=w.manager.user, contact=contact)
    other_contact = _contact(w, w.elsewhere)
    other = w.keep(
        OutgoingEmailFactory(tenant=w.elsewhere.tenant, author=w.elsewhere.user, contact=other_contact)
    )
    response = w.client_for(w.manager).post(
        reverse("emailsync:outgoing-detail", args=[draft.pk]),
        {"to": "x@customer.test", "subject": "Edited", "body": "v2", "action": "draft",
         **w.smuggle(row=other, contact=other_contact.pk, status="sent")},
    )  # fmt: skip
    _ok_redirect(response)
    w.assert_clean(draft, subject="Edited", author=w.manager.user, contact=contact, status="draft")


@case("tenant-switch")
def tenant_switch(w: World):
    client = w.client_for(w.agent)
    response = client.post(reverse("tenant-switch"), {"tenant": w.tenant.pk, "next": "/",
                                                      **w.smuggle(offered=("tenant",))})  # fmt: skip
    _ok_redirect(response)
    assert client.session[SESSION_KEY] == w.tenant.pk


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_smuggled_fields_are_ignored(name, variant, world):
    _guarded(world(variant), CASES[name])


# --- offered fields: a value outside the tenant (or the requester's teams / rights) is refused ----------

REFUSALS: dict[str, Callable[[World], None]] = {}


def refusal(fn):
    REFUSALS[fn.__name__] = fn
    return fn


def _contact_edit_refused(w: World, name: str, value):
    contact = w.keep(_contact(w, status="prospect"))
    data = {"name": "Hijack", "emails": "", "phones": "", "owner": w.agent.user.pk, "team": w.team.pk,
            "account": "", "status": "customer", name: value}  # fmt: skip
    w.arm()
    response = w.client_for(w.agent).post(reverse("crm:contact-edit", args=[contact.pk]), data)
    assert_form_error(response, name, statuses=(422,))
    assert not Activity.objects.filter(tenant=w.tenant).exists()


@refusal
def contact_edit_owner_of_another_tenant(w: World):
    _contact_edit_refused(w, "owner", w.foreign.user.pk)


@refusal
def contact_edit_team_of_another_tenant(w: World):
    _contact_edit_refused(w, "team", w.foreign.teams.get().pk)


@refusal
def contact_edit_team_the_agent_is_not_in(w: World):
    _contact_edit_refused(w, "team", w.other_team.pk)


@refusal
def contact_edit_account_of_another_tenant(w: World):
    _contact_edit_refused(w, "account", AccountFactory(tenant=w.other_tenant).pk)


@refusal
def lead_convert_account_of_another_tenant(w: World):
    lead = w.keep(LeadFactory(tenant=w.tenant, team=w.team, owner=w.agent.user))
    account = AccountFactory(tenant=w.other_tenant)
    w.arm()
    response = w.client_for(w.agent).post(
        reverse("crm:lead-convert", args=[lead.pk]), {"account": account.pk}
    )
    assert_form_error(response, "account", statuses=(422,))
    assert not Contact.objects.filter(tenant=w.tenant).exists()


@refusal
def activity_log_contact_of_another_tenant_or_team(w: World):
    client = w.client_for(w.agent)
    contacts = (_contact(w, Place(w.other_tenant, w.foreign.teams.get(), w.foreign)),
                _contact(w, Place(w.tenant, w.other_team, w.colleague)))  # fmt: skip
    w.arm()
    for contact in contacts:
        data = {"type": "note", "summary": "Sneaky", "contact": contact.pk}
        assert_form_error(client.post(reverse("activities:log"), data), "contact", statuses=(422,))
    assert not Activity.objects.filter(tenant=w.tenant).exists()


@refusal
def activity_edit_contact_of_another_tenant(w: World):
    activity = w.keep(_manual_activity(Place(w.tenant, w.team, w.agent)))
    foreign_contact = ContactFactory(tenant=w.other_tenant)
    data = {
        "type": "note",
        "summary": "Moved",
        "contact": foreign_contact.pk,
        "occurred_at": _when(activity.occurred_at),
    }
    w.arm()
    response = w.client_for(w.agent).post(reverse("activities:edit", args=[activity.pk]), data)
    assert_form_error(response, "contact", statuses=(422,))


@refusal
def saved_view_team_of_another_tenant_or_team(w: World):
    client = w.client_for(w.agent)
    w.arm()
    for team in (w.foreign.teams.get(), w.other_team):
        response = client.post(reverse("activities:saved-view-create"), {"name": "Shared", "team": team.pk})
        assert response.status_code == 302
        message = [str(m) for m in get_messages(response.wsgi_request)][-1]
        assert message.startswith("The view was not saved. team: Select a valid choice."), message
    assert not SavedView.objects.exists()


def _member_add_refused(w: World, actor: Membership, field_name: str, **changes):
    data = {"email": "refused@acme.test", "first_name": "Ref", "password": PASSWORD, "role": "agent",
            "teams": [w.team.pk], **changes}  # fmt: skip
    w.arm()
    response = w.client_for(actor).post(reverse("crm:member-add"), data)
    assert_form_error(response, field_name, statuses=(422,))
    assert not User.objects.filter(email="refused@acme.test").exists()


@refusal
def member_add_team_of_another_tenant(w: World):
    _member_add_refused(w, w.admin, "teams", teams=[w.foreign.teams.get().pk])


@refusal
def member_add_admin_role_by_a_manager(w: World):
    _member_add_refused(w, w.manager, "role", role=Role.ADMIN.value)


@refusal
def member_add_team_the_manager_is_not_in(w: World):
    _member_add_refused(w, w.manager, "teams", teams=[w.other_team.pk])


@refusal
def member_edit_admin_role_by_a_manager(w: World):
    w.keep(w.agent, w.agent.user)
    w.arm()
    response = w.client_for(w.manager).post(
        reverse("crm:member-edit", args=[w.agent.pk]), {"role": "admin", "teams": [w.team.pk]}
    )
    assert_form_error(response, "role", statuses=(422,))


@refusal
def member_edit_team_of_another_tenant(w: World):
    w.keep(w.agent)
    w.arm()
    response = w.client_for(w.admin).post(
        reverse("crm:member-edit", args=[w.agent.pk]), {"role": "agent", "teams": [w.foreign.teams.get().pk]}
    )
    assert_form_error(response, "teams", statuses=(422,))


def _ticket_refused(w: World, name: str, value):
    w.arm()
    response = w.client_for(w.agent).post(
        reverse("contactcenter:ticket-create"), {"subject": "Refused", "team": w.team.pk, name: value}
    )
    assert_form_error(response, name)
    assert not Ticket.objects.exists() and not Activity.objects.exists()


@refusal
def ticket_team_of_another_tenant(w: World):
    _ticket_refused(w, "team", w.foreign.teams.get().pk)


@refusal
def ticket_team_the_agent_is_not_in(w: World):
    _ticket_refused(w, "team", w.other_team.pk)


@refusal
def ticket_assignee_of_another_tenant(w: World):
    _ticket_refused(w, "assignee", w.foreign.user.pk)


@refusal
def ticket_contact_of_another_tenant(w: World):
    _ticket_refused(w, "contact", ContactFactory(tenant=w.other_tenant).pk)


@refusal
def api_contact_of_another_tenant(w: World):
    raw = _api_key(w)
    foreign_contact = ContactFactory(tenant=w.other_tenant)
    w.arm()
    response = _api_post(raw, {"type": "call", "summary": "x", "contact_id": foreign_contact.pk}, "f")
    assert response.status_code == 400
    assert response.json() == {"error": "No contact with that id.", "field": "contact_id"}
    assert not Activity.objects.exists()


@refusal
def event_agent_or_queue_of_another_tenant(w: World):
    queue = QueueFactory(tenant=w.tenant, team=w.team, channel=Channel.SMS)
    foreign_queue = QueueFactory(tenant=w.other_tenant, channel=Channel.SMS)
    w.arm()
    for field_name, extra in (
        ("agent_email", {"agent_email": w.foreign.user.email}),
        ("queue_id", {"queue_id": foreign_queue.pk}),
        (
            "transfer.to_agent_email",
            {"type": "transfer", "transfer": {"to_agent_email": w.foreign.user.email}},
        ),
        ("transfer.to_queue_id", {"type": "transfer", "transfer": {"to_queue_id": foreign_queue.pk}}),
    ):
        response = _signed_event(w, _event(w, queue, **extra))
        assert response.status_code == 400, response.content
        assert response.json()["field"] == field_name
    assert not Interaction.objects.exists() and not Contact.objects.exists()


@refusal
def tenant_switch_to_another_tenant(w: World):
    client = w.client_for(w.agent)
    w.arm()
    client.get("/")
    before = client.session.get(SESSION_KEY)
    response = client.post(reverse("tenant-switch"), {"tenant": w.other_tenant.pk})
    assert response.status_code == 400 and b"You are not a member of that tenant." in response.content
    assert client.session.get(SESSION_KEY) == before != w.other_tenant.pk


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_offered_field_refuses_foreign_values(name, world):
    _guarded(world(), REFUSALS[name])


# --- coverage -----------------------------------------------------------------------------------------------

APPS = {"crm", "activities", "contactcenter", "emailsync"}
# State-changing URLs outside these namespaces and why they are not here.
NOT_HERE = {
    "login": "Django's LoginView (username and password only); throttling: tests/crm/test_auth.py",
    "logout": "Django's LogoutView writes nothing but the session",
}


def test_every_state_changing_endpoint_is_covered():
    """Every view of the apps (and the root URLconf) that accepts POST has a case above."""
    posting = set()
    for pattern, namespace, _route in _walk(get_resolver().url_patterns):
        name = ":".join(n for n in (namespace, pattern.name) if n)
        if namespace not in APPS and namespace is not None:
            continue
        methods = allowed_methods(pattern.callback)
        if methods is None or "POST" in methods:
            posting.add(name)
    posting -= {name for name in posting if name.split(":")[-1] in ("healthz", "readyz", "metrics", "home")}
    missing = posting - set(CASES) - set(NOT_HERE)
    assert not missing, f"state-changing URLs without a mass-assignment case: {sorted(missing)}"
    assert not set(CASES) - posting, f"cases for URLs that are gone: {sorted(set(CASES) - posting)}"
