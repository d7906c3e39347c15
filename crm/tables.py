"""Column definitions and ordering of the entity grids (django-tables2). Presentation only, no queries.

The rows themselves are rendered by a plain template loop (``crm/partials/_grid.html``): tables2's
per-cell rendering costs 45-80 ms per 50 rows, more than all the database work of the page. Every
orderable column ends its ordering with ``id`` so that paging is stable.
"""

import django_tables2 as tables

from .models import Account, Contact, Lead


class _Base(tables.Table):
    activity = tables.Column("Activity", empty_values=(), orderable=False)
    owner = tables.Column("Owner", order_by=("owner__first_name", "owner__last_name", "id"))
    team = tables.Column("Team", order_by=("team__name", "id"))

    class Meta:
        order_by_field = "sort"
        page_field = "page"
        per_page = 50


class ContactTable(_Base):
    name = tables.Column("Name", order_by=("name", "id"))
    email = tables.Column("Email", accessor="email", orderable=False)
    phone = tables.Column("Phone", accessor="phone", orderable=False)
    account = tables.Column("Account", order_by=("account__name", "id"))
    status = tables.Column("Status", order_by=("status", "id"))
    created_at = tables.Column("Created", order_by=("created_at", "id"))

    class Meta(_Base.Meta):
        model = Contact
        fields = ("name", "email", "phone", "account", "status", "owner", "team", "created_at", "activity")
        sequence = fields


class LeadTable(_Base):
    name = tables.Column("Name", order_by=("name", "id"))
    company = tables.Column("Company", order_by=("company", "id"))
    email = tables.Column("Email", order_by=("email", "id"))
    status = tables.Column("Status", order_by=("status", "id"))
    created_at = tables.Column("Created", order_by=("created_at", "id"))

    class Meta(_Base.Meta):
        model = Lead
        fields = ("name", "company", "email", "status", "owner", "team", "created_at", "activity")
        sequence = fields


class AccountTable(_Base):
    name = tables.Column("Name", order_by=("name", "id"))
    domain = tables.Column("Domain", order_by=("domain", "id"))
    created_at = tables.Column("Created", order_by=("created_at", "id"))

    class Meta(_Base.Meta):
        model = Account
        fields = ("name", "domain", "owner", "team", "created_at", "activity")
        sequence = fields


TABLES = {"contact": ContactTable, "lead": LeadTable, "account": AccountTable}
