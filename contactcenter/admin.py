from django.contrib import admin

from crm.admin_base import TenantScopedAdmin

from .models import ClosedInteraction, Interaction, InteractionMessage, Queue, Ticket


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
