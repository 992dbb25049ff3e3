"""Known vulnerabilities in the pinned dependencies: pip-audit, and a fallback.

    python deploy/audit/dependencies.py requirements.lock

Runs `pip-audit` on the lock file. pip-audit asks PyPI's per-release JSON API (or OSV);
where that cannot answer (a mirror without it, no route to OSV), it skips the package.
Each skipped package is then checked against PyPI's per-project JSON API, whose
`vulnerabilities` list describes the newest release: when the pin *is* the newest
release, that answers for it. Exit 1 on any known vulnerability, or on a package that
neither could audit (unless --allow-unaudited); the report names each.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)")
PYPI = "https://pypi.org/pypi/{name}/json"


def pins(lock: Path) -> dict[str, str]:
    """Pinned versions by package name, from a pip-compile/uv lock file."""
    found = {}
    for line in lock.read_text().splitlines():
        if match := PIN.match(line.strip()):
            found[match.group(1).lower()] = match.group(2)
    return found


def pip_audit(lock: Path) -> tuple[int, list[dict], set[str]]:
    """pip-audit's exit status, its vulnerable packages and the packages it skipped."""
    done = subprocess.run(  # noqa: S603  # our own interpreter and arguments
        [sys.executable, "-m", "pip_audit", "-r", str(lock), "--no-deps", "--disable-pip",
         "--progress-spinner", "off", "--format", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    report = json.loads(done.stdout or "{}")
    deps = report.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    skipped = {d["name"].lower() for d in deps if "skip_reason" in d}
    return done.returncode, vulnerable, skipped


def newest_release_vulns(name: str, version: str) -> list[str] | None:
    """Advisory ids for `name` when `version` is its newest release; None if not newest."""
    with urllib.request.urlopen(PYPI.format(name=name), timeout=20) as response:  # noqa: S310
        data = json.load(response)
    if data["info"]["version"] != version:
        return None
    return [v["id"] for v in data.get("vulnerabilities", []) if not v.get("withdrawn")]


def main(argv: list[str] | None = None) -> int:
    """Audit; print the findings; exit 1 when something is vulnerable or unaudited."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("lock", type=Path)
    parser.add_argument("--allow-unaudited", action="store_true")
    opts = parser.parse_args(argv)
    versions = pins(opts.lock)
    status, vulnerable, skipped = pip_audit(opts.lock)
    problems = [
        f"{d['name']} {d['version']}: {', '.join(v['id'] for v in d['vulns'])}" for d in vulnerable
    ]
    unaudited = []
    for name in sorted(skipped):
        ids = newest_release_vulns(name, versions[name])
        if ids is None:
            unaudited.append(f"{name} {versions[name]}")
        elif ids:
            problems.append(f"{name} {versions[name]}: {', '.join(ids)}")
    audited = len(versions) - len(unaudited)
    print(f"dependencies: {len(versions)} pinned, {audited} audited "
          f"({len(versions) - len(skipped)} by pip-audit, {len(skipped) - len(unaudited)} "
          "by the newest-release fallback)")  # fmt: skip
    for line in problems:
        print(f"VULNERABLE {line}")
    for line in unaudited:
        print(f"NOT AUDITED {line} (not the newest release; no per-release data here)")
    if problems or (status not in (0, 1)):
        return 1
    return 1 if unaudited and not opts.allow_unaudited else 0


if __name__ == "__main__":
    sys.exit(main())
