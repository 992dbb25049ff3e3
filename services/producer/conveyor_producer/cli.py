"""`conveyor`: the command line for Conveyor's producer API.

The API address and key come from --url/--key, else CONVEYOR_API_URL/CONVEYOR_API_KEY,
else a `.env` in the current folder (CONVEYOR_API_KEY, PRODUCER_PORT). Output is a
human table by default and JSON with --json. Exit codes: 0 done, 1 a task failed or
was revoked, 2 bad usage, 3 the API refused the request, 4 the API could not be reached.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import mimetypes
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TextIO

import httpx

from conveyor_core.env_file import read_env_file

EXIT_TASK_FAILED, EXIT_USAGE, EXIT_API_ERROR, EXIT_UNREACHABLE = 1, 2, 3, 4
BATCH_CHUNK = 5_000


class CliError(Exception):
    """Stop with a message and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# ---- configuration and HTTP ---------------------------------------------------------


def client_from(opts: argparse.Namespace) -> httpx.Client:
    """An HTTP client for the API, configured from options, environment or .env."""
    dotenv = read_env_file(Path(".env"))
    port = os.environ.get("PRODUCER_PORT") or dotenv.get("PRODUCER_PORT") or "8000"
    url = opts.url or os.environ.get("CONVEYOR_API_URL") or f"http://127.0.0.1:{port}"
    key = opts.key or os.environ.get("CONVEYOR_API_KEY") or dotenv.get("CONVEYOR_API_KEY")
    if not key:
        raise CliError("no API key: set CONVEYOR_API_KEY or run where .env is", EXIT_USAGE)
    return httpx.Client(
        base_url=url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=httpx.Timeout(30, connect=5),
    )


def call(client: httpx.Client, method: str, path: str, **kw: Any) -> Any:
    """One API call; errors become CliError with the API's own message."""
    try:
        response = client.request(method, path, **kw)
    except httpx.TransportError as exc:
        raise CliError(
            f"cannot reach the API at {client.base_url}: {exc}", EXIT_UNREACHABLE
        ) from exc
    if response.is_error:
        try:
            error = response.json()["error"]
            where = f" ({error['field']})" if error.get("field") else ""
            message = f"{error['message']}{where}"
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise CliError(f"API error {response.status_code}: {message}", EXIT_API_ERROR)
    return response.json()


# ---- arguments ------------------------------------------------------------------------


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


def step(text: str) -> dict[str, Any]:
    """One workflow step from its words: "add 2 2"."""
    words = text.split()
    if not words:
        raise argparse.ArgumentTypeError("a step needs a task name")
    return task_call(words)


# ---- output -----------------------------------------------------------------------------


def table(rows: list[dict[str, Any]], columns: list[str], out: TextIO | None = None) -> None:
    """Print rows as an aligned text table."""
    out = out or sys.stdout
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    header = "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))
    print(header.rstrip(), file=out)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out)


def _cell(item: Any) -> str:
    if item is None:
        return "-"
    return item if isinstance(item, str) else json.dumps(item)


def show(
    opts: argparse.Namespace,
    data: Any,
    columns: list[str] | None = None,
    rows: list[dict[str, Any]] | None = None,
) -> None:
    """JSON with --json, else a table of `rows` (or of `data` as key/value pairs)."""
    if opts.json:
        json.dump(data, sys.stdout)
        sys.stdout.write("\n")
    elif columns is not None and rows is not None:
        table(rows, columns)
    else:
        table(
            [{"field": k, "value": v} for k, v in data.items() if v is not None], ["field", "value"]
        )


