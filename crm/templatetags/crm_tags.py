from django import template
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html

register = template.Library()


@register.simple_tag
def url_if_exists(name: str) -> str:
    """The URL of a named route, or "" while the page does not exist yet (navigation hides it)."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""


@register.simple_tag
def timestamp(value, fmt: str = "M j, Y H:i") -> str:
    """A time in the viewer's time zone, with the exact timestamp on hover."""
    if value is None:
        return ""
    from django.utils.dateformat import format as date_format

    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        local.isoformat(),
        local.strftime("%Y-%m-%d %H:%M:%S %Z"),
        date_format(local, fmt),
    )


TYPE_ICONS = {
    "call": "telephone",
    "email": "envelope",
    "sms": "chat-left-text",
    "whatsapp": "whatsapp",
    "chat": "chat-dots",
    "ticket": "ticket-perforated",
    "note": "sticky",
    "meeting": "people",
    "task": "check2-square",
    "lead_conversion": "arrow-left-right",
    "contact_update": "pencil-square",
}


@register.simple_tag
def type_icon(activity_type: str) -> str:
    icon = TYPE_ICONS.get(activity_type, "circle")
    return format_html('<i class="bi bi-{}" aria-hidden="true"></i>', icon)


@register.filter
def duration(seconds) -> str:
    """Seconds as a short human duration ("45 s", "12 min", "3.5 h", "2.0 d"); "–" when missing."""
    from activities.analytics import humanize_seconds

    return humanize_seconds(seconds)


@register.filter
def trend(percent) -> str:
    if percent is None:
        return "–"
    arrow = "▲" if percent > 0 else ("▼" if percent < 0 else "■")
    return f"{arrow} {percent:+.1f}%"


@register.filter
def visible_to(entity, membership) -> bool:
    """``{% if lead.converted_contact|visible_to:request.membership %}``: the one visibility rule, so a
    visible row never shows the name of a linked row outside the viewer's teams."""
    from crm import visibility

    return visibility.can_see_entity(membership, entity)
