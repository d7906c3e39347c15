from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q

from activities.models import ActivityType, Direction, SummaryTsvector
from crm.tenancy import TenantOwned, Timestamped


class Channel(models.TextChoices):
    VOICE = "voice", "Voice"
    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"
    WEBCHAT = "webchat", "Web chat"
    EMAIL = "email", "Email"


# The activity type an interaction on each channel is logged as.
CHANNEL_ACTIVITY_TYPE = {
    Channel.VOICE: ActivityType.CALL,
    Channel.SMS: ActivityType.SMS,
    Channel.WHATSAPP: ActivityType.WHATSAPP,
    Channel.WEBCHAT: ActivityType.CHAT,
    Channel.EMAIL: ActivityType.EMAIL,
}


class Queue(TenantOwned, Timestamped):
    name = models.CharField(max_length=120)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    team = models.ForeignKey("crm.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="queue_name_per_tenant")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_channel_display()})"


class InteractionStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class Interaction(TenantOwned, Timestamped):
    """A conversation on a channel, open or closed. Messages hang off it; closing it writes the
    ``closed_interactions`` row that joins the audit trail."""

    external_id = models.CharField(max_length=200, help_text="The channel's id for the conversation.")
    queue = models.ForeignKey(Queue, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    team = models.ForeignKey("crm.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    contact = models.ForeignKey(
        "crm.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lead = models.ForeignKey("crm.Lead", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    account = models.ForeignKey(
        "crm.Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.INBOUND)
    status = models.CharField(
        max_length=10, choices=InteractionStatus.choices, default=InteractionStatus.OPEN
    )
    started_at = models.DateTimeField()
    last_event_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel", "external_id"], name="interaction_external_per_tenant"
            )
        ]
        indexes = [models.Index(fields=["tenant", "status", "-started_at"], name="interaction_tenant_status")]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.external_id}"


class ClosedInteraction(TenantOwned):
    """A finished interaction (table ``closed_interactions``), one of the two sources of the feed.

    Its id comes from the sequence shared with ``crm_activities``. ``activity_logged`` is true when the
    close also wrote an activity, which then stands for it in ``activity_feed`` (no double rows).
    """

    interaction = models.OneToOneField(Interaction, on_delete=models.CASCADE, related_name="closed")
    queue = models.ForeignKey(Queue, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    # The activity type this interaction counts as in the feed (derived from the channel on save).
    type = models.CharField(max_length=20, choices=ActivityType.choices, editable=False)
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    team = models.ForeignKey("crm.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    contact = models.ForeignKey(
        "crm.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lead = models.ForeignKey("crm.Lead", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    account = models.ForeignKey(
        "crm.Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.INBOUND)
    summary = models.CharField(max_length=500, blank=True)
    first_message = models.TextField(blank=True)
    message_count = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    closed_at = models.DateTimeField()
    duration_seconds = models.PositiveIntegerField(default=0)
    activity_logged = models.BooleanField(default=False)

    class Meta:
        db_table = "closed_interactions"
        indexes = [
            models.Index(
                fields=["tenant", "-started_at", "-id"],
                name="ci_tenant_time",
                condition=Q(activity_logged=False),
            ),
            models.Index(
                fields=["tenant", "contact", "-started_at", "-id"],
                name="ci_tenant_contact_time",
                condition=Q(activity_logged=False, contact__isnull=False),
            ),
            models.Index(
                fields=["tenant", "lead", "-started_at", "-id"],
                name="ci_tenant_lead_time",
                condition=Q(activity_logged=False, lead__isnull=False),
            ),
            models.Index(
                fields=["tenant", "account", "-started_at", "-id"],
                name="ci_tenant_account_time",
                condition=Q(activity_logged=False, account__isnull=False),
            ),
            models.Index(
                fields=["tenant", "agent", "-started_at", "-id"],
                name="ci_tenant_agent_time",
                condition=Q(activity_logged=False),
            ),
            models.Index(
                fields=["tenant", "team", "-started_at", "-id"],
                name="ci_tenant_team_time",
                condition=Q(activity_logged=False),
            ),
            models.Index(fields=["tenant", "-closed_at"], name="ci_tenant_closed"),
            GinIndex(SummaryTsvector("summary"), name="ci_summary_tsv"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} closed {self.closed_at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        self.type = CHANNEL_ACTIVITY_TYPE[self.channel]
        super().save(*args, **kwargs)


class MessageKind(models.TextChoices):
    MESSAGE = "message", "Message"
    SYSTEM = "system", "System event"


class InteractionMessage(TenantOwned):
    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="messages")
    external_id = models.CharField(max_length=200, null=True, blank=True)
    kind = models.CharField(max_length=10, choices=MessageKind.choices, default=MessageKind.MESSAGE)
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.INBOUND)
    author_name = models.CharField(max_length=200, blank=True)
    author_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.TextField()
    sent_at = models.DateTimeField()

    class Meta:
        ordering = ["sent_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "interaction", "external_id"],
                name="message_external_per_interaction",
                condition=Q(external_id__isnull=False),
            )
        ]
        indexes = [models.Index(fields=["interaction", "sent_at", "id"], name="message_interaction_time")]

    def __str__(self) -> str:
        return self.text[:60]


class TicketStatus(models.TextChoices):
    OPEN = "open", "Open"
    PENDING = "pending", "Pending"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


class Ticket(TenantOwned, Timestamped):
    subject = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=TicketStatus.choices, default=TicketStatus.OPEN)
    contact = models.ForeignKey(
        "crm.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets"
    )
    interaction = models.ForeignKey(
        Interaction, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    team = models.ForeignKey("crm.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Bumped by every status change: names the change's activity (dedup key) and rejects stale forms.
    status_version = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "status", "-created_at"], name="ticket_tenant_status"),
            models.Index(fields=["tenant", "contact"], name="ticket_tenant_contact"),
        ]

    def __str__(self) -> str:
        return self.subject


