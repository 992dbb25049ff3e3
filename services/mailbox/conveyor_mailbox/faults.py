"""The mailbox's fault switch: make a real SMTP conversation fail or crawl, on purpose.

Set over HTTP (PUT /api/faults) by tests and by anyone trying their retry settings:

* `reject_next` messages are answered `code` (451 by default: "try again later") at the
  end of DATA, so they are not stored and the sender must retry;
* addresses in `reject_recipients` are refused at RCPT with 550 (a permanent error);
* every SMTP reply, the greeting included, is sent `delay_ms` late (a slow server).
"""

from __future__ import annotations

import asyncio
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP
from pydantic import BaseModel, ConfigDict, Field, field_validator


class FaultSettings(BaseModel):
    """The switch's position, as PUT /api/faults takes it and GET shows it."""

    model_config = ConfigDict(extra="forbid")

    reject_next: int = Field(0, ge=0, le=1_000_000)
    code: int = Field(451, ge=400, le=599)
    message: str = Field("4.3.0 Try again later (mailbox fault switch)", max_length=200)
    reject_recipients: list[str] = Field(default_factory=list, max_length=1_000)
    delay_ms: int = Field(0, ge=0, le=60_000)

    @field_validator("message")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("must be one line")
        return value


class FaultSwitch:
    """The current faults, and how many messages and recipients they refused."""

    def __init__(self) -> None:
        self.settings = FaultSettings()
        self.refused_messages = 0
        self.refused_recipients = 0

    def set(self, settings: FaultSettings) -> None:
        """Replace the faults."""
        self.settings = settings

    def reset(self) -> None:
        """No faults, counters at zero."""
        self.settings = FaultSettings()
        self.refused_messages = self.refused_recipients = 0

    def message_rejection(self) -> str | None:
        """The reply refusing this message, while `reject_next` lasts; else None."""
        if self.settings.reject_next <= 0:
            return None
        self.settings = self.settings.model_copy(
            update={"reject_next": self.settings.reject_next - 1}
        )
        self.refused_messages += 1
        return f"{self.settings.code} {self.settings.message}"

    def recipient_rejection(self, address: str) -> str | None:
        """The reply refusing this recipient, if it is on the list."""
        if address.lower() not in {a.lower() for a in self.settings.reject_recipients}:
            return None
        self.refused_recipients += 1
        return "550 5.1.1 No such recipient (mailbox fault switch)"

    @property
    def delay(self) -> float:
        """Seconds to wait before each reply."""
        return self.settings.delay_ms / 1000

    def describe(self) -> dict[str, Any]:
        """The switch and its counters, for GET /api/faults."""
        return {
            **self.settings.model_dump(),
            "refused_messages": self.refused_messages,
            "refused_recipients": self.refused_recipients,
        }


class FaultySMTP(SMTP):
    """aiosmtpd's SMTP server, with every reply held back by the switch's delay."""

    def __init__(self, *args: Any, faults: FaultSwitch, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.faults = faults

    async def push(self, status: AnyStr) -> None:
        """Send a reply, `delay_ms` late."""
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        await super().push(status)
