"""Where the benchmark's data lives: its own database, never the development one.

``BENCH_DATABASE_URL`` if set, else ``DATABASE_URL`` with ``_bench`` appended to the database name.
``setup_django()`` points Django's default database at it before ``django.setup()``.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

SCALES = {"10m": 10_000_000, "1m": 1_000_000}


def scale_name() -> str:
    name = os.environ.get("BENCH_SCALE", "10m").lower()
    if name not in SCALES:
        raise SystemExit(f"BENCH_SCALE must be one of {', '.join(SCALES)} (got {name!r})")
    return name


def bench_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        return url
    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/crm"
    parts = urlsplit(base)
    name = parts.path.lstrip("/") or "crm"
    return urlunsplit(parts._replace(path=f"/{name}_bench"))


def admin_url(url: str) -> str:
    """The same server, maintenance database ``postgres`` (to CREATE DATABASE)."""
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def db_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def conninfo(url: str) -> str:
    # psycopg accepts postgres:// URLs directly.
    return url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url


def setup_django() -> None:
    url = bench_url()
    os.environ["BENCH_DATABASE_URL"] = url  # subprocesses (export probe) find the same database
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")
    os.environ["DEBUG"] = "0"  # no query log, production-like templates
    import django

    django.setup()
