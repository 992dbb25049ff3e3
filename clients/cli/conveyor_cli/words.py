"""Command-line words as the API's values: task calls, workflow steps, JSON-lines batches."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

import click


def value(text: str) -> Any:
    """A command-line argument as JSON when it parses (2, 1.5, [1,2], "x"), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def task_call(words: Iterable[str]) -> dict[str, Any]:
    """['add', '2', 'y=3'] -> {"task": "add", "args": [2], "kwargs": {"y": 3}}."""
    name, *rest = list(words)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for word in rest:
        key, sep, raw = word.partition("=")
        if sep and key.isidentifier():
            kwargs[key] = value(raw)
        else:
            args.append(value(word))
    return {"task": name, "args": args, "kwargs": kwargs}


class Step(click.ParamType[dict[str, Any], str]):
    """One workflow step, its words in one argument: "add 2 2"."""

    name = "STEP"

    def convert(self, text: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The step as the API takes it; a usage error when it has no task name."""
        if isinstance(text, dict):
            return text
        words = str(text).split()
        if not words:
            self.fail("a step needs a task name, e.g. 'add 2 2'", param, ctx)
        return task_call(words)


def read_batch(stream: TextIO, name: str) -> list[dict[str, Any]]:
    """Tasks from JSON lines, one {"task", "args", "kwargs"} a line (blank lines skipped)."""
    tasks = []
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            tasks.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise click.UsageError(f"{name}:{number}: not JSON: {exc.msg}") from exc
    return tasks
