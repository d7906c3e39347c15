"""Context for log records; imported by the logging configuration, so it must not import Django."""

import contextvars
import logging

request_id_var = contextvars.ContextVar("request_id", default=None)
tenant_id_var = contextvars.ContextVar("tenant_id", default=None)
user_id_var = contextvars.ContextVar("user_id", default=None)
task_id_var = contextvars.ContextVar("task_id", default=None)


class ContextFilter(logging.Filter):
    """Adds the request / tenant / user / task ids to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.tenant_id = tenant_id_var.get()
        record.user_id = user_id_var.get()
        record.task_id = task_id_var.get()
        return True
