"""The one visibility rule, used by every door (grid, timelines, badges, export, admin...).

- admins see the whole tenant;
- managers and agents see rows of their teams, plus rows they are the agent of;
- without the email permission, email rows are shown in limited form (who, when, direction)
  unless the viewer is a participant (the agent, or the email was seen in their own mailbox).
"""

from django.db.models import Q, QuerySet

from .models import Membership


def sees_whole_tenant(membership: Membership) -> bool:
    return membership.is_admin


def team_ids(membership: Membership) -> list[int]:
    cached = getattr(membership, "_team_ids", None)
    if cached is None:
        cached = list(membership.teams.values_list("id", flat=True))
        membership._team_ids = cached
    return cached


def scope_q(membership: Membership, *, team_field: str = "team", user_field: str | None = "user") -> Q:
    """A Q object selecting the rows of a tenant-scoped queryset this member may see."""
    if sees_whole_tenant(membership):
        return Q()
    q = Q(**{f"{team_field}__in": team_ids(membership)})
    if user_field:
        q |= Q(**{user_field: membership.user_id})
    return q


def scope(
    queryset: QuerySet, membership: Membership, *, team_field: str = "team", user_field: str | None = "user"
) -> QuerySet:
    return queryset.filter(scope_q(membership, team_field=team_field, user_field=user_field))


def can_see_entity(membership: Membership | None, entity) -> bool:
    """The same rule for one contact, lead or account already in hand (team or owner)."""
    if membership is None or entity is None or entity.tenant_id != membership.tenant_id:
        return False
    return (
        sees_whole_tenant(membership)
        or entity.team_id in team_ids(membership)
        or entity.owner_id == membership.user_id
    )


def can_see_email_content(membership: Membership, *, agent_id: int | None, participant: bool = False) -> bool:
    return membership.is_admin or membership.can_manage_email or participant or agent_id == membership.user_id
