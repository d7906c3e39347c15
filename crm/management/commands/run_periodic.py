"""Run the Celery beat schedule in this process, for `make run` without Redis (no worker, no beat).

Every entry of ``CELERY_BEAT_SCHEDULE`` (mailbox fan-out, outbox reconciler, analytics fold) runs at its
interval with ``task.apply()``: in this process, and whatever it enqueues runs in-process too (tasks are
eager without REDIS_URL). ``--once`` runs each entry once and exits. With Redis, use ``celery beat``.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

logger = logging.getLogger(__name__)


def _interval(entry: dict) -> float:
    schedule = entry["schedule"]
    seconds = getattr(schedule, "total_seconds", lambda: schedule)()
    if not isinstance(seconds, int | float) or seconds <= 0:
        raise CommandError(f"run_periodic runs interval schedules only, not {schedule!r}")
    return float(seconds)


class Command(BaseCommand):
    help = "Run the periodic tasks (CELERY_BEAT_SCHEDULE) in this process, for make run without Redis."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="run every periodic task once and exit")

    def handle(self, *args, once: bool = False, **options):
        if settings.REDIS_URL and not once:
            raise CommandError("REDIS_URL is set: run `celery -A crm beat` and a worker instead.")
        from crm.celery import app

        app.loader.import_default_modules()  # the apps' tasks modules (autodiscovery), as a worker does
        entries = sorted(settings.CELERY_BEAT_SCHEDULE.items())
        intervals = {name: _interval(entry) for name, entry in entries}
        due = dict.fromkeys(intervals, 0.0)
        while True:
            now = time.monotonic()
            for name, entry in entries:
                if due[name] > now:
                    continue
                due[name] = now + intervals[name]
                task = app.tasks[entry["task"]]
                # A failing run is logged and tried again at the next interval, like beat and a worker.
                result = task.apply(args=entry.get("args", ()), kwargs=entry.get("kwargs", {}), throw=False)
                if result.failed():
                    logger.error("periodic task %s failed: %r", name, result.result)
                    self.stderr.write(f"{name} failed: {result.result!r}")
                elif once:
                    self.stdout.write(f"{name}: {result.result!r}")
            if once:
                return
            time.sleep(max(0.5, min(due.values()) - time.monotonic()))