class Meter:
    """A spinner or progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, label: str, total: int | None = None) -> None:
        self.label = label
        self.total = total
        self.live = sys.stderr.isatty()
        self._spin: Iterator[str] = itertools.cycle("|/-\\")

    def update(self, done: int = 0) -> None:
        """Redraw with `done` of `total` (or a spinner when total is unknown)."""
        if not self.live:
            return
        if self.total:
            filled = int(30 * done / self.total)
            bar = "#" * filled + "." * (30 - filled)
            sys.stderr.write(f"\r{self.label} [{bar}] {done}/{self.total}")
        else:
            sys.stderr.write(f"\r{self.label} {next(self._spin)}")
        sys.stderr.flush()

    def close(self) -> None:
        """End the line."""
        if self.live:
            sys.stderr.write("\n")


# ---- commands -------------------------------------------------------------------------


def wait_for_task(client: httpx.Client, task_id: str, timeout: float) -> dict[str, Any]:
    """Long-poll until the task ends or `timeout` passes; show a spinner meanwhile."""
    meter = Meter(f"waiting for {task_id}")
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    try:
        while True:
            remaining = max(deadline - time.monotonic(), 0)
            status = call(
                client,
                "GET",
                f"/api/v1/tasks/{task_id}/result",
                params={"wait": min(remaining, 1.0)},
            )
            meter.update()
            if status.get("ready") or remaining <= 0:
                return status
    finally:
        meter.close()


def wait_for_many(client: httpx.Client, ids: list[str], timeout: float) -> list[dict[str, Any]]:
    """Wait for every id, showing a progress bar."""
    meter = Meter("waiting", total=len(ids))
    deadline = time.monotonic() + timeout
    results: dict[str, dict[str, Any]] = {}
    try:
        while len(results) < len(ids) and time.monotonic() < deadline:
            for task_id in ids:
                if task_id not in results:
                    status = call(client, "GET", f"/api/v1/tasks/{task_id}")
                    if status["ready"]:
                        results[task_id] = status
                    else:
                        break
            meter.update(len(results))
            if len(results) < len(ids):
                time.sleep(0.2)
    finally:
        meter.close()
    return [results.get(i, {"id": i, "state": "PENDING", "ready": False}) for i in ids]


def _status_exit(statuses: Iterable[dict[str, Any]]) -> int:
    return (
        EXIT_TASK_FAILED if any(s.get("state") in {"FAILURE", "REVOKED"} for s in statuses) else 0
    )


def cmd_submit(opts: argparse.Namespace, client: httpx.Client) -> int:
    """Submit one task, optionally waiting for its result."""
    body = task_call([opts.task, *opts.args])
    for option in ("countdown", "eta", "expires", "priority", "queue", "idempotency_key"):
        if getattr(opts, option) is not None:
            body[option] = getattr(opts, option)
    return show_or_wait(opts, client, call(client, "POST", "/api/v1/tasks", json=body))


def show_or_wait(opts: argparse.Namespace, client: httpx.Client, submitted: dict[str, Any]) -> int:
    """Show a submission's id, or with --wait its outcome (exit 1 if it failed)."""
    if not opts.wait:
        show(opts, submitted)
        return 0
    status = wait_for_task(client, submitted["id"], opts.wait)
    show(opts, status)
    return _status_exit([status])


def cmd_status(opts: argparse.Namespace, client: httpx.Client) -> int:
    """Show a task's status."""
    status = call(client, "GET", f"/api/v1/tasks/{opts.id}")
    show(opts, status)
    return _status_exit([status]) if status["ready"] else 0


def cmd_wait(opts: argparse.Namespace, client: httpx.Client) -> int:
    """Wait for a task to end and show it."""
    status = wait_for_task(client, opts.id, opts.timeout)
    show(opts, status)
    return _status_exit([status])


def cmd_revoke(opts: argparse.Namespace, client: httpx.Client) -> int:
    """Revoke a task."""
    show(
        opts,
        call(
            client,
            "DELETE",
            f"/api/v1/tasks/{opts.id}",
            params={"terminate": str(opts.terminate).lower()},
        ),
    )
    return 0


def cmd_workflow(opts: argparse.Namespace, client: httpx.Client) -> int:
    """Submit a chain, group or chord, optionally waiting for it."""
    body: dict[str, Any] = {"steps": opts.steps}
    if opts.command == "chord":
        body["callback"] = opts.callback
    submitted = call(client, "POST", f"/api/v1/workflows/{opts.command}", json=body)
    if not opts.wait:
        show(opts, submitted)
        return 0
    meter = Meter(f"{opts.command} {submitted['workflow_id']}")
    deadline = time.monotonic() + opts.wait
    try:
        while True:
            status = call(client, "GET", f"/api/v1/workflows/{submitted['workflow_id']}")
            meter.update()
            if status["state"] in {"SUCCESS", "FAILURE"} or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    finally:
        meter.close()
    if opts.json:
        show(opts, status)
    else:
        table(status["steps"], ["id", "task", "state", "result"])
        print(f"{opts.command} {status['state']}: {_cell(status['result'])}")
    return 0 if status["state"] == "SUCCESS" else EXIT_TASK_FAILED


def read_batch(path: str) -> list[dict[str, Any]]:
    """Tasks from a JSON-lines file ('-' for stdin), one {"task", "args", "kwargs"} a line."""
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    with stream:
        lines = [(n, line) for n, line in enumerate(stream, 1) if line.strip()]
    tasks = []
    for number, line in lines:
        try:
            tasks.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise CliError(f"{path}:{number}: not JSON: {exc.msg}", EXIT_USAGE) from exc
    return tasks


