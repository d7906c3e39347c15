"""Playwright (sync API) driving the system Chromium (Debian package ``chromium``), no browser download.

Fixtures
  browser        session   a headless Chromium
  page           function  a page in a fresh context; ``page.console_errors`` collects console errors
                           and uncaught page errors; a screenshot lands in test-artifacts/ on failure.
                           Any Content-Security-Policy violation fails the test (``page.csp_violations``;
                           see _collect_console_error for the one exception). Under that policy
                           ``page.wait_for_function`` needs a function ("() => ..."): a bare expression
                           is run with eval in the page, which the policy refuses
  browser_login  function  ``login(page, live_server, email, password)``: submits the /login/ form

Use with pytest-django's ``live_server``.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# The sanitised email body (emailsync.views.email_body) has its own, stricter policy whose job is to refuse
# things (remote images unless asked for, anything a hostile email carries): refusals there are the feature.
EMAIL_BODY_URL = re.compile(r"/emails/\d+/body/")
DEFAULT_TIMEOUT_MS = 15_000


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"_report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def _playwright():
    if not os.path.exists(CHROMIUM):
        reason = f"{CHROMIUM} not found: install the Debian package chromium (make test does)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Once Playwright's sync API has started, its event loop is visible in this thread for the rest of the
    # process, and Django's ORM refuses to run where it sees one. Set only when a browser test runs, so
    # sessions without one keep Django's protection. (Subprocesses that must not inherit it, such as a
    # `check --deploy` run, should drop it from their environment.)
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    manager = sync_playwright()
    playwright = manager.start()
    try:
        yield playwright
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture(scope="session")
def browser(_playwright):
    browser = _playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


def _collect_console_error(page, msg) -> None:
    if msg.type != "error":
        return
    # Chromium asks for /favicon.ico on its own; a 404 there is not the page's error.
    url = (msg.location or {}).get("url", "")
    if url.endswith("/favicon.ico"):
        return
    page.console_errors.append(msg.text)
    # Chromium reports every enforced CSP violation as a console error naming the policy.
    if "Content Security Policy" in msg.text and not EMAIL_BODY_URL.search(url):
        page.csp_violations.append(f"{url}: {msg.text}")


def _wait_until_no_request_holds_the_database(timeout: float = 10.0) -> None:
    """Wait until no other session of the test database is running a statement or holds a transaction
    open (a live-server request still answering the closed page). The per-test flush TRUNCATEs every table:
    against a request that holds one table and waits for another, that is a deadlock (seen as an error at
    the teardown of a grid test)."""
    from django.db import connection

    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                " AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')"
            )
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)


@pytest.fixture
def page(browser, request, live_server):
    # Depends on live_server so that it is torn down first: the page closes, and its last requests end,
    # before the live server's test flushes the database.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    page.console_errors = []
    page.csp_violations = []
    page.on("console", lambda msg: _collect_console_error(page, msg))
    page.on("pageerror", lambda exc: page.console_errors.append(f"pageerror: {exc}"))
    try:
        yield page
    finally:
        report = getattr(request.node, "_report_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-180:]
            try:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
                (ARTIFACTS / f"{name}.html").write_text(page.content())
            except Exception:  # noqa: BLE001, S110 - best effort; the test already failed
                pass
        context.close()
        _wait_until_no_request_holds_the_database()
    # Our pages must work under their own policy: a refused inline script / style / eval is a bug even when
    # the test's own assertions passed (a test that already failed keeps its own failure).
    if page.csp_violations and not (report is not None and report.failed):
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(page.csp_violations), pytrace=False)


@pytest.fixture
def browser_login():
    """``login(page, live_server, email, password)``: log in through the real /login/ form."""

    def login(page, live_server, email: str, password: str) -> None:
        base = getattr(live_server, "url", str(live_server)).rstrip("/")
        page.goto(f"{base}/login/")
        form = page.locator("form:has(input[name='password'])")
        form.locator("input[name='username']").fill(email)
        form.locator("input[name='password']").fill(password)
        with page.expect_navigation():
            form.locator("[type='submit']").first.click()

    return login
