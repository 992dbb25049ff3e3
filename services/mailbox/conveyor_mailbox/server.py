"""The mailbox service: SMTP in (aiosmtpd), a JSON API and an HTML inbox out (Starlette).

Development only: it accepts mail for anyone and delivers it nowhere. Messages are kept
on a volume (MAILBOX_DATA_DIR), newest first, up to MAILBOX_MAX_MESSAGES. Point the
SMTP_* settings at a real provider to send real mail instead. Every HTTP path but
/healthz needs basic auth (MAILBOX_USER, MAILBOX_PASSWORD): the inbox shows every e-mail.

HTTP:  GET /api/messages[?to=&subject=&header=Name:value]   list / search
       GET /api/messages/{id}                                one message, parsed
       DELETE /api/messages                                  clear (and the counters)
       GET /api/stats                                        counters
       GET|PUT|DELETE /api/faults                            the fault switch (MAILBOX_FAULTS only)
       GET /  and  /messages/{id}                            the HTML inbox
       GET /healthz                                          liveness, no auth
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import html
import logging
import secrets
import signal
import sys
from typing import Any
from urllib.parse import quote

import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor_core.settings import MailboxSettings
from conveyor_mailbox.faults import FaultSettings, FaultSwitch, FaultySMTP
from conveyor_mailbox.store import Store

logger = logging.getLogger("conveyor.mailbox")

# Inside the container; compose decides who can reach the ports (SMTP is not published).
ALL_INTERFACES = "0.0.0.0"  # noqa: S104
#: Most messages one list response returns.
MAX_PAGE = 5_000
#: The only path served without credentials: the container's healthcheck.
OPEN_PATHS = frozenset({"/healthz"})
REALM = 'Basic realm="Conveyor mailbox", charset="UTF-8"'


class BasicAuth:
    """ASGI middleware: every HTTP path but OPEN_PATHS needs the mailbox's user and password.

    It sits before the routes, so an unknown path is refused too and nothing about the
    inbox (not even which paths exist) is told to an anonymous client.
    """

    def __init__(self, app: ASGIApp, user: str, password: str) -> None:
        self.app = app
        self.user = user.encode()
        self.password = password.encode()

    def allowed(self, authorization: str | None) -> bool:
        """Whether an Authorization header carries the right user and password."""
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        # Both compared in full, in constant time: no early exit tells which one was wrong.
        right_user = secrets.compare_digest(user, self.user)
        right_password = secrets.compare_digest(password, self.password)
        return bool(sep) and right_user and right_password

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 401 asking for basic auth."""
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if self.allowed(Headers(scope=scope).get("authorization")):
            await self.app(scope, receive, send)
            return
        refusal = JSONResponse(
            {"error": {"code": "unauthorized", "message": "credentials required", "field": None}},
            status_code=401,
            headers={"WWW-Authenticate": REALM},
        )
        await refusal(scope, receive, send)


