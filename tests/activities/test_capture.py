"""Logging, editing, deleting and restoring manual activities: permissions per role, the audit record,
tenant isolation (another tenant's id is a 404 identical to a missing one) and mass assignment."""

import json

import pytest
from django.urls import reverse

from activities import services
from activities.models import Activity, ActivitySource, ActivityType, Direction, FeedEntry
from crm.models import ActivityAuditEntry, Role
from tests.conftest import REQUEST_TRANSACTION_QUERIES
from tests.factories import AccountFactory, ActivityFactory, ContactFactory, LeadFactory, TeamFactory

HTMX = {"HTTP_HX_REQUEST": "true"}


def _call(entity, **extra):
    return {
        "type": "call",
        "direction": "outbound",
        "summary": "Discussed renewal",
        "body": "Wants a quote",
        "duration_minutes": "12",
        "contact": entity.pk,
        **extra,
    }


# --- logging --------------------------------------------------------------------------------------------


def test_log_call_with_htmx_creates_activity_and_triggers_refresh(tenant, team, agent_member, client_for):
    contact = ContactFactory(tenant=tenant, team=team)
    url = reverse("activities:log") + f"?contact={contact.pk}"
    response = client_for(agent_member).post(url, _call(contact), **HTMX)
    assert response.status_code == 200
    activity = Activity.objects.for_tenant(tenant).get()
    assert json.loads(response["HX-Trigger"])["activityLogged"]["id"] == activity.pk
    assert (activity.type, activity.direction, activity.duration_seconds) == ("call", "outbound", 720)
    assert (activity.source, activity.user, activity.created_by) == (
        ActivitySource.MANUAL,
        agent_member.user,
        agent_member.user,
    )
    assert activity.team == team
    assert FeedEntry.objects.for_tenant(tenant).filter(pk=activity.pk).exists()


def test_log_without_js_redirects_to_next(tenant, team, agent_member, client_for):
    contact = ContactFactory(tenant=tenant, team=team)
    response = client_for(agent_member).post(
        reverse("activities:log"), {**_call(contact), "next": "/somewhere/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/somewhere/"
    assert Activity.objects.for_tenant(tenant).count() == 1


def test_log_ignores_an_offsite_next(tenant, team, agent_member, client_for):
    contact = ContactFactory(tenant=tenant, team=team)
    response = client_for(agent_member).post(
        reverse("activities:log"), {**_call(contact), "next": "https://evil.example/"}
    )
    assert response.status_code == 302
    assert "evil" not in response["Location"]


def test_log_form_page_and_partial(tenant, team, agent_member, client_for):
    contact = ContactFactory(tenant=tenant, team=team, name="Grace <b>Hopper</b>")
    client = client_for(agent_member)
    url = reverse("activities:log") + f"?contact={contact.pk}"
    page = client.get(url)
    partial = client.get(url, **HTMX)
    assert page.status_code == partial.status_code == 200
    assert "<html" in page.content.decode() and "<html" not in partial.content.decode()
    assert "HX-Request" in partial["Vary"]
    assert "Grace &lt;b&gt;Hopper&lt;/b&gt;" in partial.content.decode()


def test_task_and_meeting_details(tenant, team, agent_member, client_for):
    contact = ContactFactory(tenant=tenant, team=team)
    client = client_for(agent_member)
    client.post(
        reverse("activities:log"),
        {
            "type": "task",
            "summary": "Send quote",
            "contact": contact.pk,
            "due_at": "2030-01-02T10:00",
            "done": "on",
            "duration_minutes": "30",
            "direction": "inbound",
        },
    )
    client.post(
        reverse("activities:log"),
        {
            "type": "meeting",
            "summary": "Kickoff",
            "contact": contact.pk,
            "duration_minutes": "45",
            "done": "on",
        },
    )
    task = Activity.objects.for_tenant(tenant).get(type="task")
    meeting = Activity.objects.for_tenant(tenant).get(type="meeting")
    assert task.due_at is not None and task.done
    assert task.duration_seconds is None and task.direction == Direction.NONE  # calls/meetings only
    assert meeting.duration_seconds == 45 * 60 and not meeting.done and meeting.due_at is None


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"summary": ""}, "summary", "required"),
        ({"summary": "x" * 501}, "summary", "at most 500"),
        ({"direction": ""}, "direction", "inbound or outbound"),
        ({"type": "email"}, "type", "valid choice"),
        ({"type": "lead_conversion"}, "type", "valid choice"),
        ({"contact": ""}, "contact", "Pick a contact"),
        ({"duration_minutes": "-5"}, "duration_minutes", "greater than or equal"),
    ],
)
def test_log_bad_input_shows_error_next_to_field(
    data, field, message, tenant, team, agent_member, client_for
):
    contact = ContactFactory(tenant=tenant, team=team)
    response = client_for(agent_member).post(reverse("activities:log"), _call(contact, **data), **HTMX)
    assert response.status_code == 200  # htmx swaps the form back in, with the errors
    assert "HX-Trigger" not in response
    html = response.content.decode()
    assert f'data-testid="error-{field}"' in html
    assert message in html
    assert not Activity.objects.exists()


