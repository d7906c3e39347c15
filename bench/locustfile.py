"""The load scenario behind `make load` (run by bench/load.py; not a test).

Signed-in agents of two tenants browse the activity grid with filters, open timeline windows, the contacts
grid with badges and the message viewer, and log activities by hand; a channel integration posts signed
events. Every user is a closed loop without think time, so the request rate is what the server sustains.

Sampled HTML responses are scanned for contact links; bench/load.py checks afterwards that every contact a
user was shown belongs to that user's tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import random
import re
import time
import uuid

import requests
from locust import HttpUser, constant, task

CONFIG = json.loads(open(os.environ["LOAD_CONFIG"]).read())  # noqa: SIM115 - read once at import
SEEN_PATH = os.environ["LOAD_SEEN"]
CONTACT_LINK = re.compile(rb"/contacts/(\d+)/")
_identities = itertools.cycle(CONFIG["identities"])
_rng = random.Random(7)  # nosec B311  # load mix, not a secret


def _record(tenant_id: int, body: bytes) -> None:
    """Sample one response in four: contact ids shown, with the tenant of the user who saw them."""
    if _rng.random() > 0.25:
        return
    ids = set(CONTACT_LINK.findall(body))
    if ids:
        with open(SEEN_PATH, "a") as out:
            out.write("".join(f"{tenant_id} {int(i)}\n" for i in ids))


class Agent(HttpUser):
    weight = 10
    wait_time = constant(0)

    def on_start(self):
        """Sign in with a session of its own, outside the statistics (password hashing is deliberately slow
        and happens once per user, not per request), then hand the cookies to the measured client."""
        self.me = next(_identities)
        with requests.Session() as login:
            page = login.get(self.host + "/login/", timeout=30)
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
            response = login.post(
                self.host + "/login/",
                {"username": self.me["email"], "password": CONFIG["password"], "csrfmiddlewaretoken": token},
                headers={"Referer": self.host + "/login/"},
                timeout=30,
            )
            if "sessionid" not in login.cookies:
                raise RuntimeError(f"login of {self.me['email']} failed: HTTP {response.status_code}")
            self.client.cookies.update(login.cookies)

    def _get(self, url: str, name: str, htmx: bool = False):
        headers = {"HX-Request": "true"} if htmx else {}
        with self.client.get(url, name=name, headers=headers, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            _record(self.me["tenant_id"], response.content)

    @task(3)
    def grid(self):
        self._get("/activities/", "grid, first page")

    @task(5)
    def grid_filtered(self):
        me = self.me
        choice = _rng.choice(
            [
                ("?type=call", "grid, type"),
                ("?direction=inbound", "grid, direction"),
                ("?source=interaction", "grid, source"),
                (f"?agent={_rng.choice(me['agents'])}", "grid, agent"),
                (f"?date_from={me['month'][0]}&date_to={me['month'][1]}", "grid, month"),
                ("?type=email&direction=outbound", "grid, type + direction"),
                (f"?contact={_rng.choice(me['contact_words'])}", "grid, contact name"),
                (f"?summary={_rng.choice(CONFIG['summary_words'])}", "grid, summary search"),
            ]
        )
        self._get("/activities/" + choice[0], choice[1], htmx=_rng.random() < 0.5)

    @task(3)
    def timeline(self):
        self._get(f"/contacts/{_rng.choice(self.me['contacts'])}/timeline/", "timeline window", htmx=True)

    @task(2)
    def contacts_grid(self):
        self._get("/contacts/", "contacts grid with badges")

    @task(2)
    def viewer(self):
        self._get(f"/interactions/{_rng.choice(self.me['interactions'])}/messages/", "message viewer", True)

    @task(1)
    def log_activity(self):
        contact = _rng.choice(self.me["contacts"])
        with self.client.post(
            f"/activities/log/?contact={contact}",
            {"type": "note", "summary": f"load note {uuid.uuid4().hex[:8]}", "contact": contact},
            headers={
                "HX-Request": "true",
                "X-CSRFToken": self.client.cookies.get("csrftoken", ""),
                "Referer": self.host + "/activities/",
            },
            name="log activity",
            catch_response=True,
        ) as response:
            if response.status_code != 200 or b"logged" not in response.content:
                response.failure(f"HTTP {response.status_code}: not logged")


class ChannelIntegration(HttpUser):
    """A telephony/messaging provider posting signed events: open, a message, close. Exactly one in every
    step (a weight left it out of the small steps: 1 of 11 users rounds to none below 6)."""

    fixed_count = 1
    wait_time = constant(0)

    def on_start(self):
        self.me = next(_identities)

    def _post(self, payload: dict, name: str) -> None:
        body = json.dumps(payload).encode()
        stamp = str(int(time.time()))
        signature = hmac.new(
            self.me["secret"].encode(), stamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        with self.client.post(
            "/api/v1/contactcenter/events",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-CRM-Key": self.me["key_id"],
                "X-CRM-Timestamp": stamp,
                "X-CRM-Signature": f"sha256={signature}",
            },
            name=name,
            catch_response=True,
        ) as response:
            if response.status_code not in (200, 201):
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")

    @task
    def conversation(self):
        interaction = f"load-{uuid.uuid4().hex}"
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        base = {"channel": "sms", "interaction_id": interaction, "occurred_at": now}
        contact = {"phone": f"+1555{_rng.randint(1000000, 9999999)}", "name": "Load Caller"}
        self._post(
            {**base, "event_id": f"{interaction}-o", "type": "interaction.opened", "contact": contact},
            "event",
        )
        self._post(
            {
                **base,
                "event_id": f"{interaction}-m",
                "type": "message",
                "contact": contact,
                "message": {"text": "Hello, is my order shipped?", "direction": "inbound"},
            },
            "event",
        )
        self._post({**base, "event_id": f"{interaction}-c", "type": "interaction.closed"}, "event")