class StoringHandler:
    """aiosmtpd handler: refuse what the fault switch says, keep everything else."""

    def __init__(self, store: Store, faults: FaultSwitch) -> None:
        self.store = store
        self.faults = faults

    async def handle_RCPT(  # noqa: N802  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Accept the recipient unless the fault switch refuses it."""
        if refusal := self.faults.recipient_rejection(address):
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        """Store the message (before answering 250), unless the fault switch refuses it."""
        if refusal := self.faults.message_rejection():
            logger.info("refused a message: %s", refusal)
            return refusal
        raw = envelope.original_content or b""
        message = self.store.add(envelope.mail_from or "", list(envelope.rcpt_tos), raw)
        if message is None:
            logger.info("dropped a second copy of a message already kept")
        else:
            logger.info("received message %d (%s)", message.id, message.message_id)
        return "250 Message accepted for delivery"


def _not_found() -> JSONResponse:
    return JSONResponse(
        {"error": {"code": "not_found", "message": "no such message", "field": "id"}},
        status_code=404,
    )


def _invalid(field: str | None, message: str) -> JSONResponse:
    text = f"{field}: {message}" if field else message
    return JSONResponse(
        {"error": {"code": "invalid_request", "message": text, "field": field}}, status_code=422
    )


def _search(store: Store, request: Request) -> list[Any] | JSONResponse:
    """The messages matching the query string, or a 422 naming the bad parameter."""
    query = request.query_params
    header = None
    if "header" in query:
        name, sep, value = query["header"].partition(":")
        if not sep or not name.strip():
            return _invalid("header", "give Name:value, e.g. Message-ID:<abc@example.com>")
        header = (name.strip(), value.strip())
    try:
        limit = int(query.get("limit", MAX_PAGE))
        offset = int(query.get("offset", 0))
    except ValueError:
        return _invalid("limit", "limit and offset must be whole numbers")
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        return _invalid("limit", f"limit must be 1 to {MAX_PAGE}, offset at least 0")
    found = store.search(query.get("to"), query.get("subject"), header)
    return found[offset : offset + limit]


def _detail(store: Store, message_id: int) -> dict[str, Any] | None:
    summary = store.get(message_id)
    parsed = store.parsed(message_id)
    if summary is None or parsed is None:
        return None
    text = parsed.get_body(preferencelist=("plain",))
    markup = parsed.get_body(preferencelist=("html",))
    return {
        **summary.summary(),
        "headers": {k: str(v) for k, v in parsed.items()},
        "text": text.get_content() if text is not None else "",
        "html": markup.get_content() if markup is not None else None,
        "attachments": [
            {
                "filename": part.get_filename(),
                "content_type": part.get_content_type(),
                "size": len(part.get_payload(decode=True) or b""),
            }
            for part in parsed.iter_attachments()
        ],
        "raw": (store.raw(message_id) or b"").decode("utf-8", "replace"),
    }


def _inbox_page(store: Store, to: str | None) -> str:
    rows = "".join(
        f"<tr><td>{m.id}</td><td>{html.escape(m.sender)}</td>"
        f"<td>{html.escape(', '.join(m.recipients))}</td>"
        f"<td><a href='/messages/{m.id}'>{html.escape(m.subject) or '(no subject)'}</a></td>"
        f"<td>{html.escape(m.received)}</td></tr>"
        for m in store.search(to=to)[:500]
    )
    value = html.escape(to or "", quote=True)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Conveyor mailbox</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 8px;text-align:left}"
        "tr:nth-child(even){background:#f3f3f3}</style></head><body>"
        f"<h1>Conveyor mailbox</h1><p>{len(store)} message(s) kept.</p>"
        f"<form method='get'><input name='to' placeholder='recipient' value='{value}'>"
        "<button>Search</button></form>"
        "<table id='messages'><thead><tr><th>#</th><th>From</th><th>To</th><th>Subject</th>"
        f"<th>Received</th></tr></thead><tbody>{rows}</tbody></table></body></html>"
    )


def _message_page(detail: dict[str, Any]) -> str:
    headers = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in detail["headers"].items()
    )
    # The HTML part is shown as source: rendering it would run the sender's markup here.
    parts = [f"<h2>Text</h2><pre>{html.escape(detail['text'])}</pre>"]
    if detail["html"] is not None:
        parts.append(f"<h2>HTML (source)</h2><pre>{html.escape(detail['html'])}</pre>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(detail['subject'])}</title></head><body>"
        f"<p><a href='/'>Inbox</a> · <a href='/api/messages/{quote(str(detail['id']))}'>JSON</a>"
        f"</p><h1>{html.escape(detail['subject'])}</h1><table>{headers}</table>"
        f"{''.join(parts)}</body></html>"
    )