def test_log_choices_only_offer_the_members_entities(
    tenant, other_tenant, team, other_team, agent_member, client_for
):
    mine = ContactFactory(tenant=tenant, team=team, name="Mine Contact")
    ContactFactory(tenant=tenant, team=other_team, name="Other Team Contact")
    ContactFactory(tenant=other_tenant, name="Foreign Contact")
    html = client_for(agent_member).get(reverse("activities:log")).content.decode()
    assert "Mine Contact" in html
    assert "Other Team Contact" not in html
    assert "Foreign Contact" not in html
    assert mine


@pytest.mark.parametrize("kind", ["contact", "lead", "account"])
def test_log_against_foreign_or_other_team_entity_is_rejected(
    kind, tenant, other_tenant, team, other_team, agent_member, client_for
):
    """Foreign keys in the body (Chatwoot CVE-2026-115725, Sentry #108156 class) never link."""
    factory = {"contact": ContactFactory, "lead": LeadFactory, "account": AccountFactory}[kind]
    client = client_for(agent_member)
    for entity in (factory(tenant=other_tenant), factory(tenant=tenant, team=other_team)):
        data = {"type": "note", "summary": "x", kind: entity.pk}
        response = client.post(reverse("activities:log"), data, **HTMX)
        assert 'data-testid="error-' + kind + '"' in response.content.decode()
        # ...and as the fixed entity in the query string: 404
        response = client.get(reverse("activities:log") + f"?{kind}={entity.pk}")
        assert response.status_code == 404
    assert not Activity.objects.exists()


def test_log_ignores_fields_not_offered(
    tenant, other_tenant, team, other_team, agent_member, manager_member, client_for
):
    """Mass assignment: tenant, team, agent, source, created_by in the body are ignored."""
    contact = ContactFactory(tenant=tenant, team=team)
    foreign_team = TeamFactory(tenant=other_tenant)
    client_for(agent_member).post(
        reverse("activities:log"),
        _call(
            contact,
            tenant=other_tenant.pk,
            team=foreign_team.pk,
            user=manager_member.user.pk,
            created_by=manager_member.user.pk,
            source="external",
            dedup_key="api:stolen",
        ),
    )
    activity = Activity.objects.get()
    assert activity.tenant == tenant
    assert activity.team == team
    assert activity.user == agent_member.user and activity.created_by == agent_member.user
    assert activity.source == ActivitySource.MANUAL and activity.dedup_key is None


# --- editing -------------------------------------------------------------------------------------------


def _manual(tenant, team, author, **kw):
    return ActivityFactory(
        tenant=tenant,
        team=team,
        user=author,
        created_by=author,
        type=ActivityType.CALL,
        direction="outbound",
        contact=ContactFactory(tenant=tenant, team=team),
        **kw,
    )


