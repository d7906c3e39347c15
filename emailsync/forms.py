from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from .client import HostNotAllowed, TransientError, validate_host
from .models import Mailbox, Security, SmtpSettings


class BootstrapMixin:
    def _style(self):
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput):
                css = "form-check-input"
            elif isinstance(widget, forms.Select):
                css = "form-select"
            else:
                css = "form-control"
            widget.attrs.setdefault("class", css)


def _no_line_breaks(value: str, what: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValidationError(f"Line breaks are not allowed in the {what}.")
    return value


def _check_host(form: forms.Form, host: str, port: int | None, security: str) -> None:
    if not host:
        return
    try:
        validate_host(host, port or 0)
    except (HostNotAllowed, TransientError) as exc:
        form.add_error("host", str(exc))
    if security == Security.NONE and not settings.EMAILSYNC_ALLOW_PRIVATE_HOSTS:
        form.add_error("security", "Unencrypted connections are only allowed to local test servers.")


class MailboxForm(BootstrapMixin, forms.ModelForm):
    secret = forms.CharField(
        label="Password or OAuth2 access token",
        widget=forms.PasswordInput(render_value=False),
        required=False,
        strip=False,
        help_text="Stored encrypted and never shown again.",
    )
    folders_text = forms.CharField(
        label="Folders to sync", initial="INBOX, Sent", help_text="Comma-separated, e.g. INBOX, Sent."
    )

    class Meta:
        model = Mailbox
        fields = [
            "email_address",
            "host",
            "port",
            "security",
            "username",
            "auth_method",
            "start_date",
            "create_contacts",
        ]
        widgets = {"start_date": forms.DateInput(attrs={"type": "date"})}
        help_texts = {"start_date": "Only mail received since this day is imported on the first sync."}

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self._style()
        self.tenant = tenant
        if self.instance.pk:
            self.fields["folders_text"].initial = ", ".join(self.instance.folders)
            self.fields["secret"].help_text = "Leave empty to keep the stored one."
        else:
            self.fields["secret"].required = True

    def clean_email_address(self):
        value = self.cleaned_data["email_address"].strip().lower()
        validate_email(value)
        return value

    def clean_folders_text(self):
        folders = [f.strip() for f in self.cleaned_data["folders_text"].split(",") if f.strip()]
        if not folders:
            raise ValidationError("Name at least one folder.")
        for folder in folders:
            _no_line_breaks(folder, "folder names")
            if '"' in folder or len(folder) > 200:
                raise ValidationError(f"{folder[:40]!r} is not a valid folder name.")
        return folders

    def clean(self):
        data = super().clean()
        _check_host(self, data.get("host", ""), data.get("port"), data.get("security", ""))
        host, username = data.get("host"), data.get("username")
        if host and username:
            clash = Mailbox.objects.for_tenant(self.tenant).filter(host=host, username=username)
            if self.instance.pk:
                clash = clash.exclude(pk=self.instance.pk)
            if clash.exists():
                self.add_error("username", "This account is already connected in this workspace.")
        return data

    def validate_unique(self):
        pass  # checked in clean() with a message in words (the tenant is not a form field)

    def mailbox_fields(self) -> dict:
        data = {name: self.cleaned_data[name] for name in self.Meta.fields}
        data["folders"] = self.cleaned_data["folders_text"]
        return data


class SmtpSettingsForm(BootstrapMixin, forms.ModelForm):
    secret = forms.CharField(
        label="Password",
        widget=forms.PasswordInput(render_value=False),
        required=False,
        strip=False,
        help_text="Stored encrypted; leave empty to keep the stored one.",
    )

    class Meta:
        model = SmtpSettings
        fields = ["host", "port", "security", "username", "from_address"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._style()

    def clean_from_address(self):
        value = self.cleaned_data["from_address"].strip()
        if value:
            _no_line_breaks(value, "address")
            validate_email(value)
        return value

    def clean(self):
        data = super().clean()
        _check_host(self, data.get("host", ""), data.get("port"), data.get("security", ""))
        return data


def _address_list(value: str, field: str, required: bool) -> list[str]:
    _no_line_breaks(value, f"{field} field")
    items = [v.strip() for v in value.replace(";", ",").split(",") if v.strip()]
    if required and not items:
        raise ValidationError("Enter at least one address.")
    for item in items:
        try:
            validate_email(item)
        except ValidationError:
            raise ValidationError(f"{item[:80]} is not a valid email address.") from None
    return [i.lower() for i in items]


class ComposeForm(BootstrapMixin, forms.Form):
    to = forms.CharField(max_length=2000, help_text="Comma-separated addresses.")
    cc = forms.CharField(max_length=2000, required=False)
    subject = forms.CharField(max_length=998, strip=False)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 12}), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._style()

    def clean_to(self):
        return _address_list(self.cleaned_data["to"], "To", required=True)

    def clean_cc(self):
        return _address_list(self.cleaned_data.get("cc", ""), "Cc", required=False)

    def clean_subject(self):
        value = _no_line_breaks(self.cleaned_data["subject"], "subject").strip()
        if not value:
            raise ValidationError("Enter a subject.")
        return value
