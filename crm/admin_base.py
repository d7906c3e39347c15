"""Django admin that keeps a tenant's staff inside their tenant.

Superusers see every tenant (deliberately cross-tenant: platform administration). Staff users who are
not superusers see and edit only rows of their active tenant (``request.tenant``): changelists,
change forms (another tenant's object is a 404, like a missing one), and every foreign-key /
many-to-many choice narrowed to the tenant.
"""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404

from .tenancy import TenantQuerySet


def _tenant_of(request):
    return getattr(request, "tenant", None)


def scope_for_request(queryset, request):
    """Narrow any queryset of a tenant-owned model to the staff user's tenant."""
    if request.user.is_superuser:
        return queryset  # cross-tenant: platform superuser
    tenant = _tenant_of(request)
    if tenant is None:
        return queryset.none()
    model = queryset.model
    if isinstance(queryset, TenantQuerySet) or any(f.name == "tenant" for f in model._meta.fields):
        return queryset.filter(tenant=tenant)
    if model._meta.label == "crm.Tenant":
        return queryset.filter(pk=tenant.pk)
    if model._meta.label == "auth.User" or model._meta.model_name == "user":
        return queryset.filter(memberships__tenant=tenant).distinct()
    return queryset


def is_tenant_admin(request) -> bool:
    """A staff user who is an admin of the active tenant manages that tenant's rows in Django admin."""
    membership = getattr(request, "membership", None)
    return bool(
        request.user.is_active and request.user.is_staff and membership is not None and membership.is_admin
    )


class TenantAdminPermissions:
    """Model permissions in admin: superusers as usual; tenant admins on their own tenant's rows.

    An object outside the admin's scope is a 404, exactly like a missing one (Django's default is a
    redirect with a "doesn't exist" message, which would differ from a 404 elsewhere in the app).
    """

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        raise Http404("No such object.")

    def has_module_permission(self, request):
        return is_tenant_admin(request) or super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return is_tenant_admin(request) or super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args):
        return is_tenant_admin(request) or super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return is_tenant_admin(request) or super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return is_tenant_admin(request) or super().has_delete_permission(request, obj)


class TenantScopedAdmin(TenantAdminPermissions, admin.ModelAdmin):
    list_select_related = True
    # A staff admin can only write their own tenant, so the tenant is never theirs to choose.
    tenant_field = "tenant"

    def get_queryset(self, request):
        return scope_for_request(super().get_queryset(request), request)

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if not request.user.is_superuser:
            filters = [f for f in filters if f != self.tenant_field]
        return filters

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        if not request.user.is_superuser:
            exclude.append(self.tenant_field)
        return exclude

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if field is not None and hasattr(field, "queryset"):
            field.queryset = scope_for_request(field.queryset, request)
        return field

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if field is not None and hasattr(field, "queryset"):
            field.queryset = scope_for_request(field.queryset, request)
        return field

    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser:
            tenant = _tenant_of(request)
            if tenant is None:
                raise PermissionDenied("No active tenant.")
            if change and obj.tenant_id != tenant.pk:
                raise PermissionDenied("Object belongs to another tenant.")
            obj.tenant = tenant
        super().save_model(request, obj, form, change)
