"""The bench report: ratios to the baselines, targets, a table, JSON and PNG plots."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

#: The issue's targets (default configuration, this machine); checked, never enforced.
TARGETS = {
    "drain_vs_stock_celery": 2.5,
    "drain_vs_dramatiq": 1.5,
    "drain_vs_ceiling": 0.4,
    "latency_p50_ms": 5.0,
    "latency_p99_ms": 25.0,
    "batch_tasks_per_second": 10_000.0,
    "events_drain_loss": 0.10,
}


def _by(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def events_drain_loss(rows: list[dict[str, Any]]) -> float | None:
    """1 - (drain with events on) / (drain with them off), from the medians of the pairs."""
    rates: dict[str, list[float]] = {
        side: [float(r["tasks_per_second"]) for r in rows if r.get("events") == side]
        for side in ("on", "off")
    }
    if not rates["on"] or not rates["off"]:
        return None
    return round(1 - statistics.median(rates["on"]) / statistics.median(rates["off"]), 3)


def ratios(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Every Conveyor figure against each baseline of the same run."""
    out: dict[str, Any] = {}
    drain = results.get("drain", [])
    for replicas in sorted({r["replicas"] for r in drain}):
        ours = _by(drain, system="conveyor", replicas=replicas)
        rate = ours["tasks_per_second"] if ours else None
        for base in ("stock-celery", "dramatiq", "ceiling"):
            theirs = _by(drain, system=base, replicas=replicas)
            key = f"drain_x{replicas}_vs_{base.replace('-', '_')}"
            out[key] = _ratio(rate, theirs["tasks_per_second"] if theirs else None)
    if (loss := events_drain_loss(results.get("events", []))) is not None:
        out["events_drain_loss"] = loss
    latency = results.get("latency", [])
    if ours := _by(latency, system="conveyor"):
        for base in ("stock-celery", "ceiling"):
            if theirs := _by(latency, system=base):
                for p in ("p50_ms", "p99_ms"):
                    out[f"latency_{p}_vs_{base.replace('-', '_')}"] = _ratio(ours[p], theirs[p])
    enqueue = results.get("enqueue", [])
    single = _by(enqueue, system="conveyor", kind="single (API, wrk)")
    batch = _by(enqueue, system="conveyor", kind="batch (API, 1,000 per request)")
    for row in enqueue:
        if row["system"] == "conveyor":
            continue
        ours = batch if row["kind"].startswith("batch") else single
        if ours:
            figure = ours.get("tasks_per_second") or ours.get("requests_per_second")
            key = f"enqueue_{row['kind'].split()[0]}_vs_{row['system'].replace('-', '_')}"
            out[key] = _ratio(figure, row["tasks_per_second"])
    io = results.get("io", [])
    if prefork := _by(io, pool="prefork"):
        for row in io:
            out[f"io_{row['pool']}_vs_prefork"] = _ratio(
                row["tasks_per_second"], prefork["tasks_per_second"]
            )
    return out


