"""`make bench-quick` as CI's smoke test of the benchmark.

It runs every scenario with small N on a compose project of its own and checks that the
report is complete and every system ran every task it was given. Figures are printed,
never asserted: a slow machine must not fail a build (see docs/performance.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DEVELOPMENT_MAIL, ROOT

pytestmark = pytest.mark.e2e

PROJECT = "conveyor-bench-smoke"
PORTS = {"PRODUCER_PORT": "18400", "FLOWER_PORT": "18455", "MAILBOX_PORT": "18425"}
SCENARIOS = {"drain", "events", "scale", "latency", "enqueue", "redis-benchmark", "io"}
PLOTS = {"drain", "scale", "latency", "enqueue", "io"}


def quick_bench(out: Path) -> subprocess.CompletedProcess[str]:
    """`python -m conveyor_bench --quick` on the smoke project; removed afterwards."""
    # DEVELOPMENT_MAIL: the bench sends no e-mail, but its e-mail worker must start.
    env = {**os.environ, **PORTS, **DEVELOPMENT_MAIL, "PYTHONPATH": str(ROOT / "bench")}
    command = [sys.executable, "-m", "conveyor_bench", "--quick", "--project", PROJECT]
    try:
        return subprocess.run(
            [*command, "--out", str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=570,
            check=False,
        )
    finally:
        files = ["-f", "docker-compose.yml", "-f", "bench/compose.bench.yml"]
        subprocess.run(
            ["docker", "compose", "-p", PROJECT, *files, "--profile", "bench", "down", "-v"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            check=False,
        )


def test_quick_bench_runs_every_scenario_and_writes_its_report(tmp_path: Path) -> None:
    done = quick_bench(tmp_path)
    print(done.stdout[-4000:])
    assert done.returncode == 0, done.stderr[-4000:]
    [report_file] = tmp_path.glob("*.json")
    report = json.loads(report_file.read_text())
    assert report["errors"] == {}
    results = report["results"]
    assert set(results) == SCENARIOS

    drained = results["drain"]
    assert {row["system"] for row in drained} == {"ceiling", "stock-celery", "dramatiq", "conveyor"}
    for row in drained + results["events"] + results["scale"] + results["io"]:
        assert row["tasks"] > 0 and row["tasks_per_second"] > 0, row
    assert {row["pool"] for row in results["io"]} == {"prefork", "threads", "gevent"}
    for row in results["latency"]:  # every submitted task's result was seen
        assert row["errors"] == 0 and row["missing"] == 0, row
    single, batch = results["enqueue"][:2]
    assert single["requests_per_second"] > 0 and single["non_2xx"] == 0
    assert batch["tasks"] == report["sizes"]["batch_tasks"]
    assert {row["command"] for row in results["redis-benchmark"]} == {"LPUSH", "RPOP"}

    # Ratios and targets are computed from the figures, whatever they are.
    assert report["ratios"]["drain_x1_vs_stock_celery"] > 0
    assert all(goal["measured"] is not None for goal in report["targets"])
    assert {p.stem.rsplit("-", 1)[1] for p in tmp_path.glob("*.png")} == PLOTS
