"""Container healthcheck: exit 0 when a reconciler pass reached Redis in the last 90 s.

Run as `python -m conveyor_reconciler.healthcheck`; it only reads a file's age.
"""

from __future__ import annotations

import sys
from pathlib import Path

from conveyor_core.heartbeat_check import check_heartbeat

#: Touched by `main` after every pass that reached Redis (tmpfs in the container).
HEARTBEAT_FILE = Path("/tmp/conveyor-reconciler.heartbeat")  # noqa: S108
#: Several passes (RECONCILE_INTERVAL, at most 60 s by default 15) may be missed.
MAX_AGE_SECONDS = 90.0


def main() -> int:
    """Exit status for Docker: 0 healthy, 1 unhealthy."""
    return check_heartbeat(HEARTBEAT_FILE, MAX_AGE_SECONDS)


if __name__ == "__main__":
    sys.exit(main())
