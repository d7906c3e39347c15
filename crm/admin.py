from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from .admin_base import TenantAdminPermissions, TenantScopedAdmin, scope_for_request
from .models import Account, Contact, Lead, Membership, Team, Tenant


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


@admin.register(Lead)
class LeadAdmin(TenantScopedAdmin):
    list_display = ["name", "email", "company", "status", "owner", "team", "converted_at", "tenant"]
    list_filter = ["tenant", "status", "team"]
    search_fields = ["name", "email", "company"]
    autocomplete_fields = ["owner", "converted_contact", "converted_account"]
    readonly_fields = ["converted_contact", "converted_account", "converted_at", "converted_by"]


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
