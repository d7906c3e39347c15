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
    actions = ["soft_delete_activities", "restore_activities"]

    def get_actions(self, request):
        # A hard delete would leave no audit record: deleting goes through the soft delete action.
        actions = super().get_actions(request)
        if not request.user.is_superuser:
            actions.pop("delete_selected", None)
        return actions

    def _acting_membership(self, request, activity):
        from crm.models import Membership, Role

        membership = getattr(request, "membership", None)
        if membership is not None and membership.tenant_id == activity.tenant_id:
            return membership
        if request.user.is_superuser:  # platform superuser: acts as an admin of the row's tenant
            return Membership(tenant_id=activity.tenant_id, user=request.user, role=Role.ADMIN)
        return None

    def _apply(self, request, queryset, service, done: str):
        from django.contrib import messages

        from . import services

        count = 0
        for activity in queryset:
            membership = self._acting_membership(request, activity)
            try:
                if membership is None:
                    raise services.ActivityPermissionDenied("Not allowed.")
                service(membership=membership, activity=activity)
            except services.ActivityPermissionDenied as exc:
                self.message_user(request, f"Activity {activity.pk}: {exc}", messages.WARNING)
            else:
                count += 1
        if count:
            noun = "activity" if count == 1 else "activities"
            self.message_user(request, f"{done} {count} {noun}.", messages.SUCCESS)

    @admin.action(description="Delete selected activities (soft, audited)")
    def soft_delete_activities(self, request, queryset):
        from . import services

        self._apply(request, queryset.filter(deleted_at__isnull=True), services.activity_delete, "Deleted")

    @admin.action(description="Restore selected deleted activities")
    def restore_activities(self, request, queryset):
        from . import services

        self._apply(request, queryset.filter(deleted_at__isnull=False), services.activity_restore, "Restored")
