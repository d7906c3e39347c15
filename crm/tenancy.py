"""Tenant scoping primitives shared by every app.

Every tenant-owned model subclasses :class:`TenantOwned` and gets a manager built from a
:class:`TenantQuerySet`, whose ``for_tenant()`` is the only door reads should go through.
"""

from django.db import models


class TenantQuerySet(models.QuerySet):
    def for_tenant(self, tenant):
        if tenant is None:
            raise ValueError("for_tenant() needs a tenant; refusing to return every tenant's rows")
        tenant_id = tenant if isinstance(tenant, int) else tenant.pk
        return self.filter(tenant_id=tenant_id)

    def with_related(self, tenant, *fields):
        """``select_related(*fields)``, tenant-first: a related row of another tenant-owned model (a
        contact's team and account, an interaction's queue) comes from a query of its own filtered by the
        tenant, not from a join on its foreign key alone, so every scan names the tenant (a distributed
        database routes it to the tenant's shard; ``make explain`` checks it). Other relations (users)
        are joined as select_related() would."""
        tenant_id = tenant if isinstance(tenant, int) else tenant.pk
        joined, fetched = [], []
        for name in fields:
            related = self.model._meta.get_field(name).related_model
            if issubclass(related, TenantOwned):
                fetched.append(models.Prefetch(name, queryset=related._default_manager.for_tenant(tenant_id)))
            else:
                joined.append(name)
        queryset = self.select_related(*joined) if joined else self
        return queryset.prefetch_related(*fetched) if fetched else queryset


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):
    pass


class TenantOwned(models.Model):
    tenant = models.ForeignKey("crm.Tenant", on_delete=models.CASCADE, related_name="+")

    objects = TenantManager()

    class Meta:
        abstract = True


class Timestamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
