"""`conveyor`: the command line for Conveyor's API, on the Python client (Click and rich).

The API address and key come from --url/--key, else CONVEYOR_API_URL/CONVEYOR_API_KEY,
else a `.env` in the current folder (CONVEYOR_API_KEY, PRODUCER_PORT). Output is a
table for people, JSON with --json. Exit codes: 0 done, 1 a task failed or was revoked,
2 bad usage, 3 the API refused the request, 4 the API could not be reached.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import sys
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
import httpx
from dotenv import dotenv_values

from conveyor_cli.output import Output, cell
from conveyor_cli.words import Step, read_batch, task_call, value
from conveyor_client import Client, ConveyorError
from conveyor_client.client import FINAL_STATES, SUBMIT_OPTIONS, Call

EXIT_TASK_FAILED, EXIT_USAGE, EXIT_API_ERROR, EXIT_UNREACHABLE = 1, 2, 3, 4
#: Seconds `--wait` waits when given without a number.
DEFAULT_WAIT = 60.0
#: Tasks per request of `batch` (the API takes up to MAX_BATCH_TASKS).
BATCH_CHUNK = 5_000

F = TypeVar("F", bound=Callable[..., Any])


class Session:
    """The options every command shares, and the client and output made from them."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.key: str | None = None
        self.as_json = False
        self._client: Client | None = None

    @cached_property
    def out(self) -> Output:
        """Where results go (made once the options are read, in the command)."""
        return Output(self.as_json)

    def client(self) -> Client:
        """The API client: --url/--key, else the environment, else .env here."""
        if self._client is None:
            dotenv = dotenv_values(".env", interpolate=False) if Path(".env").is_file() else {}
            port = os.environ.get("PRODUCER_PORT") or dotenv.get("PRODUCER_PORT") or "8000"
            url = self.url or os.environ.get("CONVEYOR_API_URL") or f"http://127.0.0.1:{port}"
            key = self.key or os.environ.get("CONVEYOR_API_KEY") or dotenv.get("CONVEYOR_API_KEY")
            if not key:
                raise click.UsageError("no API key: set CONVEYOR_API_KEY or run where .env is")
            self._client = Client(url, key, timeout=30)
        return self._client

    def close(self) -> None:
        """Close the client's connections."""
        if self._client is not None:
            self._client.close()


def _remember(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, _: click.Parameter, given: Any) -> None:
        # Given before or after the command: whichever is set wins, none resets another.
        if given:
            setattr(ctx.ensure_object(Session), name, given)

    return store


def common(command: F) -> F:
    """--json, --url and --key, accepted before or after the command's name."""
    options = (
        click.option("--json", "as_json", is_flag=True, expose_value=False,
                     callback=_remember("as_json"), help="Print JSON instead of a table."),
        click.option("--url", expose_value=False, callback=_remember("url"),
                     help="API base URL (default: CONVEYOR_API_URL, or .env's PRODUCER_PORT)."),
        click.option("--key", expose_value=False, callback=_remember("key"),
                     help="API key (default: CONVEYOR_API_KEY, or .env's)."),
    )  # fmt: skip
    for option in options:
        command = option(command)
    return command


