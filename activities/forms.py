"""The form people log (and edit) a call, note, meeting or task with.

Contact / lead / account choices come from the member's visible entities only (tenant, then teams or
own); nothing the form does not offer (tenant, team, agent, source...) can be set through it.
"""

from __future__ import annotations

from django import forms
from django.utils import timezone

from crm import visibility
from crm.models import Account, Contact, Lead, Membership

from .models import MANUAL_TYPES, Activity, ActivityType, Direction

# A select lists at most this many entities (most recently updated first); the entity a form was opened
# for is always among them. Logging from the entity's own page or timeline has no limit.
CHOICE_LIMIT = 200
BODY_MAX = 10_000


def visible_entities(model, membership: Membership):
    queryset = model.objects.for_tenant(membership.tenant_id)
    return visibility.scope(queryset, membership, team_field="team", user_field="owner")


class ScopedChoiceField(forms.ModelChoiceField):
    """Validates against the whole scoped queryset but renders only a bounded list of options."""

    def limit_options(self, *, keep=None):
        options = list(self.queryset.order_by("-updated_at", "-id")[:CHOICE_LIMIT])
        if keep is not None and all(o.pk != keep.pk for o in options):
            options.insert(0, keep)
        self.choices = [("", "—")] + [(o.pk, self.label_from_instance(o)) for o in options]


class ActivityForm(forms.Form):
    type = forms.ChoiceField(choices=[(t.value, t.label) for t in MANUAL_TYPES], initial=ActivityType.CALL)
    direction = forms.ChoiceField(
        choices=[("", "—"), (Direction.OUTBOUND, "Outbound"), (Direction.INBOUND, "Inbound")],
        required=False,
        help_text="Calls only.",
    )
    summary = forms.CharField(max_length=500)
    body = forms.CharField(
        label="Notes", widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=BODY_MAX
    )
    occurred_at = forms.DateTimeField(
        label="When",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Empty: now.",
    )
    duration_minutes = forms.IntegerField(
        label="Duration (minutes)",
        min_value=0,
        max_value=24 * 60,
        required=False,
        help_text="Calls and meetings.",
    )
    due_at = forms.DateTimeField(
        label="Due",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Tasks only.",
    )
    done = forms.BooleanField(required=False, help_text="Tasks only.")
    contact = ScopedChoiceField(queryset=Contact.objects.none(), required=False)
    lead = ScopedChoiceField(queryset=Lead.objects.none(), required=False)
    account = ScopedChoiceField(queryset=Account.objects.none(), required=False)

    def __init__(self, *args, membership: Membership, fixed: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.membership = membership
        fixed = fixed or {}
        for name, model in (("contact", Contact), ("lead", Lead), ("account", Account)):
            field = self.fields[name]
            field.queryset = visible_entities(model, membership)
            current = self.initial.get(name)
            if isinstance(current, model) and current.tenant_id == membership.tenant_id:
                # Editing: the entity the activity already points at stays valid even if not visible.
                field.queryset = field.queryset | model.objects.for_tenant(membership.tenant_id).filter(
                    pk=current.pk
                )
            field.limit_options(keep=fixed.get(name) or current)

    def clean(self):
        data = super().clean()
        kind = data.get("type")
        if not (data.get("contact") or data.get("lead") or data.get("account")):
            self.add_error("contact", "Pick a contact, a lead or an account this activity is about.")
        if kind == ActivityType.CALL:
            if not data.get("direction"):
                self.add_error("direction", "Was the call inbound or outbound?")
        else:
            data["direction"] = Direction.NONE
        if kind not in (ActivityType.CALL, ActivityType.MEETING):
            data["duration_minutes"] = None
        if kind != ActivityType.TASK:
            data["due_at"] = None
            data["done"] = False
        return data

    def service_kwargs(self) -> dict:
        """What ``activity_log`` / ``activity_update`` get: only the fields this form offers."""
        data = self.cleaned_data
        minutes = data.get("duration_minutes")
        return {
            "type": data["type"],
            "direction": data["direction"] or Direction.NONE,
            "summary": data["summary"],
            "body": data.get("body") or "",
            "occurred_at": data.get("occurred_at") or timezone.now(),
            "duration_seconds": minutes * 60 if minutes is not None else None,
            "due_at": data.get("due_at"),
            "done": bool(data.get("done")),
            "contact": data.get("contact"),
            "lead": data.get("lead"),
            "account": data.get("account"),
        }

    @classmethod
    def initial_for(cls, activity: Activity) -> dict:
        return {
            "type": activity.type,
            "direction": activity.direction if activity.direction != Direction.NONE else "",
            "summary": activity.summary,
            "body": activity.body,
            "occurred_at": timezone.localtime(activity.occurred_at),
            "duration_minutes": activity.duration_seconds // 60
            if activity.duration_seconds is not None
            else None,
            "due_at": timezone.localtime(activity.due_at) if activity.due_at else None,
            "done": activity.done,
            "contact": activity.contact,
            "lead": activity.lead,
            "account": activity.account,
        }
