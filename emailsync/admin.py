from django.contrib import admin

from crm.admin_base import TenantScopedAdmin

from .models import EmailLocation, IncomingEmail, Mailbox, MailboxFolder, OutgoingEmail


class FolderInline(admin.TabularInline):
    model = MailboxFolder
    extra = 0
    fields = ["name", "uidvalidity", "last_uid", "last_synced_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Mailbox)
class MailboxAdmin(TenantScopedAdmin):
    list_display = ["email_address", "owner", "host", "status", "last_sync_at", "messages_imported", "tenant"]
    list_filter = ["tenant", "status", "security"]
    search_fields = ["email_address", "username", "host"]
    raw_id_fields = ["owner"]
    # The encrypted secret is not editable and never shown.
    exclude = ["secret_encrypted"]
    readonly_fields = [
        "last_error",
        "failure_count",
        "last_sync_at",
        "messages_imported",
        "lease_until",
        "lease_token",
    ]
    list_select_related = ["owner", "tenant"]
    inlines = [FolderInline]


@admin.register(IncomingEmail)
class IncomingEmailAdmin(TenantScopedAdmin):
    list_display = ["received_at", "subject", "sender", "parse_status", "raw_size", "tenant"]
    list_filter = ["tenant", "parse_status"]
    search_fields = ["subject", "sender", "message_id"]
    exclude = ["raw"]
    readonly_fields = [
        "message_key",
        "message_id",
        "in_reply_to",
        "references",
        "raw_size",
        "parse_status",
        "parse_error",
    ]
    date_hierarchy = "received_at"
    show_full_result_count = False


@admin.register(EmailLocation)
class EmailLocationAdmin(TenantScopedAdmin):
    list_display = ["email", "mailbox", "folder", "uidvalidity", "uid", "tenant"]
    list_filter = ["tenant"]
    raw_id_fields = ["email", "mailbox"]
    list_select_related = ["email", "mailbox", "tenant"]


@admin.register(OutgoingEmail)
class OutgoingEmailAdmin(TenantScopedAdmin):
    list_display = ["subject", "status", "author", "contact", "sent_at", "tenant"]
    list_filter = ["tenant", "status"]
    search_fields = ["subject"]
    raw_id_fields = ["author", "contact"]
    list_select_related = ["author", "contact", "tenant"]
