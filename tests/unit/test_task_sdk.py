"""The task SDK (`from conveyor import task`) and the discovery of task packages.

Task packages are written to a temporary folder as a team would write them, and loaded
through TASK_PACKAGES; each broken one must be refused naming its module and task.
"""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import Field

from conveyor import TaskDefinitionError, TaskParams, definition_of, task
from conveyor_core.errors import InvalidArgumentsError
from conveyor_core.task_packages import (
    TaskPackageError,
    catalog_of,
    definitions_of,
)
from tests.helpers import selection


def test_the_schema_comes_from_the_type_hints_and_defaults() -> None:
    @task
    def charge(customer: str, cents: Annotated[int, Field(gt=0)], note: str = "") -> str:
        """Charge a customer's card.

        More text that the catalogue leaves out.
        """
        return f"{customer}:{cents}"

    definition = definition_of(charge)
    assert definition is not None
    spec = definition.spec
    assert (spec.name, spec.queue) == ("charge", "default")
    assert spec.summary == "Charge a customer's card."
    schema = spec.json_schema()
    assert schema["required"] == ["customer", "cents"]
    assert schema["properties"]["cents"]["exclusiveMinimum"] == 0
    assert schema["additionalProperties"] is False
    assert spec.bind(["ann", 5], {}) == {"customer": "ann", "cents": 5, "note": ""}
    with pytest.raises(InvalidArgumentsError) as refused:
        spec.bind(["ann", 0], {})
    assert refused.value.field == "args[1]"
    with pytest.raises(InvalidArgumentsError) as refused:
        spec.bind(["ann", "5"], {})  # strict: no string for an int
    assert refused.value.field == "args[1]"
    assert charge("ann", 5) == "ann:5"  # still a plain function


def test_celery_options_are_passed_as_given() -> None:
    @task(
        name="billing.refund",
        queue="email",
        autoretry_for=(TimeoutError,),
        retry_backoff=2,
        retry_backoff_max=60,
        max_retries=7,
        time_limit=30,
        rate_limit="10/s",
    )
    def refund(order: str) -> None:
        """Refund an order."""

    definition = definition_of(refund)
    assert definition is not None
    assert definition.spec.celery_name == "conveyor.billing.refund"
    assert definition.spec.queue == "email"
    assert definition.options == {  # Celery's defaults for the others
        "autoretry_for": (TimeoutError,),
        "retry_backoff": 2,
        "retry_backoff_max": 60,
        "max_retries": 7,
        "time_limit": 30,
        "soft_time_limit": 27.0,  # 90 % of the time limit, where none is given
        "rate_limit": "10/s",
    }


def test_an_unknown_option_is_refused() -> None:
    with pytest.raises(TypeError, match=r"unknown option\(s\): \['retry'\]"):
        task(retry=True)  # type: ignore[call-overload]


def test_bind_leaves_the_task_parameter_out_of_the_schema() -> None:
    @task(bind=True)
    def step(self: Any, count: int) -> int:
        """Count."""
        return count

    definition = definition_of(step)
    assert definition is not None and definition.bind
    assert list(definition.spec.json_schema()["properties"]) == ["count"]


def test_an_explicit_model_replaces_the_hints() -> None:
    class Params(TaskParams):
        size: int = Field(ge=1)

    @task(params=Params)
    def resize(**fields: Any) -> None:
        """Resize."""

    definition = definition_of(resize)
    assert definition is not None
    assert definition.spec.params is Params


def no_hint(x):
    """Has no hint."""


def star_args(*values: int) -> None:
    """Takes *values."""


def positional_only(x: int, /) -> None:
    """Positional only."""


def no_docstring(x: int) -> None:
    pass


@pytest.mark.parametrize(
    ("function", "options", "message"),
    [
        (no_hint, {}, "parameter x has no type hint"),
        (star_args, {}, "*values has no schema"),
        (positional_only, {}, "x is positional-only"),
        (no_docstring, {}, "give it a docstring or a summary="),
        (no_hint, {"name": "Bad-Name"}, "a task name is lower-case words"),
    ],
)
def test_a_task_that_cannot_be_defined_is_refused_naming_it(
    function: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(TaskDefinitionError) as refused:
        task(**options)(function)
    name = options.get("name", function.__name__)
    assert f"{__name__}: task {name!r}" in str(refused.value)
    assert message in str(refused.value)


# ---- task packages -------------------------------------------------------------------


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Write a task package (module source); its unique module name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str) -> str:
        name = f"team_tasks_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        return name

    return write


