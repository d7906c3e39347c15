from django.contrib import admin

from crm.admin_base import TenantScopedAdmin

from .models import (
    ChannelSecret,
    ClosedInteraction,
    Interaction,
    InteractionMessage,
    Queue,
    Ticket,
    WidgetConfig,
)


@admin.register(Queue)
class QueueAdmin(TenantScopedAdmin):
    list_display = ["name", "channel", "team", "tenant"]
    list_filter = ["tenant", "channel"]
    search_fields = ["name"]


class MessageInline(admin.TabularInline):
    model = InteractionMessage
    extra = 0
    fields = ["sent_at", "kind", "direction", "author_name", "text"]
    readonly_fields = fields
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Interaction)
class InteractionAdmin(TenantScopedAdmin):
    list_display = ["external_id", "channel", "queue", "agent", "contact", "status", "started_at", "tenant"]
    list_filter = ["tenant", "channel", "status"]
    search_fields = ["external_id"]
    raw_id_fields = ["contact", "lead", "account", "agent"]
    list_select_related = ["queue", "agent", "contact", "tenant"]
    inlines = [MessageInline]
    show_full_result_count = False


@admin.register(ClosedInteraction)
class ClosedInteractionAdmin(TenantScopedAdmin):
    list_display = [
        "closed_at",
        "channel",
        "queue",
        "agent",
        "contact",
        "direction",
        "message_count",
        "activity_logged",
        "tenant",
    ]
    list_filter = ["tenant", "channel", "direction", "activity_logged"]
    search_fields = ["first_message", "summary"]
    raw_id_fields = ["interaction", "contact", "lead", "account", "agent"]
    list_select_related = ["queue", "agent", "contact", "tenant"]
    date_hierarchy = "closed_at"
    show_full_result_count = False


@admin.register(InteractionMessage)
class InteractionMessageAdmin(TenantScopedAdmin):
    list_display = ["sent_at", "interaction", "kind", "direction", "author_name", "tenant"]
    list_filter = ["tenant", "kind", "direction"]
    search_fields = ["text", "author_name"]
    raw_id_fields = ["interaction", "author_user"]
    list_select_related = ["interaction", "tenant"]
    show_full_result_count = False


@admin.register(Ticket)
class TicketAdmin(TenantScopedAdmin):
    list_display = ["subject", "status", "contact", "assignee", "team", "created_at", "tenant"]
    list_filter = ["tenant", "status", "team"]
    search_fields = ["subject"]
    raw_id_fields = ["contact", "interaction", "assignee", "created_by"]
    list_select_related = ["contact", "assignee", "team", "tenant"]


@admin.register(ChannelSecret)
class ChannelSecretAdmin(TenantScopedAdmin):
    """Signing secrets: never displayed after creation. "Rotate" issues a new one (shown once, in the
    confirmation message) and revokes the tenant's others."""

    list_display = ["key_id", "label", "is_active", "created_at", "tenant"]
    list_filter = ["tenant", "is_active"]
    fields = ["key_id", "label", "is_active", "created_at"]
    readonly_fields = ["key_id", "created_at"]
    actions = ["rotate"]

    def has_add_permission(self, request, *args):
        return False  # created by the "rotate" action or `manage.py contactcenter_secret`

    @admin.action(description="Rotate: issue a new secret for the tenant and revoke the old ones")
    def rotate(self, request, queryset):
        from django.contrib import messages

        from .services import channel_secret_rotate

        for tenant_id in sorted(set(queryset.values_list("tenant_id", flat=True))):
            row, secret = channel_secret_rotate(tenant=queryset.filter(tenant_id=tenant_id).first().tenant)
            messages.warning(
                request,
                f"New secret for key {row.key_id}: {secret} (copy it now: it is not shown again).",
            )


@admin.register(WidgetConfig)
class WidgetConfigAdmin(TenantScopedAdmin):
    list_display = ["name", "public_key", "queue", "enabled", "tenant"]
    list_filter = ["tenant", "enabled"]
    readonly_fields = ["public_key"]
    fields = ["name", "title", "queue", "allowed_origins", "enabled", "public_key"]

    def save_model(self, request, obj, form, change):
        if not obj.public_key:
            import secrets

            obj.public_key = "wk_" + secrets.token_urlsafe(18)
        obj.allowed_origins = [o.strip().rstrip("/") for o in obj.allowed_origins if o.strip()]
        super().save_model(request, obj, form, change)