@pytest.mark.parametrize(
    "who, expected",
    [
        ("author", True),
        ("admin", True),
        ("manager", True),
        ("other_agent", False),
        ("other_team_manager", False),
    ],
)
def test_edit_permission_per_role(
    who, expected, tenant, team, other_team, agent_member, admin_member, manager_member, make_member
):
    activity = _manual(tenant, team, agent_member.user)
    members = {
        "author": agent_member,
        "admin": admin_member,
        "manager": manager_member,
        "other_agent": make_member(tenant, Role.AGENT, teams=[team]),
        "other_team_manager": make_member(tenant, Role.MANAGER, teams=[other_team]),
    }
    assert services.can_edit(members[who], activity) is expected
    assert services.can_delete(members[who], activity) is expected


def test_automatic_entries_are_not_editable(tenant, team, admin_member, agent_member):
    for kw in (
        {"type": ActivityType.LEAD_CONVERSION},
        {"type": ActivityType.CONTACT_UPDATE},
        {"type": ActivityType.EMAIL},
        {"type": ActivityType.CALL, "source": ActivitySource.EXTERNAL},
        {"type": ActivityType.CHAT, "source": ActivitySource.INTERACTION},
    ):
        activity = ActivityFactory(
            tenant=tenant, team=team, created_by=agent_member.user, user=agent_member.user, **kw
        )
        assert not services.can_edit(admin_member, activity)
        assert not services.can_edit(agent_member, activity)
        with pytest.raises(services.ActivityPermissionDenied):
            services.activity_update(membership=admin_member, activity=activity, changes={"summary": "x"})


def test_edit_view_updates_and_audits(tenant, team, agent_member, client_for):
    activity = _manual(tenant, team, agent_member.user, summary="Old summary")
    data = {
        "type": "call",
        "direction": "inbound",
        "summary": "New summary",
        "contact": activity.contact_id,
        "occurred_at": activity.occurred_at.astimezone().strftime("%Y-%m-%dT%H:%M"),
    }
    response = client_for(agent_member).post(reverse("activities:edit", args=[activity.pk]), data, **HTMX)
    assert response.status_code == 200
    assert "activityChanged" in response["HX-Trigger"]
    activity.refresh_from_db()
    assert (activity.summary, activity.direction) == ("New summary", "inbound")
    entry = ActivityAuditEntry.objects.get(activity=activity)
    assert entry.action == "edited" and entry.actor == agent_member.user
    assert entry.details["changes"]["summary"] == ["Old summary", "New summary"]
    assert "occurred_at" not in entry.details["changes"]  # untouched time keeps its seconds


def test_edit_without_change_writes_no_audit(tenant, team, agent_member):
    activity = _manual(tenant, team, agent_member.user, summary="Same")
    services.activity_update(membership=agent_member, activity=activity, changes={"summary": "Same"})
    assert not ActivityAuditEntry.objects.exists()


def test_edit_service_refuses_fields_it_does_not_offer(tenant, other_tenant, team, agent_member):
    activity = _manual(tenant, team, agent_member.user)
    with pytest.raises(Exception, match="cannot be changed"):
        services.activity_update(membership=agent_member, activity=activity, changes={"tenant": other_tenant})
    with pytest.raises(Exception, match="does not exist"):
        services.activity_update(
            membership=agent_member,
            activity=activity,
            changes={"contact": ContactFactory(tenant=other_tenant)},
        )


def test_edit_view_forbidden_for_other_agent(tenant, team, agent_member, make_member, client_for):
    activity = _manual(tenant, team, agent_member.user, summary="Keep")
    other = make_member(tenant, Role.AGENT, teams=[team])
    response = client_for(other).post(reverse("activities:edit", args=[activity.pk]), {"summary": "Hacked"})
    assert response.status_code == 403
    activity.refresh_from_db()
    assert activity.summary == "Keep"


# --- deleting and restoring ------------------------------------------------------------------------------


