"""The mailbox service: SMTP in (aiosmtpd), a JSON API and an HTML inbox out (Starlette).

Development only: it accepts mail for anyone and delivers it nowhere. Messages are kept
in memory, newest first, up to MAILBOX_MAX_MESSAGES.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import logging
import signal
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

logger = logging.getLogger("conveyor.mailbox")

# Inside the container; compose decides who can reach the ports (SMTP is not published).
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


class MailboxSettings(BaseSettings):
    """Settings of the mailbox (MAILBOX_* variables)."""

    model_config = SettingsConfigDict(env_prefix="MAILBOX_", extra="ignore")

    smtp_port: int = Field(1025, ge=1, le=65535)
    http_port: int = Field(8025, ge=1, le=65535)
    max_messages: int = Field(1000, ge=1)
    max_message_bytes: int = Field(10 * 1024 * 1024, ge=1024)


@dataclass
class StoredMessage:
    """One received message."""

    id: int
    sender: str
    recipients: list[str]
    raw: bytes
    received: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def parsed(self) -> EmailMessage:
        """The message parsed with the modern e-mail policy."""
        message = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        return message

    def summary(self) -> dict[str, Any]:
        """What the list endpoint shows of a message."""
        parsed = self.parsed
        return {
            "id": self.id,
            "from": self.sender,
            "to": self.recipients,
            "subject": str(parsed.get("Subject", "")),
            "date": self.received.isoformat(),
            "size": len(self.raw),
        }

    def detail(self) -> dict[str, Any]:
        """The whole message: headers, text body and raw source."""
        parsed = self.parsed
        body = parsed.get_body(preferencelist=("plain",))
        return {
            **self.summary(),
            "headers": {k: str(v) for k, v in parsed.items()},
            "text": body.get_content() if body is not None else "",
            "raw": self.raw.decode("utf-8", "replace"),
        }


class Store:
    """A bounded in-memory store: the oldest message goes when the store is full."""

    def __init__(self, limit: int) -> None:
        self._messages: deque[StoredMessage] = deque(maxlen=limit)
        self._ids = itertools.count(1)

    def add(self, sender: str, recipients: list[str], raw: bytes) -> StoredMessage:
        """Keep a message and return it with its new id."""
        message = StoredMessage(next(self._ids), sender, recipients, raw)
        self._messages.appendleft(message)
        return message

    def all(self) -> list[StoredMessage]:
        """Every message, newest first."""
        return list(self._messages)

    def get(self, message_id: int) -> StoredMessage | None:
        """One message by id."""
        return next((m for m in self._messages if m.id == message_id), None)

    def clear(self) -> None:
        """Forget every message."""
        self._messages.clear()


class StoringHandler:
    """aiosmtpd handler that keeps every message it is given."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def handle_DATA(  # noqa: N802  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        """Store the message and accept it."""
        raw = envelope.original_content or b""
        message = self.store.add(envelope.mail_from or "", list(envelope.rcpt_tos), raw)
        logger.info("received message %d for %s", message.id, ", ".join(message.recipients))
        return "250 Message accepted for delivery"


def build_http_app(store: Store) -> Starlette:
    """The HTTP side: /healthz, /api/messages and the HTML inbox at /."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def list_messages(_: Request) -> Response:
        return JSONResponse({"messages": [m.summary() for m in store.all()]})

    async def read_message(request: Request) -> Response:
        try:
            message = store.get(int(request.path_params["message_id"]))
        except ValueError:
            message = None
        if message is None:
            return JSONResponse(
                {"error": {"code": "not_found", "message": "no such message", "field": "id"}},
                status_code=404,
            )
        return JSONResponse(message.detail())

    async def clear(_: Request) -> Response:
        store.clear()
        return Response(status_code=204)

    async def inbox(_: Request) -> Response:
        rows = "".join(
            f"<tr><td>{m.id}</td><td>{html.escape(s['from'])}</td>"
            f"<td>{html.escape(', '.join(s['to']))}</td><td>{html.escape(s['subject'])}</td>"
            f"<td>{s['date']}</td></tr>"
            for m in store.all()
            for s in [m.summary()]
        )
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Conveyor mailbox</title>"
            "</head><body><h1>Conveyor mailbox</h1><table border='1' cellpadding='4'>"
            "<tr><th>#</th><th>From</th><th>To</th><th>Subject</th><th>Received</th></tr>"
            f"{rows}</table></body></html>"
        )
        return HTMLResponse(page)

    return Starlette(
        routes=[
            Route("/", inbox),
            Route("/healthz", healthz),
            Route("/api/messages", list_messages, methods=["GET"]),
            Route("/api/messages", clear, methods=["DELETE"]),
            Route("/api/messages/{message_id}", read_message),
        ]
    )


async def serve(settings: MailboxSettings) -> None:
    """Run SMTP and HTTP until SIGTERM or SIGINT."""
    store = Store(settings.max_messages)
    loop = asyncio.get_running_loop()
    handler = StoringHandler(store)
    smtp = await loop.create_server(
        lambda: SMTP(handler, data_size_limit=settings.max_message_bytes),
        host=ALL_INTERFACES,
        port=settings.smtp_port,
    )
    config = uvicorn.Config(
        build_http_app(store),
        host=ALL_INTERFACES,
        port=settings.http_port,
        log_level="info",
        access_log=False,
    )
    http = uvicorn.Server(config)
    # uvicorn handles SIGTERM/SIGINT while it serves; our own handler covers the moment
    # before and after, so either way both servers close and the process exits 0.
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logger.info("mailbox: SMTP on %d, HTTP on %d", settings.smtp_port, settings.http_port)
    http_task = asyncio.create_task(http.serve())
    stop_task = asyncio.create_task(stop.wait())
    await asyncio.wait({http_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    logger.info("mailbox: shutting down")
    http.should_exit = True
    stop_task.cancel()
    smtp.close()
    await asyncio.gather(http_task, smtp.wait_closed())


def main() -> None:
    """Entry point of the mailbox service."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(MailboxSettings()))


if __name__ == "__main__":
    main()
