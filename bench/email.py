"""Email sync benchmarks (called by bench/run.py as ``run(report)``, or ``python -m bench.email``).

Starts its own Dovecot (the class from tests/plugins/services.py) on a free loopback port, seeds
Maildirs directly (fast), and measures against the bench database, in a tenant of its own:

1. backfill of N messages (default 10,000, ~12 KB each) into incoming_emails + activities: msgs/s;
2. an unchanged mailbox with 3 folders: IMAP commands per poll (must be STATUS x 3) and ms per poll;
3. M mailboxes (default 1,000) due at once, handled by 2 Celery workers (Redis) — or, without Redis,
   2 worker processes running the same claim/sync loop: every mailbox synced, the longest wait.

Sizes: BENCH_EMAIL_MESSAGES, BENCH_EMAIL_MAILBOXES.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess  # nosec B404  # starts the bench's own worker processes, fixed argv
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = (
    "quote order invoice meeting proposal contract renewal discount shipping support question follow up "
    "pricing demo trial onboarding feedback schedule delivery payment account upgrade"
).split()


def _message(i: int, sender: str, to: str, size: int, rng: random.Random) -> bytes:
    body_words = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        body_words.append(word)
        length += len(word) + 1
    lines = [" ".join(body_words[j : j + 12]) for j in range(0, len(body_words), 12)]
    headers = (
        f"From: Customer {i % 50} <{sender}>\r\nTo: {to}\r\nSubject: {rng.choice(WORDS).title()} #{i}\r\n"
        f"Date: Mon, 3 Nov 2025 10:{i % 60:02d}:00 +0000\r\n"
        f"Message-ID: <bench-{i}-{uuid.uuid4().hex}@bench.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    return (headers + "\r\n".join(lines) + "\r\n").encode()


def _maildir(dovecot, user: str, folder: str = "INBOX") -> Path:
    home = dovecot.mail_root / user
    base = home / "Maildir"
    path = base if folder == "INBOX" else base / f".{folder}"
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def _seed(dovecot, user: str, messages: list[bytes], folder: str = "INBOX") -> None:
    path = _maildir(dovecot, user, folder)
    stamp = int(time.time())
    for i, raw in enumerate(messages):
        (path / "new" / f"{stamp}.M{i}P{os.getpid()}.bench,S={len(raw)}").write_bytes(raw)


def _chown(dovecot) -> None:
    if os.geteuid() == 0:
        for dirpath, _dirs, files in os.walk(dovecot.mail_root):
            os.chown(dirpath, dovecot.mail_uid, dovecot.mail_gid)
            for name in files:
                os.chown(os.path.join(dirpath, name), dovecot.mail_uid, dovecot.mail_gid)


def _add_users(dovecot, users: dict[str, str]) -> None:
    last = None
    for name, password in users.items():
        dovecot.users[name] = password
        last = (name, password)
    if last:
        dovecot.add_user(*last)  # rewrites the passwd-file with everyone
    time.sleep(1.1)  # Dovecot notices a rewritten passwd-file by its mtime (1 s resolution)
    os.utime(dovecot.passwd, None)


def _tenant_and_owner(label: str):
    from django.contrib.auth import get_user_model

    from crm.models import Membership, Role, Team, Tenant

    slug = f"bench-email-{label}-{uuid.uuid4().hex[:6]}"
    tenant = Tenant.objects.create(name=slug, slug=slug)
    team = Team.objects.create(tenant=tenant, name="Mail")
    user = get_user_model().objects.create_user(username=f"{slug}@bench.test", email=f"{slug}@bench.test")
    membership = Membership.objects.create(tenant=tenant, user=user, role=Role.AGENT)
    membership.teams.set([team])
    return tenant, user, team


def _mailbox(tenant, owner, dovecot, username: str, folders: list[str], **extra):
    from emailsync.models import Mailbox

    mailbox = Mailbox(
        tenant=tenant,
        owner=owner,
        email_address=owner.email,
        host=dovecot.host,
        port=dovecot.port,
        security="none",
        username=username,
        folders=folders,
        **extra,
    )
    mailbox.set_secret("bench-pw")
    mailbox.save()
    return mailbox


def bench_backfill(report, dovecot, n: int) -> None:
    from activities.models import Activity
    from crm.models import Contact
    from emailsync.models import IncomingEmail
    from emailsync.services import sync_mailbox

    tenant, owner, _team = _tenant_and_owner("backfill")
    senders = [f"customer{i}@client.test" for i in range(50)]
    Contact.objects.bulk_create(
        [Contact(tenant=tenant, name=f"Customer {i}", emails=[addr]) for i, addr in enumerate(senders)]
    )
    user = f"backfill-{uuid.uuid4().hex[:6]}"
    _add_users(dovecot, {user: "bench-pw"})
    rng = random.Random(7)  # nosec B311  # reproducible synthetic mail, not a secret
    messages = [
        _message(i, senders[i % 50], owner.email, int(rng.gauss(12_000, 3_000)) or 1, rng) for i in range(n)
    ]
    _seed(dovecot, user, messages)
    _chown(dovecot)
    avg = sum(len(m) for m in messages) / len(messages)
    mailbox = _mailbox(tenant, owner, dovecot, user, ["INBOX"])
    with dovecot.client(user, "bench-pw") as c:  # let Dovecot index the Maildir before timing
        c.select_folder("INBOX", readonly=True)

    started = time.perf_counter()
    runs = 0
    while True:
        runs += 1
        result = sync_mailbox(mailbox.pk)
        if result.status != "ok":
            raise RuntimeError(f"backfill sync failed: {result.status} {result.error}")
        if not result.more:
            break
    elapsed = time.perf_counter() - started
    emails = IncomingEmail.objects.for_tenant(tenant).count()
    activities = Activity.objects.for_tenant(tenant).count()
    rate = emails / elapsed
    report.add(
        "email", f"backfill {n} msgs (avg {avg / 1024:.1f} KB)", [elapsed * 1000], f"{rate:.0f} msgs/s"
    )
    verdict = "OK" if rate >= 300 and emails == n == activities else "BELOW TARGET"
    report.note(
        f"email backfill: {emails} emails + {activities} activities from {n} messages in {elapsed:.1f} s "
        f"({runs} runs) = {rate:.0f} msgs/s (target >= 300 on 2 cores: {verdict})"
    )


def bench_unchanged(report, dovecot) -> None:
    from emailsync.services import sync_mailbox

    tenant, owner, _team = _tenant_and_owner("unchanged")
    user = f"unchanged-{uuid.uuid4().hex[:6]}"
    _add_users(dovecot, {user: "bench-pw"})
    rng = random.Random(3)  # nosec B311  # reproducible synthetic mail, not a secret
    for folder in ("INBOX", "Sent", "Archive"):
        _seed(
            dovecot, user, [_message(i, "x@client.test", owner.email, 2000, rng) for i in range(20)], folder
        )
    _chown(dovecot)
    mailbox = _mailbox(tenant, owner, dovecot, user, ["INBOX", "Sent", "Archive"])
    sync_mailbox(mailbox.pk)  # initial import
    samples, commands = [], None
    for _ in range(30):
        started = time.perf_counter()
        result = sync_mailbox(mailbox.pk)
        samples.append((time.perf_counter() - started) * 1000)
        commands = dict(result.commands)
        if result.imported != 0:  # a check the bench relies on, so not an assert (gone under -O)
            raise RuntimeError(f"an unchanged mailbox imported mail: {result}")
    _p50, p95 = report.add("email", "unchanged mailbox, 3 folders (connect+login+STATUS)", samples)
    ok = commands == {"STATUS": 3} and p95 < 50
    report.note(
        f"email unchanged poll: IMAP commands per poll {commands} (target: STATUS x 3), p95 {p95:.1f} ms "
        f"(target < 50 ms: {'OK' if ok else 'CHECK'})"
    )


def _worker_env() -> dict:
    return dict(os.environ, PYTHONUNBUFFERED="1", CONN_MAX_AGE="0", EMAILSYNC_ALLOW_PRIVATE_HOSTS="1")


LOOP_WORKER = """
import django, sys, time
django.setup()
from emailsync.tasks import claim_due_mailboxes
from emailsync.services import sync_mailbox
idle = 0
while idle < 20:
    ids = claim_due_mailboxes(5)
    if not ids:
        idle += 1; time.sleep(0.1); continue
    idle = 0
    for i in ids:
        sync_mailbox(i)
