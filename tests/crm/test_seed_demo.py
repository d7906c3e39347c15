import pytest
from django.core.management import CommandError, call_command

from activities.models import Activity, ActivitySource, ActivityType, Direction, FeedEntry
from contactcenter.models import Channel, ClosedInteraction
from crm.models import Membership, Tenant
from emailsync.models import IncomingEmail

pytestmark = pytest.mark.django_db


def test_seed_demo_loads_two_tenants_and_is_idempotent(settings):
    # when
    call_command("seed_demo", scale=0.1)
    counts = (Tenant.objects.count(), Activity.objects.count(), ClosedInteraction.objects.count())
    call_command("seed_demo", scale=0.1)
    # then running twice adds nothing
    assert (Tenant.objects.count(), Activity.objects.count(), ClosedInteraction.objects.count()) == counts
    assert set(Tenant.objects.values_list("name", flat=True)) == {"Acme", "Globex"}


def test_seed_demo_covers_every_type_source_direction_and_channel():
    call_command("seed_demo", scale=0.2)
    acme = Tenant.objects.get(name="Acme")
    feed = FeedEntry.objects.for_tenant(acme)
    assert set(feed.values_list("type", flat=True).distinct()) >= {
        t for t in ActivityType.values if t != ActivityType.CONTACT_UPDATE
    }
    assert set(feed.values_list("source", flat=True).distinct()) == set(ActivitySource.values)
    assert set(feed.values_list("direction", flat=True).distinct()) == set(Direction.values)
    channels = set(ClosedInteraction.objects.for_tenant(acme).values_list("channel", flat=True).distinct())
    assert channels == {Channel.VOICE, Channel.SMS, Channel.WHATSAPP, Channel.WEBCHAT}
    assert IncomingEmail.objects.for_tenant(acme).exists()


def test_seed_demo_logins_have_the_documented_roles():
    call_command("seed_demo", scale=0.1)
    roles = {
        m.user.email: (m.tenant.name, m.role, m.can_manage_email)
        for m in Membership.objects.select_related("user", "tenant")
    }
    assert roles["admin@acme.test"] == ("Acme", "admin", True)
    assert roles["manager@acme.test"][:2] == ("Acme", "manager")
    assert roles["agent@acme.test"] == ("Acme", "agent", False)
    assert roles["admin@globex.test"][:2] == ("Globex", "admin")
    agent = Membership.objects.get(user__email="agent@acme.test")
    manager = Membership.objects.get(user__email="manager@acme.test")
    assert agent.teams.count() == 1 and manager.teams.count() == 1


def test_demo_password_works(client):
    call_command("seed_demo", scale=0.1)
    response = client.post("/login/", {"username": "agent@acme.test", "password": "demo"})
    assert response.status_code == 302


def test_production_refuses_demo_data(settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        call_command("seed_demo")
    assert not Tenant.objects.exists()
