"""One record per e-mail idempotency key, so that no copy of a task sends a second e-mail.

    absent                  nobody sent it: claim the lease and send
    "sending <token>"       a worker holds the lease (expires after EMAIL_SEND_LEASE)
    "sent <Message-ID>"     it went out; kept for EMAIL_SENT_TTL

A worker claims the lease (SET NX with expiry) before it connects, marks the record sent
as soon as the server accepted the message, and releases the lease when sending failed,
so a retry can claim it again. A copy of the task that finds the lease held waits for
it; one that finds the record sent returns without sending.

The one window left: the worker dies after the server accepted the message and before
the record says sent. The lease expires, a redelivered copy sends again, with the same
Message-ID (it is derived from the key), which receivers use to drop the duplicate.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis

from conveyor_core.ledger_keys import email_send_key

logger = logging.getLogger(__name__)

SENDING, SENT = "sending", "sent"

#: Claim the lease unless a record exists; return the record and its remaining life.
_CLAIM = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'claimed', 0}
end
return {redis.call('get', KEYS[1]) or '', redis.call('pttl', KEYS[1])}
"""
#: Delete the lease only if it is still ours (it may have expired and been re-claimed).
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Claim:
    """What claiming an e-mail's record found."""

    claimed: bool
    #: The Message-ID when the e-mail was sent already.
    sent_message_id: str | None = None
    #: Seconds until another worker's lease expires, when one holds it.
    lease_left: float = 0.0


class SendRecords:
    """The send records in Redis (the result database, next to the task ledger)."""

    def __init__(self, client: redis.Redis, lease_seconds: int, sent_ttl: int) -> None:
        self.client = client
        self.lease_ms = lease_seconds * 1000
        self.sent_ttl = sent_ttl

    def claim(self, key: str, token: str) -> Claim:
        """Take the send lease for `key`, unless it is held or the e-mail went out."""
        raw = self.client.eval(_CLAIM, 1, email_send_key(key), f"{SENDING} {token}", self.lease_ms)
        state, ttl = raw[0].decode() if isinstance(raw[0], bytes) else raw[0], int(raw[1])
        if state == "claimed":
            return Claim(claimed=True)
        kind, _, value = state.partition(" ")
        if kind == SENT:
            return Claim(claimed=False, sent_message_id=value)
        # Held by another worker, or it vanished between SET and GET: wait and look again.
        return Claim(claimed=False, lease_left=max(ttl, 0) / 1000)

    def release(self, key: str, token: str) -> None:
        """Give the lease back after a failed send; an error leaves it to expire."""
        try:
            self.client.eval(_RELEASE, 1, email_send_key(key), f"{SENDING} {token}")
        except redis.RedisError as exc:
            logger.warning("could not release the send lease of %s (it expires): %s", key, exc)

    def mark_sent(self, key: str, message_id: str, attempts: int = 5) -> bool:
        """Record that the e-mail went out; False when Redis never answered.

        It tries a few times: a lost record may mean a duplicate e-mail later.
        """
        for attempt in range(attempts):
            try:
                self.client.set(email_send_key(key), f"{SENT} {message_id}", ex=self.sent_ttl)
                return True
            except redis.RedisError as exc:
                logger.warning("recording e-mail %s as sent failed (%s); retrying", key, exc)
                time.sleep(min(0.2 * 2**attempt, 2))
        logger.error("e-mail %s was sent but could not be recorded: a copy may be sent again", key)
        return False
