"""deploy/scripts/task-project.sh (make images, CONVEYOR_TASKS): its refusals and its
no-project case, which need no network. The build of a real project is e2e
(tests/e2e/test_task_project.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

SCRIPT = ROOT / "deploy" / "scripts" / "task-project.sh"
VENV = Path(sys.executable).parent.parent


def prepare(project: str, dest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), project, str(dest), str(VENV)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_no_project_leaves_an_empty_folder_for_the_image(tmp_path: Path) -> None:
    dest = tmp_path / "tasks"
    (dest / "old").mkdir(parents=True)  # a project built before
    done = prepare("", dest)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in dest.iterdir()) == [".fingerprint"]


def test_a_folder_without_pyproject_is_refused_naming_it(tmp_path: Path) -> None:
    done = prepare(str(tmp_path), tmp_path / "tasks")
    assert done.returncode == 2
    assert f"CONVEYOR_TASKS={tmp_path}: no pyproject.toml there" in done.stderr


def test_a_project_that_brings_its_own_conveyor_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "billing-tasks"\nversion = "1"\n'
        'dependencies = ["httpx>=0.27", "Conveyor[redis] >= 0.1"]\n'
    )
    done = prepare(str(tmp_path), tmp_path / "tasks")
    assert done.returncode == 2
    assert "lists conveyor in its dependencies" in done.stderr
