from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q

from crm.tenancy import TenantManager, TenantOwned, TenantQuerySet


class SummaryTsvector(models.Func):
    """``to_tsvector('simple', summary)``: what the summary GIN indexes hold and the grid's summary filter
    matches (activities.selectors.SUMMARY_TSVECTOR). No COALESCE (a NULL summary matches no query either
    way): PostgreSQL counts COALESCE as able to leak, and under row-level security only leakproof
    conditions may use an index (crm.rls.LEAKPROOF_FUNCTIONS)."""

    template = "to_tsvector('simple'::regconfig, (%(expressions)s)::text)"
    output_field = models.TextField()  # only ever indexed


class ActivityType(models.TextChoices):
    CALL = "call", "Call"
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"
    CHAT = "chat", "Chat"
    TICKET = "ticket", "Ticket"
    NOTE = "note", "Note"
    MEETING = "meeting", "Meeting"
    TASK = "task", "Task"
    LEAD_CONVERSION = "lead_conversion", "Lead conversion"
    CONTACT_UPDATE = "contact_update", "Contact update"


class ActivitySource(models.TextChoices):
    MANUAL = "manual", "Manual"
    INTERACTION = "interaction", "Interaction"
    EXTERNAL = "external", "External"
    CAMPAIGN = "campaign", "Campaign"


class Direction(models.TextChoices):
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"
    NONE = "none", "None"


# Types a person logs by hand; everything else is written by the system.
MANUAL_TYPES = (ActivityType.CALL, ActivityType.NOTE, ActivityType.MEETING, ActivityType.TASK)


class ActivityQuerySet(TenantQuerySet):
    def alive(self):
        return self.filter(deleted_at__isnull=True)

    def deleted(self):
        return self.filter(deleted_at__isnull=False)


class Activity(TenantOwned):
    """One entry of the audit trail (table ``crm_activities``).

    Its primary key comes from the sequence shared with ``closed_interactions`` (see migration 0002),
    so ``(occurred_at, id)`` is a unique keyset over the merged ``activity_feed``.
    """

    team = models.ForeignKey("crm.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="activities",
        verbose_name="agent",
    )
    contact = models.ForeignKey(
        "crm.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="activities"
    )
    lead = models.ForeignKey(
        "crm.Lead", null=True, blank=True, on_delete=models.SET_NULL, related_name="activities"
    )
    account = models.ForeignKey(
        "crm.Account", null=True, blank=True, on_delete=models.SET_NULL, related_name="activities"
    )
    type = models.CharField(max_length=20, choices=ActivityType.choices)
    source = models.CharField(max_length=16, choices=ActivitySource.choices, default=ActivitySource.MANUAL)
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.NONE)
    summary = models.CharField(max_length=500, blank=True)
    body = models.TextField(blank=True)
    first_message = models.TextField(blank=True)

    # Generic link to the source object (closed interaction, incoming email, ticket, ...).
    source_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source_id = models.BigIntegerField(null=True, blank=True)
    source_object = GenericForeignKey("source_type", "source_id")

    # Idempotency: "email:<id>", "interaction:<id>", "api:<key>" ... unique per tenant when set.
    dedup_key = models.CharField(max_length=200, null=True, blank=True)

    # Type-specific details.
    duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    done = models.BooleanField(default=False)
    changes = models.JSONField(default=dict, blank=True)

    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = TenantManager.from_queryset(ActivityQuerySet)()

    class Meta:
        db_table = "crm_activities"
        verbose_name_plural = "activities"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "dedup_key"],
                name="activity_dedup_per_tenant",
                condition=Q(dedup_key__isnull=False),
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "-occurred_at", "-id"],
                name="act_tenant_time",
                condition=Q(deleted_at__isnull=True),
            ),
            models.Index(
                fields=["tenant", "contact", "-occurred_at", "-id"],
                name="act_tenant_contact_time",
                condition=Q(deleted_at__isnull=True, contact__isnull=False),
            ),
            models.Index(
                fields=["tenant", "lead", "-occurred_at", "-id"],
                name="act_tenant_lead_time",
                condition=Q(deleted_at__isnull=True, lead__isnull=False),
            ),
            models.Index(
                fields=["tenant", "account", "-occurred_at", "-id"],
                name="act_tenant_account_time",
                condition=Q(deleted_at__isnull=True, account__isnull=False),
            ),
            models.Index(
                fields=["tenant", "user", "-occurred_at", "-id"],
                name="act_tenant_user_time",
                condition=Q(deleted_at__isnull=True),
            ),
            models.Index(
                fields=["tenant", "team", "-occurred_at", "-id"],
                name="act_tenant_team_time",
                condition=Q(deleted_at__isnull=True),
            ),
            models.Index(fields=["source_type", "source_id"], name="act_source_idx"),
            models.Index(
                fields=["tenant", "deleted_at"], name="act_deleted_idx", condition=Q(deleted_at__isnull=False)
            ),
            GinIndex(SummaryTsvector("summary"), name="act_summary_tsv"),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()}: {self.summary[:60]}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class FeedKind(models.TextChoices):
    ACTIVITY = "activity", "Activity"
    INTERACTION = "interaction", "Interaction"