def wait_option(what: str) -> Callable[[F], F]:
    """--wait [SECONDS]: without a number, DEFAULT_WAIT seconds."""
    return click.option(
        "--wait",
        type=float,
        is_flag=False,
        flag_value=DEFAULT_WAIT,
        default=None,
        metavar="[SECONDS]",
        help=f"Wait for {what}, up to SECONDS (default {DEFAULT_WAIT:.0f} when no number).",
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@common
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Conveyor from the command line: submit tasks, wait for them, look at the queues."""
    session = ctx.ensure_object(Session)
    ctx.call_on_close(session.close)


pass_session = click.make_pass_decorator(Session, ensure=True)


# ---- tasks --------------------------------------------------------------------------------


def _ended_badly(statuses: Sequence[dict[str, Any]]) -> int:
    failed = any(status.get("state") in {"FAILURE", "REVOKED"} for status in statuses)
    return EXIT_TASK_FAILED if failed else 0


def wait_for(session: Session, task_id: str, seconds: float) -> dict[str, Any]:
    """The task's final status, or the last one seen after `seconds`.

    Meanwhile a progress bar on stderr, fed by the task's own progress reports.
    """
    with session.out.progress(f"waiting for {task_id}") as advance:

        def shown(status: dict[str, Any]) -> None:
            progress = status.get("progress") or {}
            advance(
                completed=progress.get("current", 0),
                total=progress.get("total") or None,
                description=progress.get("message") or f"{task_id}: {status['state']}",
            )

        return session.client().task(task_id).wait_status(seconds, on_status=shown)


def show_or_wait(session: Session, submitted: dict[str, Any], wait: float | None) -> int:
    """A submission's answer, or with --wait the task's outcome (exit 1 if it failed)."""
    if wait is None:
        session.out.fields(submitted)
        return 0
    status = wait_for(session, submitted["id"], wait)
    session.out.fields(status)
    return _ended_badly([status])


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("task")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@wait_option("the result")
@click.option("--countdown", type=float, help="Seconds to wait before running it.")
@click.option("--eta", help="When to run it: ISO time with zone, e.g. 2030-01-01T00:00:00Z.")
@click.option("--expires", type=float, help="Seconds after which it is not run any more.")
@click.option("--priority", type=int, help="0 (first) to 9.")
@click.option("--queue", help="A declared queue instead of the task's own.")
@click.option("--idempotency-key", help="The same key again returns the first submission.")
@common
@pass_session
def submit(
    session: Session, /, task: str, args: tuple[str, ...], wait: float | None, **options: Any
) -> int:
    """Enqueue a task: conveyor submit add 2 3 [--wait [SECONDS]] (name=value: keyword)."""
    body = task_call([task, *args])
    body.update({k: v for k, v in options.items() if k in SUBMIT_OPTIONS and v is not None})
    return show_or_wait(session, session.client().call(Call("POST", "/api/v1/tasks", body)), wait)


@cli.command()
@click.argument("task_id", metavar="ID")
@common
@pass_session
def status(session: Session, task_id: str) -> int:
    """Show a task's state, result or error, and progress."""
    found = session.client().task(task_id).status()
    session.out.fields(found)
    return _ended_badly([found]) if found["ready"] else 0


@cli.command()
@click.argument("task_id", metavar="ID")
@click.option("--timeout", type=float, default=DEFAULT_WAIT, show_default=True)
@common
@pass_session
def wait(session: Session, task_id: str, timeout: float) -> int:
    """Wait for a task to end and show it (exit 1 if it failed or was revoked)."""
    ended = wait_for(session, task_id, timeout)
    session.out.fields(ended)
    return _ended_badly([ended])


@cli.command()
@click.argument("task_id", metavar="ID")
@click.option("--terminate", is_flag=True, help="Also stop it if it is running.")
@common
@pass_session
def revoke(session: Session, task_id: str, terminate: bool) -> int:
    """Revoke a task: a waiting one never runs."""
    session.out.fields(session.client().task(task_id).revoke(terminate=terminate))
    return 0


# ---- workflows and batches ------------------------------------------------------------------


def _workflow(kind: str, steps: Sequence[dict[str, Any]], callback: Any, wait: float | None,
              session: Session) -> int:  # fmt: skip
    body: dict[str, Any] = {"steps": list(steps)}
    if callback is not None:
        body["callback"] = callback
    submitted = session.client().call(Call("POST", f"/api/v1/workflows/{kind}", body))
    if wait is None:
        session.out.fields(submitted)
        return 0
    deadline = time.monotonic() + wait
    with session.out.progress(f"{kind} {submitted['workflow_id']}", total=len(steps)) as advance:
        while True:
            found = session.client().workflow_status(submitted["workflow_id"])
            advance(completed=sum(s["state"] in FINAL_STATES for s in found["steps"]))
            if found["state"] in {"SUCCESS", "FAILURE"} or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    if session.as_json:
        session.out.json(found)
    else:
        session.out.rows(found, found["steps"], ["id", "task", "state", "result"])
        session.out.note(f"{kind} {found['state']}: {cell(found['result'])}")
    return 0 if found["state"] == "SUCCESS" else EXIT_TASK_FAILED


@cli.command()
@click.argument("steps", nargs=-1, required=True, type=Step())
@wait_option("the last step")
@common
@pass_session
def chain(session: Session, steps: tuple[dict[str, Any], ...], wait: float | None) -> int:
    """Steps in order, each given the previous one's result: conveyor chain 'add 2 2' 'mul 8'."""
    return _workflow("chain", steps, None, wait, session)


@cli.command()
@click.argument("steps", nargs=-1, required=True, type=Step())
@wait_option("every step")
@common
@pass_session
def group(session: Session, steps: tuple[dict[str, Any], ...], wait: float | None) -> int:
    """Steps in parallel: conveyor group 'add 1 1' 'add 2 2'."""
    return _workflow("group", steps, None, wait, session)


@cli.command()
@click.argument("steps", nargs=-1, required=True, type=Step())
@click.option("--callback", required=True, type=Step(), help="The step given every result.")
@wait_option("the callback")
@common
@pass_session
def chord(
    session: Session, steps: tuple[dict[str, Any], ...], callback: Any, wait: float | None
) -> int:
    """Steps in parallel, then --callback with their results."""
    return _workflow("chord", steps, callback, wait, session)


def _wait_for_many(session: Session, ids: list[str], seconds: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    ended: dict[str, dict[str, Any]] = {}
    with session.out.progress("waiting", total=len(ids)) as advance:
        while len(ended) < len(ids) and time.monotonic() < deadline:
            for task_id in (i for i in ids if i not in ended):
                found = session.client().task(task_id).status()
                if not found["ready"]:
                    break
                ended[task_id] = found
            advance(completed=len(ended))
            if len(ended) < len(ids):
                time.sleep(0.2)
    return [ended.get(i, {"id": i, "state": "PENDING", "ready": False}) for i in ids]


@cli.command()
@click.argument("source", metavar="FILE", type=click.File("r", encoding="utf-8"))
@wait_option("every task")
@common
@pass_session
def batch(session: Session, source: TextIO, wait: float | None) -> int:
    """Submit tasks from a JSON-lines file ('-' for stdin), one {"task", "args"} a line."""
    tasks = read_batch(source, source.name)
    ids: list[str] = []
    with session.out.progress("submitting", total=len(tasks)) as advance:
        for start in range(0, len(tasks), BATCH_CHUNK):
            chunk = tasks[start : start + BATCH_CHUNK]
            ids += session.client().call(Call("POST", "/api/v1/tasks/batch", {"tasks": chunk}))[
                "ids"
            ]
            advance(completed=len(ids))
    if wait is None:
        session.out.rows({"ids": ids}, [{"id": i} for i in ids], ["id"])
        return 0
    statuses = _wait_for_many(session, ids, wait)
    session.out.rows(statuses, statuses, ["id", "task", "state", "result"])
    return _ended_badly(statuses)


# ---- e-mail ---------------------------------------------------------------------------------


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise click.UsageError(f"cannot read {path}: {exc.strerror}") from exc


def _attachment(path: str) -> dict[str, str]:
    return {
        "filename": Path(path).name,
        "content_type": mimetypes.guess_type(path)[0] or "application/octet-stream",
        "content_base64": base64.b64encode(_read(path)).decode(),
    }


def email_body(options: dict[str, Any]) -> dict[str, Any]:
    """The body of POST /api/v1/emails from the `email` command's options."""
    body: dict[str, Any] = {"to": list(options["to"])}
    for name in ("cc", "bcc", "reply_to", "subject", "text", "template", "idempotency_key"):
        if options.get(name):
            body[name] = list(options[name]) if name in {"cc", "bcc"} else options[name]
    for name, field in (("text_file", "text"), ("html_file", "html")):
        if options.get(name):
            body[field] = _read(options[name]).decode("utf-8")
    if options.get("context"):
        try:
            body["context"] = json.loads(options["context"])
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc.msg}", param_hint="--context") from exc
    for pair in options.get("var") or ():
        name, sep, raw = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"takes name=value, got {pair!r}", param_hint="--var")
        body.setdefault("context", {})[name] = value(raw)
    if options.get("attach"):
        body["attachments"] = [_attachment(path) for path in options["attach"]]
    return body


