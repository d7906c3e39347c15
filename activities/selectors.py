"""Reads of the audit trail. Every read goes through ``feed_visible`` so the visibility rule holds."""

from django.db.models import QuerySet

from crm import visibility
from crm.models import Membership

from .models import FeedEntry


def feed_visible(*, membership: Membership) -> QuerySet[FeedEntry]:
    """The tenant's feed rows this member may see (team scoping; redaction happens at presentation)."""
    queryset = FeedEntry.objects.for_tenant(membership.tenant_id)
    return visibility.scope(queryset, membership, team_field="team", user_field="agent")


def feed_recent(*, membership: Membership, limit: int = 20) -> list[FeedEntry]:
    return list(feed_visible(membership=membership).order_by("-occurred_at", "-id")[:limit])
