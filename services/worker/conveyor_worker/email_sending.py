"""Sending one e-mail: build the message, speak SMTP, sort failures into retry or give up.

SMTP goes through the standard library. Each worker thread keeps its connection open
between e-mails (a fresh one costs a greeting, EHLO, maybe STARTTLS and AUTH), and
drops it after an error or when it has been idle for `IDLE_SECONDS`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import re
import smtplib
import socket
import ssl
import threading
import time
import uuid
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, parseaddr
from functools import lru_cache
from typing import Any

from celery import Task

from conveyor_core import email_templates
from conveyor_core.email_schema import EmailParams
from conveyor_core.errors import EmailDeferredError, EmailRejectedError
from conveyor_core.settings import WorkerSettings, get_worker_settings
from conveyor_worker.lifecycle import result_client
from conveyor_worker.send_records import SendRecords

logger = logging.getLogger(__name__)

#: A kept connection unused for longer is closed rather than reused (servers drop idle
#: clients after a minute or more; RFC 5321 asks them to wait at least five).
IDLE_SECONDS = 30.0
#: Longest wait before looking again at an e-mail another worker is sending.
LEASE_POLL_SECONDS = 5.0


def message_id_for(key: str, domain: str) -> str:
    """The Message-ID of the e-mail with this idempotency key: the same for every copy."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def build_message(params: EmailParams, settings: WorkerSettings, message_id: str) -> EmailMessage:
    """The MIME message: text and/or HTML alternatives, then the attachments."""
    subject, text, html = params.subject, params.text, params.html
    if params.template is not None:
        rendered = email_templates.render(params.template, params.context)
        subject, text, html = subject or rendered.subject, rendered.text, rendered.html
    message = EmailMessage()
    message["From"] = settings.email_from
    message["To"] = ", ".join(params.to)
    if params.cc:
        message["Cc"] = ", ".join(params.cc)
    if params.reply_to:
        message["Reply-To"] = params.reply_to
    message["Subject"] = subject or ""
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id
    if text is not None:
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
    else:
        message.set_content(html or "", subtype="html")
    for attachment in params.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.content(), maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return message


