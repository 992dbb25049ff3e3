"""How a task is written: the `task` decorator behind `from conveyor import task`.

The decorator leaves the function as it is (a team calls it directly in its own tests)
and records a `TaskDefinition`: the catalogue entry (name, queue, argument schema from
the type hints) that the producer validates requests against, and the Celery options
(Celery's own retry options, time limits, rate limit) each worker registers it with.
Nothing here imports Celery: the producer and the reconciler read definitions too.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict, TypeVar, overload

from pydantic import BaseModel, create_model
from typing_extensions import Unpack

from conveyor_core.catalog import DEFAULT_QUEUE, TaskParams, TaskSpec
from conveyor_core.queue_declarations import SOFT_SHARE

F = TypeVar("F", bound=Callable[..., Any])

#: Public task names: lower-case words, optionally dotted ("billing.charge").
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
#: The attribute a decorated function carries its definition in.
DEFINITION_ATTRIBUTE = "__conveyor_task__"


class TaskDefinitionError(ValueError):
    """A task that cannot be defined as written; the message names its module and task."""


@dataclass(frozen=True)
class TaskDefinition:
    """One task: its catalogue entry, its function and the options Celery runs it with."""

    spec: TaskSpec
    function: Callable[..., Any]
    #: Celery's `bind`: the function's first parameter is the running task (`self`).
    bind: bool = False
    #: Celery task options: autoretry_for, retry_backoff, time_limit, rate_limit, ...
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def module(self) -> str:
        """The module that defines the task (named in every error about it)."""
        return str(self.function.__module__)

    @property
    def where(self) -> str:
        """`module: task 'name'`, for messages."""
        return f"{self.module}: task {self.spec.name!r}"


#: Every definition made in this process, in the order the decorators ran.
DEFINITIONS: list[TaskDefinition] = []


class CeleryOptions(TypedDict, total=False):
    """Celery's own task options that a task may set (passed to Celery unchanged)."""

    autoretry_for: tuple[type[BaseException], ...]
    dont_autoretry_for: tuple[type[BaseException], ...]
    max_retries: int | None
    retry_backoff: bool | float
    retry_backoff_max: int
    retry_jitter: bool
    default_retry_delay: float
    time_limit: float
    soft_time_limit: float
    rate_limit: str


class TaskOptions(CeleryOptions, total=False):
    """Everything `task` takes: the catalogue entry's parts and Celery's options."""

    name: str
    queue: str
    summary: str
    params: type[BaseModel]
    bind: bool
    shown: frozenset[str]


#: The catalogue entry's options; the other `TaskOptions` are Celery's.
ENTRY_OPTIONS = frozenset({"name", "queue", "summary", "params", "bind", "shown"})


@overload
def task(function: F, /) -> F: ...


@overload
def task(function: None = None, /, **options: Unpack[TaskOptions]) -> Callable[[F], F]: ...


def task(function: F | None = None, /, **options: Unpack[TaskOptions]) -> F | Callable[[F], F]:
    """Declare a Conveyor task; `@task` or `@task(queue=..., autoretry_for=...)`.

    - `name`: the public name clients submit (default: the function's name).
    - `queue`: a declared queue (default `default`); `summary`: the catalogue's line
      (default: the first line of the docstring).
    - `params`: a pydantic model of the arguments; by default one is made from the
      function's type hints and defaults (with `bind`, after its first parameter).
    - `bind`: the function's first parameter is the running Celery task.
    - `shown`: arguments that Flower, events and logs may show; the others (personal
      data) appear as their size only. Default: all.
    - The rest are Celery's own task options, passed to it unchanged (its defaults where
      not given): retries with `autoretry_for`, `retry_backoff`, `retry_backoff_max`,
      `retry_jitter`, `max_retries`; `time_limit`, `soft_time_limit` (seconds; with
      `time_limit` alone, the soft limit is 90 % of it) and `rate_limit`.
    """
    unknown = set(options) - set(TaskOptions.__annotations__) - set(CeleryOptions.__annotations__)
    if unknown:
        raise TypeError(f"task() got unknown option(s): {sorted(unknown)}")

    def decorate(func: F) -> F:
        name = options.get("name") or func.__name__
        definition = define(
            func,
            name=name,
            queue=options.get("queue", DEFAULT_QUEUE),
            summary=options.get("summary"),
            params=options.get("params"),
            bind=options.get("bind", False),
            shown=options.get("shown"),
            options={k: v for k, v in options.items() if k not in ENTRY_OPTIONS},
        )
        DEFINITIONS.append(definition)
        setattr(func, DEFINITION_ATTRIBUTE, definition)
        return func

    return decorate(function) if function is not None else decorate


def define(
    function: Callable[..., Any],
    *,
    name: str,
    queue: str,
    summary: str | None,
    params: type[BaseModel] | None,
    bind: bool,
    shown: frozenset[str] | None,
    options: Mapping[str, Any],
) -> TaskDefinition:
    """The definition of one task, or `TaskDefinitionError` naming what is wrong."""
    where = f"{function.__module__}: task {name!r}"
    if not NAME_PATTERN.match(name):
        raise TaskDefinitionError(
            f"{where}: a task name is lower-case words joined by _ or . (like billing.charge)"
        )
    text = summary or next(iter((inspect.getdoc(function) or "").splitlines()), "").strip()
    if not text:
        raise TaskDefinitionError(f"{where}: give it a docstring or a summary= for the catalogue")
    model = params or params_from_hints(function, name, bind=bind)
    spec = TaskSpec(name, model, text, queue, shown=shown)
    celery_options = dict(options)
    if "time_limit" in celery_options and "soft_time_limit" not in celery_options:
        # Celery needs soft <= hard, and TASK_SOFT_TIME_LIMIT may be above this task's
        # limit: the task gets SoftTimeLimitExceeded with a tenth of its time left.
        celery_options["soft_time_limit"] = SOFT_SHARE * celery_options["time_limit"]
    return TaskDefinition(spec, function, bind=bind, options=celery_options)


def params_from_hints(function: Callable[..., Any], name: str, *, bind: bool) -> type[TaskParams]:
    """A strict model of the function's parameters: their type hints and defaults."""
    where = f"{function.__module__}: task {name!r}"
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as exc:  # a hint naming something that does not exist
        raise TaskDefinitionError(f"{where}: its type hints cannot be read: {exc}") from exc
    parameters = list(inspect.signature(function).parameters.values())[1 if bind else 0 :]
    fields: dict[str, Any] = {}
    for parameter in parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TaskDefinitionError(
                f"{where}: *{parameter.name} has no schema; name each parameter or give params="
            )
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise TaskDefinitionError(
                f"{where}: {parameter.name} is positional-only; workers pass arguments by name"
            )
        if parameter.name not in hints:
            raise TaskDefinitionError(f"{where}: parameter {parameter.name} has no type hint")
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (hints[parameter.name], default)
    title = "".join(part.title() for part in re.split(r"[._]", name)) + "Params"
    model: type[TaskParams] = create_model(
        title,
        __base__=TaskParams,
        __module__=function.__module__,
        __doc__=f"Arguments of `{name}`.",
        **fields,
    )
    return model


def definition_of(function: Callable[..., Any]) -> TaskDefinition | None:
    """The definition a decorated function carries, or None."""
    found = getattr(function, DEFINITION_ATTRIBUTE, None)
    return found if isinstance(found, TaskDefinition) else None
