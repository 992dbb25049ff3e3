"""The task catalogue: every task's public name, queue and argument schema.

The producer validates requests against these schemas before anything is enqueued,
and the workers validate again before running (a message can reach Redis by other
paths). Keeping both sides on one definition means they cannot drift. The tasks
themselves come from task packages (`conveyor_core.task_packages`), written with the
`conveyor.task` decorator (`conveyor_core.task_sdk`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeAlias

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, WithJsonSchema

from conveyor_core.errors import InvalidArgumentsError
from conveyor_core.queue_declarations import DEFAULT_QUEUE, EMAIL_QUEUE, declared_queues

__all__ = ["DEFAULT_QUEUE", "EMAIL_QUEUE"]
#: Prefix of the Celery task names, so they cannot clash with other apps' tasks.
TASK_NAME_PREFIX = "conveyor."
#: Bounds for numbers: JSON clients lose precision beyond 2**53.
MAX_NUMBER = 2**53


def _number_check(low: float, high: float) -> Callable[[Any], int | float]:
    """A validator of JSON numbers (int or float; not bool, not a string, finite)."""

    def check(value: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        if not low <= value <= high:
            raise ValueError(f"must be between {low!r} and {high!r}")
        return value

    return check


def number_between(low: float, high: float) -> Any:
    """A JSON number within bounds, as an annotation for a model field."""
    schema = {"type": "number", "minimum": low, "maximum": high}
    return Annotated[int | float, PlainValidator(_number_check(low, high)), WithJsonSchema(schema)]


#: A JSON number that survives the trip through any JSON client (a type hint for tasks).
Number: TypeAlias = Annotated[
    int | float,
    PlainValidator(_number_check(-MAX_NUMBER, MAX_NUMBER)),
    WithJsonSchema({"type": "number", "minimum": -MAX_NUMBER, "maximum": MAX_NUMBER}),
]


class TaskParams(BaseModel):
    """Base of every task's argument schema: strict types, no unknown arguments."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass(frozen=True)
class TaskSpec:
    """One task of the catalogue."""

    name: str
    params: type[BaseModel]
    summary: str
    queue: str = DEFAULT_QUEUE
    #: Arguments that may be shown as they are in Flower, events and logs; None: all.
    #: The others (personal data: addresses, bodies) are shown as their size only.
    shown: frozenset[str] | None = None

    def repr_options(self, kwargs: Mapping[str, Any]) -> dict[str, str]:
        """Publish options (`argsrepr`, `kwargsrepr`) that mask personal data.

        Flower, task events and worker logs show these instead of the arguments; empty
        for tasks with nothing to hide.
        """
        if self.shown is None:
            return {}
        masked = {k: v if k in self.shown else _size_of(v) for k, v in kwargs.items()}
        return {"argsrepr": "()", "kwargsrepr": repr(masked)}

    @property
    def celery_name(self) -> str:
        """The name under which Celery registers and routes the task."""
        return TASK_NAME_PREFIX + self.name

    @property
    def parameter_names(self) -> list[str]:
        """Parameter names in positional order."""
        return list(self.params.model_fields)

    def bind(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], *, piped: bool = False
    ) -> dict[str, Any]:
        """Validate a call and return it as keyword arguments.

        With ``piped=True`` the first parameter is left out: in a chain it receives the
        previous step's result, so the given ``args`` bind from the second parameter on.
        Raises `InvalidArgumentsError` naming the offending field.
        """
        names = self.parameter_names
        free = names[1:] if piped else names
        if len(args) > len(free):
            raise InvalidArgumentsError(
                f"{self.name} takes at most {len(free)} positional argument(s), {len(args)} given",
                field=f"args[{len(free)}]",
            )
        sources = {name: f"args[{i}]" for i, name in enumerate(free[: len(args)])}
        values = dict(zip(free, args, strict=False))
        for key, value in kwargs.items():
            if key in values:
                raise InvalidArgumentsError(
                    f"{key}: given both positionally and by keyword", field=f"kwargs.{key}"
                )
            sources[key] = f"kwargs.{key}"
            values[key] = value
        if piped and names:
            if names[0] in values:
                raise InvalidArgumentsError(
                    f"{names[0]}: comes from the previous step and cannot be given",
                    field=sources[names[0]],
                )
            values[names[0]] = _placeholder(self.params, names[0])
        try:
            model = self.params.model_validate(values)
        except ValidationError as exc:
            raise _as_invalid_arguments(exc, sources) from None
        bound = model.model_dump()
        if piped and names:
            del bound[names[0]]
        return bound

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the task's keyword arguments."""
        return self.params.model_json_schema()


def _size_of(value: Any) -> str:
    """What a masked argument shows: its kind and size, never its content."""
    if value is None:
        return "None"
    if isinstance(value, list | tuple | dict):
        return f"<{len(value)} item(s)>"
    return f"<{len(str(value))} chars>"


def _placeholder(params: type[BaseModel], name: str) -> Any:
    """A value that passes validation for a parameter filled in later by a chain."""
    annotation = params.model_fields[name].annotation
    return [] if getattr(annotation, "__origin__", None) is list else 0


def _as_invalid_arguments(
    exc: ValidationError, sources: Mapping[str, str]
) -> InvalidArgumentsError:
    """Turn pydantic's first error into one message that names the field."""
    error = exc.errors(include_url=False)[0]
    loc = list(error["loc"])
    head = str(loc[0]) if loc else ""
    field = sources.get(head, head)
    for part in loc[1:]:
        field += f"[{part}]" if isinstance(part, int) else f".{part}"
    message = "unexpected argument" if error["type"] == "extra_forbidden" else error["msg"]
    message = message.removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "missing required argument"
    return InvalidArgumentsError(f"{field}: {message}", field=field or None)


def known_queues() -> list[str]:
    """Every declared queue: a task may be routed only to one of these.

    The queues of queues.toml and the task project's, each with its worker service.
    """
    return [queue.name for queue in declared_queues()]
