"""Mailbox: a development SMTP sink that keeps what it receives and shows it over HTTP."""
