from celery import shared_task
from django.db import connection


@shared_task(acks_late=True)
def analytics_fold() -> None:
    """Move buffered analytics increments into the daily aggregates (readers are exact either way)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT analytics_fold()")
