"""The CLI's argument handling (the commands themselves run against the stack in e2e)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import click
import pytest
from rich.console import Console

from conveyor_cli import main as cli
from conveyor_cli.output import Output
from conveyor_cli.words import Step, read_batch, task_call


def params(command: click.Command, argv: list[str]) -> dict[str, object]:
    """What a command would be called with (the options it exposes)."""
    with command.make_context(command.name or "", argv, obj=cli.Session()) as ctx:
        return dict(ctx.params)


def test_task_words_become_args_and_kwargs() -> None:
    assert task_call(["add", "2", "y=3.5"]) == {"task": "add", "args": [2], "kwargs": {"y": 3.5}}
    assert task_call(["fail", "oops"]) == {"task": "fail", "args": ["oops"], "kwargs": {}}
    assert task_call(["xsum", "[1,2,3]"])["args"] == [[1, 2, 3]]


def test_wait_takes_an_optional_number_of_seconds() -> None:
    assert params(cli.submit, ["add", "2", "3", "--wait"])["wait"] == cli.DEFAULT_WAIT
    assert params(cli.submit, ["add", "2", "3", "--wait", "10"])["wait"] == 10.0
    assert params(cli.submit, ["add", "2", "3"])["wait"] is None
    # The arguments before it stay the task's, negative numbers too.
    assert params(cli.submit, ["add", "-2", "3", "--wait"])["args"] == ("-2", "3")


def test_steps_parse_from_one_string_each() -> None:
    found = params(cli.chord, ["add 1 1", "add 2 2", "--callback", "xsum"])
    assert [s["task"] for s in found["steps"]] == ["add", "add"]  # type: ignore[attr-defined]
    assert found["callback"] == {"task": "xsum", "args": [], "kwargs": {}}
    with pytest.raises(click.BadParameter, match="a step needs a task name"):
        Step().convert(" ", None, None)


@pytest.mark.parametrize(
    "argv",
    [
        ["--url", "http://127.0.0.1:9", "--key", "k", "status", "x"],
        ["status", "x", "--url", "http://127.0.0.1:9", "--key", "k"],
        ["--key", "k", "status", "--url", "http://127.0.0.1:9", "x"],
    ],
)
def test_common_options_hold_before_or_after_the_command(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CONVEYOR_API_URL", raising=False)
    assert cli.main(argv) == cli.EXIT_UNREACHABLE
    assert "cannot reach the API at http://127.0.0.1:9/" in capsys.readouterr().err


@pytest.fixture
def elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A folder of its own, and none of the CLI's variables in the environment."""
    monkeypatch.chdir(tmp_path)
    for name in ("CONVEYOR_API_KEY", "CONVEYOR_API_URL", "PRODUCER_PORT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_missing_key_is_a_usage_error(elsewhere: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["queues"]) == cli.EXIT_USAGE
    assert "no API key" in capsys.readouterr().err


def test_the_key_comes_from_dotenv_here(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run where .env is (make's folder): its key and port are used; nothing listens there."""
    (elsewhere / ".env").write_text("CONVEYOR_API_KEY=k-from-dotenv\nPRODUCER_PORT=9\n")
    assert cli.main(["queues"]) == cli.EXIT_UNREACHABLE
    assert "cannot reach the API at http://127.0.0.1:9/" in capsys.readouterr().err


def test_unreachable_api_exits_4(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_API_KEY", "k")
    assert cli.main(["--url", "http://127.0.0.1:9", "status", "x"]) == cli.EXIT_UNREACHABLE


def test_a_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["submit"]) == cli.EXIT_USAGE
    assert "Missing argument 'TASK'" in capsys.readouterr().err


def test_batch_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"task": "noop"}) + "\n\n{oops\n")
    with path.open() as stream, pytest.raises(click.UsageError, match=r"tasks.jsonl:3"):
        read_batch(stream, str(path))


def test_tables_for_people_json_for_scripts() -> None:
    rows: list[dict[str, object]] = [
        {"name": "default", "length": 3},
        {"name": "email", "length": None},
    ]
    for as_json, expected in (
        (False, ["NAME     LENGTH", "default  3", "email    -"]),
        (True, [json.dumps({"queues": rows})]),
    ):
        buffer = io.StringIO()
        Output(as_json, Console(file=buffer, width=80)).rows(
            {"queues": rows}, rows, ["name", "length"]
        )
        assert [line.rstrip() for line in buffer.getvalue().splitlines()] == expected


def test_email_options_become_the_api_body(tmp_path: Path) -> None:
    attachment = tmp_path / "report.csv"
    attachment.write_text("a,b\n")
    options = {
        "to": ("a@example.com",), "cc": (), "bcc": ("b@example.com",), "subject": "Hi",
        "template": "welcome", "var": ("name=Ada", "n=2"), "attach": (str(attachment),),
    }  # fmt: skip
    body = cli.email_body(options)
    assert body["to"] == ["a@example.com"] and body["bcc"] == ["b@example.com"]
    assert body["context"] == {"name": "Ada", "n": 2}
    assert body["attachments"][0]["filename"] == "report.csv"
    assert body["attachments"][0]["content_type"] == "text/csv"
    with pytest.raises(click.BadParameter, match="name=value"):
        cli.email_body({"to": ("a@example.com",), "var": ("oops",)})