def test_delete_hides_everywhere_and_audits_then_admin_restores(
    tenant, team, agent_member, admin_member, client_for
):
    activity = _manual(tenant, team, agent_member.user, summary="Oops")
    client = client_for(agent_member)
    response = client.post(reverse("activities:delete", args=[activity.pk]), **HTMX)
    assert response.status_code == 200
    activity.refresh_from_db()
    assert activity.deleted_at is not None and activity.deleted_by == agent_member.user
    assert not FeedEntry.objects.for_tenant(tenant).filter(pk=activity.pk).exists()
    deleted = ActivityAuditEntry.objects.get(activity=activity)
    assert (deleted.action, deleted.actor, deleted.details["summary"]) == (
        "deleted",
        agent_member.user,
        "Oops",
    )
    # the author cannot restore; the admin sees it on the deleted page and restores it
    assert client.get(reverse("crm:activity-deleted-list")).status_code == 403
    assert client.post(reverse("crm:activity-restore", args=[activity.pk])).status_code == 403
    admin = client_for(admin_member)
    page = admin.get(reverse("crm:activity-deleted-list"))
    assert "Oops" in page.content.decode()
    response = admin.post(reverse("crm:activity-restore", args=[activity.pk]))
    assert response.status_code == 302
    activity.refresh_from_db()
    assert activity.deleted_at is None
    assert FeedEntry.objects.for_tenant(tenant).filter(pk=activity.pk).exists()
    actions = list(
        ActivityAuditEntry.objects.filter(activity=activity)
        .order_by("at", "id")
        .values_list("action", "actor")
    )
    assert actions == [("deleted", agent_member.user.pk), ("restored", admin_member.user.pk)]


def test_admin_may_delete_automatic_entries_agent_may_not(tenant, team, agent_member, admin_member):
    activity = ActivityFactory(tenant=tenant, team=team, type=ActivityType.EMAIL, user=agent_member.user)
    with pytest.raises(services.ActivityPermissionDenied):
        services.activity_delete(membership=agent_member, activity=activity)
    services.activity_delete(membership=admin_member, activity=activity)
    activity.refresh_from_db()
    assert activity.is_deleted


def test_manager_restore_is_refused(tenant, team, agent_member, manager_member):
    activity = _manual(tenant, team, agent_member.user)
    services.activity_delete(membership=manager_member, activity=activity)
    with pytest.raises(services.ActivityPermissionDenied):
        services.activity_restore(membership=manager_member, activity=activity)


def test_deleted_activity_cannot_be_edited_or_deleted_again(tenant, team, agent_member, client_for):
    activity = _manual(tenant, team, agent_member.user)
    services.activity_delete(membership=agent_member, activity=activity)
    client = client_for(agent_member)
    assert client.get(reverse("activities:edit", args=[activity.pk])).status_code == 404
    assert client.post(reverse("activities:delete", args=[activity.pk])).status_code == 404
    assert ActivityAuditEntry.objects.filter(activity=activity).count() == 1


def test_django_admin_restore_action(tenant, team, agent_member, admin_member, client):
    activity = _manual(tenant, team, agent_member.user)
    services.activity_delete(membership=agent_member, activity=activity)
    admin_member.user.is_staff = True
    admin_member.user.save()
    client.force_login(admin_member.user)
    changelist = reverse("admin:activities_activity_changelist")
    response = client.post(changelist, {"action": "restore_activities", "_selected_action": [activity.pk]})
    assert response.status_code == 302
    activity.refresh_from_db()
    assert activity.deleted_at is None
    assert ActivityAuditEntry.objects.filter(activity=activity, action="restored").count() == 1
    audit_list = client.get(reverse("admin:crm_activityauditentry_changelist"))
    assert audit_list.status_code == 200


def test_deleted_page_only_lists_own_tenant(tenant, other_tenant, admin_member, foreign_member):
    foreign = ActivityFactory(tenant=other_tenant, summary="Foreign deleted")
    services.activity_delete(membership=foreign_member, activity=foreign)
    from django.test import Client

    client = Client()
    client.force_login(admin_member.user)
    html = client.get(reverse("crm:activity-deleted-list")).content.decode()
    assert "Foreign deleted" not in html


# --- isolation matrix for every URL with an id -------------------------------------------------------------


