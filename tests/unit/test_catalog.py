"""The catalogue's argument schemas: what they accept, and the field named when they refuse."""

import pytest

from conveyor_core.catalog import MAX_NUMBER
from conveyor_core.errors import InvalidArgumentsError
from conveyor_core.task_packages import catalog_of
from tests.helpers import selection

#: The default stack's catalogue (demo and e-mail tasks; no test tasks).
DEFAULT = selection()
CATALOG = catalog_of(DEFAULT)


def bind_error(task: str, args: list, kwargs: dict | None = None, piped: bool = False):
    with pytest.raises(InvalidArgumentsError) as caught:
        CATALOG[task].bind(args, kwargs or {}, piped=piped)
    return caught.value


def test_catalogue_lists_the_documented_tasks() -> None:
    assert set(CATALOG) == {
        "add",
        "mul",
        "xsum",
        "noop",
        "sleep",
        "fail",
        "progress",
        "send_email",
    }
    assert CATALOG["add"].celery_name == "conveyor.add"
    assert CATALOG["send_email"].queue == "email"


def test_the_test_tasks_exist_only_when_switched_on() -> None:
    assert {"crash", "tally"}.isdisjoint(CATALOG)
    with_tests = catalog_of(selection(test=True))
    assert set(with_tests) == set(CATALOG) | {"crash", "tally"}


def test_the_demo_tasks_can_be_switched_off() -> None:
    assert set(catalog_of(selection(demo=False))) == {"send_email"}


def test_positional_and_keyword_arguments_bind_to_names() -> None:
    assert CATALOG["add"].bind([2, 3], {}) == {"x": 2, "y": 3}
    assert CATALOG["add"].bind([2], {"y": 3.5}) == {"x": 2, "y": 3.5}
    assert CATALOG["xsum"].bind([[1, 2, 3]], {}) == {"numbers": [1, 2, 3]}
    assert CATALOG["noop"].bind([], {}) == {}


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        ([2, "3"], {}, "args[1]"),
        ([True, 1], {}, "args[0]"),
        ([MAX_NUMBER + 1, 1], {}, "args[0]"),
        ([float("inf"), 1], {}, "args[0]"),
        ([2], {}, "y"),
        ([2, 3, 4], {}, "args[2]"),
        ([2, 3], {"z": 1}, "kwargs.z"),
        ([2], {"x": 1}, "kwargs.x"),
    ],
)
def test_add_refuses_bad_arguments_naming_the_field(args, kwargs, field) -> None:
    assert bind_error("add", args, kwargs).field == field


def test_nested_errors_point_into_the_list() -> None:
    error = bind_error("xsum", [[1, 2, "x"]])
    assert error.field == "args[0][2]"
    assert "must be a number" in str(error)


def test_xsum_limits_the_list_length() -> None:
    assert bind_error("xsum", [list(range(10_001))]).field == "args[0]"


def test_sleep_is_bounded() -> None:
    assert bind_error("sleep", [241]).field == "args[0]"
    assert bind_error("sleep", [-1]).field == "args[0]"


def test_piped_step_leaves_out_the_first_parameter() -> None:
    assert CATALOG["mul"].bind([8], {}, piped=True) == {"y": 8}
    assert CATALOG["xsum"].bind([], {}, piped=True) == {}
    assert bind_error("mul", [], {"x": 1}, piped=True).field == "kwargs.x"
    assert bind_error("mul", ["a"], piped=True).field == "args[0]"


def test_json_schema_is_generated_from_the_same_model() -> None:
    schema = CATALOG["add"].json_schema()
    assert schema["required"] == ["x", "y"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["x"]["type"] == "number"
