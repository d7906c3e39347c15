"""The grid's filter bar. Every choice list is narrowed to the tenant (agents: the tenant's members).

Bad input never errors the page: the form keeps the valid fields, drops the invalid ones and shows a
message next to each of them (``GridFilterForm.grid_query()`` builds the state from what is valid).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone

from crm.models import Membership

from .models import ActivitySource, ActivityType, Direction
from .selectors import DEFAULT_PAGE_SIZE, PAGE_SIZES, GridQuery

PARAMS = (
    "type",
    "agent",
    "contact",
    "source",
    "date_from",
    "date_to",
    "lead",
    "account",
    "direction",
    "summary",
    "per_page",
    "sort",
)
MULTI_PARAMS = ("type", "agent", "source")
SORTS = (("-created", "Newest first"), ("created", "Oldest first"))


def agent_choices(tenant_id: int) -> list[tuple[str, str]]:
    members = (
        Membership.objects.for_tenant(tenant_id)
        .filter(is_active=True)
        .select_related("user")
        .only("user__first_name", "user__last_name", "user__email", "user__username", "user_id")
    )
    choices = [(str(m.user_id), m.user.get_full_name() or m.user.email or m.user.username) for m in members]
    return sorted(choices, key=lambda c: c[1].lower())


class DateInput(forms.DateInput):
    input_type = "date"

    def format_value(self, value):
        return value.isoformat() if hasattr(value, "isoformat") else value


class GridFilterForm(forms.Form):
    type = forms.MultipleChoiceField(choices=ActivityType.choices, required=False)
    agent = forms.TypedMultipleChoiceField(
        coerce=int,
        required=False,
        error_messages={"invalid_choice": "Pick agents from the list (%(value)s is not one of them)."},
    )
    contact = forms.CharField(max_length=100, required=False, strip=True)
    source = forms.MultipleChoiceField(choices=ActivitySource.choices, required=False)
    date_from = forms.DateField(
        required=False, widget=DateInput, error_messages={"invalid": "Enter a date as YYYY-MM-DD."}
    )
    date_to = forms.DateField(
        required=False, widget=DateInput, error_messages={"invalid": "Enter a date as YYYY-MM-DD."}
    )
    lead = forms.CharField(max_length=100, required=False, strip=True)
    account = forms.CharField(max_length=100, required=False, strip=True)
    direction = forms.ChoiceField(
        choices=[("", "Any direction"), (Direction.INBOUND, "Inbound"), (Direction.OUTBOUND, "Outbound")],
        required=False,
    )
    summary = forms.CharField(max_length=200, required=False, strip=True)
    per_page = forms.TypedChoiceField(
        choices=[(str(n), str(n)) for n in PAGE_SIZES],
        coerce=int,
        required=False,
        empty_value=DEFAULT_PAGE_SIZE,
    )
    sort = forms.ChoiceField(choices=SORTS, required=False)

    def __init__(self, data, *, tenant_id: int, **kwargs):
        super().__init__(data, **kwargs)
        self.fields["agent"].choices = agent_choices(tenant_id)

    def clean_summary(self):
        value = self.cleaned_data.get("summary", "")
        from .selectors import summary_tsquery

        if value and summary_tsquery(value) is None:
            raise forms.ValidationError("Search for at least one word (letters or digits).")
        return value

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and end < start:
            self.add_error("date_to", "“To” is before “From”; the To date was ignored.")
        return data

    def grid_query(self) -> GridQuery:
        """The state built from the valid fields only (invalid ones are ignored, with their message)."""
        if not hasattr(self, "cleaned_data"):
            self.is_valid()
        d = self.cleaned_data
        tz = timezone.get_current_timezone()

        def start_of(day):
            return timezone.make_aware(datetime.combine(day, time.min), tz) if day else None

        date_to = d.get("date_to")
        return GridQuery(
            types=list(d.get("type") or []),
            agents=list(d.get("agent") or []),
            sources=list(d.get("source") or []),
            contact=d.get("contact") or "",
            lead=d.get("lead") or "",
            account=d.get("account") or "",
            direction=d.get("direction") or "",
            summary=d.get("summary") or "",
            date_from=start_of(d.get("date_from")),
            date_to=start_of(date_to + timedelta(days=1)) if date_to else None,
            descending=(d.get("sort") or "-created") == "-created",
            per_page=d.get("per_page") or DEFAULT_PAGE_SIZE,
        )