def cmd_batch(opts: argparse.Namespace, client: httpx.Client) -> int:
    """Submit tasks from a JSON-lines file in chunks, optionally waiting."""
    tasks = read_batch(opts.file)
    meter = Meter("submitting", total=len(tasks))
    ids: list[str] = []
    try:
        for start in range(0, len(tasks), BATCH_CHUNK):
            chunk = tasks[start : start + BATCH_CHUNK]
            ids += call(client, "POST", "/api/v1/tasks/batch", json={"tasks": chunk})["ids"]
            meter.update(len(ids))
    finally:
        meter.close()
    if not opts.wait:
        show(opts, {"ids": ids}, ["id"], [{"id": i} for i in ids])
        return 0
    statuses = wait_for_many(client, ids, opts.wait)
    show(opts, statuses, ["id", "task", "state", "result"], statuses)
    return _status_exit(statuses)


def email_body(opts: argparse.Namespace) -> dict[str, Any]:
    """The body of POST /api/v1/emails from the `email` command's options."""
    body: dict[str, Any] = {"to": opts.to}
    for option in ("cc", "bcc", "reply_to", "subject", "text", "template", "idempotency_key"):
        if getattr(opts, option):
            body[option] = getattr(opts, option)
    for option, field in (("text_file", "text"), ("html_file", "html")):
        if getattr(opts, option):
            body[field] = _read_text(getattr(opts, option))
    if opts.context:
        try:
            body["context"] = json.loads(opts.context)
        except json.JSONDecodeError as exc:
            raise CliError(f"--context is not JSON: {exc.msg}", EXIT_USAGE) from exc
    for pair in opts.var:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise CliError(f"--var takes name=value, got {pair!r}", EXIT_USAGE)
        body.setdefault("context", {})[name] = value(raw)
    if opts.attach:
        body["attachments"] = [_attachment(path) for path in opts.attach]
    return body


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from exc


def _attachment(path: str) -> dict[str, str]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from exc
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return {
        "filename": Path(path).name,
        "content_type": content_type,
        "content_base64": base64.b64encode(data).decode(),
    }


def cmd_email(opts: argparse.Namespace, client: httpx.Client) -> int:
    """Send one e-mail, optionally waiting until the worker sent it."""
    return show_or_wait(opts, client, call(client, "POST", "/api/v1/emails", json=email_body(opts)))


def cmd_queues(opts: argparse.Namespace, client: httpx.Client) -> int:
    """Show queue lengths and consumers."""
    data = call(client, "GET", "/api/v1/queues")
    rows = [{**q, "consumers": ", ".join(q["consumers"]) or "-"} for q in data["queues"]]
    show(opts, data, ["name", "length", "consumers"], rows)
    return 0


def cmd_catalog(opts: argparse.Namespace, client: httpx.Client) -> int:
    """Show the task catalogue."""
    data = call(client, "GET", "/api/v1/catalog")
    rows = [{**t, "arguments": " ".join(t["positional"]) or "-"} for t in data["tasks"]]
    show(opts, data, ["name", "queue", "arguments", "summary"], rows)
    return 0


def cmd_recent(opts: argparse.Namespace, client: httpx.Client) -> int:
    """Show the newest submissions."""
    data = call(client, "GET", "/api/v1/tasks/recent", params={"limit": opts.limit})
    show(opts, data, ["id", "task", "submitted_at"], data["tasks"])
    return 0


def cmd_dlq(opts: argparse.Namespace, client: httpx.Client) -> int:
    """List, show, replay or purge dead letters."""
    if opts.action == "list":
        data = call(client, "GET", "/api/v1/dead-letters", params={"limit": opts.limit})
        rows = [
            {**e, "task": e["task"] or "-", "error": (e["error"] or "")[:60]}
            for e in data["entries"]
        ]
        show(opts, data, ["id", "reason", "task", "attempts", "error"], rows)
        if not opts.json:
            print(f"{data['count']} dead letter(s)")
        return 0
    if opts.action == "show":
        if len(opts.ids) != 1:
            raise CliError("dlq show takes one id", EXIT_USAGE)
        show(opts, call(client, "GET", f"/api/v1/dead-letters/{opts.ids[0]}"))
        return 0
    if opts.action == "replay":
        body = {"ids": opts.ids} if opts.ids else {}
        data = call(client, "POST", "/api/v1/dead-letters/replay", json=body)
        rows = [{"id": old, "outcome": f"new task {new}"} for old, new in data["replayed"].items()]
        rows += [{"id": old, "outcome": f"skipped: {why}"} for old, why in data["skipped"].items()]
        show(opts, data, ["id", "outcome"], rows)
        return 0 if not data["skipped"] else EXIT_API_ERROR
    data = call(client, "DELETE", "/api/v1/dead-letters")
    show(opts, data)
    return 0


def cmd_purge(opts: argparse.Namespace, client: httpx.Client) -> int:
    """Delete the tasks waiting in one queue, or in every queue."""
    names = (
        [opts.queue]
        if opts.queue
        else [q["name"] for q in call(client, "GET", "/api/v1/queues")["queues"]]
    )
    rows = [{"queue": name, **call(client, "DELETE", f"/api/v1/queues/{name}")} for name in names]
    show(opts, {"queues": rows}, ["queue", "purged"], rows)
    return 0