# --- Channel ingestion and the website widget (issue 6) -------------------------------------------


class ChannelSecret(TenantOwned, Timestamped):
    """A tenant's HMAC secret for ``POST /api/v1/contactcenter/events``.

    Channels identify themselves with ``key_id`` (public) and sign with the secret, which is stored
    encrypted (crm.crypto) because HMAC needs the plaintext. The plaintext is shown once, on creation or
    rotation, and never again.
    """

    key_id = models.CharField(max_length=40, unique=True)
    secret_encrypted = models.TextField()
    is_active = models.BooleanField(default=True)
    label = models.CharField(max_length=120, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "is_active"], name="channelsecret_tenant_active")]

    def __str__(self) -> str:
        return f"{self.key_id} ({'active' if self.is_active else 'revoked'})"


class ChannelEvent(TenantOwned):
    """One accepted channel event, kept so a repeated delivery (same ``event_id``) is ignored."""

    event_id = models.CharField(max_length=200)
    type = models.CharField(max_length=40)
    interaction = models.ForeignKey(
        Interaction, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "event_id"], name="channel_event_once_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class WidgetConfig(TenantOwned, Timestamped):
    """The website chat widget of a tenant: public key (in the script URL), the origins allowed to call
    it (CORS), the queue its chats land in."""

    public_key = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=120, default="Website chat")
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="+")
    allowed_origins = ArrayField(
        models.CharField(max_length=255),
        default=list,
        blank=True,
        help_text="Exact origins (scheme://host[:port]) of the websites that embed the widget.",
    )
    enabled = models.BooleanField(default=True)
    title = models.CharField(max_length=120, default="Chat with us")

    def __str__(self) -> str:
        return f"{self.name} ({self.public_key})"


class WidgetChat(TenantOwned, Timestamped):
    """A visitor's chat through the widget. The visitor holds a signed token naming this chat and a
    random nonce; only the nonce's hash is stored."""

    widget = models.ForeignKey(WidgetConfig, on_delete=models.CASCADE, related_name="chats")
    interaction = models.OneToOneField(Interaction, on_delete=models.CASCADE, related_name="widget_chat")
    visitor_name = models.CharField(max_length=200)
    visitor_email = models.CharField(max_length=254)
    nonce_hash = models.CharField(max_length=64)
    ended_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.visitor_name} <{self.visitor_email}>"
