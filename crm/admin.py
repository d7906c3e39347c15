from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from .admin_base import TenantAdminPermissions, TenantScopedAdmin, scope_for_request
from .models import Account, ActivityAuditEntry, ApiKey, Contact, Lead, Membership, Team, Tenant


@admin.register(Tenant)
class TenantAdmin(TenantAdminPermissions, admin.ModelAdmin):
    list_display = ["name", "slug", "is_active", "created_at"]
    search_fields = ["name", "slug"]
    list_filter = ["is_active"]

    def get_queryset(self, request):
        return scope_for_request(super().get_queryset(request), request)

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def get_readonly_fields(self, request, obj=None):
        return [] if request.user.is_superuser else ["slug", "is_active"]


@admin.register(Team)
class TeamAdmin(TenantScopedAdmin):
    list_display = ["name", "tenant"]
    list_filter = ["tenant"]
    search_fields = ["name"]


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    list_display = ["user", "tenant", "role", "can_manage_email", "is_active"]
    list_filter = ["tenant", "role", "can_manage_email", "is_active"]
    search_fields = ["user__email", "user__first_name", "user__last_name"]
    filter_horizontal = ["teams"]
    raw_id_fields = ["user"]


@admin.register(Account)
class AccountAdmin(TenantScopedAdmin):
    list_display = ["name", "domain", "owner", "team", "tenant"]
    list_filter = ["tenant", "team"]
    search_fields = ["name", "domain"]
    autocomplete_fields = ["owner"]


@admin.register(Contact)
class ContactAdmin(TenantScopedAdmin):
    list_display = ["name", "email", "phone", "account", "owner", "team", "status", "tenant"]
    list_filter = ["tenant", "status", "team"]
    search_fields = ["name"]
    autocomplete_fields = ["account", "owner"]

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip().lower()
        if term:
            results |= queryset.filter(emails__contains=[term]) | queryset.filter(phones__contains=[term])
        return results, may_have_duplicates

    def save_model(self, request, obj, form, change):
        """Edits go through ``contact_update`` so admin changes are logged (and merged) like the app's."""
        if not change:
            return super().save_model(request, obj, form, change)
        from django.core.exceptions import PermissionDenied

        from . import services

        original = Contact.objects.get(pk=obj.pk)
        if not request.user.is_superuser and original.tenant_id != getattr(request.tenant, "pk", None):
            raise PermissionDenied("Object belongs to another tenant.")
        data = {
            name: form.cleaned_data[name] for name in services.SIGNIFICANT_FIELDS if name in form.cleaned_data
        }
        services.contact_update(tenant=original.tenant, actor=request.user, contact=original, data=data)
        obj.refresh_from_db()


@admin.register(Lead)
class LeadAdmin(TenantScopedAdmin):
    list_display = ["name", "email", "company", "status", "owner", "team", "converted_at", "tenant"]
    list_filter = ["tenant", "status", "team"]
    search_fields = ["name", "email", "company"]
    autocomplete_fields = ["owner", "converted_contact", "converted_account"]
    readonly_fields = ["converted_contact", "converted_account", "converted_at", "converted_by"]
    actions = ["convert_leads"]

    @admin.action(description="Convert lead")
    def convert_leads(self, request, queryset):
        from django.contrib import messages
        from django.core.exceptions import ValidationError

        from . import services

        converted = 0
        for lead in queryset:
            try:
                services.lead_convert(tenant=lead.tenant, actor=request.user, lead=lead)
            except ValidationError as exc:
                self.message_user(request, f"{lead}: {' '.join(exc.messages)}", messages.ERROR)
            else:
                converted += 1
        if converted:
            self.message_user(request, f"Converted {converted} lead(s).", messages.SUCCESS)


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class TenantUserAdmin(TenantAdminPermissions, UserAdmin):
    """Staff admins see only the users of their tenant; only superusers grant staff/superuser.
    New users are added to a tenant through memberships, so only superusers add or delete users."""

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def get_queryset(self, request):
        return scope_for_request(super().get_queryset(request), request)

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += ["is_staff", "is_superuser", "groups", "user_permissions"]
        return readonly


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdmin):
    """Keys are created in the app (shown once there); admin lists and revokes. The hash is never shown."""

    list_display = ["name", "prefix", "created_by", "created_at", "last_used_at", "revoked_at", "tenant"]
    list_filter = ["tenant", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    exclude = ["key_hash"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at", "revoked_by"]
    actions = ["revoke_keys"]

    def has_add_permission(self, request, *args):
        return False

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request, queryset):
        from . import services

        for key in queryset:
            services.api_key_revoke(tenant=key.tenant, actor=request.user, api_key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


@admin.register(ActivityAuditEntry)
class ActivityAuditEntryAdmin(TenantScopedAdmin):
    """Append-only record of who edited, deleted or restored which activity."""

    list_display = ["at", "action", "actor", "activity", "tenant"]
    list_filter = ["tenant", "action"]
    list_select_related = ["actor", "activity", "tenant"]
    date_hierarchy = "at"
    readonly_fields = ["activity", "action", "actor", "at", "details"]
    show_full_result_count = False

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser
