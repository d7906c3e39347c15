"""Setting up channels: secrets issued once and never shown again; widgets from the command line."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from contactcenter import services
from contactcenter.models import ChannelSecret, WidgetConfig
from crm.models import Role
from tests.factories import QueueFactory

pytestmark = pytest.mark.django_db


def test_secret_command_prints_the_secret_once_and_rotation_revokes(tenant):
    out = StringIO()
    call_command("contactcenter_secret", tenant.slug, stdout=out)
    first = ChannelSecret.objects.get()
    secret = out.getvalue().split("secret: ")[1].split()[0]
    assert services.signature_for(secret, "1", b"x")  # usable plaintext
    call_command("contactcenter_secret", tenant.slug, "--rotate", stdout=StringIO())
    first.refresh_from_db()
    assert first.is_active is False
    assert ChannelSecret.objects.filter(is_active=True).count() == 1


def test_admin_never_shows_the_secret_and_hides_other_tenants(client, tenant, other_tenant, make_member):
    row, secret = services.channel_secret_create(tenant=tenant)
    foreign, _ = services.channel_secret_create(tenant=other_tenant)
    admin = make_member(tenant, Role.ADMIN, is_staff=True)
    client.force_login(admin.user)
    listing = client.get("/admin/contactcenter/channelsecret/").content.decode()
    assert row.key_id in listing and foreign.key_id not in listing
    change = client.get(f"/admin/contactcenter/channelsecret/{row.pk}/change/").content.decode()
    assert secret not in change and row.secret_encrypted not in change
    assert client.get(f"/admin/contactcenter/channelsecret/{foreign.pk}/change/").status_code in (302, 404)


def test_widget_command_creates_a_widget(tenant, other_tenant):
    queue = QueueFactory(tenant=tenant, channel="webchat")
    out = StringIO()
    call_command(
        "contactcenter_widget",
        tenant.slug,
        "--queue",
        str(queue.pk),
        "--origin",
        "https://a.example/",
        stdout=out,
    )
    widget = WidgetConfig.objects.get()
    assert widget.allowed_origins == ["https://a.example"]
    assert f"/widget/{widget.public_key}.js" in out.getvalue()
    foreign_queue = QueueFactory(tenant=other_tenant, channel="webchat")
    with pytest.raises(CommandError):
        call_command("contactcenter_widget", tenant.slug, "--queue", str(foreign_queue.pk), stdout=StringIO())
