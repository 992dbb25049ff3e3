"""/api/v1/emails: send one e-mail or many through the e-mail worker.

A friendlier front of `send_email`: the body is the task's arguments themselves, checked
against the same schema (addresses, sizes, template and its context) before anything is
enqueued. Every e-mail gets an idempotency key (the client's, or a new one) in its
arguments, so every copy of its task, a dead letter replayed included, is the same
e-mail to the worker: it is sent once.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response
from pydantic import Field, field_validator

from conveyor_core.email_schema import EmailParams
from conveyor_producer.context import Context
from conveyor_producer.errors import ApiError
from conveyor_producer.schemas import BatchSubmitted, IdempotencyKey, Strict, Submitted, TaskCall
from conveyor_producer.submission import (
    IDEMPOTENT_BATCH_REPEAT,
    IDEMPOTENT_REPEAT,
    idempotency_of,
    signature,
    submit_many,
    submit_one,
)

TASK = "send_email"


class EmailBatch(Strict):
    """Many e-mails; all are validated before any is enqueued."""

    emails: list[EmailParams] = Field(min_length=1)
    idempotency_key: IdempotencyKey = Field(
        None,
        description="The same key and e-mails within its TTL return the first batch's ids (200).",
    )

    @field_validator("emails")
    @classmethod
    def _keys_unique(cls, emails: list[EmailParams]) -> list[EmailParams]:
        seen: dict[str, int] = {}
        for index, email in enumerate(emails):
            key = email.idempotency_key
            if key is not None and seen.setdefault(key, index) != index:
                raise ValueError(
                    f"emails[{index}].idempotency_key repeats emails[{seen[key]}]'s: "
                    "the second would never be sent"
                )
        return emails


def _call(email: EmailParams) -> TaskCall:
    """The send_email call for one e-mail, with its idempotency key filled in."""
    kwargs = email.model_dump(mode="json", exclude_defaults=True)
    kwargs["idempotency_key"] = email.idempotency_key or str(uuid.uuid4())
    return TaskCall(task=TASK, kwargs=kwargs)


def build(ctx: Context) -> APIRouter:
    """The e-mail routes."""
    router = APIRouter(prefix="/emails", tags=["emails"])

    @router.post("", status_code=202, response_model=Submitted, responses=IDEMPOTENT_REPEAT)
    def send_email(email: EmailParams, response: Response) -> Submitted:
        """Send one e-mail (text and/or HTML, or a template with its context)."""
        sig, issued = signature(ctx, _call(email))
        idempotency = idempotency_of(email.idempotency_key, email, "email:")
        return Submitted(id=submit_one(ctx, sig, issued, response, idempotency))

    @router.post(
        "/batch",
        status_code=202,
        response_model=BatchSubmitted,
        responses=IDEMPOTENT_BATCH_REPEAT,
    )
    def send_batch(batch: EmailBatch, response: Response) -> BatchSubmitted:
        """Send many e-mails; one bad e-mail rejects the batch, naming its index.

        With the batch's `idempotency_key`, the same batch sent again returns the first
        ids with 200 (each e-mail's own key still keeps it from being sent twice).
        """
        limit = ctx.settings.max_batch_tasks
        if len(batch.emails) > limit:
            raise ApiError(413, "too_large", f"at most {limit} e-mails in a batch", "emails")
        built = [
            signature(ctx, _call(email), field=f"emails[{i}].")
            for i, email in enumerate(batch.emails)
        ]
        idempotency = idempotency_of(batch.idempotency_key, batch, "email-batch:")
        return BatchSubmitted(ids=submit_many(ctx, built, response, idempotency))

    return router