def targets(
    results: dict[str, list[dict[str, Any]]], ratio: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each target with the figure measured and whether it was met."""
    rows = []

    def check(name: str, value: float | None, at_least: bool) -> None:
        goal = TARGETS[name]
        met = None if value is None else (value >= goal if at_least else value <= goal)
        rows.append({"target": name, "goal": goal, "measured": value, "met": met})

    # Replica counts differ in what wins; the target is read at the default (1 replica).
    check("drain_vs_stock_celery", ratio.get("drain_x1_vs_stock_celery"), True)
    check("drain_vs_dramatiq", ratio.get("drain_x1_vs_dramatiq"), True)
    check("drain_vs_ceiling", ratio.get("drain_x1_vs_ceiling"), True)
    lat = _by(results.get("latency", []), system="conveyor")
    check("latency_p50_ms", lat["p50_ms"] if lat else None, False)
    check("latency_p99_ms", lat["p99_ms"] if lat else None, False)
    batch = _by(
        results.get("enqueue", []), system="conveyor", kind="batch (API, 1,000 per request)"
    )
    check("batch_tasks_per_second", batch["tasks_per_second"] if batch else None, True)
    check("events_drain_loss", ratio.get("events_drain_loss"), False)
    return rows


def table(
    results: dict[str, list[dict[str, Any]]], ratio: dict[str, Any], goals: list[dict[str, Any]]
) -> str:
    """The report as plain text."""
    lines = []
    for scenario, rows in results.items():
        lines.append(f"\n== {scenario}")
        for row in rows:
            label = " ".join(
                str(row.get(k, "")) for k in ("system", "kind", "command") if row.get(k)
            )
            if "replicas" in row:
                label += f" x{row['replicas']}"
            if "pipeline" in row:
                label += f" -P {row['pipeline']}"
            figures = ", ".join(
                f"{k}={v:,}" if isinstance(v, int | float) else f"{k}={v}"
                for k, v in row.items()
                if k not in ("system", "kind", "command", "replicas", "pipeline")
            )
            lines.append(f"  {label:42} {figures}")
    lines.append("\n== ratios (Conveyor / baseline; latency: lower is better)")
    lines += [f"  {k:44} {v}" for k, v in ratio.items()]
    lines.append("\n== targets")
    for goal in goals:
        state = {True: "met", False: "NOT met", None: "not measured"}[goal["met"]]
        lines.append(
            f"  {goal['target']:28} goal {goal['goal']:>8}  measured {goal['measured']}  {state}"
        )
    return "\n".join(lines)


def write(out_dir: Path, stamp: str, report: dict[str, Any]) -> list[Path]:
    """The JSON report and its plots; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return [path, *plots(out_dir, stamp, report["results"])]


def plots(out_dir: Path, stamp: str, results: dict[str, list[dict[str, Any]]]) -> list[Path]:
    """PNG charts: drain per system and replicas, scale, latency, enqueue, I/O pools."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def save(fig: Any, name: str) -> None:
        path = out_dir / f"{stamp}-{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    if drain := results.get("drain"):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        systems = list(dict.fromkeys(r["system"] for r in drain))
        counts = sorted({r["replicas"] for r in drain})
        width = 0.8 / len(systems)
        for i, system in enumerate(systems):
            values = [
                (_by(drain, system=system, replicas=n) or {}).get("tasks_per_second", 0)
                for n in counts
            ]
            ax.bar([c + i * width for c in range(len(counts))], values, width, label=system)
        ax.set_xticks(
            [c + 0.4 - width / 2 for c in range(len(counts))], [f"{n} replica(s)" for n in counts]
        )
        ax.set_ylabel("noop tasks per second")
        ax.set_title("Drain: a pre-filled queue, by system and worker replicas")
        ax.legend()
        save(fig, "drain")
    if scale := results.get("scale"):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([r["replicas"] for r in scale], [r["tasks_per_second"] for r in scale], marker="o")
        ax.set_xlabel("worker replicas (2 cores)")
        ax.set_ylabel("noop tasks per second")
        ax.set_title("Conveyor drain against worker replicas")
        ax.set_ylim(bottom=0)
        save(fig, "scale")
    if latency := results.get("latency"):
        fig, ax = plt.subplots(figsize=(7, 4))
        points = ("p50_ms", "p95_ms", "p99_ms")
        width = 0.8 / len(latency)
        for i, row in enumerate(latency):
            ax.bar(
                [p + i * width for p in range(3)],
                [row[p] for p in points],
                width,
                label=row["system"],
            )
        ax.set_xticks([p + 0.4 - width / 2 for p in range(3)], ["p50", "p95", "p99"])
        ax.set_ylabel("milliseconds, request to result")
        ax.set_title("End-to-end latency of add at 200 submissions/s")
        ax.legend()
        save(fig, "latency")
    if enqueue := results.get("enqueue"):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        labels = [f"{r['system']}\n{r['kind']}" for r in enqueue]
        values = [r.get("tasks_per_second") or r.get("requests_per_second", 0) for r in enqueue]
        ax.barh(labels, values)
        ax.set_xscale("log")
        ax.set_xlabel("tasks per second (log scale)")
        ax.set_title("Enqueue: the API against the baselines' own clients")
        save(fig, "enqueue")
    if io := results.get("io"):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.bar(
            [f"{r['pool']}\n{r['concurrency']} slots\n{r['memory_mib']} MiB" for r in io],
            [r["tasks_per_second"] for r in io],
        )
        ax.set_ylabel("tasks per second")
        ax.set_title("I/O-bound tasks (50 ms network wait), per pool")
        save(fig, "io")
    return written
