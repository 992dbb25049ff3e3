"""Start a Celery worker from the settings: `python -m conveyor_worker [CELERY-ARGS...]`.

The entrypoint's `worker` role. The node name, queues, pool, concurrency and log level
come from the typed settings (WORKER_NAME, WORKER_QUEUES, WORKER_POOL,
WORKER_CONCURRENCY, LOG_LEVEL), as every other setting does, not from shell defaults.
Celery runs in this very process, so it still gets Docker's signals itself.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from conveyor_core.settings import Settings, get_settings


def worker_argv(settings: Settings, extra: Sequence[str] = ()) -> list[str]:
    """`celery worker` arguments of these settings; `extra` comes last, so it wins."""
    return [
        "worker",
        "--loglevel",
        settings.log_level,
        # %h is the container's host name: every replica gets its own node name.
        "--hostname",
        f"{settings.worker_name}@%h",
        "--queues",
        settings.worker_queues,
        "--pool",
        settings.worker_pool,
        "--concurrency",
        str(settings.worker_concurrency),
        *extra,
    ]


def main(argv: Sequence[str]) -> int:
    """Run the worker until it shuts down; its exit status."""
    from conveyor_worker.main import app  # the app with its tasks, bootsteps and signals

    return app.start(worker_argv(get_settings(), argv)) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
