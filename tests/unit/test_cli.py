"""The CLI's argument handling (the commands themselves run against the stack in e2e)."""

import json

import pytest

from conveyor_producer import cli


def test_task_words_become_args_and_kwargs() -> None:
    assert cli.task_call(["add", "2", "y=3.5"]) == {
        "task": "add",
        "args": [2],
        "kwargs": {"y": 3.5},
    }
    assert cli.task_call(["fail", "oops"]) == {"task": "fail", "args": ["oops"], "kwargs": {}}
    assert cli.task_call(["xsum", "[1,2,3]"])["args"] == [[1, 2, 3]]


def test_steps_parse_from_one_string_each() -> None:
    opts = cli.parser().parse_args(["chord", "add 1 1", "add 2 2", "--callback", "xsum"])
    assert [s["task"] for s in opts.steps] == ["add", "add"]
    assert opts.callback == {"task": "xsum", "args": [], "kwargs": {}}


def test_missing_key_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, tmp_path, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVEYOR_API_KEY", raising=False)
    with pytest.raises(SystemExit) as exited:
        cli.main(["queues"])
    assert exited.value.code == cli.EXIT_USAGE
    assert "no API key" in capsys.readouterr().err


def test_unreachable_api_exits_4(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("CONVEYOR_API_KEY", "k")
    with pytest.raises(SystemExit) as exited:
        cli.main(["--url", "http://127.0.0.1:9", "status", "x"])
    assert exited.value.code == cli.EXIT_UNREACHABLE


@pytest.mark.parametrize(
    "argv",
    [
        ["--url", "http://h:1", "--json", "status", "x"],
        ["status", "x", "--url", "http://h:1", "--json"],
    ],
)
def test_common_options_hold_before_or_after_the_command(argv: list[str]) -> None:
    opts = cli.parser().parse_args(argv)
    assert (opts.url, opts.json, opts.key) == ("http://h:1", True, None)


def test_common_options_default_when_absent() -> None:
    opts = cli.parser().parse_args(["status", "x"])
    assert (opts.url, opts.json, opts.key) == (None, False, None)


def test_batch_file_errors_name_the_line(tmp_path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"task": "noop"}) + "\n\n{oops\n")
    with pytest.raises(cli.CliError, match=r"tasks.jsonl:3"):
        cli.read_batch(str(path))


def test_table_aligns_columns(capsys) -> None:
    cli.table(
        [{"name": "default", "length": 3}, {"name": "email", "length": None}], ["name", "length"]
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["NAME     LENGTH", "default  3", "email    -"]
