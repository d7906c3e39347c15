"""Settings for the Celery worker of the PostgreSQL fault test (tests/infra/test_faults.py): small sync
batches, so a stop lands in the middle of a mailbox sync, and a short lease, so the sync interrupted by the
stop can be resumed within the test."""

from crm.settings import *  # noqa: F403

EMAILSYNC_BATCH_SIZE = 5
EMAILSYNC_LEASE_SECONDS = 5
