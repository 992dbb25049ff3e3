"""The arguments of `send_email`: recipients, content, attachments and idempotency key.

Shared by the producer (the 422 comes before anything is enqueued) and the worker
(which validates again). Addresses are checked by `email-validator` (syntax and
internationalised domains; no DNS lookups, which would make validation slow and flaky).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationInfo,
    field_validator,
)

from conveyor_core import email_templates

#: Most recipients (to + cc + bcc) of one e-mail: more is a mailing list, not a task.
MAX_RECIPIENTS = 100
#: Largest text or HTML body, in characters.
MAX_BODY_CHARS = 1_000_000
#: Most attachments, and their largest total size once decoded. Messages travel through
#: Redis, which holds them in memory: large files belong in object storage, linked.
MAX_ATTACHMENTS = 10
MAX_ATTACHMENT_BYTES = 1024 * 1024
#: RFC 5322's line limit, which a subject must fit in.
MAX_SUBJECT_CHARS = 998

_FILENAME = re.compile(r"^[^/\\\x00-\x1f\x7f]{1,255}$")
_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")


def _one_line(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("must be one line")
    return value


class Attachment(BaseModel):
    """A file attached to an e-mail, its content in base64."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    filename: str = Field(examples=["report.csv"])
    content_type: str = Field("application/octet-stream", examples=["text/csv"])
    content_base64: str = Field(max_length=MAX_ATTACHMENT_BYTES * 4 // 3 + 4)

    @field_validator("filename")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if not _FILENAME.match(value) or value in {".", ".."}:
            raise ValueError("must be a plain file name: no folders, no control characters")
        return value

    @field_validator("content_type")
    @classmethod
    def _media_type(cls, value: str) -> str:
        if not _CONTENT_TYPE.match(value):
            raise ValueError("must be a media type such as text/csv")
        return value

    @field_validator("content_base64")
    @classmethod
    def _is_base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not valid base64") from None
        return value

    def content(self) -> bytes:
        """The decoded file."""
        return base64.b64decode(self.content_base64)

    @property
    def size(self) -> int:
        """Decoded size in bytes, without decoding."""
        data = self.content_base64
        return len(data) * 3 // 4 - data[-2:].count("=")


Subject = Annotated[
    str, Field(min_length=1, max_length=MAX_SUBJECT_CHARS), AfterValidator(_one_line)
]
Body = Annotated[str, Field(max_length=MAX_BODY_CHARS)]


class EmailParams(BaseModel):
    """One e-mail.

    Either `text` and/or `html` with a `subject`, or a `template` with its `context`
    (a `subject` then overrides the template's).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    to: list[EmailStr] = Field(min_length=1, examples=[["ada@example.com"]])
    cc: list[EmailStr] = Field(default_factory=list)
    bcc: list[EmailStr] = Field(default_factory=list, validate_default=True)
    reply_to: EmailStr | None = None
    template: str | None = Field(
        None, pattern=email_templates.TEMPLATE_NAME.pattern, examples=["welcome"]
    )
    context: dict[str, Any] = Field(
        default_factory=dict, validate_default=True, examples=[{"name": "Ada"}]
    )
    text: Body | None = Field(None, examples=["Hello!"])
    html: Body | None = Field(None, validate_default=True)
    subject: Subject | None = Field(None, validate_default=True, examples=["Welcome"])
    attachments: list[Attachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    #: One e-mail per key: a retried or redelivered task with the same key never sends a
    #: second copy. Default: the task id.
    idempotency_key: str | None = Field(
        None, min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$"
    )

    @field_validator("bcc")
    @classmethod
    def _not_too_many_recipients(cls, bcc: list[str], info: ValidationInfo) -> list[str]:
        count = len(info.data.get("to", [])) + len(info.data.get("cc", [])) + len(bcc)
        if count > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients in to, cc and bcc together")
        return bcc

    @field_validator("template")
    @classmethod
    def _template_exists(cls, name: str | None) -> str | None:
        if name is not None and name not in email_templates.available():
            raise ValueError(f"unknown template; known: {email_templates.available()}")
        return name

    @field_validator("context")
    @classmethod
    def _context_renders(cls, context: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("template")
        if name is None:
            if context:
                raise ValueError("only used with a template")
            return context
        try:
            email_templates.render(name, context)
        except email_templates.TemplateError as exc:
            raise ValueError(str(exc)) from None
        return context

    @field_validator("html")
    @classmethod
    def _one_kind_of_body(cls, html: str | None, info: ValidationInfo) -> str | None:
        templated = info.data.get("template") is not None
        if templated and (html is not None or info.data.get("text") is not None):
            raise ValueError("text and html are not allowed with a template, which supplies them")
        if not templated and html is None and info.data.get("text") is None:
            raise ValueError("give text or html, or a template")
        return html

    @field_validator("subject")
    @classmethod
    def _subject_given(cls, subject: str | None, info: ValidationInfo) -> str | None:
        if subject is None and "template" in info.data and info.data["template"] is None:
            raise ValueError("required unless a template supplies it")
        return subject

    @field_validator("attachments")
    @classmethod
    def _attachments_fit(cls, attachments: list[Attachment]) -> list[Attachment]:
        total = sum(a.size for a in attachments)
        if total > MAX_ATTACHMENT_BYTES:
            raise ValueError(f"{total} bytes in all; at most {MAX_ATTACHMENT_BYTES}")
        return attachments

    def recipients(self) -> list[str]:
        """Every envelope recipient: to, cc and bcc, without repeats, in order."""
        return list(dict.fromkeys([*self.to, *self.cc, *self.bcc]))