@cli.command()
@click.option("--to", multiple=True, required=True, help="A recipient (repeatable).")
@click.option("--cc", multiple=True)
@click.option("--bcc", multiple=True)
@click.option("--reply-to")
@click.option("--subject")
@click.option("--text", help="The plain-text body.")
@click.option("--text-file", help="Read the text body from a file.")
@click.option("--html-file", help="Read an HTML body from a file.")
@click.option("--template", help="A template name (docs/email.md).")
@click.option("--context", help="The template's context as a JSON object.")
@click.option("--var", multiple=True, help="One context value: name=value (repeatable).")
@click.option("--attach", multiple=True, help="Attach a file (repeatable).")
@click.option("--idempotency-key")
@wait_option("the e-mail to be sent")
@common
@pass_session
def email(session: Session, /, wait: float | None, **options: Any) -> int:
    """Send an e-mail: conveyor email --to a@example.com --subject Hi --text Hello."""
    submitted = session.client().call(Call("POST", "/api/v1/emails", email_body(options)))
    return show_or_wait(session, submitted, wait)


# ---- the stack ------------------------------------------------------------------------------


@cli.command()
@common
@pass_session
def queues(session: Session) -> int:
    """Each declared queue: its workers' settings, waiting tasks and consumers."""
    found = session.client().queues()
    rows = [{**q, "consumers": ", ".join(q["consumers"]) or "-"} for q in found]
    columns = ["name", "length", "consumers", "service", "pool", "concurrency"]
    session.out.rows({"queues": found}, rows, columns)
    return 0


