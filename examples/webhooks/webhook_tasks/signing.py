"""The signature a receiver checks: HMAC-SHA256 over the timestamp and the body.

Header `Webhook-Signature: t=<unix seconds>,v1=<hex digest>`, the digest of
`f"{t}.{body}"` with the shared secret; a receiver refuses an old timestamp (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Webhook-Signature"
#: How old a signature a receiver accepts (seconds).
TOLERANCE = 300


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header's value for this body."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(secret: str, body: bytes, header: str, now: float | None = None) -> bool:
    """Whether the header signs this body with this secret, recently enough."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        t = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > TOLERANCE:
        return False
    return hmac.compare_digest(sign(secret, body, t), header)