@pytest.mark.parametrize(
    "url_name, method",
    [
        ("activities:edit", "get"),
        ("activities:edit", "post"),
        ("activities:delete", "get"),
        ("activities:delete", "post"),
        ("crm:activity-restore", "post"),
    ],
)
@pytest.mark.parametrize("role", [Role.AGENT, Role.MANAGER, Role.ADMIN])
def test_foreign_activity_ids_are_404_like_missing(
    url_name, method, role, tenant, other_tenant, team, make_member, client_for
):
    member = make_member(tenant, role, teams=[team])
    foreign = ActivityFactory(tenant=other_tenant, type=ActivityType.NOTE, summary="theirs")
    if url_name == "crm:activity-restore":
        Activity.objects.filter(pk=foreign.pk).update(deleted_at="2026-01-01T00:00Z")
    client = client_for(member)
    missing = getattr(client, method)(reverse(url_name, args=[99999999]))
    response = getattr(client, method)(reverse(url_name, args=[foreign.pk]), {"summary": "Hacked"})
    if role != Role.ADMIN and url_name == "crm:activity-restore":
        assert missing.status_code == response.status_code == 403  # admin-only page, before any lookup
    else:
        assert missing.status_code == response.status_code == 404
        assert response.content == missing.content
    foreign.refresh_from_db()
    assert foreign.summary == "theirs"
    assert not ActivityAuditEntry.objects.exists()


def test_other_team_activity_is_404_for_agent_and_manager(tenant, team, other_team, make_member, client_for):
    author = make_member(tenant, Role.AGENT, teams=[other_team])
    activity = _manual(tenant, other_team, author.user)
    for role in (Role.AGENT, Role.MANAGER):
        client = client_for(make_member(tenant, role, teams=[team]))
        assert client.get(reverse("activities:edit", args=[activity.pk])).status_code == 404
        assert client.post(reverse("activities:delete", args=[activity.pk])).status_code == 404
    activity.refresh_from_db()
    assert not activity.is_deleted


@pytest.mark.parametrize("count", [1, 6])
def test_deleted_page_query_count_is_pinned(
    count, tenant, team, agent_member, admin_member, client_for, django_assert_num_queries
):
    for _ in range(count):
        services.activity_delete(membership=admin_member, activity=_manual(tenant, team, agent_member.user))
    client = client_for(admin_member)
    client.get(reverse("crm:activity-deleted-list"))
    with django_assert_num_queries(5 + REQUEST_TRANSACTION_QUERIES):  # session, user, membership + page
        client.get(reverse("crm:activity-deleted-list"))


def test_timeline_offers_edit_on_own_manual_entries_only(tenant, team, agent_member, make_member, client_for):
    contact = ContactFactory(tenant=tenant, team=team)
    mine = ActivityFactory(
        tenant=tenant, team=team, contact=contact, user=agent_member.user, created_by=agent_member.user
    )
    colleague = make_member(tenant, Role.AGENT, teams=[team])
    theirs = ActivityFactory(
        tenant=tenant, team=team, contact=contact, user=colleague.user, created_by=colleague.user
    )
    automatic = ActivityFactory(
        tenant=tenant, team=team, contact=contact, user=agent_member.user, type="contact_update"
    )
    html = (
        client_for(agent_member)
        .get(reverse("crm:contact-timeline", args=[contact.pk]), **HTMX)
        .content.decode()
    )
    assert reverse("activities:edit", args=[mine.pk]) in html
    assert reverse("activities:edit", args=[theirs.pk]) not in html
    assert reverse("activities:edit", args=[automatic.pk]) not in html
    assert 'data-testid="log-activity-button"' in html


def test_deleted_activity_leaves_grid_timeline_and_export(tenant, team, agent_member, client_for):
    contact = ContactFactory(tenant=tenant, team=team)
    activity = ActivityFactory(
        tenant=tenant,
        team=team,
        contact=contact,
        user=agent_member.user,
        created_by=agent_member.user,
        summary="Soon to be deleted",
    )
    client = client_for(agent_member)

    def text(url):
        response = client.get(url)
        if response.streaming:
            return b"".join(response.streaming_content).decode()
        return response.content.decode()

    urls = [
        reverse("activities:grid"),
        reverse("activities:export"),
        reverse("crm:contact-timeline", args=[contact.pk]),
    ]
    for url in urls:
        assert "Soon to be deleted" in text(url), url
    services.activity_delete(membership=agent_member, activity=activity)
    for url in urls:
        assert "Soon to be deleted" not in text(url), url


