from celery import shared_task


@shared_task
def ping() -> str:
    """Round-trip check for workers (used by the infrastructure tests)."""
    return "pong"
