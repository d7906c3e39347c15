"""Reads of the email app. Everything is tenant-scoped; "not visible" and "missing" are both a 404."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import Http404

from activities.models import Activity, Direction
from crm import visibility
from crm.models import Contact, Membership

from .models import EmailLocation, IncomingEmail, Mailbox, OutgoingEmail


def mailbox_list(*, membership: Membership):
    """The viewer's own mailboxes; admins see every mailbox of the tenant."""
    qs = (
        Mailbox.objects.for_tenant(membership.tenant_id)
        .select_related("owner")
        .order_by("email_address", "id")
    )
    if not membership.is_admin:
        qs = qs.filter(owner_id=membership.user_id)
    return qs


def mailbox_get(*, membership: Membership, pk: int) -> Mailbox:
    mailbox = mailbox_list(membership=membership).filter(pk=pk).first()
    if mailbox is None:
        raise Http404("No such mailbox.")
    return mailbox


@dataclass
class EmailView:
    email: IncomingEmail
    activity: Activity | None
    own: bool  # seen in one of the viewer's own mailboxes
    content_visible: bool
    direction: str


def email_get(*, membership: Membership, pk: int) -> EmailView:
    email = IncomingEmail.objects.for_tenant(membership.tenant_id).filter(pk=pk).defer("raw").first()
    if email is None:
        raise Http404("No such email.")
    own = (
        EmailLocation.objects.for_tenant(membership.tenant_id)
        .filter(email=email, mailbox__owner_id=membership.user_id)
        .exists()
    )
    activity = (
        Activity.objects.for_tenant(membership.tenant_id)
        .alive()
        .filter(dedup_key=f"email:{email.pk}")
        .first()
    )
    visible = membership.is_admin or own
    if not visible and activity is not None:
        visible = (
            activity.team_id in visibility.team_ids(membership) or activity.user_id == membership.user_id
        )
    if not visible:
        raise Http404("No such email.")
    content = visibility.can_see_email_content(
        membership, agent_id=activity.user_id if activity else None, participant=own
    )
    return EmailView(
        email=email,
        activity=activity,
        own=own,
        content_visible=content,
        direction=activity.direction if activity else Direction.NONE,
    )


def contact_for_email(*, membership: Membership, pk: int) -> Contact:
    qs = Contact.objects.for_tenant(membership.tenant_id)
    contact = visibility.scope(qs, membership, team_field="team", user_field="owner").filter(pk=pk).first()
    if contact is None:
        raise Http404("No such contact.")
    return contact


def outgoing_get(*, membership: Membership, pk: int) -> OutgoingEmail:
    qs = OutgoingEmail.objects.for_tenant(membership.tenant_id).select_related("contact")
    if not membership.is_admin:
        qs = qs.filter(author_id=membership.user_id)
    outgoing = qs.filter(pk=pk).first()
    if outgoing is None:
        raise Http404("No such email.")
    return outgoing


def outgoing_for_contact(*, membership: Membership, contact: Contact, limit: int = 20):
    qs = OutgoingEmail.objects.for_tenant(membership.tenant_id).filter(contact=contact)
    if not membership.is_admin:
        qs = qs.filter(author_id=membership.user_id)
    return list(qs.order_by("-created_at", "-id")[:limit])
