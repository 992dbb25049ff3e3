"""Container healthcheck for a service that serves HTTP and depends on Redis.

    python -m conveyor_core.healthprobe http://127.0.0.1:5555/healthcheck

Exit 0 when the URL answers 2xx *and* Redis answers PING with the service's own
credentials; 1 otherwise, with the reason on stderr. Flower's /healthcheck says "OK"
even when it has lost the broker, so its container health checks both.
"""

from __future__ import annotations

import sys
import urllib.request

import redis

from conveyor_core.settings import Settings


def main(argv: list[str] | None = None) -> int:
    """Probe the URL given, then Redis."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m conveyor_core.healthprobe URL", file=sys.stderr)
        return 64
    try:
        with urllib.request.urlopen(args[0], timeout=3) as response:  # noqa: S310 - local URL
            if not 200 <= response.status < 300:
                print(f"{args[0]} answered {response.status}", file=sys.stderr)
                return 1
    except OSError as exc:
        print(f"{args[0]} did not answer: {exc}", file=sys.stderr)
        return 1
    settings = Settings()
    client = redis.Redis.from_url(settings.broker_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        print(f"Redis did not answer: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
