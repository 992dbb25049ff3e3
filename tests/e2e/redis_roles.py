"""Each Redis user may do its role's work and nothing else (deploy/redis/roles.acl).

Shared by both stacks' tests: test_tls.py calls `check_roles` in-process through Redis's
published TLS port; test_security.py runs this file as a script in a container on the
default stack's backend network (Redis is published nowhere there), so it imports only
redis-py and the standard library, which the application image has:

    python - roles          < redis_roles.py   every role refused another's work
    python - own-user-only  < redis_roles.py   this container's password opens no other user

Passwords come from the environment as in .env: REDIS_PASSWORD (the operator's) and
REDIS_<ROLE>_PASSWORD; own-user-only reads the service's REDIS_USERNAME/REDIS_PASSWORD.
A refused check raises AssertionError (exit status 1 as a script).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import partial

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

#: (username, password) -> a client of the Redis under test; None: send no AUTH.
Connect = Callable[[str | None, str | None], redis.Redis]
#: redis-py retries a refused login (AuthenticationError is a ConnectionError) three
#: times with backoff, about 3 s each; the checks expect refusals, so no retries.
NO_RETRY = Retry(NoBackoff(), 0)
ROLES = ("producer", "worker", "email", "reconciler", "flower")
USERS = ("operator", *ROLES)
#: Lists the ACL patterns default* and email* match, that no worker consumes.
DEFAULT_PROBE, EMAIL_PROBE = "default-acl-probe", "email-acl-probe"
ADMIN_COMMANDS = (("FLUSHALL",), ("CONFIG", "GET", "dir"), ("ACL", "LIST"), ("KEYS", "*"))


def password_variable(user: str) -> str:
    """The .env variable of a user's password."""
    return "REDIS_PASSWORD" if user == "operator" else f"REDIS_{user.upper()}_PASSWORD"


def passwords_from_environment() -> dict[str, str]:
    """Each user's password, named as in .env (the operator's is REDIS_PASSWORD)."""
    return {user: os.environ[password_variable(user)] for user in USERS}


def refused(call: Callable[[], object], what: str, error: type[Exception]) -> None:
    """`call` must raise `error` (NOPERM: NoPermissionError; a login: AuthenticationError)."""
    try:
        call()
    except error:
        return
    raise AssertionError(f"Redis allowed {what}")


def check_roles(connect: Connect, passwords: dict[str, str]) -> list[str]:
    """Each role does its own work and is refused (NOPERM) another's; no one logs in as
    `default`, nor as a role with another's password. Returns what passed."""
    users = {user: connect(user, passwords[user]) for user in USERS}
    producer, flower, worker, email = (users[r] for r in ("producer", "flower", "worker", "email"))
    nopermission = redis.exceptions.NoPermissionError
    worker.delete(DEFAULT_PROBE, EMAIL_PROBE)
    assert producer.lpush(DEFAULT_PROBE, "x") == 1  # the producer may push to a queue...
    refused(lambda: producer.rpop(DEFAULT_PROBE), "the producer to take a task", nopermission)
    refused(lambda: producer.brpop([DEFAULT_PROBE], 1), "the producer to BRPOP", nopermission)
    refused(lambda: producer.zadd("unacked_index", {"forged": 1}), "a forged unack", nopermission)
    refused(lambda: flower.lpush(DEFAULT_PROBE, "x"), "Flower to push a task", nopermission)
    assert flower.llen(DEFAULT_PROBE) == 1  # Flower only counts queues
    refused(lambda: users["reconciler"].rpop(DEFAULT_PROBE), "the reconciler to take", nopermission)
    # The e-mail worker takes e-mail only; the default queue's tasks are not its own.
    refused(lambda: email.rpop(DEFAULT_PROBE), "the e-mail worker a default task", nopermission)
    refused(lambda: email.get("producer-secret"), "the e-mail worker any key", nopermission)
    assert worker.rpop(DEFAULT_PROBE) == b"x"
    assert producer.lpush(EMAIL_PROBE, "y") == 1
    assert email.rpop(EMAIL_PROBE) == b"y"
    for user, client in users.items():
        for command in ADMIN_COMMANDS:
            if (user, command[0]) != ("operator", "KEYS"):  # the operator may list keys
                call = partial(client.execute_command, *command)
                refused(call, f"{user} to run {' '.join(command)}", nopermission)
    login = redis.AuthenticationError
    refused(lambda: connect(None, None).ping(), "a client without a password", login)
    for user, password in passwords.items():
        refused(partial(ping, connect, "default", password), f"default in with {user}'s", login)
        refused(partial(ping, connect, None, password), f"AUTH {user}'s without a name", login)
    refused(partial(ping, connect, "worker", passwords["producer"]), "producer as worker", login)
    return [f"{user}: refused another role's work and admin commands" for user in USERS] + [
        "default: cannot log in, with or without any user's password"
    ]


def ping(connect: Connect, user: str | None, password: str | None) -> bool:
    """Log in as `user` and PING."""
    return bool(connect(user, password).ping())


def check_own_user_only(connect: Connect, user: str, password: str) -> list[str]:
    """With this service's password, its own user logs in and no other user does."""
    assert ping(connect, user, password)
    for other in ("default", *USERS):
        if other != user:
            call = partial(ping, connect, other, password)
            refused(call, f"{user}'s password to log in as {other}", redis.AuthenticationError)
    return [f"{user}'s password opens no other Redis user"]


def plain(host: str) -> Connect:
    """Clients of the Redis at host:6379, without TLS (the default stack's backend)."""

    def connect(user: str | None, password: str | None) -> redis.Redis:
        return redis.Redis(
            host=host, port=6379, username=user, password=password, socket_timeout=5,
            retry=NO_RETRY,
        )  # fmt: skip

    return connect


def main(argv: list[str]) -> int:
    """Run one check against the Redis at REDIS_HOST (default redis); print what passed."""
    connect = plain(os.environ.get("REDIS_HOST", "redis"))
    if argv == ["roles"]:
        passed = check_roles(connect, passwords_from_environment())
    elif argv == ["own-user-only"]:
        user, password = os.environ["REDIS_USERNAME"], os.environ["REDIS_PASSWORD"]
        passed = check_own_user_only(connect, user, password)
    else:
        print("usage: python - roles|own-user-only < redis_roles.py", file=sys.stderr)
        return 2
    print("\n".join(passed))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
