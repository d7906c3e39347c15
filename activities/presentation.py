"""Turns a page of feed rows into what a template shows: names fetched once per page (never per row,
never by a join inside the feed), and email content redacted for viewers without the permission."""

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model

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

    def __getattr__(self, name: str) -> Any:
        return getattr(self.entry, name)

    @property
    def summary_shown(self) -> str:
        return "" if self.redacted else self.entry.summary

    @property
    def first_message_shown(self) -> str:
        return "" if self.redacted else self.entry.first_message


def _names(model, ids: set[int], field: str = "name") -> dict[int, str]:
    if not ids:
        return {}
    return dict(model.objects.filter(pk__in=ids).values_list("pk", field))


def email_participation(*, membership: Membership, entries: list[FeedEntry]) -> set[int]:
    """Ids of email feed rows whose message was seen in one of the viewer's own mailboxes."""
    from emailsync.models import EmailLocation  # emailsync depends on activities, not the reverse

    source_ids = {e.source_id for e in entries if e.type == ActivityType.EMAIL and e.source_id}
    if not source_ids:
        return set()
    seen = set(
        EmailLocation.objects.for_tenant(membership.tenant_id)
        .filter(email_id__in=source_ids, mailbox__owner_id=membership.user_id)
        .values_list("email_id", flat=True)
    )
    return {e.id for e in entries if e.type == ActivityType.EMAIL and e.source_id in seen}


def present(entries: list[FeedEntry], *, membership: Membership) -> list[FeedRow]:
    contacts = _names(Contact, {e.contact_id for e in entries if e.contact_id})
    leads = _names(Lead, {e.lead_id for e in entries if e.lead_id})
    accounts = _names(Account, {e.account_id for e in entries if e.account_id})
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
            )
        )
    return rows
