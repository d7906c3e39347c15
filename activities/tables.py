"""Column definitions of the activity grid (presentation only, no queries).

django-tables2 supplies the column metadata (names, headers, which column orders) and the export
header; the 50 rows themselves render in one plain template loop (``_grid_rows.html``), because
tables2's per-cell rendering costs more than every database query of the page (see bench/).
"""

import django_tables2 as tables


class FeedTable(tables.Table):
    type = tables.Column(verbose_name="Type", orderable=False)
    contact = tables.Column(verbose_name="Contact", orderable=False)
    lead = tables.Column(verbose_name="Lead", orderable=False)
    account = tables.Column(verbose_name="Account", orderable=False)
    summary = tables.Column(verbose_name="Summary", orderable=False)
    direction = tables.Column(verbose_name="Direction", orderable=False)
    agent = tables.Column(verbose_name="Agent", orderable=False)
    source = tables.Column(verbose_name="Source", orderable=False)
    first_message = tables.Column(verbose_name="First message", orderable=False)
    created = tables.Column(verbose_name="Created", orderable=True, order_by=("occurred_at", "id"))

    class Meta:
        template_name = "django_tables2/bootstrap5.html"


def grid_columns() -> list[tuple[str, str, bool]]:
    """(name, header, orderable) for the grid's header row, from the table definition."""
    return [
        (name, str(column.verbose_name), bool(column.orderable))
        for name, column in FeedTable.base_columns.items()
    ]


EXPORT_HEADER = [
    "id",
    "kind",
    "created",
    "type",
    "direction",
    "source",
    "agent",
    "contact",
    "lead",
    "account",
    "summary",
    "first_message",
]
