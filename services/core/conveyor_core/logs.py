"""Logging of the Python roles: one format, at the level LOG_LEVEL names."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Send the root logger's records to stderr at `level` (a LOG_LEVEL name).

    The level is set even when a handler exists already (basicConfig alone would then
    do nothing), so a role's LOG_LEVEL always applies to its own loggers.
    """
    logging.basicConfig(format=LOG_FORMAT)
    logging.getLogger().setLevel(level)
