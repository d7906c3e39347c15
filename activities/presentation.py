"""Turns a page of feed rows into what a template shows: names fetched once per page (never per row,
never by a join inside the feed), and email content redacted for viewers without the permission."""

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.urls import NoReverseMatch, reverse

from crm import visibility
from crm.models import Account, Contact, Lead, Membership

from .models import ActivityType, FeedEntry


@dataclass
class FeedRow:
    entry: FeedEntry
    contact_name: str | None
    lead_name: str | None
    account_name: str | None
    agent_name: str | None
    redacted: bool
    source_url: str | None = None
    contact_url: str | None = None
    lead_url: str | None = None
    account_url: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.entry, name)

    @property
    def summary_shown(self) -> str:
        return "" if self.redacted else self.entry.summary

    @property
    def first_message_shown(self) -> str:
        return "" if self.redacted else self.entry.first_message


def safe_reverse(name: str, pk) -> str | None:
    """The URL of ``name`` for ``pk``, or None while that page does not exist (yet)."""
    if pk is None:
        return None
    try:
        return reverse(name, kwargs={"pk": pk})
    except NoReverseMatch:
        return None


# (app_label, model) of an activity's source object -> the URL name of its page.
SOURCE_PAGES = {
    ("contactcenter", "closedinteraction"): "contactcenter:messages",
    ("emailsync", "incomingemail"): "emailsync:email-detail",
    ("contactcenter", "ticket"): "contactcenter:ticket-detail",
}


def source_url(entry) -> str | None:
    """Where a feed row comes from: the interaction's messages, the email, the ticket; or None."""
    if entry.kind == "interaction":
        return safe_reverse("contactcenter:messages", entry.id)
    if not entry.source_type_id or entry.source_id is None:
        return None
    try:
        ct = ContentType.objects.get_for_id(entry.source_type_id)  # cached per process
    except ContentType.DoesNotExist:
        return None
    name = SOURCE_PAGES.get((ct.app_label, ct.model))
    return safe_reverse(name, entry.source_id) if name else None


def entity_names(model, ids: set[int], *, tenant_id: int, field: str = "name") -> dict[int, str]:
    """Names of the rows shown, fetched after the LIMIT. Tenant-first like every query (the ids come from
    the tenant's own feed rows, but the predicate keeps the lookup routable by tenant)."""
    if not ids:
        return {}
    return dict(model.objects.for_tenant(tenant_id).filter(pk__in=ids).values_list("pk", field))


def emails_seen_by(*, membership: Membership, email_ids: set[int]) -> set[int]:
    """Which of these incoming-email ids were seen in one of the viewer's own mailboxes."""
    from emailsync.models import EmailLocation  # emailsync depends on activities, not the reverse

    if not email_ids:
        return set()
    return set(
        EmailLocation.objects.for_tenant(membership.tenant_id)
        .filter(email_id__in=email_ids, mailbox__owner_id=membership.user_id)
        .values_list("email_id", flat=True)
    )


def email_participation(*, membership: Membership, entries: list[FeedEntry]) -> set[int]:
    """Ids of email feed rows whose message was seen in one of the viewer's own mailboxes."""
    source_ids = {e.source_id for e in entries if e.type == ActivityType.EMAIL and e.source_id}
    seen = emails_seen_by(membership=membership, email_ids=source_ids)
    return {e.id for e in entries if e.type == ActivityType.EMAIL and e.source_id in seen}


def present(entries: list[FeedEntry], *, membership: Membership) -> list[FeedRow]:
    tenant_id = membership.tenant_id
    contacts = entity_names(Contact, {e.contact_id for e in entries if e.contact_id}, tenant_id=tenant_id)
    leads = entity_names(Lead, {e.lead_id for e in entries if e.lead_id}, tenant_id=tenant_id)
    accounts = entity_names(Account, {e.account_id for e in entries if e.account_id}, tenant_id=tenant_id)
    user_model = get_user_model()
    agent_ids = {e.agent_id for e in entries if e.agent_id}
    agents = {
        u.pk: (u.get_full_name() or u.email or u.username)
        for u in user_model.objects.filter(pk__in=agent_ids).only(
            "first_name", "last_name", "email", "username"
        )
    }
    needs_check = not (membership.is_admin or membership.can_manage_email)
    participating = email_participation(membership=membership, entries=entries) if needs_check else set()
    rows = []
    for e in entries:
        redacted = e.type == ActivityType.EMAIL and not visibility.can_see_email_content(
            membership, agent_id=e.agent_id, participant=e.id in participating
        )
        rows.append(
            FeedRow(
                entry=e,
                contact_name=contacts.get(e.contact_id),
                lead_name=leads.get(e.lead_id),
                account_name=accounts.get(e.account_id),
                agent_name=agents.get(e.agent_id),
                redacted=redacted,
                source_url=source_url(e),
                contact_url=safe_reverse("crm:contact-detail", e.contact_id) if e.contact_id else None,
                lead_url=safe_reverse("crm:lead-detail", e.lead_id) if e.lead_id else None,
                account_url=safe_reverse("crm:account-detail", e.account_id) if e.account_id else None,
            )
        )
    return rows
