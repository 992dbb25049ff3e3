"""`make doctor` passes on a machine prepared as .ci/run prepares one: this one.

It needs what this tier needs anyway (a running Docker Engine, the compose plugin,
kustomize). tests/unit/test_doctor.py checks that each missing thing is named."""

from __future__ import annotations

import subprocess

from tests.helpers import ROOT


def test_make_doctor_passes_here() -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "doctor"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "MISSING" not in done.stdout
    assert done.stdout.rstrip().endswith("doctor: nothing missing"), done.stdout