def test_a_package_named_in_task_packages_is_served_beside_the_built_in_tasks(
    packages: Any,
) -> None:
    module = packages(
        """
        from conveyor import task

        @task(autoretry_for=(ConnectionError,), retry_backoff=True)
        def deliver(url: str) -> int:
            '''Deliver a webhook.'''
            return 200
        """
    )
    catalog = catalog_of(selection(module))
    assert {"add", "send_email", "deliver"} <= set(catalog)
    assert set(catalog_of(selection(module, demo=False))) == {"send_email", "deliver"}
    definitions = definitions_of(selection(module))
    assert definitions["deliver"].module == module


BROKEN = {
    "import": ("import no_such_dependency_anywhere\n", "failed to import: ModuleNotFoundError"),
    "empty": ("X = 1\n", "declares no task"),
    "twice": (
        """
        from conveyor import task

        @task(name="add")
        def mine(x: int) -> int:
            '''Mine.'''
            return x
        """,
        "task 'add' is defined twice: also in conveyor_builtin_tasks.demo",
    ),
    "queue": (
        """
        from conveyor import task

        @task(queue="nowhere")
        def lost() -> None:
            '''Lost.'''
        """,
        "task 'lost' is routed to queue 'nowhere', which is not declared",
    ),
    "schema": (
        """
        from typing import Callable
        from conveyor import task

        @task
        def opaque(callback: Callable[[], None]) -> None:
            '''Opaque.'''
        """,
        "task 'opaque': its arguments cannot be described as JSON Schema",
    ),
    "limit": (
        """
        from conveyor import task

        @task(time_limit=900)
        def long() -> None:
            '''Long.'''
        """,
        "task 'long' has a time limit of 900 s, not shorter than VISIBILITY_TIMEOUT (600 s)",
    ),
    "soft": (
        """
        from conveyor import task

        @task(soft_time_limit=300)
        def slow() -> None:
            '''Slow.'''
        """,
        "task 'slow' has a soft time limit of 300 s, above its time limit of 240 s",
    ),
    "definition": (
        """
        from conveyor import task

        @task
        def untyped(x):
            '''Untyped.'''
        """,
        "task 'untyped': parameter x has no type hint",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_task_package_is_refused_naming_the_module(packages: Any, case: str) -> None:
    source, message = BROKEN[case]
    module = packages(source)
    with pytest.raises(TaskPackageError) as refused:
        definitions_of(selection(module))
    assert module in str(refused.value)
    assert message in str(refused.value)


def test_a_worker_registers_each_task_with_its_route_and_celery_options(
    packages: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor_core.settings import Settings
    from conveyor_worker.tasks import CatalogTask, register_catalog

    module = packages(
        """
        from typing import Any
        from conveyor import task

        @task(autoretry_for=(ConnectionError,), retry_backoff=3, max_retries=4,
              time_limit=50, rate_limit="5/s", bind=True)
        def deliver(self: Any, url: str) -> str:
            '''Deliver a webhook.'''
            return f"{self.name} {url}"
        """
    )
    monkeypatch.setenv("REDIS_PASSWORD", "a-long-enough-password-for-the-check")
    monkeypatch.setenv("TASK_PACKAGES", module)
    registered = register_catalog(Settings())
    deliver = registered["deliver"]
    assert isinstance(deliver, CatalogTask)
    assert deliver.name == "conveyor.deliver"
    assert getattr(deliver, "autoretry_for", None) == (ConnectionError,)
    assert (getattr(deliver, "retry_backoff", None), deliver.max_retries) == (3, 4)
    assert (deliver.time_limit, deliver.rate_limit) == (50, "5/s")
    assert registered["send_email"].name == "conveyor.send_email"
    # Called as the worker calls it: validated, bound, by name.
    assert deliver("https://example.com/hook") == "conveyor.deliver https://example.com/hook"
    with pytest.raises(InvalidArgumentsError):
        deliver(url=5)