def build_http_app(
    store: Store, faults: FaultSwitch, *, user: str, password: str, fault_switch: bool = False
) -> Starlette:
    """The HTTP side: JSON API, HTML inbox and (with `fault_switch`) the fault switch.

    Without `fault_switch`, /api/faults does not exist (404): the SMTP side still has its
    switch, left at "no faults", but nobody can turn it.
    """

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def list_messages(request: Request) -> Response:
        found = _search(store, request)
        if isinstance(found, JSONResponse):
            return found
        return JSONResponse({"messages": [m.summary() for m in found], "count": len(found)})

    async def read_message(request: Request) -> Response:
        try:
            detail = _detail(store, int(request.path_params["message_id"]))
        except ValueError:
            detail = None
        return _not_found() if detail is None else JSONResponse(detail)

    async def clear(_: Request) -> Response:
        store.clear()
        return Response(status_code=204)

    async def stats(_: Request) -> Response:
        counters = store.counters
        return JSONResponse(
            {
                "kept": len(store),
                "accepted": counters.accepted,
                "duplicates_dropped": counters.duplicates_dropped,
                "refused_messages": faults.refused_messages,
                "refused_recipients": faults.refused_recipients,
            }
        )

    async def show_faults(_: Request) -> Response:
        return JSONResponse(faults.describe())

    async def set_faults(request: Request) -> Response:
        try:
            faults.set(FaultSettings.model_validate(await request.json()))
        except ValueError as exc:  # bad JSON, or a field out of range
            if isinstance(exc, ValidationError):
                error = exc.errors(include_url=False)[0]
                field = ".".join(str(p) for p in error["loc"]) or None
                return _invalid(field, str(error["msg"]).removeprefix("Value error, "))
            return _invalid(None, "body is not valid JSON")
        return JSONResponse(faults.describe())

    async def reset_faults(_: Request) -> Response:
        faults.reset()
        return Response(status_code=204)

    async def inbox(request: Request) -> Response:
        return HTMLResponse(_inbox_page(store, request.query_params.get("to") or None))

    async def message_page(request: Request) -> Response:
        try:
            detail = _detail(store, int(request.path_params["message_id"]))
        except ValueError:
            detail = None
        if detail is None:
            return HTMLResponse("<h1>No such message</h1>", status_code=404)
        return HTMLResponse(_message_page(detail))

    routes = [
        Route("/", inbox),
        Route("/messages/{message_id}", message_page),
        Route("/healthz", healthz),
        Route("/api/messages", list_messages, methods=["GET"]),
        Route("/api/messages", clear, methods=["DELETE"]),
        Route("/api/messages/{message_id}", read_message),
        Route("/api/stats", stats),
    ]
    if fault_switch:
        routes += [
            Route("/api/faults", show_faults, methods=["GET"]),
            Route("/api/faults", set_faults, methods=["PUT"]),
            Route("/api/faults", reset_faults, methods=["DELETE"]),
        ]
    auth = Middleware(BasicAuth, user=user, password=password)
    return Starlette(routes=routes, middleware=[auth])


async def serve(settings: MailboxSettings) -> None:
    """Run SMTP and HTTP until SIGTERM or SIGINT."""
    store = Store(
        settings.mailbox_max_messages, settings.mailbox_data_dir, settings.mailbox_drop_duplicates
    )
    faults = FaultSwitch()
    loop = asyncio.get_running_loop()
    handler = StoringHandler(store, faults)
    smtp = await loop.create_server(
        lambda: FaultySMTP(
            handler,
            faults=faults,
            data_size_limit=settings.mailbox_max_message_bytes,
            enable_SMTPUTF8=True,
            # A fixed name: aiosmtpd would otherwise look up the FQDN for every connection.
            hostname="mailbox",
        ),
        host=ALL_INTERFACES,
        port=settings.mailbox_smtp_port,
    )
    app = build_http_app(
        store,
        faults,
        user=settings.mailbox_user,
        password=settings.mailbox_password.get_secret_value(),
        fault_switch=settings.mailbox_faults,
    )
    config = uvicorn.Config(
        app,
        host=ALL_INTERFACES,
        port=settings.mailbox_http_port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )
    http = uvicorn.Server(config)
    # uvicorn handles SIGTERM/SIGINT while it serves; our own handler covers the moment
    # before and after, so either way both servers close and the process exits 0.
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logger.info(
        "mailbox: SMTP on %d, HTTP on %d (user %s), %d message(s) kept in %s, fault switch %s",
        settings.mailbox_smtp_port,
        settings.mailbox_http_port,
        settings.mailbox_user,
        len(store),
        settings.mailbox_data_dir or "memory",
        "on" if settings.mailbox_faults else "off",
    )
    http_task = asyncio.create_task(http.serve())
    stop_task = asyncio.create_task(stop.wait())
    await asyncio.wait({http_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    logger.info("mailbox: shutting down")
    http.should_exit = True
    stop_task.cancel()
    smtp.close()
    await asyncio.gather(http_task, smtp.wait_closed())


def read_settings() -> MailboxSettings | None:
    """The settings, or None after printing why they are refused (one line per setting)."""
    try:
        return MailboxSettings()
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"]).upper()
            message = str(error["msg"]).removeprefix("Value error, ")
            print(f"conveyor mailbox: refusing to start: {where}: {message}", file=sys.stderr)
        return None


def main() -> int:
    """Entry point of the mailbox service: 0 after a clean stop, 2 on refused settings."""
    settings = read_settings()
    if settings is None:
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # aiosmtpd logs every command at INFO, recipients included: keep addresses out of logs.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