@pytest.mark.django_db(transaction=True)
def test_concurrent_api_requests_with_one_idempotency_key_create_one():
    import threading

    from django.db import connection
    from django.test import Client

    from crm import services as crm_services
    from tests.factories import MembershipFactory, TenantFactory, UserFactory

    tenant = TenantFactory()
    admin = MembershipFactory(tenant=tenant, user=UserFactory(), role=Role.ADMIN)
    _, key = crm_services.api_key_create(tenant=tenant, actor=admin.user, name="k")
    contact = ContactFactory(tenant=tenant)
    body = json.dumps({"type": "note", "summary": "once", "contact_id": contact.pk})
    barrier = threading.Barrier(4)
    statuses = []

    def send():
        try:
            barrier.wait()
            response = Client().post(
                "/api/v1/activities",
                data=body,
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {key}",
                HTTP_IDEMPOTENCY_KEY="same",
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(statuses) == [200, 200, 200, 201]
    assert Activity.objects.filter(tenant=tenant).count() == 1


def test_log_against_an_account_from_its_page(tenant, team, agent_member, client_for):
    account = AccountFactory(tenant=tenant, team=team, name="Acme Account")
    client = client_for(agent_member)
    page = client.get(reverse("crm:account-detail", args=[account.pk])).content.decode()
    assert reverse("activities:log") + f"?account={account.pk}" in page
    response = client.post(
        reverse("activities:log") + f"?account={account.pk}",
        {"type": "meeting", "summary": "QBR", "account": account.pk, "duration_minutes": "60"},
        **HTMX,
    )
    assert response.status_code == 200
    activity = Activity.objects.get()
    assert (activity.account, activity.contact, activity.team) == (account, None, team)


def test_edit_keeps_a_linked_entity_the_editor_cannot_see(tenant, team, other_team, agent_member, client_for):
    hidden = ContactFactory(tenant=tenant, team=other_team)
    activity = ActivityFactory(
        tenant=tenant,
        team=team,
        contact=hidden,
        user=agent_member.user,
        created_by=agent_member.user,
        summary="a",
    )
    data = {"type": "note", "summary": "b", "contact": hidden.pk}
    response = client_for(agent_member).post(reverse("activities:edit", args=[activity.pk]), data, **HTMX)
    assert response.status_code == 200 and "activityChanged" in response["HX-Trigger"]
    activity.refresh_from_db()
    assert (activity.summary, activity.contact) == ("b", hidden)


# Every capture URL with an object id and the test proving another tenant's id is a 404 there.
CAPTURE_ID_URLS = {
    "activities:edit": "test_foreign_activity_ids_are_404_like_missing",
    "activities:delete": "test_foreign_activity_ids_are_404_like_missing",
    "crm:activity-restore": "test_foreign_activity_ids_are_404_like_missing",
    "crm:lead-convert": "test_conversion.py::test_convert_view_foreign_or_other_team_lead_is_404",
    "crm:contact-edit": "test_contact_update.py::test_edit_view_foreign_or_other_team_contact_is_404",
    "crm:api-key-revoke": "test_api_keys.py::test_other_tenants_key_is_404_like_missing_and_not_listed",
}


def test_every_capture_url_with_an_id_is_in_an_isolation_test():
    from django.urls import get_resolver

    found = set()
    for pattern in get_resolver().url_patterns:
        namespace = getattr(pattern, "namespace", None)
        for sub in getattr(pattern, "url_patterns", []):
            module = getattr(sub.callback, "__module__", "")
            if "<int:pk>" in str(sub.pattern) and module in ("activities.capture_views", "crm.capture_views"):
                found.add(f"{namespace}:{sub.name}")
    assert found == set(CAPTURE_ID_URLS)
