"""The start-up check's view of the Redis server."""

from conveyor_core.preflight import redis_problems


def test_an_evicting_redis_without_persistence_is_refused_and_warned_about() -> None:
    problems, warnings = redis_problems({"maxmemory_policy": "allkeys-lru", "aof_enabled": 0})
    assert "maxmemory-policy is 'allkeys-lru'" in problems[0]
    assert "append-only file" in warnings[0]


def test_a_role_that_may_not_read_info_has_no_findings() -> None:
    # Per-role Redis users (REDIS_TLS) other than the workers' get NOPERM for INFO.
    assert redis_problems({}) == ([], [])
