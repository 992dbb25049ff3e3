"""`send_email`: one e-mail over SMTP, once per idempotency key, on the e-mail queue."""

from __future__ import annotations

from typing import Any

from celery import Task

from conveyor import task
from conveyor_core.catalog import EMAIL_QUEUE
from conveyor_core.email_schema import EmailParams
from conveyor_core.errors import EmailDeferredError
from conveyor_worker.email_sending import send_once


@task(
    params=EmailParams,
    queue=EMAIL_QUEUE,
    bind=True,
    summary="Send one e-mail over SMTP, once.",
    # Celery's own retries for what may pass (4xx, network); the numbers come from the
    # settings when the worker registers it (EMAIL_MAX_RETRIES, EMAIL_RETRY_BACKOFF[_MAX]).
    autoretry_for=(EmailDeferredError,),
    retry_backoff=True,
    retry_jitter=True,
    # Addresses, subjects and bodies are personal data: Flower and logs show their size.
    shown=frozenset({"template", "idempotency_key"}),
)
def send_email(self: Task[Any, Any], **fields: Any) -> dict[str, Any]:
    """Send one e-mail over SMTP: once per idempotency key, retried while it may pass."""
    return send_once(self, EmailParams.model_validate(fields))