"""


def bench_fanout(report, dovecot, count: int) -> None:
    from django.conf import settings
    from django.db.models import Max, Min
    from django.utils import timezone

    from emailsync.models import Mailbox
    from emailsync.tasks import claim_due_mailboxes

    tenant, owner, _team = _tenant_and_owner("fanout")
    users = {f"fan{i}-{uuid.uuid4().hex[:4]}": "bench-pw" for i in range(count)}
    _add_users(dovecot, users)
    rng = random.Random(5)  # nosec B311  # reproducible synthetic mail, not a secret
    for user in users:
        _seed(dovecot, user, [_message(0, "x@client.test", owner.email, 1500, rng)])
    _chown(dovecot)
    ids = [_mailbox(tenant, owner, dovecot, user, ["INBOX"]).pk for user in users]
    due_at = timezone.now()
    Mailbox.objects.filter(pk__in=ids).update(next_sync_at=due_at)
    redis_url = os.environ.get("REDIS_URL") or getattr(settings, "REDIS_URL", "")
    procs = []
    env = _worker_env()
    started = time.perf_counter()
    if redis_url:
        from emailsync.tasks import sync_mailbox_task

        queue = f"bench-email-{uuid.uuid4().hex[:6]}"
        env["CELERY_SYNC_QUEUE"] = queue  # a sync that queues its own continuation stays on this queue
        for n in range(2):
            cmd = [sys.executable, "-m", "celery", "-A", "crm", "worker", "--pool=solo", "-Q", queue,
                   "-n", f"{queue}-{n}@%h", "-l", "warning", "--without-heartbeat", "--without-gossip",
                   "--without-mingle"]  # fmt: skip
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env)  # noqa: S603  # nosec B603  # fixed argv
            procs.append(proc)
        mode = "2 Celery workers (solo pool) via Redis"
        claimed = claim_due_mailboxes(limit=count)
        for mailbox_id in claimed:
            sync_mailbox_task.apply_async(args=[mailbox_id], queue=queue)
    else:
        for _ in range(2):
            worker = [sys.executable, "-c", LOOP_WORKER]  # this interpreter and a constant program
            proc = subprocess.Popen(worker, cwd=ROOT, env=env)  # nosec B603  # fixed argv
            procs.append(proc)
        mode = "2 worker processes (claim/sync loop; no Redis)"
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            done = Mailbox.objects.filter(pk__in=ids, last_sync_at__isnull=False).count()
            if done == count:
                break
            time.sleep(0.5)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    elapsed = time.perf_counter() - started
    agg = Mailbox.objects.filter(pk__in=ids).aggregate(first=Min("last_sync_at"), last=Max("last_sync_at"))
    done = Mailbox.objects.filter(pk__in=ids, last_sync_at__isnull=False).count()
    imported = sum(Mailbox.objects.filter(pk__in=ids).values_list("messages_imported", flat=True))
    longest = (agg["last"] - due_at).total_seconds() if agg["last"] else float("nan")
    report.add("email", f"{count} due mailboxes, 2 workers (total)", [elapsed * 1000], mode)
    report.note(
        f"email fan-out: {done}/{count} mailboxes synced ({imported} messages) by {mode} in {elapsed:.1f} s; "
        f"longest wait from due to synced {longest:.1f} s; starvation: {'none' if done == count else 'YES'}"
    )


def _forget_earlier_runs() -> None:
    """Earlier (possibly interrupted) runs leave due mailboxes whose Dovecot is gone; the fan-out claims the
    oldest due mailboxes first, so they would starve this run's. Remove those tenants (bench data only)."""
    from crm.models import Tenant

    Tenant.objects.filter(slug__startswith="bench-email-").delete()


