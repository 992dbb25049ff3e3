"""The one reader of `.env`-style files in Python (`.env`, `.build/bases.env`).

python-dotenv parses them, so quoting follows its rules (and Docker Compose's for the
lines we write): `KEY=value`, `KEY="value"`, `KEY='value'`, an `export ` prefix,
comments, and the last of repeated keys wins. `${VAR}` is not expanded: a value is
taken as written, as the shell reader (deploy/scripts/env-file.sh) takes it too.
"""

from __future__ import annotations

from pathlib import Path

from dotenv import dotenv_values


def read_env_file(path: Path | str) -> dict[str, str]:
    """The KEY=value pairs of an env file; empty when the file does not exist.

    A bare `KEY` line (no `=`) has no value and is left out.
    """
    if not Path(path).is_file():
        return {}
    values = dotenv_values(path, interpolate=False)
    return {key: value for key, value in values.items() if value is not None}
