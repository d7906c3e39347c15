"""Reads of contacts, leads and accounts. Entities are team-scoped like feed rows: admins see the whole
tenant; managers and agents see the entities of their teams plus the ones they own. Anything else is a
404 indistinguishable from a missing row."""

from django.db.models import BooleanField, Count, F, Func, Prefetch, Q, QuerySet, Value
from django.http import Http404

from . import visibility
from .models import Account, Contact, Lead, Membership, Team


class ILike(Func):
    """``col ILIKE pattern``: unlike Django's ``icontains`` (``UPPER(col) LIKE``) the trigram GIN
    indexes on the name columns can serve it."""

    template = "%(expressions)s"
    arg_joiner = " ILIKE "
    output_field = BooleanField()


def like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def ilike(column: str, text: str) -> Q:
    return Q(ILike(F(column), Value(like_pattern(text))))


def normalise_phone(text: str) -> str | None:
    digits = "".join(ch for ch in text if ch.isdigit())
    return f"+{digits}" if len(digits) >= 5 else None


def _scoped(model, membership: Membership) -> QuerySet:
    queryset = model.objects.for_tenant(membership.tenant_id)
    return visibility.scope(queryset, membership, team_field="team", user_field="owner")


def contact_visible(*, membership: Membership) -> QuerySet[Contact]:
    return _scoped(Contact, membership)


def lead_visible(*, membership: Membership) -> QuerySet[Lead]:
    return _scoped(Lead, membership)


def account_visible(*, membership: Membership) -> QuerySet[Account]:
    return _scoped(Account, membership)


def contact_search_q(q: str) -> Q:
    cond = ilike("name", q) | Q(emails__contains=[q.lower()])
    phone = normalise_phone(q)
    if phone:
        cond |= Q(phones__contains=[phone])
    return cond


def lead_search_q(q: str) -> Q:
    return ilike("name", q) | ilike("email", q) | ilike("company", q)


def account_search_q(q: str) -> Q:
    return ilike("name", q) | ilike("domain", q)


def contact_list(*, membership: Membership) -> QuerySet[Contact]:
    return contact_visible(membership=membership).with_related(
        membership.tenant_id, "owner", "team", "account"
    )


def lead_list(*, membership: Membership) -> QuerySet[Lead]:
    return lead_visible(membership=membership).with_related(
        membership.tenant_id, "owner", "team", "converted_contact"
    )


def account_list(*, membership: Membership) -> QuerySet[Account]:
    return account_visible(membership=membership).with_related(membership.tenant_id, "owner", "team")


def _get(queryset: QuerySet, pk) -> object:
    try:
        return queryset.get(pk=int(pk))
    except (queryset.model.DoesNotExist, ValueError, TypeError):
        raise Http404("No such record.") from None


def contact_get(*, membership: Membership, pk) -> Contact:
    return _get(contact_list(membership=membership), pk)


def lead_get(*, membership: Membership, pk) -> Lead:
    return _get(lead_list(membership=membership), pk)


def account_get(*, membership: Membership, pk) -> Account:
    return _get(account_list(membership=membership), pk)


# --- members and teams (settings pages) ----------------------------------------------------------------
#
# Admins see every member and team of their tenant. Managers and agents see the members who share one of
# their teams (and themselves) and their own teams; what a role may change is ``services.member_editable``.
# Anything else, or another tenant's row, is a 404 like a missing one.


def member_visible(*, membership: Membership) -> QuerySet[Membership]:
    members = Membership.objects.for_tenant(membership.tenant_id)
    if visibility.sees_whole_tenant(membership):
        return members
    return members.filter(
        Q(
            pk__in=Membership.teams.through.objects.filter(
                team_id__in=visibility.team_ids(membership)
            ).values("membership_id")
        )
        | Q(pk=membership.pk)
    )


def member_list(*, membership: Membership) -> QuerySet[Membership]:
    """Members with their user and teams (two queries however many rows), active first, then by name."""
    return (
        member_visible(membership=membership)
        .select_related("user")
        .prefetch_related(Prefetch("teams", queryset=Team.objects.order_by("name")))
        .order_by("-is_active", "user__first_name", "user__last_name", "user__email", "id")
    )


def member_get(*, membership: Membership, pk) -> Membership:
    return _get(member_list(membership=membership), pk)


def team_visible(*, membership: Membership) -> QuerySet[Team]:
    teams = Team.objects.for_tenant(membership.tenant_id)
    if visibility.sees_whole_tenant(membership):
        return teams
    return teams.filter(pk__in=visibility.team_ids(membership))


def team_list(*, membership: Membership) -> QuerySet[Team]:
    """Teams with their number of active members, by name (one query)."""
    return (
        team_visible(membership=membership)
        .annotate(member_count=Count("memberships", filter=Q(memberships__is_active=True)))
        .order_by("name", "id")
    )


def team_get(*, membership: Membership, pk) -> Team:
    return _get(team_visible(membership=membership), pk)


def team_usage(*, team: Team) -> list[str]:
    """What still uses ``team``: the plural names of the models with a row pointing at it (one EXISTS query
    per model). Found from the model graph, so a model that gains a team column is covered too."""
    used = []
    for relation in Team._meta.get_fields(include_hidden=True):
        if not (relation.is_relation and relation.auto_created and not relation.concrete):
            continue
        model = relation.related_model
        if relation.many_to_many or not model._meta.managed:  # M2M: its through model is listed itself
            continue
        if model._base_manager.filter(**{relation.field.name: team}).exists():
            name = "members" if model is Membership.teams.through else str(model._meta.verbose_name_plural)
            used.append(name)
    return used
