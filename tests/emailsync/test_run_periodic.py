"""`manage.py run_periodic`: the beat schedule for `make run` without Redis (no worker nor beat)."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from activities.models import Activity, ActivityType
from emailsync.models import IncomingEmail, Mailbox

from .conftest import make_raw

pytestmark = pytest.mark.django_db


def _pending_analytics() -> int:
    with connection.cursor() as c:
        c.execute(
            "SELECT (SELECT count(*) FROM analytics_daily_delta)"
            " + (SELECT count(*) FROM analytics_email_dirty)"
        )
        return c.fetchone()[0]


def test_once_syncs_due_mailboxes_then_folds_their_analytics(mail_env, customer, tenant, settings):
    env = mail_env()
    env.append(make_raw(subject="Quote, please"))
    due = timezone.now() - timedelta(minutes=1)  # the claim compares with the transaction's now()
    Mailbox.objects.filter(pk=env.mailbox.pk).update(next_sync_at=due)
    with connection.cursor() as c:
        c.execute("SELECT analytics_fold()")
    assert _pending_analytics() == 0

    out = StringIO()
    call_command("run_periodic", "--once", stdout=out)

    # the fan-out claimed the due mailbox and its sync ran in this process (tasks are eager without Redis)
    assert IncomingEmail.objects.for_tenant(tenant).count() == 1
    activity = Activity.objects.for_tenant(tenant).get()
    assert (activity.type, activity.contact_id) == (ActivityType.EMAIL, customer.pk)
    assert sorted(line.split(":")[0] for line in out.getvalue().splitlines()) == sorted(
        settings.CELERY_BEAT_SCHEDULE
    )
    # the fold ran before the sync in that pass; the next pass folds what the sync wrote
    assert _pending_analytics() > 0
    call_command("run_periodic", "--once", stdout=StringIO())
    assert _pending_analytics() == 0
    assert Activity.objects.for_tenant(tenant).count() == 1  # nothing imported twice


def test_a_failing_task_is_reported_and_the_others_still_run(settings):
    settings.CELERY_BEAT_SCHEDULE = {
        "a-broken": {"task": "emailsync.tasks.send_outgoing_email_task", "schedule": 5.0, "args": ("x",)},
        "b-ping": {"task": "crm.tasks.ping", "schedule": 5.0},
    }
    out, err = StringIO(), StringIO()
    call_command("run_periodic", "--once", stdout=out, stderr=err)
    assert out.getvalue().strip() == "b-ping: 'pong'"
    assert err.getvalue().startswith("a-broken failed: ValueError(")


def test_refuses_to_run_beside_a_broker_and_refuses_crontab_schedules(settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    with pytest.raises(CommandError, match="celery -A crm beat"):
        call_command("run_periodic")
    settings.REDIS_URL = ""
    settings.CELERY_BEAT_SCHEDULE = {"nightly": {"task": "crm.tasks.ping", "schedule": "0 3 * * *"}}
    with pytest.raises(CommandError, match="interval schedules only"):
        call_command("run_periodic", "--once")
