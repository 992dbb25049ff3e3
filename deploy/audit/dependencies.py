"""Known vulnerabilities in the pinned dependencies: pip-audit, and a fallback.

    python deploy/audit/dependencies.py requirements.lock requirements-dev.lock ...

Runs `pip-audit` on the lock file. pip-audit asks PyPI's per-release JSON API (or OSV);
where that cannot answer (a mirror without it, no route to OSV), it skips the package.
Each skipped package is then checked against PyPI's per-project JSON API, whose
`vulnerabilities` list describes the newest release: when the pin *is* the newest
release, that answers for it. Exit 1 on any known vulnerability, or on a package that
neither could audit (unless --allow-unaudited); the report names each.

A known vulnerability that does not apply (or has no fix yet) is accepted only with a
reason, one line per advisory in deploy/audit/accepted-vulnerabilities.txt:
`ADVISORY-ID  package  why it is accepted`. An entry that matches nothing is reported, so
the list does not outlive its reasons.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)")
PYPI = "https://pypi.org/pypi/{name}/json"
ACCEPTED = Path(__file__).with_name("accepted-vulnerabilities.txt")


def accepted(path: Path = ACCEPTED) -> dict[tuple[str, str], str]:
    """Accepted advisories: (advisory id, package) -> the reason.

    A line without a reason is an error: accepting a vulnerability needs one.
    """
    entries = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(maxsplit=2)
        if len(fields) < 3:
            raise SystemExit(f"{path}:{number}: want ADVISORY-ID PACKAGE REASON, got {line!r}")
        entries[(fields[0], fields[1].lower())] = fields[2]
    return entries


def pins(lock: Path) -> dict[str, str]:
    """Pinned versions by package name, from a pip-compile/uv lock file."""
    found = {}
    for line in lock.read_text().splitlines():
        if match := PIN.match(line.strip()):
            found[match.group(1).lower()] = match.group(2)
    return found


def pip_audit(lock: Path) -> tuple[int, list[dict[str, Any]], set[str]]:
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


def audit(lock: Path) -> tuple[list[tuple[str, str, str]], list[str], str]:
    """One lock file: its (package, version, advisory) findings, its unaudited pins, a summary."""
    versions = pins(lock)
    status, vulnerable, skipped = pip_audit(lock)
    if status not in (0, 1):
        raise SystemExit(f"pip-audit failed on {lock} (exit {status})")
    findings = [(d["name"].lower(), d["version"], v["id"]) for d in vulnerable for v in d["vulns"]]
    unaudited = []
    for name in sorted(skipped):
        ids = newest_release_vulns(name, versions[name])
        if ids is None:
            unaudited.append(f"{name} {versions[name]}")
        else:
            findings += [(name, versions[name], advisory) for advisory in ids]
    audited = len(versions) - len(unaudited)
    summary = (
        f"{lock}: {len(versions)} pinned, {audited} audited ({len(versions) - len(skipped)} "
        f"by pip-audit, {len(skipped) - len(unaudited)} by the newest-release fallback)"
    )
    return findings, unaudited, summary


def main(argv: list[str] | None = None) -> int:
    """Audit; print the findings; exit 1 when something is vulnerable or unaudited."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("locks", type=Path, nargs="+", metavar="LOCK")
    parser.add_argument("--allow-unaudited", action="store_true")
    parser.add_argument("--accepted", type=Path, default=ACCEPTED, help="accepted advisories")
    opts = parser.parse_args(argv)
    allowed = accepted(opts.accepted)
    used: set[tuple[str, str]] = set()
    failed = False
    for lock in opts.locks:
        findings, unaudited, summary = audit(lock)
        print(f"dependencies: {summary}")
        for name, version, advisory in findings:
            reason = allowed.get((advisory, name))
            if reason is None:
                failed = True
                print(f"VULNERABLE {name} {version}: {advisory}")
            else:
                used.add((advisory, name))
                print(f"ACCEPTED {name} {version}: {advisory} ({reason})")
        for line in unaudited:
            print(f"NOT AUDITED {line} (not the newest release; no per-release data here)")
        failed |= bool(unaudited) and not opts.allow_unaudited
    for advisory, name in sorted(set(allowed) - used):
        print(f"note: accepted {advisory} for {name} matches nothing now: remove it")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