class FeedEntry(models.Model):
    """A row of ``activity_feed``: the UNION ALL view over ``crm_activities`` (alive rows) and
    ``closed_interactions`` that have no activity of their own (see migration 0002).

    Read-only; ids are unique across both branches (one shared sequence).
    """

    id = models.BigIntegerField(primary_key=True)
    kind = models.CharField(max_length=16, choices=FeedKind.choices)
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.DO_NOTHING, related_name="+")
    team = models.ForeignKey("crm.Team", null=True, on_delete=models.DO_NOTHING, related_name="+")
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.DO_NOTHING, related_name="+"
    )
    type = models.CharField(max_length=20, choices=ActivityType.choices)
    source = models.CharField(max_length=16, choices=ActivitySource.choices)
    direction = models.CharField(max_length=10, choices=Direction.choices)
    contact = models.ForeignKey("crm.Contact", null=True, on_delete=models.DO_NOTHING, related_name="+")
    lead = models.ForeignKey("crm.Lead", null=True, on_delete=models.DO_NOTHING, related_name="+")
    account = models.ForeignKey("crm.Account", null=True, on_delete=models.DO_NOTHING, related_name="+")
    summary = models.CharField(max_length=500)
    first_message = models.TextField()
    source_type = models.ForeignKey(ContentType, null=True, on_delete=models.DO_NOTHING, related_name="+")
    source_id = models.BigIntegerField(null=True)
    occurred_at = models.DateTimeField()

    objects = TenantManager()

    class Meta:
        managed = False
        db_table = "activity_feed"
        verbose_name = "feed entry"
        verbose_name_plural = "activity feed"

    def __str__(self) -> str:
        return f"{self.kind} {self.id}: {self.summary[:60]}"


class SavedViewQuerySet(TenantQuerySet):
    def visible_to(self, membership):
        """The member's own saved views plus those shared with one of their teams."""
        from crm import visibility

        return self.for_tenant(membership.tenant_id).filter(
            Q(owner_id=membership.user_id) | Q(team_id__in=visibility.team_ids(membership))
        )


class SavedView(TenantOwned):
    """A named set of grid filters (the grid's query string), private or shared with one team."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=80)
    query = models.CharField(max_length=2000, blank=True, help_text="The grid's query string.")
    team = models.ForeignKey(
        "crm.Team",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Shared with this team; empty: private.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager.from_queryset(SavedViewQuerySet)()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "owner", "name"], name="savedview_name_per_owner")
        ]
        indexes = [
            models.Index(fields=["tenant", "owner"], name="savedview_tenant_owner"),
            models.Index(fields=["tenant", "team"], name="savedview_tenant_team"),
        ]

    def __str__(self) -> str:
        return self.name
