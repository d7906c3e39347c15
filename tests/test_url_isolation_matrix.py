"""One isolation matrix for every URL that takes an object id, built from the URL configuration.

The resolver is walked (through every include) and every pattern with an id-like path kwarg (``pk``,
``id``, ``object_id``, ``*_id``, ``*_pk``) must have an entry in ``REGISTRY``
(``test_every_url_with_an_id_is_in_the_matrix`` also fails on an entry whose URL is gone). A widget's
``public_key`` names a tenant's widget, not an object: the widget URLs are in the matrix by their chat id.

Each case is one URL x one method the view allows (plus the htmx variant where the view serves a
partial) x one role of tenant A (the conftest ``admin_member``, ``manager_member``, ``agent_member``), and
builds its objects once, then asks for:

- a missing id: a 404;
- another tenant's object: a 404 with the same body as the missing id, and that tenant untouched (the
  classic cross-tenant IDOR: Prospero Flow CRM CVE-2026-19539, cross-tenant ticket read / hijack / delete;
  Sentry PR #104987, ``DashboardWidget.objects.get(id=widget_id)`` without the organization, one of the
  "Cross-Org Object Access (IDOR) -- 9 patches last year" of Sentry's own review; GitLab #343379, an
  ``external_status_check_id`` in the body not scoped to the project in the URL);
- another team's (or another owner's) object of tenant A, where the model is team- or owner-scoped: the
  same 404 for managers and agents (WhaTicket CVE-2026-111709: agents reading other agents' tickets by
  id), while admins, who see the whole tenant, get an allowed answer (a page, a redirect after a write, or
  a 403 where the role may not change it);
- the viewer's own object, the control: not a 404, so the 404s above come from the scoping and not from
  a wrong URL, factory or POST body.

Pages for admins only answer other roles a 403 before any lookup, the same for every id. Writes are
checked as well as reads, since a read-only check misses the write doors (Zammad CVE-2022-40817: read-only
agents could still add links and tags; SuiteCRM CVE-2026-61650: an endpoint that checked only "view"
before writing another record's foreign key): around every request for a hidden object the whole tenant
of that object is digested (every column of every row of every tenant table, its many-to-many rows, its
members' users, the analytics tables), so a changed field, a new row or a deleted one anywhere in it
fails -- no entry needs its own re-read. GitLab's testing guideline ("always include every role in the
table, do not omit roles that are expected to be disallowed") is why every role runs every target.

Django admin's own URLs are covered by ``tests/crm/test_admin_isolation.py``: change / delete / history /
view_on_site for every tenant model registered in admin, and every autocomplete field (Django's own
CVE-2013-0305: the history view was not permission-checked).

The per-app matrices stay (``tests/crm/test_detail.py`` runs the timelines' load-older and poll
variants, ``tests/contactcenter/test_views.py``, ``tests/activities/test_capture.py``, the emailsync view
tests): they check details this generic matrix does not.

Adding a URL with an id: one ``REGISTRY`` entry (how to make its object in a Place, what to POST). The
allowed methods are read from ``require_http_methods`` / ``require_GET`` / ``require_POST`` (or the
widget's ``widget_endpoint``) unless the entry declares them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from activities.models import ActivitySource, ActivityType, Direction
from contactcenter import services as cc_services
from contactcenter.models import Channel, InteractionStatus
from crm import rls
from crm.models import Role
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ApiKeyFactory,
    ClosedInteractionFactory,
    ContactFactory,
    IncomingEmailFactory,
    InteractionFactory,
    LeadFactory,
    MailboxFactory,
    MembershipFactory,
    OutgoingEmailFactory,
    QueueFactory,
    SavedViewFactory,
    TeamFactory,
    TicketFactory,
    UserFactory,
    WidgetConfigFactory,
)

pytestmark = pytest.mark.django_db

MISSING_ID = 999_999_999
ROLES = ("admin", "manager", "agent")
ID_KWARG = re.compile(r"^(pk|id|object_id|.+_id|.+_pk)$")
# Django admin's URLs (change/<object_id>/, delete, history, autocomplete) are covered by
# tests/crm/test_admin_isolation.py, which runs them for every tenant model registered in admin.
EXCLUDED_NAMESPACES = {"admin"}


# --- places and objects --------------------------------------------------------------------------------


@dataclass
class Place:
    """Where an object is made: a tenant, one of its teams and a member of that team (owner / author)."""

    tenant: object
    team: object
    member: object

    @property
    def user(self):
        return self.member.user

    @cached_property
    def widget(self):
        """The place's website chat widget (routing into a queue of its team)."""
        return WidgetConfigFactory(tenant=self.tenant, queue=QueueFactory(tenant=self.tenant, team=self.team))