def classify(exc: BaseException, server: str) -> tuple[bool, str]:
    """Whether a send failure may pass (retry), and a message that says what happened."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        details = "; ".join(
            f"recipient {n}: {code} {_text(reply)}"
            for n, (code, reply) in enumerate(exc.recipients.values(), start=1)
        )
        transient = all(400 <= code < 500 for code in codes)
        return transient, f"{server} refused every recipient: {details}"
    if isinstance(exc, smtplib.SMTPResponseException):
        # 4xx is "try again later"; -1 is smtplib's "no valid reply" while connecting.
        transient = exc.smtp_code == -1 or 400 <= exc.smtp_code < 500
        return transient, f"{server} answered {exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return False, f"{server} does not support what this e-mail needs: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False, f"{server}'s TLS certificate is not trusted: {exc}"
    if isinstance(exc, smtplib.SMTPServerDisconnected | OSError):
        return True, f"{server}: {type(exc).__name__}: {exc or 'connection closed'}"
    return False, f"{server}: {type(exc).__name__}: {exc}"


#: Anything shaped like an address, so that errors and logs carry no personal data
#: (servers quote the recipient in their replies).
_ADDRESS = re.compile(r"[^\s<>(),;:\"']+@[^\s<>(),;:\"']+")


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return _ADDRESS.sub("<address>", text)


class SmtpClient:
    """SMTP for one thread at a time: one kept connection per thread."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.server = f"SMTP {settings.smtp_host}:{settings.smtp_port}"
        self._local = threading.local()

    def send(self, message: EmailMessage, sender: str, recipients: list[str]) -> dict[str, str]:
        """Send; return the recipients the server refused while accepting others.

        Raises an smtplib or OS error when nothing was accepted.
        """
        payload = message.as_bytes(policy=SMTP_POLICY)
        options = ["SMTPUTF8"] if not all(r.isascii() for r in [sender, *recipients]) else []
        kept = self._kept()
        if kept is not None:
            try:
                return self._transaction(kept, sender, recipients, payload, options)
            except _StaleConnectionError:
                logger.info("kept SMTP connection was closed by the server; reconnecting")
        connection = self._open()
        self._local.connection = connection
        try:
            return self._transaction(connection, sender, recipients, payload, options)
        except _StaleConnectionError as exc:
            raise smtplib.SMTPServerDisconnected(str(exc.__cause__ or exc)) from None

    def _kept(self) -> smtplib.SMTP | None:
        connection: smtplib.SMTP | None = getattr(self._local, "connection", None)
        last_used: float = getattr(self._local, "last_used", 0.0)
        if connection is not None and time.monotonic() - last_used > IDLE_SECONDS:
            self._discard()
            return None
        return connection

    def _open(self) -> smtplib.SMTP:
        settings = self.settings
        context = ssl.create_default_context()
        connection: smtplib.SMTP
        if settings.smtp_security == "tls":
            connection = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=settings.smtp_timeout,
                context=context,
            )
        else:
            connection = smtplib.SMTP(
                settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout
            )
        try:
            connection.ehlo()
            if settings.smtp_security == "starttls":
                connection.starttls(context=context)
                connection.ehlo()
            if settings.smtp_user:
                connection.login(settings.smtp_user, settings.smtp_password.get_secret_value())
        except BaseException:
            connection.close()
            raise
        return connection

    def _transaction(
        self,
        connection: smtplib.SMTP,
        sender: str,
        recipients: list[str],
        payload: bytes,
        options: list[str],
    ) -> dict[str, str]:
        """MAIL, RCPT..., DATA on an open connection.

        A kept connection that the server closed fails at MAIL, before anything was
        accepted; that is `_StaleConnectionError`, safe to try again on a new connection.
        """
        try:
            if options and not connection.has_extn("smtputf8"):
                raise smtplib.SMTPNotSupportedError("the server lacks SMTPUTF8 for these addresses")
            try:
                code, reply = connection.mail(sender, options)
            except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
                raise _StaleConnectionError from exc
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, sender)
            refused: dict[str, tuple[int, bytes]] = {}
            for recipient in recipients:
                code, reply = connection.rcpt(recipient)
                if code not in (250, 251):
                    refused[recipient] = (code, reply)
            if len(refused) == len(recipients):
                raise smtplib.SMTPRecipientsRefused(refused)
            # data() raises when DATA itself is refused, but returns the final reply.
            code, reply = connection.data(payload)
            if code != 250:
                raise smtplib.SMTPDataError(code, reply)
        except _StaleConnectionError:
            self._discard()
            raise
        except BaseException:
            self._reset_or_discard(connection)
            raise
        self._local.last_used = time.monotonic()
        return {rcpt: f"{code} {_text(reply)}" for rcpt, (code, reply) in refused.items()}

    def _reset_or_discard(self, connection: smtplib.SMTP) -> None:
        """After a refusal the connection can serve the next e-mail once reset."""
        try:
            connection.rset()
            self._local.last_used = time.monotonic()
        except (smtplib.SMTPException, OSError):
            self._discard()

    def _discard(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.close()


class _StaleConnectionError(Exception):
    """A kept connection turned out closed before this e-mail's transaction began."""


@lru_cache(maxsize=1)
def smtp_client() -> SmtpClient:
    """The process's SMTP client (its kept connections are per thread)."""
    return SmtpClient(get_worker_settings())


def retry_options(settings: WorkerSettings) -> dict[str, Any]:
    """Celery's retry options for send_email, from the settings (read at worker start).

    Celery waits retry_backoff * 2**retries seconds, capped at retry_backoff_max, with
    full jitter (a random share of it), so e-mails refused together do not come back
    together. Its backoff counts whole seconds: EMAIL_RETRY_BACKOFF below 1 is 1.
    """
    return {
        "max_retries": settings.email_max_retries,
        "retry_backoff": max(1, int(settings.email_retry_backoff)),
        "retry_backoff_max": int(settings.retry_backoff_cap),
        "retry_jitter": True,
    }


def send_once(task: Task[Any, Any], params: EmailParams) -> dict[str, Any]:
    """Send the e-mail unless a copy of it went out already; retry what may pass."""
    settings = get_worker_settings()
    request = task.request
    key = params.idempotency_key or request.id or str(uuid.uuid4())
    message_id = message_id_for(key, settings.message_id_domain)
    records = SendRecords(result_client(), settings.email_send_lease, settings.email_sent_ttl)
    # The host name in the lease says which worker holds it (the chaos suite reads it).
    token = f"{socket.gethostname()} {uuid.uuid4().hex}"
    claim = records.claim(key, token)
    if claim.sent_message_id is not None:
        logger.info("e-mail %s was sent already (%s); not sending again", key, message_id)
        return {
            "status": "already_sent",
            "message_id": claim.sent_message_id,
            "idempotency_key": key,
        }
    if not claim.claimed:
        # Another copy of this task is sending it now (or died doing so): look again
        # when its lease ends. This wait does not use up the e-mail's retries.
        delay = min(claim.lease_left, LEASE_POLL_SECONDS) + random.uniform(0, 1)  # noqa: S311
        raise task.retry(
            exc=EmailDeferredError(f"another worker holds the send lease of {key}"),
            countdown=delay,
            max_retries=(request.retries or 0) + 1,
        )
    sender = parseaddr(settings.email_from)[1]
    client = smtp_client()
    try:
        message = build_message(params, settings, message_id)
        refused = client.send(message, sender, params.recipients())
    except (smtplib.SMTPException, OSError) as exc:
        records.release(key, token)
        transient, why = classify(exc, client.server)
        raise _failure(task, transient, why) from None
    except BaseException:
        records.release(key, token)
        raise
    records.mark_sent(key, message_id)
    if refused:
        logger.warning("e-mail %s: %d recipient(s) refused", key, len(refused))
    # The result is shown in Flower and the worker's log: replies, not addresses.
    return {
        "status": "sent",
        "message_id": message_id,
        "idempotency_key": key,
        "recipients": len(params.recipients()) - len(refused),
        "refused": sorted(refused.values()),
    }


def _failure(task: Task[Any, Any], transient: bool, why: str) -> Exception:
    """The exception that ends this attempt.

    A failure that may pass is an EmailDeferredError, which Celery's autoretry retries
    with its backoff (send_email's options); the last one says the retries ran out.
    """
    if not transient:
        logger.error("e-mail refused for good: %s", why)
        return EmailRejectedError(why)
    retries = task.request.retries or 0
    if retries >= (task.max_retries or 0):
        return EmailDeferredError(f"gave up after {retries} retries: {why}")
    logger.warning("e-mail deferred (%s); retry %d follows", why, retries + 1)
    return EmailDeferredError(why)
