"""Every tenant-owned model is reachable only through for_tenant(), which refuses to run without one."""

import pytest
from django.apps import apps

from crm.tenancy import TenantQuerySet
from tests import factories

pytestmark = pytest.mark.django_db

# One factory per tenant-owned model (FeedEntry is the read-only view over two of them).
FACTORIES = {
    "crm.Team": factories.TeamFactory,
    "crm.Membership": factories.MembershipFactory,
    "crm.Account": factories.AccountFactory,
    "crm.Contact": factories.ContactFactory,
    "crm.Lead": factories.LeadFactory,
    "activities.Activity": factories.ActivityFactory,
    "contactcenter.Queue": factories.QueueFactory,
    "contactcenter.Interaction": factories.InteractionFactory,
    "contactcenter.ClosedInteraction": factories.ClosedInteractionFactory,
    "contactcenter.InteractionMessage": factories.InteractionMessageFactory,
    "contactcenter.Ticket": factories.TicketFactory,
    "emailsync.Mailbox": factories.MailboxFactory,
    "emailsync.IncomingEmail": factories.IncomingEmailFactory,
    "emailsync.EmailLocation": factories.EmailLocationFactory,
    "emailsync.MailboxFolder": factories.MailboxFolderFactory,
    "emailsync.OutgoingEmail": factories.OutgoingEmailFactory,
    "emailsync.SmtpSettings": factories.SmtpSettingsFactory,
    "activities.SavedView": factories.SavedViewFactory,
    "crm.ApiKey": factories.ApiKeyFactory,
    "crm.ActivityAuditEntry": factories.ActivityAuditEntryFactory,
    "contactcenter.ChannelSecret": factories.ChannelSecretFactory,
    "contactcenter.ChannelEvent": factories.ChannelEventFactory,
    "contactcenter.WidgetConfig": factories.WidgetConfigFactory,
    "contactcenter.WidgetChat": factories.WidgetChatFactory,
}


def tenant_models():
    return [
        m
        for m in apps.get_models()
        if any(f.name == "tenant" for f in m._meta.fields) and m._meta.managed and m._meta.app_label != "auth"
    ]


def test_every_tenant_model_has_a_tenant_queryset_and_a_factory():
    # given every concrete model with a tenant column
    models = tenant_models()
    # then each is covered here and its default manager scopes by tenant
    missing = {m._meta.label for m in models} - set(FACTORIES)
    assert not missing, f"add a factory to FACTORIES for {missing}"
    for model in models:
        assert isinstance(model._default_manager.all(), TenantQuerySet), model._meta.label
        tenant_field = model._meta.get_field("tenant")
        assert not tenant_field.null, f"{model._meta.label}.tenant must be non-null"


@pytest.mark.parametrize("label", sorted(FACTORIES))
def test_for_tenant_returns_only_that_tenants_rows(label, tenant, other_tenant):
    # given one row in each tenant
    factory = FACTORIES[label]
    mine = factory(tenant=tenant)
    theirs = factory(tenant=other_tenant)
    model = apps.get_model(label)
    # when
    ids = set(model.objects.for_tenant(tenant).values_list("pk", flat=True))
    # then
    assert mine.pk in ids
    assert theirs.pk not in ids
    assert set(model.objects.for_tenant(other_tenant).values_list("pk", flat=True)) >= {theirs.pk}


@pytest.mark.parametrize("label", sorted(FACTORIES))
def test_for_tenant_refuses_none(label):
    with pytest.raises(ValueError):
        apps.get_model(label).objects.for_tenant(None)


def test_related_factory_objects_share_the_tenant(tenant):
    location = factories.EmailLocationFactory(tenant=tenant)
    closed = factories.ClosedInteractionFactory(tenant=tenant)
    assert location.email.tenant_id == location.mailbox.tenant_id == tenant.pk
    assert closed.interaction.tenant_id == closed.interaction.queue.tenant_id == tenant.pk


def test_feed_view_merges_both_sources_without_double_rows(tenant, other_tenant):
    """A closed interaction that logged an activity is shown once (as the activity)."""
    from activities.models import FeedEntry

    # given an activity, an imported closed interaction, and one whose close logged an activity
    activity = factories.ActivityFactory(tenant=tenant)
    imported = factories.ClosedInteractionFactory(tenant=tenant)
    logged = factories.ClosedInteractionFactory(tenant=tenant, activity_logged=True)
    factories.ActivityFactory(tenant=other_tenant)
    # when
    rows = {(r.kind, r.id) for r in FeedEntry.objects.for_tenant(tenant)}
    # then
    assert rows == {("activity", activity.pk), ("interaction", imported.pk)}
    assert logged.pk not in {pk for _, pk in rows}


def test_feed_ids_are_unique_across_both_tables(tenant):
    a = factories.ActivityFactory(tenant=tenant)
    c = factories.ClosedInteractionFactory(tenant=tenant)
    b = factories.ActivityFactory(tenant=tenant)
    assert len({a.pk, b.pk, c.pk}) == 3
    assert a.pk < c.pk < b.pk  # one shared sequence


def test_deleted_activities_leave_the_feed(tenant):
    from django.utils import timezone

    from activities.models import FeedEntry

    activity = factories.ActivityFactory(tenant=tenant)
    activity.deleted_at = timezone.now()
    activity.save(update_fields=["deleted_at"])
    assert not FeedEntry.objects.for_tenant(tenant).filter(pk=activity.pk).exists()


def test_with_related_fetches_tenant_owned_relations_by_tenant_not_by_a_bare_join(tenant, other_tenant):
    """A contact's team and account come from queries that name the tenant (tenant-first on a distributed
    database, and no row of another tenant even if a key pointed at one); users are still joined."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from crm.models import Contact

    team = factories.TeamFactory(tenant=tenant)
    account = factories.AccountFactory(tenant=tenant)
    owner = factories.UserFactory()
    factories.ContactFactory(tenant=tenant, team=team, account=account, owner=owner)
    # a corrupt key to another tenant's account must not bring that account in
    foreign = factories.AccountFactory(tenant=other_tenant, name="Foreign Co")
    stray = factories.ContactFactory(tenant=tenant, team=team, account=account)
    Contact.objects.filter(pk=stray.pk).update(account_id=foreign.pk)

    with CaptureQueriesContext(connection) as ctx:
        rows = list(
            Contact.objects.for_tenant(tenant).with_related(tenant, "owner", "team", "account").order_by("pk")
        )
        assert [(c.team, c.owner) for c in rows] == [(team, owner), (team, None)]
        assert [c.account for c in rows] == [account, None]
    contact_sql, *related = [q["sql"] for q in ctx.captured_queries]
    assert 'JOIN "auth_user"' in contact_sql
    assert "crm_team" not in contact_sql and "crm_account" not in contact_sql
    assert len(related) == 2
    for sql in related:
        assert f'"tenant_id" = {tenant.pk}' in sql
