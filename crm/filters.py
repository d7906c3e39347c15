"""Filters of the entity grids. Every choice list is narrowed to the tenant (and, for managers and
agents, to their teams / what they can see): no choice list is ever built from a default manager."""

import django_filters
from django import forms
from django.contrib.auth import get_user_model

from . import selectors, visibility
from .models import ContactStatus, LeadStatus, Membership, Team

# Above this many visible accounts the account filter is not a drop-down (it would dominate the page);
# it is then set from the accounts grid / account page and shown as a removable chip.
ACCOUNT_SELECT_LIMIT = 300


class _EntityFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        label="Search",
        method="filter_search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Search", "autocomplete": "off"}),
    )
    owner = django_filters.ModelChoiceFilter(label="Owner", queryset=get_user_model().objects.none())
    team = django_filters.ModelChoiceFilter(label="Team", queryset=Team.objects.none())

    search_q = staticmethod(selectors.contact_search_q)

    def __init__(self, data=None, queryset=None, *, membership: Membership, **kwargs):
        self.membership = membership
        super().__init__(data, queryset=queryset, **kwargs)
        user_model = get_user_model()
        owners = (
            user_model.objects.filter(
                memberships__tenant_id=membership.tenant_id, memberships__is_active=True
            )
            .order_by("first_name", "last_name", "email")
            .only("first_name", "last_name", "email", "username")
        )
        teams = Team.objects.for_tenant(membership.tenant_id)
        if not visibility.sees_whole_tenant(membership):
            teams = teams.filter(pk__in=visibility.team_ids(membership))
        self.filters["owner"].queryset = owners
        self.filters["team"].queryset = teams
        self.form.fields["owner"].queryset = owners
        self.form.fields["team"].queryset = teams
        # The drop-downs are rendered from these lists (one plain query each), not by iterating the
        # ModelChoiceFields (a COUNT plus a server-side cursor per field).
        owner_rows = owners.values_list("pk", "first_name", "last_name", "email", "username")
        self.choice_lists = {
            "owner": [("", "---------")]
            + [
                (pk, f"{first} {last}".strip() or email or username)
                for pk, first, last, email, username in owner_rows
            ],
            "team": [("", "---------")] + list(teams.values_list("pk", "name")),
        }

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(type(self).search_q(value))


class ContactFilter(_EntityFilter):
    status = django_filters.ChoiceFilter(label="Status", choices=ContactStatus.choices)
    account = django_filters.ModelChoiceFilter(label="Account", queryset=selectors.Account.objects.none())

    search_q = staticmethod(selectors.contact_search_q)

    def __init__(self, *args, membership: Membership, **kwargs):
        super().__init__(*args, membership=membership, **kwargs)
        accounts = selectors.account_visible(membership=membership).order_by("name", "id").only("name")
        self.filters["account"].queryset = accounts
        field = self.form.fields["account"]
        field.queryset = accounts
        first = list(accounts.values_list("pk", "name")[: ACCOUNT_SELECT_LIMIT + 1])
        if len(first) > ACCOUNT_SELECT_LIMIT:
            field.widget = forms.HiddenInput()
        else:
            self.choice_lists["account"] = [("", "---------"), *first]


class LeadFilter(_EntityFilter):
    status = django_filters.ChoiceFilter(label="Status", choices=LeadStatus.choices)

    search_q = staticmethod(selectors.lead_search_q)


class AccountFilter(_EntityFilter):
    search_q = staticmethod(selectors.account_search_q)


FILTERS = {"contact": ContactFilter, "lead": LeadFilter, "account": AccountFilter}
