"""Helpers for the contact center tests: a tenant channel secret and a signed event poster."""

import json
import time

import pytest

from contactcenter import services
from contactcenter.models import Channel
from tests.factories import QueueFactory


@pytest.fixture
def channel_secret(tenant):
    row, secret = services.channel_secret_create(tenant=tenant, label="gateway")
    row.plaintext = secret
    return row


@pytest.fixture
def sms_queue(tenant, team):
    return QueueFactory(tenant=tenant, name="SMS support", channel=Channel.SMS, team=team)


def sign(secret_row, body: bytes, timestamp: int | None = None) -> dict:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "HTTP_X_CRM_KEY": secret_row.key_id,
        "HTTP_X_CRM_TIMESTAMP": ts,
        "HTTP_X_CRM_SIGNATURE": "sha256=" + services.signature_for(secret_row.plaintext, ts, body),
    }


@pytest.fixture
def post_event(client, channel_secret):
    """post_event(payload | raw bytes, secret=None, timestamp=None, headers=None) -> response."""

    def _post(payload, *, secret=None, timestamp=None, headers=None):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        meta = sign(secret or channel_secret, body, timestamp)
        if headers is not None:
            meta.update(headers)
        return client.generic(
            "POST", "/api/v1/contactcenter/events", body, content_type="application/json", **meta
        )

    return _post
