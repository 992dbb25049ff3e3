"""E-mail without a network: the schema, templates, message building and error sorting."""

from __future__ import annotations

import base64
import smtplib
import socket
import ssl

import pytest
from pydantic import ValidationError

from conveyor_core import email_templates
from conveyor_core.email_schema import MAX_ATTACHMENT_BYTES, MAX_RECIPIENTS, EmailParams
from conveyor_core.settings import WorkerSettings
from conveyor_worker.email_sending import build_message, classify, message_id_for, retry_options

SECRET = "s" * 24


def settings(**overrides: object) -> WorkerSettings:
    return WorkerSettings(redis_password=SECRET, **overrides)  # type: ignore[arg-type]


def params(**fields: object) -> EmailParams:
    base: dict[str, object] = {"to": ["ada@example.com"], "subject": "Hi", "text": "Hello"}
    return EmailParams.model_validate({**base, **fields})


def error_field(**fields: object) -> str:
    with pytest.raises(ValidationError) as caught:
        params(**fields)
    return ".".join(str(p) for p in caught.value.errors()[0]["loc"])


def test_addresses_are_checked_by_a_real_validator() -> None:
    assert error_field(to=["ada@"]) == "to.0"
    assert error_field(cc=["not an address"]) == "cc.0"
    assert error_field(reply_to="a@b@c") == "reply_to"
    # Internationalised domains are fine; the address is normalised.
    assert params(to=["Ada@Bücher.example"]).to == ["Ada@bücher.example"]


def test_a_body_and_a_subject_are_required_unless_a_template_gives_them() -> None:
    assert error_field(text=None) == "html"
    assert error_field(subject=None) == "subject"
    assert params(text=None, html="<p>x</p>").html == "<p>x</p>"
    assert error_field(subject="two\r\nBcc: x@example.com") == "subject"


def test_limits_on_recipients_and_attachments() -> None:
    many = [f"u{i}@example.com" for i in range(MAX_RECIPIENTS)]
    assert error_field(to=many, bcc=["one.more@example.com"]) == "bcc"
    big = base64.b64encode(b"x" * (MAX_ATTACHMENT_BYTES + 1)).decode()
    assert error_field(attachments=[{"filename": "a", "content_base64": big}]) in {
        "attachments",
        "attachments.0.content_base64",
    }
    assert error_field(attachments=[{"filename": "../etc/passwd", "content_base64": ""}]) == (
        "attachments.0.filename"
    )
    assert error_field(attachments=[{"filename": "a", "content_base64": "@@"}]) == (
        "attachments.0.content_base64"
    )


def test_templates_are_named_and_rendered_strictly() -> None:
    assert {"welcome", "password_reset"} <= set(email_templates.available())
    assert error_field(template="nope", text=None, subject=None) == "template"
    assert error_field(template="welcome", text=None, subject=None) == "context"
    assert error_field(template="welcome", context={"name": "A", "login_url": "u"}) == "html"
    rendered = email_templates.render("welcome", {"name": "<A>", "login_url": "https://x"})
    assert rendered.subject == "Welcome to Conveyor, <A>"
    assert "&lt;A&gt;" in (rendered.html or "")
    assert "Hello <A>," in rendered.text


def test_the_message_has_our_message_id_and_no_bcc_header() -> None:
    config = settings(email_from="Shop <shop@example.com>")
    email = params(bcc=["hidden@example.com"], html="<p>Hello</p>", reply_to="help@example.com")
    message_id = message_id_for("key-1", config.message_id_domain)
    message = build_message(email, config, message_id)
    assert message["Message-ID"] == message_id == message_id_for("key-1", "example.com")
    assert message_id.endswith("@example.com>")
    assert message["From"] == "Shop <shop@example.com>"
    assert message["Reply-To"] == "help@example.com"
    assert message["Bcc"] is None
    assert "hidden@example.com" not in message.as_string()
    assert email.recipients() == ["ada@example.com", "hidden@example.com"]
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_attachments_are_attached_with_their_type() -> None:
    data = base64.b64encode(b"a,b\n").decode()
    email = params(
        attachments=[{"filename": "r.csv", "content_type": "text/csv", "content_base64": data}]
    )
    message = build_message(email, settings(), "<x@example.com>")
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "r.csv"
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_payload(decode=True) == b"a,b\n"


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (smtplib.SMTPDataError(451, b"try later"), True),
        (smtplib.SMTPSenderRefused(421, b"busy", "a@example.com"), True),
        (smtplib.SMTPDataError(554, b"spam"), False),
        (smtplib.SMTPAuthenticationError(535, b"bad login"), False),
        (smtplib.SMTPConnectError(-1, b"no greeting"), True),
        (smtplib.SMTPRecipientsRefused({"a@example.com": (450, b"mailbox busy")}), True),
        (smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"no such user")}), False),
        (smtplib.SMTPServerDisconnected("gone"), True),
        (ConnectionRefusedError(111, "refused"), True),
        (ConnectionResetError(104, "reset"), True),
        (TimeoutError("timed out"), True),
        (socket.gaierror(-2, "Name or service not known"), True),
        (smtplib.SMTPNotSupportedError("no STARTTLS"), False),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), False),
    ],
)
def test_failures_are_sorted_into_retry_or_give_up(error: Exception, transient: bool) -> None:
    retry, message = classify(error, "SMTP mx:25")
    assert retry is transient
    assert message.startswith("SMTP mx:25")


def test_send_email_retries_with_celerys_backoff_from_the_settings() -> None:
    config = settings(email_retry_backoff=2, email_retry_backoff_max=60, email_max_retries=4)
    assert retry_options(config) == {
        "max_retries": 4,
        "retry_backoff": 2,
        "retry_backoff_max": 60,
        "retry_jitter": True,
    }
    # Celery counts whole seconds; a retry waits unacknowledged, so MAX_COUNTDOWN caps it.
    short = settings(email_retry_backoff=0.2, email_retry_backoff_max=400, max_countdown=300)
    assert (retry_options(short)["retry_backoff"], retry_options(short)["retry_backoff_max"]) == (
        1,
        300,
    )


def test_email_settings_refuse_what_would_leak_or_stall() -> None:
    with pytest.raises(ValidationError, match="SMTP_SECURITY is none"):
        settings(smtp_user="me", smtp_password="pw")
    assert settings(smtp_user="me", smtp_security="starttls").smtp_user == "me"
    # A retry waits unacknowledged in a worker: its delay is held to MAX_COUNTDOWN.
    assert settings(email_retry_backoff_max=400, max_countdown=300).retry_backoff_cap == 300
    assert settings(email_retry_backoff_max=60).retry_backoff_cap == 60
    with pytest.raises(ValidationError, match="EMAIL_FROM"):
        settings(email_from="nobody")
    with pytest.raises(ValidationError, match="email_rate_limit"):
        settings(email_rate_limit="fast")
