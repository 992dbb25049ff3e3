"""`make new-tasks` (conveyor.scaffold): the project it writes passes its own tests as
written, and its tasks load through Conveyor's discovery like any task package."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conveyor.scaffold import ScaffoldError, names, render
from conveyor_core.task_packages import catalog_of
from tests.helpers import selection


def test_the_new_project_passes_its_own_tests(tmp_path: Path) -> None:
    dest = tmp_path / "billing-tasks"
    written = render("billing", dest)
    assert {p.relative_to(dest).as_posix() for p in written} == {
        ".gitignore",
        "README.md",
        "pyproject.toml",
        "billing_tasks/__init__.py",
        "billing_tasks/tasks.py",
        "tests/test_tasks.py",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=dest,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout


def test_its_tasks_load_as_a_task_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "reports"
    render("monthly-reports", dest)
    project = tomllib.loads((dest / "pyproject.toml").read_text())["project"]
    assert project["name"] == "monthly-reports-tasks"
    assert project["entry-points"]["conveyor.tasks"] == {
        "monthly_reports": "monthly_reports_tasks.tasks"
    }
    assert project["dependencies"] == []  # the SDK comes with the image
    monkeypatch.syspath_prepend(str(dest))
    greet = catalog_of(selection("monthly_reports_tasks.tasks", demo=False))[
        "monthly_reports.greet"
    ]
    assert greet.celery_name == "conveyor.monthly_reports.greet"


@pytest.mark.parametrize("name", ["", "Billing", "billing tasks", "1st", "billing--x"])
def test_a_bad_name_is_refused(name: str) -> None:
    with pytest.raises(ScaffoldError, match="lower-case words"):
        names(name)


def test_an_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ScaffoldError, match="is not empty"):
        render("billing", tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_make_new_tasks_prints_how_to_test_and_serve(tmp_path: Path) -> None:
    dest = tmp_path / "billing-tasks"
    done = subprocess.run(
        [sys.executable, "-m", "conveyor.scaffold", "billing", str(dest)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"CONVEYOR_TASKS={dest}" in done.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "conveyor.scaffold", "Bad Name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "new-tasks: NAME='Bad Name'" in refused.stderr
