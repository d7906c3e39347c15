"""Pages: mailboxes (/mailboxes/), the email viewer (/emails/<pk>/), outgoing mail from a contact."""

import nh3
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import selectors, services
from .forms import ComposeForm, MailboxForm, SmtpSettingsForm
from .models import OutgoingStatus, SmtpSettings

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "center", "code", "col", "colgroup", "dd", "del", "div",
    "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li", "ol", "p",
    "pre", "q", "s", "small", "span", "strike", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "u", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "*": {"style", "title", "align", "dir", "lang"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "font": {"color", "face", "size"},
    "td": {"colspan", "rowspan", "width", "valign", "bgcolor"},
    "th": {"colspan", "rowspan", "width", "valign", "bgcolor"},
    "table": {"width", "border", "cellpadding", "cellspacing", "bgcolor"},
}


def _tenant_required(request):
    if request.membership is None:
        raise Http404("No workspace.")
    return request.membership


def _render(request, template, partial, context):
    """Same URL: the full page, or only the partial for htmx (not on history restore)."""
    if request.htmx and not request.htmx.history_restore_request:
        response = render(request, partial, context)
    else:
        response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


# --- Mailboxes -------------------------------------------------------------------------------------


@login_required
@require_GET
def mailbox_list(request):
    membership = _tenant_required(request)
    mailboxes = list(selectors.mailbox_list(membership=membership))
    smtp = SmtpSettings.objects.for_tenant(membership.tenant_id).first() if membership.is_admin else None
    return _render(
        request,
        "emailsync/mailbox_list.html",
        "emailsync/partials/_mailbox_table.html",
        {"mailboxes": mailboxes, "smtp": smtp},
    )


@login_required
@require_http_methods(["GET", "POST"])
def mailbox_add(request):
    membership = _tenant_required(request)
    form = MailboxForm(request.POST or None, tenant=membership.tenant)
    if request.method == "POST" and form.is_valid():
        mailbox = services.mailbox_create(
            tenant=membership.tenant,
            actor=request.user,
            secret=form.cleaned_data["secret"],
            **form.mailbox_fields(),
        )
        services.mailbox_sync_now(mailbox=mailbox)
        messages.success(request, f"Mailbox {mailbox.email_address} connected; the first sync has started.")
        return redirect("emailsync:mailbox-list")
    return render(request, "emailsync/mailbox_form.html", {"form": form, "mailbox": None})


@login_required
@require_http_methods(["GET", "POST"])
def mailbox_edit(request, pk):
    membership = _tenant_required(request)
    mailbox = selectors.mailbox_get(membership=membership, pk=pk)
    form = MailboxForm(request.POST or None, instance=mailbox, tenant=membership.tenant)
    if request.method == "POST" and form.is_valid():
        services.mailbox_update(
            mailbox=mailbox, actor=request.user, secret=form.cleaned_data["secret"], **form.mailbox_fields()
        )
        messages.success(request, "Mailbox settings saved.")
        return redirect("emailsync:mailbox-list")
    return render(request, "emailsync/mailbox_form.html", {"form": form, "mailbox": mailbox})


@login_required
@require_POST
def mailbox_test_new(request):
    """Test connection with the settings typed into the form, before saving anything."""
    membership = _tenant_required(request)
    form = MailboxForm(request.POST, tenant=membership.tenant)
    form.is_valid()
    errors = {k: v for k, v in form.errors.items() if k in {"host", "port", "security", "username", "secret"}}
    if errors:
        ok, text = False, " ".join(str(e) for errs in errors.values() for e in errs)
    else:
        data = form.cleaned_data
        ok, text = services.connection_test(
            host=data["host"],
            port=data["port"],
            security=data["security"],
            username=data["username"],
            secret=data["secret"],
            auth_method=data["auth_method"],
            folders=data.get("folders_text") or ["INBOX"],
        )
    return render(request, "emailsync/partials/_test_result.html", {"ok": ok, "text": text})


@login_required
@require_POST
def mailbox_test(request, pk):
    membership = _tenant_required(request)
    mailbox = selectors.mailbox_get(membership=membership, pk=pk)
    ok, text = services.mailbox_test(mailbox=mailbox)
    if request.htmx:
        return render(request, "emailsync/partials/_test_result.html", {"ok": ok, "text": text})
    (messages.success if ok else messages.error)(request, text)
    return redirect("emailsync:mailbox-list")


@login_required
@require_POST
def mailbox_sync(request, pk):
    membership = _tenant_required(request)
    mailbox = selectors.mailbox_get(membership=membership, pk=pk)
    services.mailbox_sync_now(mailbox=mailbox)
    if request.htmx:
        mailbox.refresh_from_db()
        return render(request, "emailsync/partials/_mailbox_row.html", {"mailbox": mailbox, "queued": True})
    messages.info(request, f"Sync of {mailbox.email_address} started.")
    return redirect("emailsync:mailbox-list")


