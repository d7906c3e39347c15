"""Forms for contact edits, lead conversion, API keys, members and teams. Every choice is narrowed to the
tenant (and the member's teams); fields a form does not offer cannot be set through it."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model, password_validation

from . import visibility
from .models import Account, ContactStatus, Membership, Role, Team


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.get_full_name() or obj.email or obj.username


def visible_accounts(membership: Membership):
    return visibility.scope(
        Account.objects.for_tenant(membership.tenant_id), membership, team_field="team", user_field="owner"
    )


def team_choices(membership: Membership, *, keep=None):
    teams = Team.objects.for_tenant(membership.tenant_id)
    if not membership.is_admin:
        ids = set(visibility.team_ids(membership))
        if keep is not None:
            ids.add(keep.pk)
        teams = teams.filter(pk__in=ids)
    return teams


class ContactForm(forms.Form):
    name = forms.CharField(max_length=200)
    emails = forms.CharField(
        label="Email addresses",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One per line; the first is the primary address.",
    )
    phones = forms.CharField(
        label="Phone numbers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One per line; the first is the primary number.",
    )
    owner = UserChoiceField(queryset=get_user_model().objects.none(), required=False)
    team = forms.ModelChoiceField(queryset=Team.objects.none(), required=False)
    account = forms.ModelChoiceField(queryset=Account.objects.none(), required=False)
    status = forms.ChoiceField(choices=ContactStatus.choices)

    def __init__(self, *args, membership: Membership, contact, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = (
            get_user_model()
            .objects.filter(memberships__tenant_id=membership.tenant_id, memberships__is_active=True)
            .order_by("first_name", "last_name", "email")
        )
        self.fields["team"].queryset = team_choices(membership, keep=contact.team)
        accounts = visible_accounts(membership)
        if contact.account_id:
            accounts = accounts | Account.objects.for_tenant(membership.tenant_id).filter(
                pk=contact.account_id
            )
        self.fields["account"].queryset = accounts.distinct().order_by("name")

    @staticmethod
    def initial_for(contact) -> dict:
        return {
            "name": contact.name,
            "emails": "\n".join(contact.emails),
            "phones": "\n".join(contact.phones),
            "owner": contact.owner_id,
            "team": contact.team_id,
            "account": contact.account_id,
            "status": contact.status,
        }

    def clean_emails(self):
        emails = _split(self.cleaned_data.get("emails", ""))
        validator = forms.EmailField()
        for address in emails:
            try:
                validator.clean(address)
            except forms.ValidationError as exc:
                raise forms.ValidationError(f"{address!r} is not an email address.") from exc
        return emails

    def clean_phones(self):
        phones = _split(self.cleaned_data.get("phones", ""))
        for number in phones:
            digits = "".join(ch for ch in number if ch.isdigit())
            if len(digits) < 5 or len(digits) > 20:
                raise forms.ValidationError(f"{number!r} is not a phone number.")
        return phones


class LeadConvertForm(forms.Form):
    account = forms.ModelChoiceField(
        queryset=Account.objects.none(), required=False, help_text="Link the contact to an existing account."
    )
    create_account_name = forms.CharField(
        label="…or create an account named",
        max_length=200,
        required=False,
    )

    def __init__(self, *args, membership: Membership, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = visible_accounts(membership).order_by("name")

    def clean(self):
        data = super().clean()
        if data.get("account") and (data.get("create_account_name") or "").strip():
            self.add_error("create_account_name", "Pick an existing account or name a new one, not both.")
        return data


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="What will use the key, e.g. 'Newsletter tool'.")


# --- members and teams ---------------------------------------------------------------------------------


def role_choices(actor: Membership) -> list[tuple[str, str]]:
    """Admins grant any role; managers only add and keep agents."""
    if actor.is_admin:
        return list(Role.choices)
    return [(Role.AGENT.value, Role.AGENT.label)]


class _MemberFields(forms.Form):
    role = forms.ChoiceField(choices=())
    teams = forms.ModelMultipleChoiceField(
        queryset=Team.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple(attrs={"class": "form-check-input"}),
    )
    can_manage_email = forms.BooleanField(
        label="Email permission",
        required=False,
        help_text="May see the subject, snippet and body of every email activity they can see.",
    )

    def _narrow(self, actor: Membership) -> None:
        self.fields["role"].choices = role_choices(actor)
        self.fields["teams"].queryset = team_choices(actor).order_by("name")
        if not actor.is_admin:
            self.fields["teams"].required = True
            self.fields["teams"].help_text = "Your teams."


class MemberAddForm(_MemberFields):
    """A new user and their membership. Only these fields are read: tenant, user id, staff or superuser
    flags posted alongside are ignored."""

    field_order = ["email", "first_name", "last_name", "password", "role", "teams", "can_manage_email"]

    email = forms.EmailField(max_length=150, help_text="They sign in with this address.")
    first_name = forms.CharField(max_length=150)
    last_name = forms.CharField(max_length=150, required=False)
    password = forms.CharField(
        label="Initial password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args, actor: Membership, **kwargs):
        super().__init__(*args, **kwargs)
        self._narrow(actor)
        self.fields["role"].initial = Role.AGENT
        rules = " ".join(password_validation.password_validators_help_texts())
        self.fields["password"].help_text = f"{rules} Share it with them safely."

    def clean(self):
        data = super().clean()
        password = data.get("password")
        if password:
            candidate = get_user_model()(
                username=data.get("email", ""),
                email=data.get("email", ""),
                first_name=data.get("first_name", ""),
                last_name=data.get("last_name", ""),
            )
            try:
                password_validation.validate_password(password, candidate)
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return data


class MemberEditForm(_MemberFields):
    """A member's role, teams and email permission. A manager sees only their own teams: the member's other
    teams are kept as they are (``final_teams``)."""

    def __init__(self, *args, actor: Membership, member: Membership, **kwargs):
        self.actor = actor
        self.member = member
        self.current_teams = list(member.teams.all())
        offered_ids = None if actor.is_admin else set(visibility.team_ids(actor))
        kwargs.setdefault(
            "initial",
            {
                "role": member.role,
                "teams": [t.pk for t in self.current_teams if offered_ids is None or t.pk in offered_ids],
                "can_manage_email": member.can_manage_email,
            },
        )
        super().__init__(*args, **kwargs)
        self._narrow(actor)
        self._offered_ids = offered_ids

    def final_teams(self) -> list[Team]:
        chosen = list(self.cleaned_data["teams"])
        if self._offered_ids is None:
            return chosen
        kept = [team for team in self.current_teams if team.pk not in self._offered_ids]
        return kept + chosen


class TeamForm(forms.Form):
    name = forms.CharField(max_length=120)
