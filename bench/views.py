"""Benchmark-only views (mounted by bench/urls.py, never by the project).

- ``floor``: 50 in-memory rows through a plain Django template loop: what any page costs at least.
- ``naive``: the textbook implementation: django-tables2 model table, its default paginator (COUNT(*)
  plus OFFSET), per-cell rendering, FK names through select_related joins onto the view.
"""

from datetime import UTC, datetime

import django_tables2 as tables
from django.http import HttpResponse
from django.template import engines

from activities.models import FeedEntry
from activities.selectors import feed_visible

_FLOOR = engines["django"].from_string(
    "<table>{% for r in rows %}<tr><td>{{ r.type }}</td><td>{{ r.contact }}</td><td>{{ r.lead }}</td>"
    "<td>{{ r.account }}</td><td>{{ r.summary }}</td><td>{{ r.direction }}</td><td>{{ r.agent }}</td>"
    "<td>{{ r.source }}</td><td>{{ r.first_message }}</td><td>{{ r.created }}</td></tr>{% endfor %}</table>"
)
_ROWS = [
    {
        "type": "Call",
        "contact": f"Contact {i}",
        "lead": "",
        "account": f"Account {i}",
        "summary": "call invoice renewal meeting follow up",
        "direction": "Inbound",
        "agent": "Agent Smith",
        "source": "Manual",
        "first_message": "",
        "created": datetime(2025, 1, 1, tzinfo=UTC),
    }
    for i in range(50)
]


def floor(request):
    return HttpResponse(_FLOOR.render({"rows": _ROWS}, request))


class NaiveFeedTable(tables.Table):
    class Meta:
        model = FeedEntry
        fields = (
            "type",
            "contact",
            "lead",
            "account",
            "summary",
            "direction",
            "agent",
            "source",
            "first_message",
            "occurred_at",
        )
        template_name = "django_tables2/bootstrap5.html"


_NAIVE = engines["django"].from_string("{% load django_tables2 %}{% render_table table %}")


def naive(request):
    qs = feed_visible(membership=request.membership).order_by("-occurred_at", "-id")
    table = NaiveFeedTable(qs.select_related("contact", "lead", "account", "agent"))
    tables.RequestConfig(request, paginate={"per_page": 50}).configure(table)
    return HttpResponse(_NAIVE.render({"table": table, "request": request}, request))
