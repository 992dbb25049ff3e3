"""The bench report's arithmetic: ratios to the baselines and the targets (pure Python)."""

from __future__ import annotations

from typing import Any

from conveyor_bench import report


def drained(system: str, rate: float, replicas: int = 1, **extra: Any) -> dict[str, Any]:
    return {"system": system, "replicas": replicas, "tasks_per_second": rate, **extra}


def test_drain_ratios_compare_the_same_replica_count() -> None:
    rows = [
        drained("conveyor", 600),
        drained("stock-celery", 800),
        drained("conveyor", 700, replicas=2),
        drained("dramatiq", 1400, replicas=2),
    ]
    ratio = report.ratios({"drain": rows})
    assert ratio["drain_x1_vs_stock_celery"] == 0.75
    assert ratio["drain_x2_vs_dramatiq"] == 0.5
    assert ratio["drain_x1_vs_dramatiq"] is None  # no baseline measured: no figure


def test_events_loss_is_read_from_the_medians_of_its_own_pairs() -> None:
    # The drain scenario's own row (1,000/s) must not enter: it ran minutes earlier.
    events = [
        drained("conveyor (task events on)", 480, events="on", pair=1),
        drained("conveyor (task events off)", 500, events="off", pair=1),
        drained("conveyor (task events on)", 460, events="on", pair=2),
        drained("conveyor (task events off)", 540, events="off", pair=2),
    ]
    ratio = report.ratios({"drain": [drained("conveyor", 1000)], "events": events})
    assert ratio["events_drain_loss"] == round(1 - 470 / 520, 3)
    [goal] = [g for g in report.targets({"events": events}, ratio) if "events" in g["target"]]
    assert goal["met"] is True


def test_events_loss_needs_both_sides_and_reports_zero() -> None:
    assert report.events_drain_loss([drained("x", 5, events="on")]) is None
    same = [drained("x", 5, events="on"), drained("x", 5, events="off")]
    assert report.ratios({"events": same})["events_drain_loss"] == 0.0


def test_an_unmeasured_target_is_neither_met_nor_missed() -> None:
    goals = {g["target"]: g for g in report.targets({}, {})}
    assert set(goals) == set(report.TARGETS)
    assert all(g["measured"] is None and g["met"] is None for g in goals.values())
