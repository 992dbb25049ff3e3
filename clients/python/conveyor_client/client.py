"""`Client` and `AsyncClient`: Conveyor's HTTP API as methods, with one request builder.

Each method builds a `Call` (method, path, body, query); the sync and the async client
only differ in how they send it, so the two cannot drift.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from conveyor_client.errors import TaskFailedError, error_from

#: States after which a task's status no longer changes.
FINAL_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})
#: Longest long-poll the client asks the API for (the API caps it at RESULT_WAIT_MAX).
POLL_SECONDS = 30
#: How a submission is enqueued, beside the task's own arguments (POST /api/v1/tasks).
SUBMIT_OPTIONS = frozenset({"countdown", "eta", "expires", "priority", "queue", "idempotency_key"})


@dataclass(frozen=True)
class Call:
    """One request of the API."""

    method: str
    path: str
    body: Any = None
    params: dict[str, Any] = field(default_factory=dict)


def task_call(name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """A task as the API takes it: name, positional and keyword arguments."""
    return {"task": name, "args": list(args), "kwargs": kwargs}


def submit_call(name: str, args: Sequence[Any], options: dict[str, Any]) -> Call:
    """POST /api/v1/tasks.

    Options are the API's (countdown, eta, expires, priority, queue, idempotency_key);
    everything else is a keyword argument of the task.
    """
    kwargs = {k: v for k, v in options.items() if k not in SUBMIT_OPTIONS}
    chosen = {k: v for k, v in options.items() if k in SUBMIT_OPTIONS}
    body = {**task_call(name, args, kwargs), **chosen}
    return Call("POST", "/api/v1/tasks", body)


def client_options(url: str, api_key: str, timeout: float, extra: dict[str, Any]) -> dict[str, Any]:
    """The httpx client's options: the API's URL, the key on every request."""
    headers = {"Authorization": f"Bearer {api_key}"}
    return {"base_url": url, "headers": headers, "timeout": timeout, **extra}


def request_options(call: Call, timeout: float | None) -> dict[str, Any]:
    """Httpx's `request` arguments for a call (the client's timeout unless given)."""
    return {
        "method": call.method,
        "url": call.path,
        "json": call.body,
        "params": call.params,
        "timeout": httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
    }


def parse(response: httpx.Response) -> Any:
    """The body of a success, or the typed error of a failure."""
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.is_success:
        return body
    raise error_from(response.status_code, body)


def outcome(status: dict[str, Any]) -> Any:
    """A final status's result, or `TaskFailedError`."""
    if status["state"] != "SUCCESS":
        raise TaskFailedError(status)
    return status["result"]