def _contact(p: Place):
    return ContactFactory(tenant=p.tenant, team=p.team, owner=p.user)


def _lead(p: Place):
    return LeadFactory(tenant=p.tenant, team=p.team, owner=p.user)


def _account(p: Place):
    return AccountFactory(tenant=p.tenant, team=p.team, owner=p.user)


def _manual_activity(p: Place, **kwargs):
    return ActivityFactory(
        tenant=p.tenant,
        team=p.team,
        user=p.user,
        created_by=p.user,
        type=ActivityType.NOTE,
        source=ActivitySource.MANUAL,
        summary="original summary",
        **kwargs,
    )


def _deleted_activity(p: Place):
    from django.utils import timezone

    return _manual_activity(p, deleted_at=timezone.now(), deleted_by=p.user)


def _closed_interaction(p: Place):
    queue = QueueFactory(tenant=p.tenant, team=p.team, channel=Channel.VOICE)
    interaction = InteractionFactory(
        tenant=p.tenant, queue=queue, team=p.team, agent=p.user, status=InteractionStatus.CLOSED
    )
    return ClosedInteractionFactory(tenant=p.tenant, interaction=interaction, team=p.team, agent=p.user)


def _live_chat(p: Place):
    queue = QueueFactory(tenant=p.tenant, team=p.team, channel=Channel.WEBCHAT)
    return InteractionFactory(
        tenant=p.tenant, queue=queue, team=p.team, agent=p.user, contact=ContactFactory(tenant=p.tenant)
    )


def _ticket(p: Place):
    return TicketFactory(tenant=p.tenant, team=p.team, assignee=p.user, created_by=p.user)


def _mailbox(p: Place):
    # Port 9 on loopback: a connection test or sync started by an allowed request fails at once.
    return MailboxFactory(tenant=p.tenant, owner=p.user, port=9)


def _email(p: Place):
    """An imported email, seen by the place's member, whose activity belongs to the place's team."""
    email = IncomingEmailFactory(tenant=p.tenant, body_html="<p>hello</p>", body_text="hello")
    ActivityFactory(
        tenant=p.tenant,
        team=p.team,
        user=p.user,
        type=ActivityType.EMAIL,
        source=ActivitySource.EXTERNAL,
        direction=Direction.INBOUND,
        dedup_key=f"email:{email.pk}",
    )
    return email


def _outgoing(p: Place):
    return OutgoingEmailFactory(tenant=p.tenant, author=p.user, contact=_contact(p))


def _failed_outgoing(p: Place):
    """A failed outgoing email of the place's member (what the operations page's Retry is for)."""
    return OutgoingEmailFactory(
        tenant=p.tenant, author=p.user, contact=_contact(p), status="failed", error="refused"
    )


def _saved_view(p: Place):
    """Shared with the place's team (the widest a saved view gets)."""
    return SavedViewFactory(tenant=p.tenant, owner=p.user, team=p.team)


def _api_key(p: Place):
    return ApiKeyFactory(tenant=p.tenant, created_by=p.user)


def _member(p: Place):
    """An agent of the place's team (the member pages' ids are membership ids)."""
    return MembershipFactory(tenant=p.tenant, user=UserFactory(), role=Role.AGENT, teams=[p.team])


