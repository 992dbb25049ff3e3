"""What the CLI prints: rich tables for people, JSON with --json, progress on stderr."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

#: Columns a table may take when stdout is not a terminal (a pipe, `docker exec -T`):
#: wide enough that no id or message is folded for grep and scripts.
UNBOUNDED_WIDTH = 10_000


def _stdout() -> Console:
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=UNBOUNDED_WIDTH)


def cell(item: Any) -> str:
    """One value as a table shows it: `-` for nothing, JSON for anything not a string."""
    if item is None:
        return "-"
    return item if isinstance(item, str) else json.dumps(item)


class Output:
    """Prints for people (rich tables) or, with `as_json`, the API's JSON as it came."""

    def __init__(self, as_json: bool, console: Console | None = None) -> None:
        self.as_json = as_json
        self.console = console or _stdout()
        #: Progress goes to stderr, and only to a terminal: stdout stays parseable.
        self.errors = Console(stderr=True, highlight=False)

    def json(self, data: Any) -> None:
        """The data as one line of JSON, written as it is (rich would style or wrap it)."""
        self.console.file.write(json.dumps(data) + "\n")

    def rows(self, data: Any, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
        """`data` as JSON, or `rows` as a table of `columns`."""
        if self.as_json:
            self.json(data)
            return
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for column in columns:
            table.add_column(column.upper(), overflow="fold")
        for row in rows:
            table.add_row(*(cell(row.get(column)) for column in columns))
        self.console.print(table)

    def fields(self, data: dict[str, Any]) -> None:
        """`data` as JSON, or as a FIELD/VALUE table of what is set."""
        rows = [{"field": k, "value": v} for k, v in data.items() if v is not None]
        self.rows(data, rows, ["field", "value"])

    def note(self, text: str) -> None:
        """A line for people only (nothing with --json)."""
        if not self.as_json:
            self.console.print(text, markup=False)

    @contextmanager
    def progress(self, label: str, total: int | None = None) -> Iterator[Callable[..., None]]:
        """A progress bar (or a spinner without `total`) on stderr while the block runs.

        Yields `advance(completed=..., total=..., description=...)`.
        """
        bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=self.errors,
            transient=True,
            disable=not self.errors.is_terminal,
        )
        task = bar.add_task(label, total=total)
        with bar:

            def advance(**update: Any) -> None:
                bar.update(task, **update)

            yield advance
