"""Reads of contacts, leads and accounts. Entities are team-scoped like feed rows: admins see the whole
tenant; managers and agents see the entities of their teams plus the ones they own. Anything else is a
404 indistinguishable from a missing row."""

from django.db.models import BooleanField, F, Func, Q, QuerySet, Value
from django.http import Http404

from . import visibility
from .models import Account, Contact, Lead, Membership


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
    return contact_visible(membership=membership).select_related("owner", "team", "account")


def lead_list(*, membership: Membership) -> QuerySet[Lead]:
    return lead_visible(membership=membership).select_related("owner", "team", "converted_contact")


def account_list(*, membership: Membership) -> QuerySet[Account]:
    return account_visible(membership=membership).select_related("owner", "team")


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
