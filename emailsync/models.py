from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from crm import crypto
from crm.tenancy import TenantOwned, Timestamped


def default_folders() -> list[str]:
    return ["INBOX", "Sent"]


class Security(models.TextChoices):
    TLS = "tls", "TLS (IMAPS)"
    STARTTLS = "starttls", "STARTTLS"
    NONE = "none", "None (loopback only)"


class AuthMethod(models.TextChoices):
    PASSWORD = "password", "Password"
    XOAUTH2 = "xoauth2", "OAuth2 access token (XOAUTH2)"


class MailboxStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    ERROR = "error", "Error (retrying)"
    NEEDS_ATTENTION = "needs_attention", "Needs attention"
    DISABLED = "disabled", "Disabled"


class Mailbox(TenantOwned, Timestamped):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mailboxes")
    team = models.ForeignKey("crm.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    email_address = models.CharField(max_length=254)
    host = models.CharField(max_length=253)
    port = models.PositiveIntegerField(default=993)
    security = models.CharField(max_length=10, choices=Security.choices, default=Security.TLS)
    username = models.CharField(max_length=254)
    auth_method = models.CharField(max_length=10, choices=AuthMethod.choices, default=AuthMethod.PASSWORD)
    # Fernet token of the password or OAuth2 access token; never shown again, never logged.
    secret_encrypted = models.TextField(editable=False)
    folders = ArrayField(models.CharField(max_length=200), default=default_folders)
    start_date = models.DateField(null=True, blank=True)
    create_contacts = models.BooleanField(default=False, help_text="Create contacts for unknown senders.")

    status = models.CharField(max_length=20, choices=MailboxStatus.choices, default=MailboxStatus.ACTIVE)
    last_error = models.TextField(blank=True)
    failure_count = models.PositiveIntegerField(default=0)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    next_sync_at = models.DateTimeField(null=True, blank=True)
    messages_imported = models.PositiveIntegerField(default=0)
    # Lease: one sync per mailbox at a time; the fencing token increases with every lease taken.
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "mailboxes"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "host", "username"], name="mailbox_per_tenant_account")
        ]
        indexes = [models.Index(fields=["status", "next_sync_at"], name="mailbox_due_idx")]

    def __str__(self) -> str:
        return self.email_address

    def set_secret(self, secret: str) -> None:
        self.secret_encrypted = crypto.encrypt(secret)

    def get_secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted)


class MailboxFolder(TenantOwned):
    """Sync position of one folder: a cache; losing it costs a re-scan, never a duplicate."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="folder_states")
    name = models.CharField(max_length=200)
    uidvalidity = models.BigIntegerField(null=True, blank=True)
    last_uid = models.BigIntegerField(default=0)
    uidnext = models.BigIntegerField(null=True, blank=True)
    message_count = models.PositiveIntegerField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mailbox", "name"], name="folder_per_mailbox")]

    def __str__(self) -> str:
        return f"{self.mailbox} / {self.name}"


class ParseStatus(models.TextChoices):
    OK = "ok", "Parsed"
    PARTIAL = "partial", "Parsed with defects"
    FAILED = "failed", "Unparseable (stored raw)"
    TRUNCATED = "truncated", "Too large (headers only)"


class IncomingEmail(TenantOwned):
    """One message per tenant (table ``incoming_emails``), however many places it was seen in."""

    message_key = models.CharField(
        max_length=300, help_text="Normalised Message-ID, or sha256 of the raw message."
    )
    message_id = models.CharField(max_length=998, blank=True)
    in_reply_to = models.CharField(max_length=998, blank=True)
    references = models.TextField(blank=True)
    subject = models.CharField(max_length=998, blank=True)
    sender = models.CharField(max_length=254, blank=True)
    sender_name = models.CharField(max_length=200, blank=True)
    recipients = ArrayField(models.CharField(max_length=254), default=list, blank=True)
    snippet = models.CharField(max_length=300, blank=True)
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True)
    received_at = models.DateTimeField(null=True, blank=True)
    raw_size = models.PositiveIntegerField(default=0)
    raw = models.BinaryField(editable=False)
    parse_status = models.CharField(max_length=10, choices=ParseStatus.choices, default=ParseStatus.OK)
    parse_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "incoming_emails"
        constraints = [models.UniqueConstraint(fields=["tenant", "message_key"], name="email_key_per_tenant")]
        indexes = [
            models.Index(fields=["tenant", "-received_at"], name="email_tenant_received"),
            models.Index(fields=["tenant", "sender"], name="email_tenant_sender"),
        ]

    def __str__(self) -> str:
        return self.subject or self.message_key


class EmailLocation(TenantOwned):
    """A place a message was seen: (mailbox, folder, UIDVALIDITY, UID)."""

    email = models.ForeignKey(IncomingEmail, on_delete=models.CASCADE, related_name="locations")
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="locations")
    folder = models.CharField(max_length=200)
    uidvalidity = models.BigIntegerField()
    uid = models.BigIntegerField()
    seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox", "folder", "uidvalidity", "uid"], name="email_location_unique"
            )
        ]
        indexes = [models.Index(fields=["email", "mailbox"], name="email_location_email")]


class SmtpSettings(TenantOwned, Timestamped):
    """The tenant's outgoing mail server (one per tenant); the password is encrypted like mailbox secrets."""

    host = models.CharField(max_length=253)
    port = models.PositiveIntegerField(default=587)
    security = models.CharField(max_length=10, choices=Security.choices, default=Security.STARTTLS)
    username = models.CharField(max_length=254, blank=True)
    secret_encrypted = models.TextField(blank=True, editable=False)
    from_address = models.CharField(
        max_length=254, blank=True, help_text="Envelope sender; empty: the author's own address."
    )

    class Meta:
        verbose_name = "SMTP settings"
        verbose_name_plural = "SMTP settings"
        constraints = [models.UniqueConstraint(fields=["tenant"], name="smtp_settings_per_tenant")]

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    def set_secret(self, secret: str) -> None:
        self.secret_encrypted = crypto.encrypt(secret) if secret else ""

    def get_secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted) if self.secret_encrypted else ""


class OutgoingStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class OutgoingEmail(TenantOwned, Timestamped):
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    contact = models.ForeignKey(
        "crm.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    to = ArrayField(models.CharField(max_length=254), default=list)
    cc = ArrayField(models.CharField(max_length=254), default=list, blank=True)
    subject = models.CharField(max_length=998)
    body = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=OutgoingStatus.choices, default=OutgoingStatus.DRAFT)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    message_id = models.CharField(max_length=998, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "status"], name="outgoing_tenant_status"),
            models.Index(
                fields=["tenant", "contact", "-created_at"],
                name="outgoing_tenant_contact",
                condition=Q(contact__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.subject