@login_required
@require_GET
def mailbox_status(request, pk):
    membership = _tenant_required(request)
    mailbox = selectors.mailbox_get(membership=membership, pk=pk)
    response = render(request, "emailsync/partials/_mailbox_row.html", {"mailbox": mailbox})
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_http_methods(["GET", "POST"])
def smtp_settings(request):
    membership = _tenant_required(request)
    if not membership.is_admin:
        raise PermissionDenied("Only workspace admins can change the outgoing mail server.")
    instance = SmtpSettings.objects.for_tenant(membership.tenant_id).first()
    form = SmtpSettingsForm(request.POST or None, instance=instance)
    if request.method == "POST" and form.is_valid():
        fields = {name: form.cleaned_data[name] for name in SmtpSettingsForm.Meta.fields}
        services.smtp_settings_save(tenant=membership.tenant, secret=form.cleaned_data["secret"], **fields)
        messages.success(request, "Outgoing mail settings saved.")
        return redirect("emailsync:mailbox-list")
    return render(request, "emailsync/smtp_settings.html", {"form": form})


# --- Viewing email ---------------------------------------------------------------------------------


def sanitize_email_html(markup: str) -> str:
    return nh3.clean(
        markup,
        tags=ALLOWED_TAGS,
        clean_content_tags={"script", "style", "title", "head"},
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "cid"},
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )


@login_required
@require_GET
def email_detail(request, pk):
    membership = _tenant_required(request)
    view = selectors.email_get(membership=membership, pk=pk)
    images = request.GET.get("images") == "1"
    context = {
        "view": view,
        "email": view.email,
        "images": images,
        "has_html": bool(view.email.body_html),
        "body_url": reverse("emailsync:email-body", args=[view.email.pk]) + ("?images=1" if images else ""),
    }
    return render(request, "emailsync/email_detail.html", context)


@login_required
@require_GET
@xframe_options_sameorigin
def email_body(request, pk):
    """The sanitised HTML body, served alone for a sandboxed iframe under its own strict CSP."""
    membership = _tenant_required(request)
    view = selectors.email_get(membership=membership, pk=pk)
    if not view.content_visible:
        raise Http404("No such email.")
    images = request.GET.get("images") == "1"
    body = sanitize_email_html(view.email.body_html)
    document = (
        '<!doctype html><html><head><meta charset="utf-8"><base target="_blank"></head>'
        f'<body style="font-family:sans-serif;margin:0.5rem">{body}</body></html>'
    )
    response = HttpResponse(document, content_type="text/html; charset=utf-8")
    img_src = "img-src https: http: data: cid:" if images else "img-src data:"
    response["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'unsafe-inline'; {img_src}; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"
    )
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "private, no-store"
    return response


# --- Outgoing --------------------------------------------------------------------------------------


def _save_outgoing(request, membership, form, contact, outgoing=None):
    send = request.POST.get("action") == "send"
    data = form.cleaned_data
    try:
        outgoing = services.outgoing_save(
            tenant=membership.tenant,
            actor=request.user,
            contact=contact,
            to=data["to"],
            cc=data["cc"],
            subject=data["subject"],
            body=data["body"],
            outgoing=outgoing,
            send=send,
        )
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            form.add_error(None, exc.messages)
        return None
    messages.success(request, "Email queued for sending." if send else "Draft saved.")
    return redirect("emailsync:outgoing-detail", pk=outgoing.pk)


@login_required
@require_http_methods(["GET", "POST"])
def compose(request, contact_pk):
    membership = _tenant_required(request)
    contact = selectors.contact_for_email(membership=membership, pk=contact_pk)
    form = ComposeForm(request.POST or None, initial={"to": contact.email})
    if request.method == "POST" and form.is_valid():
        response = _save_outgoing(request, membership, form, contact)
        if response is not None:
            return response
    drafts = selectors.outgoing_for_contact(membership=membership, contact=contact)
    return render(
        request, "emailsync/compose.html", {"form": form, "contact": contact, "outgoing_list": drafts}
    )


@login_required
@require_http_methods(["GET", "POST"])
def outgoing_detail(request, pk):
    membership = _tenant_required(request)
    outgoing = selectors.outgoing_get(membership=membership, pk=pk)
    editable = outgoing.status == OutgoingStatus.DRAFT
    initial = {
        "to": ", ".join(outgoing.to),
        "cc": ", ".join(outgoing.cc),
        "subject": outgoing.subject,
        "body": outgoing.body,
    }
    form = ComposeForm(request.POST or None, initial=initial) if editable else None
    if request.method == "POST":
        if not editable:
            raise PermissionDenied("Only drafts can be changed.")
        if form.is_valid():
            response = _save_outgoing(request, membership, form, outgoing.contact, outgoing)
            if response is not None:
                return response
    return render(request, "emailsync/outgoing_detail.html", {"outgoing": outgoing, "form": form})