@cli.command()
@common
@pass_session
def catalog(session: Session) -> int:
    """The tasks the workers run, with their arguments."""
    tasks = session.client().catalog()
    rows = [{**t, "arguments": " ".join(t["positional"]) or "-"} for t in tasks]
    session.out.rows({"tasks": tasks}, rows, ["name", "queue", "arguments", "summary"])
    return 0


@cli.command()
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@common
@pass_session
def recent(session: Session, limit: int) -> int:
    """The newest submissions."""
    tasks = session.client().recent(limit)
    session.out.rows({"tasks": tasks}, tasks, ["id", "task", "submitted_at"])
    return 0


@cli.command()
@click.argument("queue", required=False)
@common
@pass_session
def purge(session: Session, queue: str | None) -> int:
    """Delete the tasks waiting in QUEUE, or in every queue (they end REVOKED)."""
    client = session.client()
    names = [queue] if queue else [q["name"] for q in client.queues()]
    rows = [{"queue": name, "purged": client.purge(name)} for name in names]
    session.out.rows({"queues": rows}, rows, ["queue", "purged"])
    return 0


@cli.command()
@click.argument("action", type=click.Choice(["list", "show", "replay", "purge"]))
@click.argument("ids", nargs=-1)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@common
@pass_session
def dlq(session: Session, action: str, ids: tuple[str, ...], limit: int) -> int:
    """Dead letters: conveyor dlq list | show ID | replay [ID...] | purge."""
    client = session.client()
    if action == "list":
        found = client.dead_letters(limit=limit)
        rows = [
            {**e, "task": e["task"] or "-", "error": (e["error"] or "")[:60]}
            for e in found["entries"]
        ]
        session.out.rows(found, rows, ["id", "reason", "task", "attempts", "error"])
        session.out.note(f"{found['count']} dead letter(s)")
    elif action == "show":
        if len(ids) != 1:
            raise click.UsageError("dlq show takes one id")
        session.out.fields(client.dead_letter(ids[0]))
    elif action == "replay":
        done = client.replay_dead_letters(list(ids) if ids else None)
        rows = [{"id": old, "outcome": f"new task {new}"} for old, new in done["replayed"].items()]
        rows += [{"id": old, "outcome": f"skipped: {why}"} for old, why in done["skipped"].items()]
        session.out.rows(done, rows, ["id", "outcome"])
        return EXIT_API_ERROR if done["skipped"] else 0
    else:
        session.out.fields(client.purge_dead_letters())
    return 0


# ---- running it -----------------------------------------------------------------------------


def _api_message(error: ConveyorError) -> str:
    where = f" ({error.field})" if error.field else ""
    return f"API error {error.status}: {error.message}{where}"


def _where(exc: httpx.TransportError) -> str:
    try:
        return str(exc.request.url.copy_with(path="/", query=None))
    except RuntimeError:  # an error raised before any request was made
        return "?"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    try:
        code = cli.main(args=argv, prog_name="conveyor", standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help
        return int(exc.exit_code)
    except click.ClickException as exc:  # usage errors: exit 2, Click's own message
        exc.show()
        return EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except click.exceptions.Abort:
        print("conveyor: aborted", file=sys.stderr)
        return 130
    except ConveyorError as exc:
        print(f"conveyor: {_api_message(exc)}", file=sys.stderr)
        return EXIT_API_ERROR
    except httpx.TransportError as exc:
        print(f"conveyor: cannot reach the API at {_where(exc)}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