class Client:
    """A synchronous client: `Client(url, api_key).submit("add", 2, 3).wait()`."""

    def __init__(self, url: str, api_key: str, *, timeout: float = 15, **httpx_options: Any):
        self.http = httpx.Client(**client_options(url, api_key, timeout, httpx_options))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def call(self, call: Call, timeout: float | None = None) -> Any:
        """Send one request; its body, or the typed error."""
        return parse(self.http.request(**request_options(call, timeout)))

    def submit(self, name: str, *args: Any, **options: Any) -> TaskHandle:
        """Submit one task; keyword arguments are the task's, or the API's options."""
        return TaskHandle(self, self.call(submit_call(name, args, options))["id"])

    def task(self, task_id: str) -> TaskHandle:
        """A handle on a task submitted before (by id): a workflow's result id too."""
        return TaskHandle(self, task_id)

    def submit_batch(
        self, calls: Sequence[tuple[str, Sequence[Any], dict[str, Any]]], **options: Any
    ) -> list[TaskHandle]:
        """Submit many tasks at once, `(name, args, kwargs)` each; all or none."""
        body = {"tasks": [task_call(*c) for c in calls], **options}
        ids = self.call(Call("POST", "/api/v1/tasks/batch", body))["ids"]
        return [TaskHandle(self, task_id) for task_id in ids]

    def workflow(
        self,
        kind: str,
        steps: Sequence[tuple[str, Sequence[Any], dict[str, Any]]],
        callback: tuple[str, Sequence[Any], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A chain, group or chord: its workflow id, result id and every step's id."""
        body: dict[str, Any] = {"steps": [task_call(*s) for s in steps]}
        if callback is not None:
            body["callback"] = task_call(*callback)
        return dict(self.call(Call("POST", f"/api/v1/workflows/{kind}", body)))

    def send_email(self, **fields: Any) -> TaskHandle:
        """Send one e-mail (to, subject, text or html or template, ...): once per key."""
        return TaskHandle(self, self.call(Call("POST", "/api/v1/emails", fields))["id"])

    def catalog(self) -> list[dict[str, Any]]:
        """Every task the stack serves, with the JSON Schema of its arguments."""
        return list(self.call(Call("GET", "/api/v1/catalog"))["tasks"])

    def dead_letters(self, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """Failed, quarantined and unrunnable tasks, newest first."""
        call = Call("GET", "/api/v1/dead-letters", params={"limit": limit, "offset": offset})
        return dict(self.call(call))

    def replay_dead_letters(self, ids: Sequence[str] | None = None) -> dict[str, Any]:
        """Submit dead letters again as new tasks (None: all of them)."""
        body = {"ids": list(ids)} if ids is not None else None
        return dict(self.call(Call("POST", "/api/v1/dead-letters/replay", body)))

    def dead_letter(self, entry_id: str) -> dict[str, Any]:
        """One dead letter, whole: its message, error and attempts."""
        return dict(self.call(Call("GET", f"/api/v1/dead-letters/{entry_id}")))

    def purge_dead_letters(self) -> dict[str, Any]:
        """Delete every dead letter."""
        return dict(self.call(Call("DELETE", "/api/v1/dead-letters")))

    def workflow_status(self, workflow_id: str) -> dict[str, Any]:
        """A workflow's state, result and steps."""
        return dict(self.call(Call("GET", f"/api/v1/workflows/{workflow_id}")))

    def queues(self) -> list[dict[str, Any]]:
        """Every declared queue: its settings, waiting messages and consumers."""
        return list(self.call(Call("GET", "/api/v1/queues"))["queues"])

    def purge(self, queue: str) -> int:
        """Delete the tasks waiting in a queue (each ends REVOKED); how many there were."""
        return int(self.call(Call("DELETE", f"/api/v1/queues/{queue}"))["purged"])

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest submissions, newest first."""
        return list(
            self.call(Call("GET", "/api/v1/tasks/recent", params={"limit": limit}))["tasks"]
        )


@dataclass(frozen=True)
class TaskHandle:
    """A submitted task: its id, and what can be asked of it."""

    client: Client
    id: str

    def status(self) -> dict[str, Any]:
        """The task's status: state, result or error, progress, times, retries, worker."""
        return dict(self.client.call(Call("GET", f"/api/v1/tasks/{self.id}")))

    def wait(
        self, timeout: float = 60, *, on_status: Callable[[dict[str, Any]], None] | None = None
    ) -> Any:
        """The task's result once it ended (long polls); `TaskFailedError`, or `TimeoutError`.

        `on_status` sees each status polled (its `progress` too): with it, a poll
        returns every second rather than when the task ends.
        """
        status = self.wait_status(timeout, on_status=on_status)
        if status["state"] not in FINAL_STATES:
            raise TimeoutError(f"task {self.id} did not end within {timeout} s")
        return outcome(status)

    def wait_status(
        self, timeout: float = 60, *, on_status: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        """The task's status once it ended, or the last one seen when `timeout` passed."""
        deadline = time.monotonic() + timeout
        longest = 1 if on_status else POLL_SECONDS
        while True:
            wait = max(1, min(longest, int(deadline - time.monotonic())))
            call = Call("GET", f"/api/v1/tasks/{self.id}/result", params={"wait": wait})
            status = dict(self.client.call(call, timeout=wait + 15))
            if on_status is not None:
                on_status(status)
            if status["state"] in FINAL_STATES or time.monotonic() >= deadline:
                return status

    def revoke(self, *, terminate: bool = False) -> dict[str, Any]:
        """Revoke: a waiting task never runs; `terminate` also stops a running one."""
        params = {"terminate": "true"} if terminate else {}
        return dict(self.client.call(Call("DELETE", f"/api/v1/tasks/{self.id}", params=params)))


class AsyncClient:
    """The same API as coroutines: `await AsyncClient(url, key).submit("add", 2, 3)`."""

    def __init__(self, url: str, api_key: str, *, timeout: float = 15, **httpx_options: Any):
        self.http = httpx.AsyncClient(**client_options(url, api_key, timeout, httpx_options))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections."""
        await self.http.aclose()

    async def call(self, call: Call, timeout: float | None = None) -> Any:
        """Send one request; its body, or the typed error."""
        return parse(await self.http.request(**request_options(call, timeout)))

    async def submit(self, name: str, *args: Any, **options: Any) -> AsyncTaskHandle:
        """Submit one task; keyword arguments are the task's, or the API's options."""
        return AsyncTaskHandle(self, (await self.call(submit_call(name, args, options)))["id"])

    async def catalog(self) -> list[dict[str, Any]]:
        """Every task the stack serves, with the JSON Schema of its arguments."""
        return list((await self.call(Call("GET", "/api/v1/catalog")))["tasks"])


@dataclass(frozen=True)
class AsyncTaskHandle:
    """A task submitted through `AsyncClient`."""

    client: AsyncClient
    id: str

    async def status(self) -> dict[str, Any]:
        """The task's status."""
        return dict(await self.client.call(Call("GET", f"/api/v1/tasks/{self.id}")))

    async def wait(self, timeout: float = 60) -> Any:
        """The task's result once it ended; `TaskFailedError`, or `TimeoutError`."""
        async with asyncio.timeout(timeout):
            while True:
                call = Call("GET", f"/api/v1/tasks/{self.id}/result", params={"wait": 5})
                status = await self.client.call(call, timeout=20)
                if status["state"] in FINAL_STATES:
                    return outcome(status)

    async def revoke(self, *, terminate: bool = False) -> dict[str, Any]:
        """Revoke the task."""
        params = {"terminate": "true"} if terminate else {}
        return dict(
            await self.client.call(Call("DELETE", f"/api/v1/tasks/{self.id}", params=params))
        )


def idempotency_key() -> str:
    """A fresh key: pass it as `idempotency_key=` and send again with it after a 503."""
    return str(uuid.uuid4())
