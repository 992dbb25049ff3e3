"""`deliver_webhook`: POST an event, signed, to a receiver; retried while it may pass.

A 5xx or a network failure (refused, timed out) is retried with Celery's exponential
backoff; a 4xx is the receiver refusing this event for good, and fails the task.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Annotated, Any

import httpx
from celery import current_task
from pydantic import Field

from conveyor import TaskFailedError, task
from webhook_tasks.signing import HEADER, sign

#: The shared secret receivers check signatures with (each deployment sets its own).
SECRET_VARIABLE = "WEBHOOK_SIGNING_SECRET"  # noqa: S105  # a variable's name


class ReceiverUnavailableError(Exception):
    """The receiver answered 5xx: it may take the event later."""


def signing_secret() -> str:
    """The secret from the environment; a worker without one must not send unsigned."""
    secret = os.environ.get(SECRET_VARIABLE, "")
    if len(secret) < 16:
        raise TaskFailedError(f"{SECRET_VARIABLE} is unset or shorter than 16 characters")
    return secret


@task(
    queue="webhooks",
    autoretry_for=(ReceiverUnavailableError, httpx.TransportError),
    retry_backoff=1,  # 1 s, 2 s, 4 s, 8 s, ... capped below
    retry_backoff_max=30,
    retry_jitter=False,
    max_retries=5,
    time_limit=60,
)
def deliver_webhook(
    url: Annotated[str, Field(pattern=r"^https?://", max_length=2_000)],
    event: Annotated[str, Field(min_length=1, max_length=100)],
    payload: dict[str, Any],
) -> dict[str, Any]:
    """POST a signed event to a webhook receiver."""
    delivery = current_task.request.id if current_task else None
    body = json.dumps({"event": event, "payload": payload}, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        HEADER: sign(signing_secret(), body),
        # The same on every attempt: a receiver drops a delivery it already took.
        "Webhook-Id": delivery or str(uuid.uuid4()),
    }
    response = httpx.post(url, content=body, headers=headers, timeout=10)
    if response.status_code >= 500:
        raise ReceiverUnavailableError(f"{url} answered {response.status_code}")
    if response.status_code >= 400:
        raise TaskFailedError(f"{url} refused the event: {response.status_code}")
    return {"status": response.status_code, "webhook_id": headers["Webhook-Id"]}
