"""`python -m conveyor_bench [--quick] [--only drain,latency,...]`: run, print, write."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor_bench import report
from conveyor_bench.scenarios import Scenarios, Sizes
from conveyor_bench.stack import ROOT, Stack

SCENARIOS = ("drain", "events", "scale", "latency", "enqueue", "io")


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    cli = argparse.ArgumentParser(prog="conveyor_bench", description=__doc__)
    cli.add_argument("--quick", action="store_true", help="small N: a smoke run, not figures")
    cli.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    cli.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    cli.add_argument("--project", default=None, help="compose project (default: this folder's)")
    cli.add_argument("--systems", default=None, help="drain only these, e.g. conveyor,stock-celery")
    cli.add_argument("--tasks", type=int, default=None, help="tasks per drain (default by size)")
    cli.add_argument("--replicas", default=None, help="drain replica counts, e.g. 1,2,4")
    return cli.parse_args(argv)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "commit": commit or None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Bring the stack up, run the scenarios, put the workers back as they were."""
    stack = Stack(args.project)
    sizes = Sizes.quick() if args.quick else Sizes.full()
    if args.tasks:
        sizes = dataclasses.replace(sizes, drain_tasks=args.tasks)
    if args.replicas:
        sizes = dataclasses.replace(sizes, replicas=tuple(int(n) for n in args.replicas.split(",")))
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenario(s): {sorted(unknown)}; known: {SCENARIOS}")
    print("bench: starting the stack (or using the running one)", flush=True)
    stack.compose("up", "--detach", "--wait", "--no-build", *core_services(stack))
    workers_before = len(stack.containers("worker"))
    stack.compose("up", "--detach", "--no-build", "bench-agent")
    bench = Scenarios(stack, sizes, log=lambda line: print(line, flush=True))
    if args.systems:
        bench.drain_systems = tuple(args.systems.split(","))
    results: dict[str, list[dict[str, Any]]] = {}
    errors: dict[str, str] = {}

    def attempt(name: str, title: str, produce: Callable[[], list[dict[str, Any]]]) -> None:
        # A scenario that breaks is reported; it must not cost the others their figures.
        print(f"bench: {title}", flush=True)
        try:
            results[name] = produce()
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
            print(f"bench: {name} FAILED: {errors[name]}", flush=True)

    started = time.monotonic()
    try:
        if "drain" in chosen or "scale" in chosen:
            attempt("drain", "drain", bench.drain)
        if "events" in chosen:
            attempt("events", "the cost of task events", bench.events_cost)
        if "scale" in chosen and "drain" in results:
            attempt("scale", "scale", lambda: bench.scale(results["drain"]))
        if "latency" in chosen:
            attempt("latency", "end-to-end latency", bench.latency)
        if "enqueue" in chosen:
            attempt("enqueue", "enqueue", bench.enqueue)
            attempt("redis-benchmark", "redis-benchmark", bench.redis_benchmark)
        if "io" in chosen:
            attempt("io", "I/O-bound, per pool", bench.io_bound)
    finally:
        stack.only("worker", max(workers_before, 1))
        stack.compose("rm", "--stop", "--force", "bench-agent", "io-echo")
    ratio = report.ratios(results)
    return {
        "machine": machine(),
        "quick": args.quick,
        "sizes": sizes.__dict__,
        "seconds": round(time.monotonic() - started, 1),
        "results": results,
        "ratios": ratio,
        "targets": report.targets(results, ratio),
        "errors": errors,
    }


def core_services(stack: Stack) -> list[str]:
    """The stack's own services (not the bench profile's)."""
    config = json.loads(
        stack.run("docker", "compose", "config", "--format", "json", env={"COMPOSE_PROFILES": ""})
    )
    return sorted(config["services"])


def main(argv: list[str] | None = None) -> int:
    """Run the bench; figures never fail it, only a broken scenario does (after the report)."""
    args = parse(argv)
    outcome = run(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    print(report.table(outcome["results"], outcome["ratios"], outcome["targets"]))
    for path in report.write(args.out, stamp, outcome):
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    for name, error in outcome["errors"].items():
        print(f"bench: scenario {name} failed: {error}", file=sys.stderr)
    return 1 if outcome["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
