from django.contrib import admin

from crm.admin_base import TenantScopedAdmin

from .models import Activity


@admin.register(Activity)
class ActivityAdmin(TenantScopedAdmin):
    list_display = [
        "occurred_at",
        "type",
        "source",
        "direction",
        "summary",
        "user",
        "contact",
        "lead",
        "account",
        "team",
        "deleted_at",
        "tenant",
    ]
    list_filter = [
        "tenant",
        "type",
        "source",
        "direction",
        "team",
        ("deleted_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["summary"]
    date_hierarchy = "occurred_at"
    raw_id_fields = ["contact", "lead", "account", "user", "created_by", "deleted_by"]
    readonly_fields = [
        "source_type",
        "source_id",
        "dedup_key",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted_by",
    ]
    list_select_related = ["user", "contact", "lead", "account", "team", "tenant"]
    show_full_result_count = False  # no exact COUNT(*) over millions of rows