def run(report) -> None:
    from tests.plugins.services import Dovecot

    n = int(os.environ.get("BENCH_EMAIL_MESSAGES", "10000"))
    mailboxes = int(os.environ.get("BENCH_EMAIL_MAILBOXES", "1000"))
    os.environ["EMAILSYNC_ALLOW_PRIVATE_HOSTS"] = "1"
    from django.conf import settings

    settings.EMAILSYNC_ALLOW_PRIVATE_HOSTS = True
    _forget_earlier_runs()
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-dovecot-"))
    dovecot = Dovecot(workdir)
    dovecot.start()
    try:
        bench_unchanged(report, dovecot)
        bench_backfill(report, dovecot, n)
        bench_fanout(report, dovecot, mailboxes)
    finally:
        dovecot.stop()
        shutil.rmtree(workdir, ignore_errors=True)


class _PrintReport:
    def add(self, group, name, samples, note=""):
        samples = sorted(samples)
        p50 = samples[len(samples) // 2]
        p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
        print(f"  {group:<8} {name:<52} p50 {p50:9.2f} ms  p95 {p95:9.2f} ms  n={len(samples)} {note}")
        return p50, p95

    def note(self, text):
        print("  * " + text)


def main() -> None:
    from bench.db import setup_django

    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    run(_PrintReport())


if __name__ == "__main__":
    main()
