"""Finding the tasks: task packages named in settings or installed with an entry point.

A task package is a module whose import runs `@task` decorators (`conveyor_core.task_sdk`).
The producer, the workers and the reconciler load the same packages, so the catalogue
the API validates against is the one the workers run. Packages come from:

- the `conveyor.tasks` entry points of the installed distributions (Conveyor's own
  `demo` and `email`, and any team package installed into the image), the `demo` one
  only while DEMO_TASKS is on;
- TASK_PACKAGES, module names in the settings;
- the test tasks (`crash`, `tally`), only with CONVEYOR_TEST_TASKS.

A package that fails to import, declares no task, defines a name twice, routes to an
undeclared queue or has arguments with no JSON Schema stops the role at start-up
(`conveyor_core.preflight`), with a message naming the module and the task.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points

from conveyor_core.catalog import TaskSpec, known_queues
from conveyor_core.settings import Settings
from conveyor_core.task_sdk import DEFINITIONS, TaskDefinition, TaskDefinitionError

#: The entry-point group a distribution declares its task packages in.
ENTRY_POINT_GROUP = "conveyor.tasks"
#: The entry point of the built-in arithmetic and demo tasks (DEMO_TASKS).
DEMO_ENTRY_POINT = "demo"
#: The test tasks' module (CONVEYOR_TEST_TASKS): never an entry point, never by default.
TEST_TASKS_MODULE = "conveyor_builtin_tasks.testing"


class TaskPackageError(Exception):
    """A task package that cannot be served; the message names the module (and task)."""


@dataclass(frozen=True)
class TaskPackage:
    """A module to import for its tasks, and where its name came from."""

    module: str
    origin: str


@dataclass(frozen=True)
class Selection:
    """What in the settings decides which tasks a process serves (a cache key)."""

    demo_tasks: bool
    test_tasks: bool
    modules: tuple[str, ...]
    visibility_timeout: int
    #: TASK_TIME_LIMIT and TASK_SOFT_TIME_LIMIT: a task's limits where it sets none.
    task_time_limit: int
    task_soft_time_limit: int

    @classmethod
    def of(cls, settings: Settings) -> Selection:
        """The selection these settings make."""
        return cls(
            settings.demo_tasks,
            settings.test_tasks,
            settings.task_modules,
            settings.visibility_timeout,
            settings.task_time_limit,
            settings.task_soft_time_limit,
        )


def task_packages(selection: Selection) -> list[TaskPackage]:
    """The packages a selection loads, in order, each once."""
    found = [
        TaskPackage(point.value, f"entry point {point.name!r}")
        for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name)
        if selection.demo_tasks or point.name != DEMO_ENTRY_POINT
    ]
    found += [TaskPackage(module, "TASK_PACKAGES") for module in selection.modules]
    if selection.test_tasks:
        found.append(TaskPackage(TEST_TASKS_MODULE, "CONVEYOR_TEST_TASKS"))
    unique: dict[str, TaskPackage] = {}
    for package in found:
        unique.setdefault(package.module, package)
    return list(unique.values())


def import_package(package: TaskPackage) -> list[TaskDefinition]:
    """Import a package; the definitions of the tasks in it (and its submodules)."""
    try:
        importlib.import_module(package.module)
    except TaskDefinitionError as exc:
        raise TaskPackageError(f"task package {package.module} ({package.origin}): {exc}") from exc
    except Exception as exc:  # any error of a team's code: report it, naming the module
        raise TaskPackageError(
            f"task package {package.module} ({package.origin}) failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    prefix = package.module + "."
    mine = [d for d in DEFINITIONS if d.module == package.module or d.module.startswith(prefix)]
    if not mine:
        raise TaskPackageError(
            f"task package {package.module} ({package.origin}) declares no task "
            "(no function decorated with conveyor.task)"
        )
    return mine


def check_definition(definition: TaskDefinition, selection: Selection) -> None:
    """Refuse a task that cannot be routed, described or run within the limits."""
    spec = definition.spec
    if spec.queue not in known_queues():
        raise TaskPackageError(
            f"{definition.where} is routed to queue {spec.queue!r}, which is not declared; "
            f"declared: {known_queues()}"
        )
    try:
        spec.json_schema()
    except Exception as exc:  # pydantic's PydanticInvalidForJsonSchema and kin
        raise TaskPackageError(
            f"{definition.where}: its arguments cannot be described as JSON Schema: {exc}"
        ) from exc
    hard = definition.options.get("time_limit", selection.task_time_limit)
    soft = definition.options.get("soft_time_limit", selection.task_soft_time_limit)
    if hard >= selection.visibility_timeout:
        raise TaskPackageError(
            f"{definition.where} has a time limit of {hard} s, not shorter than "
            f"VISIBILITY_TIMEOUT ({selection.visibility_timeout} s): it would run twice"
        )
    if soft > hard:
        # Celery refuses such a task only when a worker runs it (a FAILURE per message).
        raise TaskPackageError(
            f"{definition.where} has a soft time limit of {soft} s, above its time limit of "
            f"{hard} s (TASK_TIME_LIMIT where the task sets none)"
        )


def load_definitions(settings: Settings) -> dict[str, TaskDefinition]:
    """Every task of the packages these settings name, by public name (checked)."""
    return definitions_of(Selection.of(settings))


def definitions_of(selection: Selection) -> dict[str, TaskDefinition]:
    """Every task of the packages a selection names, by public name (checked)."""
    return dict(_load(selection))


@lru_cache(maxsize=8)
def _load(selection: Selection) -> tuple[tuple[str, TaskDefinition], ...]:
    definitions: dict[str, TaskDefinition] = {}
    for package in task_packages(selection):
        for definition in import_package(package):
            earlier = definitions.get(definition.spec.name)
            if earlier is not None and earlier is not definition:
                raise TaskPackageError(
                    f"{definition.where} is defined twice: also in {earlier.module}"
                )
            check_definition(definition, selection)
            definitions[definition.spec.name] = definition
    return tuple(definitions.items())


def load_catalog(settings: Settings) -> dict[str, TaskSpec]:
    """The catalogue these settings serve: each task's spec by public name."""
    return catalog_of(Selection.of(settings))


def catalog_of(selection: Selection) -> dict[str, TaskSpec]:
    """The catalogue a selection serves: each task's spec by public name."""
    return {name: d.spec for name, d in definitions_of(selection).items()}


def lookup(settings: Settings, celery_name: str) -> TaskSpec | None:
    """A served task's spec by its Celery name, or None.

    Celery's router asks this for every message published, so the map is built once per
    selection, not scanned per call.
    """
    return _by_celery_name(Selection.of(settings)).get(celery_name)


@lru_cache(maxsize=8)
def _by_celery_name(selection: Selection) -> dict[str, TaskSpec]:
    return {spec.celery_name: spec for spec in catalog_of(selection).values()}
