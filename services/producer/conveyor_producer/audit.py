"""`make redis-audit`: Redis keys counted by kind, so that a leak shows.

    python -m conveyor_producer.audit [--json]

Scans the broker and result databases (SCAN, never KEYS) and prints, per kind, how many
keys there are, how many items they hold (list/hash/set/zset lengths) and how many have
no expiry. Queues and the unacked hash are expected to drain; results and the ledger are
expected to expire; pidbox reply queues and bindings are expected to stay few.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import Any

import redis

from conveyor_core.catalog import known_queues
from conveyor_core.celery_internals import (
    BINDING_KEY_PREFIX,
    RESULT_KEY_PREFIX,
    UNACKED_INDEX_KEY,
    UNACKED_KEY,
    UNACKED_MUTEX_KEY,
    priority_lists,
)
from conveyor_core.ledger_keys import REVOKED_PREFIX
from conveyor_core.settings import Settings

#: Key name -> kind, checked in order (first match wins).
_PREFIXES = (
    (RESULT_KEY_PREFIX, "results"),
    ("chord-unlock-", "results"),
    ("conveyor:dlq:", "dead letters"),
    ("conveyor:tally:", "tally"),
    ("conveyor:deliveries:", "delivery counters"),
    ("conveyor:pending", "pending submissions"),
    ("conveyor:email:", "e-mail send records"),
    (REVOKED_PREFIX, "revoke records"),
    ("conveyor:", "ledger"),
    (BINDING_KEY_PREFIX, "bindings"),
)


@dataclass
class KindCount:
    """Keys of one kind in one database."""

    db: int
    kind: str
    keys: int = 0
    items: int = 0
    no_expiry: int = 0


def classify(name: str, queues: frozenset[str]) -> str:
    """The kind of a key, from its name."""
    if name in queues:
        return "queues"
    if name in (UNACKED_KEY, UNACKED_INDEX_KEY, UNACKED_MUTEX_KEY):
        return "unacked"
    if name.endswith(".reply.celery.pidbox"):
        return "pidbox replies"
    for prefix, kind in _PREFIXES:
        if name.startswith(prefix):
            return kind
    return "other"


def audit_db(client: redis.Redis, db: int) -> tuple[list[KindCount], list[str]]:
    """Counts by kind in one database, and the first names of unexpected keys."""
    queues = frozenset(key for queue in known_queues() for key in priority_lists(queue))
    counts: dict[str, KindCount] = {}
    others: list[str] = []
    names = [n.decode() for n in client.scan_iter(count=1_000)]
    for start in range(0, len(names), 1_000):
        chunk = names[start : start + 1_000]
        pipe = client.pipeline(transaction=False)
        for name in chunk:
            pipe.type(name)
            pipe.ttl(name)
        replies = pipe.execute()
        sizes = _sizes(client, chunk, [replies[i].decode() for i in range(0, len(replies), 2)])
        for index, name in enumerate(chunk):
            kind = classify(name, queues)
            entry = counts.setdefault(kind, KindCount(db, kind))
            entry.keys += 1
            entry.items += sizes[index]
            entry.no_expiry += replies[2 * index + 1] == -1
            if kind == "other" and len(others) < 10:
                others.append(name)
    return sorted(counts.values(), key=lambda c: c.kind), others


def _sizes(client: redis.Redis, names: list[str], types: list[str]) -> list[int]:
    """Items in each key: list/hash/set/zset lengths, 1 for a string."""
    length = {"list": "llen", "hash": "hlen", "set": "scard", "zset": "zcard"}
    pipe = client.pipeline(transaction=False)
    for name, kind in zip(names, types, strict=True):
        if kind in length:
            getattr(pipe, length[kind])(name)
        else:
            pipe.exists(name)
    return [int(n) for n in pipe.execute()]


def audit(settings: Settings) -> dict[str, Any]:
    """Counts for the broker and result databases."""
    report: dict[str, Any] = {"kinds": [], "other_keys": {}}
    for db in sorted({settings.redis_broker_db, settings.redis_result_db}):
        client = redis.Redis.from_url(settings.redis_url(db))
        try:
            kinds, others = audit_db(client, db)
        finally:
            client.close()
        report["kinds"] += [asdict(k) for k in kinds]
        if others:
            report["other_keys"][str(db)] = others
    return report


def main(argv: list[str] | None = None) -> int:
    """Print the audit as a table, or JSON with --json."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    opts = parser.parse_args(argv)
    report = audit(Settings())
    if opts.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    columns = ("db", "kind", "keys", "items", "no_expiry")
    rows = [[str(k[c]) for c in columns] for k in report["kinds"]]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    for row in [list(columns), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"{sum(kind['keys'] for kind in report['kinds'])} key(s)")
    for db, names in report["other_keys"].items():
        print(f"other keys in db {db}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
