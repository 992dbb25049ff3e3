"""The tally store: where the `tally` task counts its executions, for the chaos suite.

It is kept apart from the broker's keys (a Redis set of executed ids and a hash of runs
per id), by default in the result database, or wherever `TALLY_REDIS_URL` points: the
chaos suite uses a Redis of its own that no fault touches, so a count cannot be lost
with the very broker the suite is hurting.
"""

from __future__ import annotations

from functools import lru_cache

import redis

from conveyor_core.settings import get_settings

#: Set of task ids that ran at least once.
TALLY_EXECUTED = "conveyor:tally:executed"
#: Hash task id -> executions.
TALLY_RUNS = "conveyor:tally:runs"


@lru_cache(maxsize=1)
def tally_client() -> redis.Redis:
    """The tally-store client of this process."""
    settings = get_settings()
    url = settings.tally_redis_url or settings.result_backend_url
    return redis.Redis.from_url(url, socket_timeout=settings.redis_socket_timeout)