# ---- parser -------------------------------------------------------------------------


def common_options(default: Any = None) -> argparse.ArgumentParser:
    """--json, --url and --key, accepted before or after the command."""
    common = argparse.ArgumentParser(add_help=False, argument_default=default)
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common.add_argument("--url", help="API base URL (default: CONVEYOR_API_URL or .env)")
    common.add_argument("--key", help="API key (default: CONVEYOR_API_KEY or .env)")
    return common


def parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    root = argparse.ArgumentParser(
        prog="conveyor", description=__doc__.splitlines()[0], parents=[common_options()]
    )
    root.set_defaults(json=False, url=None, key=None)
    # Sub-commands take the same options, but must not reset one given before the command.
    common = common_options(default=argparse.SUPPRESS)
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    submit = add("submit", cmd_submit, "enqueue a task: conveyor submit add 2 3 [--wait 10]")
    submit.add_argument("task")
    submit.add_argument("args", nargs="*", help="arguments; name=value for keywords")
    submit.add_argument("--wait", type=float, default=0, help="seconds to wait for the result")
    submit.add_argument("--countdown", type=float)
    submit.add_argument("--eta", help="ISO time with zone, e.g. 2030-01-01T00:00:00Z")
    submit.add_argument("--expires", type=float)
    submit.add_argument("--priority", type=int)
    submit.add_argument("--queue")
    submit.add_argument("--idempotency-key", dest="idempotency_key")
    add("status", cmd_status, "show a task's state and result").add_argument("id")
    wait = add("wait", cmd_wait, "wait for a task to end")
    wait.add_argument("id")
    wait.add_argument("--timeout", type=float, default=60)
    revoke = add("revoke", cmd_revoke, "revoke a task")
    revoke.add_argument("id")
    revoke.add_argument("--terminate", action="store_true", help="also stop it if running")
    for kind, text in (
        ("chain", "steps in order: conveyor chain 'add 2 2' 'mul 8'"),
        ("group", "steps in parallel: conveyor group 'add 1 1' 'add 2 2'"),
        ("chord", "steps in parallel, then --callback with their results"),
    ):
        workflow = add(kind, cmd_workflow, text)
        workflow.add_argument("steps", nargs="+", type=step)
        workflow.add_argument("--wait", type=float, default=0)
        if kind == "chord":
            workflow.add_argument("--callback", type=step, required=True)
    batch = add("batch", cmd_batch, "submit tasks from a JSON-lines file ('-' for stdin)")
    batch.add_argument("file")
    batch.add_argument("--wait", type=float, default=0)
    email = add("email", cmd_email, "send an e-mail: conveyor email --to a@example.com ...")
    email.add_argument("--to", action="append", required=True, help="recipient (repeatable)")
    email.add_argument("--cc", action="append", default=[])
    email.add_argument("--bcc", action="append", default=[])
    email.add_argument("--reply-to", dest="reply_to")
    email.add_argument("--subject")
    email.add_argument("--text", help="the plain-text body")
    email.add_argument("--text-file", dest="text_file", help="read the text body from a file")
    email.add_argument("--html-file", dest="html_file", help="read an HTML body from a file")
    email.add_argument("--template", help="a template name (see docs/email.md)")
    email.add_argument("--context", help="the template's context as a JSON object")
    email.add_argument("--var", action="append", default=[], help="one context value: name=value")
    email.add_argument("--attach", action="append", default=[], help="attach a file (repeatable)")
    email.add_argument("--idempotency-key", dest="idempotency_key")
    email.add_argument("--wait", type=float, default=0, help="seconds to wait until it is sent")
    add("queues", cmd_queues, "queue lengths and consumers")
    add("catalog", cmd_catalog, "the tasks workers run, with their arguments")
    recent = add("recent", cmd_recent, "the newest submissions")
    recent.add_argument("--limit", type=int, default=20)
    purge = add("purge", cmd_purge, "delete waiting tasks (they are marked REVOKED)")
    purge.add_argument("queue", nargs="?", help="one queue (default: all)")
    dlq = add("dlq", cmd_dlq, "dead letters: conveyor dlq list|show ID|replay [ID...]|purge")
    dlq.add_argument("action", choices=["list", "show", "replay", "purge"])
    dlq.add_argument("ids", nargs="*", help="entry ids (replay: none means all)")
    dlq.add_argument("--limit", type=int, default=50)
    return root


def fail(message: str, code: int) -> NoReturn:
    """Print an error and exit."""
    print(f"conveyor: {message}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    opts = parser().parse_args(argv)
    try:
        with client_from(opts) as client:
            return int(opts.handler(opts, client))
    except CliError as exc:
        fail(str(exc), exc.code)


if __name__ == "__main__":
    sys.exit(main())
