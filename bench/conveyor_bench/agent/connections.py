"""Addresses of the stack's services, as seen from a container on its networks."""

from __future__ import annotations

import os
from urllib.parse import quote

import redis

REDIS_HOST = os.environ.get("REDIS_HOST", "redis")
API_URL = os.environ.get("BENCH_API_URL", "http://producer:8000")

#: Redis databases: Conveyor's broker and results (0, 1), the stock Celery tutorial's
#: (2, 3), Dramatiq's (4) and the ceiling consumer's (5). One server, kept apart.
CONVEYOR_BROKER_DB, CONVEYOR_RESULT_DB = 0, 1
STOCK_BROKER_DB, STOCK_RESULT_DB = 2, 3
DRAMATIQ_DB = 4
CEILING_DB = 5


def redis_url(db: int) -> str:
    """The URL of one database of the stack's Redis, user and password included."""
    user = quote(os.environ.get("REDIS_USERNAME", ""), safe="")
    password = quote(os.environ["REDIS_PASSWORD"], safe="")
    return f"redis://{user}:{password}@{REDIS_HOST}:6379/{db}"


def client(db: int) -> redis.Redis:
    """A client of one database of the stack's Redis."""
    return redis.Redis.from_url(redis_url(db), socket_timeout=30)


def api_headers() -> dict[str, str]:
    """Headers of an authenticated JSON request to the producer API."""
    return {
        "Authorization": f"Bearer {os.environ['CONVEYOR_API_KEY']}",
        "Content-Type": "application/json",
    }
