"""A webhook receiver to deliver to: checks signatures, keeps what it took, can refuse.

`python -m webhook_tasks.receiver` (port 8080). POST any path: 401 on a bad signature,
503 for the first RECEIVER_FAIL_FIRST attempts of each Webhook-Id (to show retries),
else 204, each Webhook-Id kept once. GET /deliveries lists them with their attempts.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from webhook_tasks.signing import HEADER, verify
from webhook_tasks.tasks import SECRET_VARIABLE


class Inbox:
    """What the receiver took, and the attempts it saw, by Webhook-Id."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.attempts: dict[str, int] = {}
        self.kept: dict[str, Any] = {}
        self.lock = threading.Lock()

    def attempt(self, webhook_id: str, body: dict[str, Any]) -> int:
        """Count an attempt; the status to answer (503 while failing on purpose)."""
        with self.lock:
            seen = self.attempts[webhook_id] = self.attempts.get(webhook_id, 0) + 1
            if seen <= self.fail_first:
                return 503
            self.kept.setdefault(webhook_id, body)
            return 204

    def listing(self) -> list[dict[str, Any]]:
        """Every delivery kept, with the attempts it took."""
        with self.lock:
            return [
                {"id": key, "attempts": self.attempts[key], **body}
                for key, body in self.kept.items()
            ]


def handler(inbox: Inbox, secret: str) -> type[BaseHTTPRequestHandler]:
    """The request handler over one inbox."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if not verify(secret, body, self.headers.get(HEADER, "")):
                self.send_response(401)
                self.end_headers()
                return
            status = inbox.attempt(self.headers.get("Webhook-Id", ""), json.loads(body))
            self.send_response(status)
            self.end_headers()

        def do_GET(self) -> None:
            found = json.dumps(inbox.listing()).encode()
            self.send_response(200 if self.path == "/deliveries" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(found if self.path == "/deliveries" else b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per delivery would drown the stack's logs

    return Handler


def serve(port: int, inbox: Inbox, secret: str) -> ThreadingHTTPServer:
    """A server on `port` (0: any free one); call serve_forever() on it."""
    return ThreadingHTTPServer(("0.0.0.0", port), handler(inbox, secret))  # noqa: S104


def main() -> None:
    """Serve until stopped."""
    inbox = Inbox(int(os.environ.get("RECEIVER_FAIL_FIRST", "0")))
    server = serve(int(os.environ.get("RECEIVER_PORT", "8080")), inbox, os.environ[SECRET_VARIABLE])
    server.serve_forever()


if __name__ == "__main__":
    main()
