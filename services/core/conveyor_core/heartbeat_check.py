"""Container healthchecks that read a heartbeat file: cheap, no broker round trip."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def check_heartbeat(path: Path, max_age: float) -> int:
    """Exit status for Docker: 0 when `path` was touched within `max_age` seconds."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        print(f"no heartbeat file at {path}", file=sys.stderr)
        return 1
    if age > max_age:
        print(f"heartbeat is {age:.0f}s old (limit {max_age:.0f}s)", file=sys.stderr)
        return 1
    return 0
