from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q
from django.utils.text import slugify

from .tenancy import TenantManager, TenantOwned, TenantQuerySet, Timestamped


class Tenant(Timestamped):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if not self.slug:
            self.slug = slugify(self.name)[:80]
        super().save(*args, **kwargs)


class Team(TenantOwned, Timestamped):
    name = models.CharField(max_length=120)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="team_name_per_tenant")]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MANAGER = "manager", "Manager"
    AGENT = "agent", "Agent"


class MembershipQuerySet(TenantQuerySet):
    def active(self):
        return self.filter(is_active=True, tenant__is_active=True)


class Membership(TenantOwned, Timestamped):
    """A user's place in one tenant: role, teams and the permission to see email content."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.AGENT)
    teams = models.ManyToManyField(Team, blank=True, related_name="memberships")
    can_manage_email = models.BooleanField(
        "email permission",
        default=False,
        help_text="May see the subject, snippet and body of every email activity it can see.",
    )
    is_active = models.BooleanField(default=True)
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        help_text="IANA time zone for showing times; empty: the server's TIME_ZONE.",
    )

    objects = TenantManager.from_queryset(MembershipQuerySet)()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="membership_user_per_tenant")]
        indexes = [models.Index(fields=["user", "tenant"], name="membership_user_idx")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def is_manager(self) -> bool:
        return self.role == Role.MANAGER


class Account(TenantOwned, Timestamped):
    name = models.CharField(max_length=200)
    domain = models.CharField(max_length=253, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["tenant", "name"], name="account_tenant_name_idx"),
            # The bounded choice lists of the log form ("recently updated first") seek this, not a sort.
            models.Index(fields=["tenant", "-updated_at", "-id"], name="account_tenant_recent_idx"),
            models.Index(fields=["tenant", "team"], name="account_tenant_team_idx"),
            GinIndex(name="account_name_trgm", fields=["name"], opclasses=["gin_trgm_ops"]),
        ]

    def __str__(self) -> str:
        return self.name


class ContactStatus(models.TextChoices):
    LEAD = "lead", "Lead"
    PROSPECT = "prospect", "Prospect"
    CUSTOMER = "customer", "Customer"
    INACTIVE = "inactive", "Inactive"


class Contact(TenantOwned, Timestamped):
    name = models.CharField(max_length=200)
    # Normalised (lower-case) addresses; the first is the primary one. Matching uses the GIN index.
    emails = ArrayField(models.CharField(max_length=254), default=list, blank=True)
    # Normalised phone numbers (digits with a leading +), the first is the primary one.
    phones = ArrayField(models.CharField(max_length=32), default=list, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts"
    )
    status = models.CharField(max_length=16, choices=ContactStatus.choices, default=ContactStatus.PROSPECT)

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["tenant", "name"], name="contact_tenant_name_idx"),
            # The bounded choice lists of the log form ("recently updated first") seek this, not a sort.
            models.Index(fields=["tenant", "-updated_at", "-id"], name="contact_tenant_recent_idx"),
            models.Index(fields=["tenant", "team"], name="contact_tenant_team_idx"),
            models.Index(fields=["tenant", "account"], name="contact_tenant_account_idx"),
            GinIndex(name="contact_name_trgm", fields=["name"], opclasses=["gin_trgm_ops"]),
            GinIndex(name="contact_emails_gin", fields=["emails"]),
            GinIndex(name="contact_phones_gin", fields=["phones"]),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def email(self) -> str:
        return self.emails[0] if self.emails else ""

    @property
    def phone(self) -> str:
        return self.phones[0] if self.phones else ""


class LeadStatus(models.TextChoices):
    NEW = "new", "New"
    CONTACTED = "contacted", "Contacted"
    QUALIFIED = "qualified", "Qualified"
    UNQUALIFIED = "unqualified", "Unqualified"
    CONVERTED = "converted", "Converted"


class Lead(TenantOwned, Timestamped):
    name = models.CharField(max_length=200)
    email = models.CharField(max_length=254, blank=True)
    phone = models.CharField(max_length=32, blank=True)
    company = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=LeadStatus.choices, default=LeadStatus.NEW)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL)
    converted_contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="converted_from_leads"
    )
    converted_account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="converted_from_leads"
    )
    converted_at = models.DateTimeField(null=True, blank=True)
    converted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["tenant", "name"], name="lead_tenant_name_idx"),
            # The bounded choice lists of the log form ("recently updated first") seek this, not a sort.
            models.Index(fields=["tenant", "-updated_at", "-id"], name="lead_tenant_recent_idx"),
            models.Index(fields=["tenant", "team"], name="lead_tenant_team_idx"),
            models.Index(
                fields=["tenant", "converted_contact"],
                name="lead_converted_contact_idx",
                condition=Q(converted_contact__isnull=False),
            ),
            GinIndex(name="lead_name_trgm", fields=["name"], opclasses=["gin_trgm_ops"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(converted_at__isnull=True) | Q(converted_contact__isnull=False),
                name="lead_converted_has_contact",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_converted(self) -> bool:
        return self.converted_at is not None


class ApiKeyQuerySet(TenantQuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)


class ApiKey(TenantOwned, Timestamped):
    """A per-tenant key for the activities API. Only a SHA-256 of the key is stored; the key itself is
    shown once, when it is created. ``prefix`` (the first characters) lets people tell keys apart."""

    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = TenantManager.from_queryset(ApiKeyQuerySet)()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"
        indexes = [models.Index(fields=["tenant", "-created_at"], name="apikey_tenant_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class AuditAction(models.TextChoices):
    EDITED = "edited", "Edited"
    DELETED = "deleted", "Deleted"
    RESTORED = "restored", "Restored"


class ActivityAuditEntry(TenantOwned):
    """Who edited, deleted or restored which activity, and when. Append-only; visible to admins."""

    activity = models.ForeignKey(
        "activities.Activity", on_delete=models.CASCADE, related_name="audit_entries"
    )
    action = models.CharField(max_length=16, choices=AuditAction.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField()
    # For edits: {"field": [from, to]}; for deletes: a snapshot of type/summary so the record stays readable.
    details = models.JSONField(default=dict, blank=True)

    objects = TenantManager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "activity audit entry"
        verbose_name_plural = "activity audit entries"
        indexes = [
            models.Index(fields=["tenant", "-at", "-id"], name="audit_tenant_at"),
            models.Index(fields=["activity", "-at"], name="audit_activity_at"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} activity {self.activity_id} at {self.at:%Y-%m-%d %H:%M}"