def _member_form(member) -> dict:
    """The edit form re-posted with the member's own teams and the email permission granted."""
    teams = [team.pk for team in member.teams.all()] if member is not None else []
    return {"role": "agent", "teams": teams, "can_manage_email": "on"}


def _team(p: Place):
    """The place's own team: a team page is visible to the members of that team (and to admins)."""
    return p.team


def _former_member(p: Place):
    """A removed agent of the place's team (what reactivation is for)."""
    member = _member(p)
    member.is_active = False
    member.save(update_fields=["is_active"])
    return member


def _widget_chat(p: Place):
    """A visitor's chat through a widget of the place's team; ``.token`` is the visitor's real token."""
    started = cc_services.widget_chat_start(widget=p.widget, name="Vic", email="vic@visitor.test", text="hi")
    chat = started.chat
    chat.token = started.token
    return chat


# --- the registry ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """How the matrix exercises one URL with an object id.

    make: builds the object in a Place (the viewer's own, another team's, another tenant's).
    methods: the methods the view allows; None reads them from the view's decorators.
    htmx: the methods also sent with ``HX-Request: true`` (the view answers a partial then), with
        ``HX-Target: hx_target`` where the partial depends on the target.
    data: the POST body (a dict, or ``data(obj)``); query: GET parameters sent with every request.
    scoped: the model is team- or owner-scoped inside a tenant (there is an "other team" case).
    admin_only: the page is for admins only; other roles get a 403 before any lookup, the same for
        every id (so it says nothing about which ids exist).
    admin_sees_other_team: False where the documented rule hides another team's object from admins too.
    public: a door without a session (the website widget): every role is just as anonymous.
    url_kwargs: other kwargs of the URL (``url_kwargs(matrix)``); headers: ``headers(obj)``, extra
        request headers; json: the body is JSON (the widget's API).
    """

    make: Callable[[Place], object]
    methods: tuple[str, ...] | None = None
    htmx: tuple[str, ...] = ()
    hx_target: str = ""
    data: dict | Callable = field(default_factory=dict)
    query: dict = field(default_factory=dict)
    scoped: bool = True
    admin_only: bool = False
    admin_sees_other_team: bool = True
    public: bool = False
    url_kwargs: Callable | None = None
    headers: Callable | None = None
    json: bool = False


CONTACT_EDIT = {"name": "Hijacked", "emails": "hijack@evil.test", "phones": "", "status": "customer"}
ACTIVITY_EDIT = {
    "type": "note",
    "direction": "none",
    "summary": "hijacked",
    "occurred_at": "2026-01-01T10:00",
}
MAILBOX_EDIT = {
    "email_address": "hijack@evil.test",
    "host": "mail.evil.test",
    "port": "993",
    "security": "ssl",
    "username": "hijack@evil.test",
    "auth_method": "password",
    "folders_text": "INBOX",
    "secret": "stolen",
}
COMPOSE = {"to": "victim@evil.test", "subject": "hijacked", "body": "x", "action": "send"}


def _widget_kwargs(matrix):
    return {"public_key": matrix.home.widget.public_key}


def _widget_token(chat):
    return {"HTTP_X_WIDGET_TOKEN": getattr(chat, "token", "no-such-token")}


def _widget(**kwargs) -> Entry:
    # The public key is tenant A's own widget; another tenant's chat (or another widget's chat of
    # tenant A) is asked for through it with that chat's real token: the token binds chat and widget.
    return Entry(
        make=_widget_chat,
        public=True,
        admin_sees_other_team=False,
        url_kwargs=_widget_kwargs,
        headers=_widget_token,
        json=True,
        data={"text": "hijacked"},
        **kwargs,
    )


REGISTRY: dict[str, Entry] = {
    # crm: entity pages, timelines (modal / in place with htmx), capture
    "crm:contact-detail": Entry(make=_contact),
    "crm:lead-detail": Entry(make=_lead),
    "crm:account-detail": Entry(make=_account),
    # (tests/crm/test_detail.py also runs the timelines' in-place, load-older and poll variants)
    "crm:contact-timeline": Entry(make=_contact, htmx=("GET",), hx_target="modal-root"),
    "crm:lead-timeline": Entry(make=_lead, htmx=("GET",), hx_target="modal-root"),
    "crm:account-timeline": Entry(make=_account, htmx=("GET",), hx_target="modal-root"),
    "crm:lead-convert": Entry(make=_lead, htmx=("GET", "POST"), data={"create_account_name": "Hijack Ltd"}),
    "crm:contact-edit": Entry(make=_contact, htmx=("GET", "POST"), data=CONTACT_EDIT),
    "crm:api-key-revoke": Entry(make=_api_key, scoped=False, admin_only=True),
    "crm:activity-restore": Entry(make=_deleted_activity, admin_only=True),
    # crm: members and teams (admins; managers for their teams' agents; a visible row the role may not
    # change is a 403, another team's or tenant's a 404). Cf. Laravel CRM CVE-2026-110630: an unscoped
    # Role::find let admins hand out other teams' roles and delete cross-team users.
    "crm:member-edit": Entry(make=_member, data=_member_form),
    "crm:member-deactivate": Entry(make=_member),
    "crm:member-reactivate": Entry(make=_former_member),
    "crm:team-edit": Entry(make=_team, data={"name": "Hijacked"}),
    "crm:team-delete": Entry(make=_team),
    # crm: the operations page (admins only; 403 for other roles before any lookup)
    "crm:operations-mailbox-sync": Entry(make=_mailbox, htmx=("POST",), admin_only=True),
    "crm:operations-outgoing-retry": Entry(make=_failed_outgoing, htmx=("POST",), admin_only=True),
    # activities: saved views, manual activities, analytics
    # Saved views are the owner's, shared with at most one team: admins do not see other teams' views
    # (activities.models.SavedViewQuerySet.visible_to), and only the owner deletes one.
    "activities:saved-view-open": Entry(make=_saved_view, admin_sees_other_team=False),
    "activities:saved-view-delete": Entry(make=_saved_view, admin_sees_other_team=False),
    "activities:edit": Entry(make=_manual_activity, htmx=("GET", "POST"), data=ACTIVITY_EDIT),
    "activities:delete": Entry(make=_manual_activity, htmx=("GET", "POST")),
    "activities:contact-analytics": Entry(make=_contact, htmx=("GET",)),
    "activities:account-analytics": Entry(make=_account, htmx=("GET",)),
    # contactcenter: message viewer, live chats, tickets, the public widget
    "contactcenter:messages": Entry(make=_closed_interaction, htmx=("GET",)),
    "contactcenter:live-chat": Entry(make=_live_chat),
    "contactcenter:live-chat-messages": Entry(make=_live_chat),
    "contactcenter:live-chat-reply": Entry(make=_live_chat, htmx=("POST",), data={"text": "hijacked"}),
    "contactcenter:live-chat-end": Entry(make=_live_chat, htmx=("POST",)),
    "contactcenter:ticket-detail": Entry(make=_ticket),
    "contactcenter:ticket-status": Entry(make=_ticket, data={"status": "closed", "version": 0}),
    "contactcenter:widget-messages": _widget(),
    "contactcenter:widget-end": _widget(),
    # emailsync: mailboxes (the owner's; admins see all), emails, outgoing mail
    "emailsync:mailbox-edit": Entry(make=_mailbox, data=MAILBOX_EDIT),
    "emailsync:mailbox-test": Entry(make=_mailbox, htmx=("POST",)),
    "emailsync:mailbox-sync": Entry(make=_mailbox, htmx=("POST",)),
    "emailsync:mailbox-status": Entry(make=_mailbox),
    "emailsync:email-detail": Entry(make=_email),
    "emailsync:email-body": Entry(make=_email),
    "emailsync:compose": Entry(make=_contact, data=COMPOSE),
    "emailsync:outgoing-detail": Entry(make=_outgoing, data=COMPOSE),
}


# --- the URL configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IdUrl:
    name: str
    route: str
    id_kwarg: str
    callback: Callable


def _walk(resolvers, namespace=None, prefix=""):
    for item in resolvers:
        if isinstance(item, URLResolver):
            ns = item.namespace
            if ns in EXCLUDED_NAMESPACES:
                continue  # see EXCLUDED_NAMESPACES
            full_ns = ":".join(n for n in (namespace, ns) if n) or None
            yield from _walk(item.url_patterns, full_ns, prefix + str(item.pattern))
        elif isinstance(item, URLPattern):
            yield item, namespace, prefix + str(item.pattern)


def _kwargs_of(pattern: URLPattern) -> list[str]:
    converters = getattr(pattern.pattern, "converters", None)
    if converters:
        return list(converters)
    return list(pattern.pattern.regex.groupindex)


def id_urls() -> dict[str, IdUrl]:
    """Every URL of the project (admin excluded) whose path carries an object id, by full name."""
    found = {}
    for pattern, namespace, route in _walk(get_resolver().url_patterns):
        ids = [k for k in _kwargs_of(pattern) if ID_KWARG.match(k)]
        if not ids:
            continue
        name = ":".join(n for n in (namespace, pattern.name or route) if n)
        found[name] = IdUrl(name, route, ids[-1], pattern.callback)
    return found


def allowed_methods(callback) -> tuple[str, ...] | None:
    """The methods a view's ``require_http_methods`` (or the widget's ``widget_endpoint``) allows."""
    func = callback
    while func is not None:
        code = getattr(func, "__code__", None)
        if code is not None and func.__closure__:
            cells = dict(zip(code.co_freevars, func.__closure__, strict=True))
            for var in ("request_method_list", "methods"):
                if var in cells:
                    return tuple(m for m in ("GET", "POST") if m in cells[var].cell_contents)
        func = getattr(func, "__wrapped__", None)
    return None


URLS = id_urls()


def methods_of(name: str) -> tuple[str, ...] | None:
    entry = REGISTRY[name]
    return entry.methods or allowed_methods(URLS[name].callback)


def _variants(name: str) -> list[tuple[str, bool]]:
    methods = methods_of(name) or ()
    return [(m, False) for m in methods] + [(m, True) for m in methods if m in REGISTRY[name].htmx]


def _cases():
    for name in sorted(set(REGISTRY) & set(URLS)):
        for method, htmx in _variants(name):
            variant = f"{method}-htmx" if htmx else method
            for role in ROLES:
                yield pytest.param(name, method, htmx, role, id=f"{name}-{variant}-{role}")


CASES = list(_cases())


def test_every_url_with_an_id_is_in_the_matrix():
    # given every URL of the resolver with an id-like kwarg, and the registry
    urls, registered = set(URLS), set(REGISTRY)
    # then each is in the matrix, and the matrix names no URL that is gone
    assert not urls - registered, f"add a REGISTRY entry for {sorted(urls - registered)}"
    assert not registered - urls, f"these REGISTRY entries name no URL any more: {sorted(registered - urls)}"
    undeclared = [name for name in sorted(urls) if not methods_of(name)]
    assert not undeclared, f"declare Entry(methods=...) for {undeclared}: no method decorator found"
    assert {case.values[0] for case in CASES} == urls


# --- one case ------------------------------------------------------------------------------------------


_VOLATILE = [
    (re.compile(rb"[A-Za-z0-9]{64}"), b"<csrf>"),  # masked CSRF tokens (forms, hx-headers)
    (re.compile(rb"[0-9a-f]{32}"), b"<request-id>"),
]


def normalised(response) -> bytes:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    for pattern, replacement in _VOLATILE:
        body = pattern.sub(replacement, body)
    return body


def _digest(label: str, table: str, where: str) -> str:
    # Table and column names come from the models (or crm.rls); the tenant id is a parameter.
    return (
        f"SELECT '{label}' AS label, count(*) AS n, "  # noqa: S608
        f"md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) AS digest "
        f'FROM "{table}" t WHERE {where}'
    )


@cache
def _snapshot_sql() -> str:
    """One statement: for every table holding a tenant's rows, the number of that tenant's rows and a
    digest of all their column values. Tenant tables by their tenant_id; the tenant's own row; the
    many-to-many tables of tenant models (a membership's teams) through their owner; the users who are
    its members; the analytics tables maintained in SQL (crm.rls.EXTRA_TABLES)."""
    parts = []
    for model in apps.get_models():
        opts = model._meta
        if opts.proxy or not opts.managed:
            continue
        if opts.label == "crm.Tenant":
            parts.append(_digest(opts.label, opts.db_table, f't."{opts.pk.column}" = %(tenant)s'))
            continue
        if not any(f.name == "tenant" for f in opts.concrete_fields):
            continue
        parts.append(_digest(opts.label, opts.db_table, 't."tenant_id" = %(tenant)s'))
        for m2m in opts.local_many_to_many:
            through = m2m.remote_field.through._meta
            if through.auto_created:
                owner = f'SELECT "{opts.pk.column}" FROM "{opts.db_table}" WHERE "tenant_id" = %(tenant)s'  # noqa: S608
                where = f't."{m2m.m2m_column_name()}" IN ({owner})'
                parts.append(_digest(f"{opts.label}.{m2m.name}", through.db_table, where))
    user = get_user_model()._meta
    members = 'SELECT "user_id" FROM "crm_membership" WHERE "tenant_id" = %(tenant)s'
    parts.append(_digest(user.label, user.db_table, f't."{user.pk.column}" IN ({members})'))
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        existing = {row[0] for row in cursor.fetchall()}
    for table in rls.EXTRA_TABLES:
        if table in existing:
            parts.append(_digest(table, table, 't."tenant_id" = %(tenant)s'))
    return "\nUNION ALL\n".join(parts)


def tenant_snapshot(tenant_id: int) -> dict[str, tuple[int, str]]:
    """label -> (rows, digest of every column of every row) for one tenant: a changed field, a new row
    or a deleted one anywhere in the tenant changes it."""
    # Deliberately cross-tenant: the test reads another tenant's rows to prove them untouched.
    with rls.bypass(), connection.cursor() as cursor:
        cursor.execute(_snapshot_sql(), {"tenant": tenant_id})
        return {label: (n, digest) for label, n, digest in cursor.fetchall()}


def changed(before: dict, after: dict) -> dict:
    """The tables whose rows differ, with their row counts before -> after."""
    return {
        label: f"{before[label][0]} -> {after[label][0]} rows"
        for label in before
        if before[label] != after[label]
    }


class Matrix:
    """One case's world: tenant A with the viewer, and the places objects are made in on demand."""

    def __init__(self, request, name: str, role: str):
        self.request = request
        self.name = name
        self.entry = REGISTRY[name]
        self.role = role
        self.viewer = request.getfixturevalue(f"{role}_member")
        self.tenant = request.getfixturevalue("tenant")
        self.make_member = request.getfixturevalue("make_member")
        self.client = request.getfixturevalue("client")
        if self.entry.public:
            self.home.widget  # noqa: B018 -- the URL's widget exists before any snapshot is taken
        else:
            self.client.force_login(self.viewer.user)

    @cached_property
    def home(self) -> Place:
        """The viewer's own place: their team, and the viewer as owner / author."""
        return Place(self.tenant, self.request.getfixturevalue("team"), self.viewer)

    @cached_property
    def other_team(self) -> Place:
        """A team of tenant A none of the viewers is in (the admin sees it by role, not by membership)."""
        team = TeamFactory(tenant=self.tenant, name="Elsewhere")
        return Place(self.tenant, team, self.make_member(self.tenant, Role.AGENT, teams=[team], email=True))

    @cached_property
    def foreign(self) -> Place:
        other = self.request.getfixturevalue("other_tenant")
        team = TeamFactory(tenant=other, name="Foreign team")
        return Place(other, team, self.make_member(other, Role.ADMIN, teams=[team], email=True))

    def url(self, pk) -> str:
        kwargs = self.entry.url_kwargs(self) if self.entry.url_kwargs else {}
        kwargs[URLS[self.name].id_kwarg] = pk
        return reverse(self.name, kwargs=kwargs)

    def send(self, method: str, htmx: bool, obj=None):
        """The case's request for ``obj`` (None: a missing id)."""
        headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
        if htmx and self.entry.hx_target:
            headers["HTTP_HX_TARGET"] = self.entry.hx_target
        if self.entry.headers:
            headers.update(self.entry.headers(obj))
        url = self.url(MISSING_ID if obj is None else obj.pk)
        if method == "GET":
            return self.client.get(url, self.entry.query, **headers)
        data = self.entry.data(obj) if callable(self.entry.data) else dict(self.entry.data)
        if self.entry.query:
            url += "?" + urlencode(self.entry.query)
        if self.entry.json:
            return self.client.post(url, data, content_type="application/json", **headers)
        return self.client.post(url, data, **headers)


@pytest.fixture(autouse=True)
def fast_matrix(settings):
    """Hundreds of cases, each with a few users: hash their passwords cheaply (no login by password
    here). The matrix asks the widget many times from one address: lift its rate limits (tested in
    tests/contactcenter/test_widget.py)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.WIDGET_RATE_LIMITS = {"visitor": (10**6, 60), "start": (10**6, 600), "tenant": (10**6, 60)}


def _show(response) -> str:
    return f"{response.status_code}: {normalised(response)[:300]!r}"


@pytest.mark.parametrize("name, method, htmx, role", CASES)
def test_isolation_matrix(name, method, htmx, role, request):
    """One URL x method x role against another tenant's object, another team's object (where the model
    is team- or owner-scoped), a missing id, and -- the control -- the viewer's own object."""
    # given the viewer of tenant A and an object in each place, built once for the case
    matrix = Matrix(request, name, role)
    entry = matrix.entry
    denied = entry.admin_only and role != "admin"
    hidden = 403 if denied else 404
    foreign = entry.make(matrix.foreign)
    other_team = entry.make(matrix.other_team) if entry.scoped else None
    own = entry.make(matrix.home)

    # a missing id
    missing = matrix.send(method, htmx)
    assert missing.status_code == hidden, _show(missing)

    # another tenant's object: the missing answer, to the byte, and that tenant untouched
    before = tenant_snapshot(matrix.foreign.tenant.pk)
    response = matrix.send(method, htmx, foreign)
    assert response.status_code == hidden, _show(response)
    assert normalised(response) == normalised(missing)
    assert not changed(before, tenant_snapshot(matrix.foreign.tenant.pk)), "another tenant's rows changed"

    # another team's object of the same tenant
    if other_team is not None:
        if role == "admin" and entry.admin_sees_other_team and not denied:
            # Admins see the whole tenant: an allowed answer (a page, a redirect after a write, a 403
            # where the admin may not change this object), never "not found", never a crash.
            response = matrix.send(method, htmx, other_team)
            assert response.status_code != 404 and response.status_code < 500, _show(response)
        else:
            before = tenant_snapshot(matrix.tenant.pk)
            response = matrix.send(method, htmx, other_team)
            assert response.status_code == hidden, _show(response)
            assert normalised(response) == normalised(missing)
            assert not changed(before, tenant_snapshot(matrix.tenant.pk)), "a hidden object's tenant changed"

    # the control: the viewer's own object is found, so the 404s above come from the scoping and not
    # from a wrong URL, factory or POST body
    response = matrix.send(method, htmx, own)
    if denied:
        assert response.status_code == 403, _show(response)
    else:
        assert response.status_code != 404 and response.status_code < 500, _show(response)
