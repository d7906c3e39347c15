"""Filters and forms. Every foreign-key choice is narrowed to the tenant (and the user's teams)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from activities.models import Direction
from crm import visibility
from crm.models import Contact, Membership, Team

from . import selectors
from .models import Channel, ClosedInteraction, Queue, TicketStatus

EVENT_CHANNELS = [c for c in Channel.choices if c[0] != Channel.EMAIL]


def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def tenant_users(membership: Membership):
    """Users of the tenant a member may pick: everyone for admins, members of their teams otherwise."""
    memberships = Membership.objects.active().for_tenant(membership.tenant_id)
    if not visibility.sees_whole_tenant(membership):
        memberships = memberships.filter(teams__in=visibility.team_ids(membership))
    return (
        get_user_model()
        .objects.filter(pk__in=memberships.values("user_id"))
        .order_by("first_name", "last_name", "email")
    )


def member_teams(membership: Membership):
    teams = Team.objects.for_tenant(membership.tenant_id)
    if not visibility.sees_whole_tenant(membership):
        teams = teams.filter(pk__in=visibility.team_ids(membership))
    return teams.order_by("name")


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.get_full_name() or obj.email


class ClosedInteractionFilter(django_filters.FilterSet):
    channel = django_filters.ChoiceFilter(choices=EVENT_CHANNELS, empty_label="Any channel")
    queue = django_filters.ModelChoiceFilter(queryset=Queue.objects.none(), empty_label="Any queue")
    agent = django_filters.ModelChoiceFilter(
        queryset=get_user_model().objects.none(), empty_label="Any agent", field_name="agent"
    )
    contact = django_filters.CharFilter(method="filter_contact", label="Contact")
    direction = django_filters.ChoiceFilter(
        choices=[(Direction.INBOUND, "Inbound"), (Direction.OUTBOUND, "Outbound")],
        empty_label="Any direction",
    )
    date_from = django_filters.DateFilter(method="filter_from", label="From")
    date_to = django_filters.DateFilter(method="filter_to", label="To")

    class Meta:
        model = ClosedInteraction
        fields = ["channel", "queue", "agent", "contact", "direction", "date_from", "date_to"]

    def __init__(self, *args, membership: Membership, **kwargs):
        super().__init__(*args, **kwargs)
        self.membership = membership
        # Narrow the choices before the form is built from the filters.
        self.filters["queue"].queryset = Queue.objects.for_tenant(membership.tenant_id).order_by("name")
        self.filters["agent"].queryset = tenant_users(membership)
        self.form.fields["agent"].label_from_instance = lambda u: u.get_full_name() or u.email
        for field in self.form.fields.values():
            field.widget.attrs.setdefault("class", "form-select form-select-sm")
        for name in ("contact",):
            self.form.fields[name].widget.attrs["class"] = "form-control form-control-sm"
            self.form.fields[name].widget.attrs["placeholder"] = "Contact name"
        for name in ("date_from", "date_to"):
            self.form.fields[name].widget = forms.DateInput(
                attrs={"type": "date", "class": "form-control form-control-sm"}
            )

    def filter_contact(self, queryset, name, value):
        value = (value or "").strip()
        if not value:
            return queryset
        # Match ids on the (small, trigram-indexed) contacts table first, then seek the closed rows.
        ids = (
            Contact.objects.for_tenant(self.membership.tenant_id)
            .extra(where=["crm_contact.name ILIKE %s"], params=[_like(value)])  # noqa: S610 - parameterised
            .values("id")
        )
        return queryset.filter(contact_id__in=ids)

    @staticmethod
    def _day_start(value):
        return timezone.make_aware(datetime.combine(value, time.min), timezone.get_current_timezone())

    def filter_from(self, queryset, name, value):
        return queryset.filter(started_at__gte=self._day_start(value))

    def filter_to(self, queryset, name, value):
        return queryset.filter(started_at__lt=self._day_start(value + timedelta(days=1)))


class TicketForm(forms.Form):
    subject = forms.CharField(max_length=300)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    contact = forms.IntegerField(widget=forms.HiddenInput, required=False)
    interaction = forms.IntegerField(widget=forms.HiddenInput, required=False)
    assignee = UserChoiceField(queryset=get_user_model().objects.none(), required=False)
    team = forms.ModelChoiceField(queryset=Team.objects.none(), required=False)

    def __init__(self, *args, membership: Membership, **kwargs):
        super().__init__(*args, **kwargs)
        self.membership = membership
        self.fields["assignee"].queryset = tenant_users(membership)
        self.fields["team"].queryset = member_teams(membership)
        for name, field in self.fields.items():
            if name in ("assignee", "team"):
                field.widget.attrs["class"] = "form-select"
            elif not isinstance(field.widget, forms.HiddenInput):
                field.widget.attrs["class"] = "form-control"

    def clean_contact(self):
        pk = self.cleaned_data.get("contact")
        if not pk:
            return None
        contact = selectors.contacts_visible(membership=self.membership).filter(pk=pk).first()
        if contact is None:
            raise forms.ValidationError("That contact does not exist.")
        return contact

    def clean_interaction(self):
        pk = self.cleaned_data.get("interaction")
        if not pk:
            return None
        interaction = selectors.interactions_visible(membership=self.membership).filter(pk=pk).first()
        if interaction is None:
            raise forms.ValidationError("That interaction does not exist.")
        return interaction


class TicketStatusForm(forms.Form):
    status = forms.ChoiceField(choices=TicketStatus.choices)
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)


class ReplyForm(forms.Form):
    text = forms.CharField(max_length=10_000, widget=forms.Textarea(attrs={"rows": 2}))
