"""The remote-control commands a worker answers: what Flower and the Makefile need.

Anyone who can write to the broker can broadcast control commands to every worker
(Celery has no authentication of its own there; Redis's password and network are the
boundary). Commands that change or stop workers are removed, so that such a client can
read state and revoke tasks, but not shut workers down, resize their pools, make them
consume other queues, change limits or dump memory. Operators do those with `make`
(`scale`, `restart`) and the settings, through Docker rather than the broker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conveyor_core.celery_internals import control_commands

#: Refused by every worker (its reply says so).
DISABLED = frozenset(
    {
        "shutdown",
        "pool_restart",
        "pool_grow",
        "pool_shrink",
        "autoscale",
        "add_consumer",
        "cancel_consumer",
        "rate_limit",
        "time_limit",
        "memdump",
        "memsample",
        "objgraph",
        "conf",
        "dump_conf",
    }
)


def _refuse(name: str) -> Callable[..., dict[str, str]]:
    def refuse(state: Any, **_: Any) -> dict[str, str]:
        return {"error": f"{name} is disabled on Conveyor workers (see docs/security.md)"}

    return refuse


def restrict() -> list[str]:
    """Make this process's panel refuse the disabled commands; return the refused ones."""
    commands = control_commands()
    for name in DISABLED:
        if name in commands:
            commands[name] = _refuse(name)
    return sorted(DISABLED & set(commands))
