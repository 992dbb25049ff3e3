"""The client's typed errors and request building (pure: the e2e tests use the real API)."""

from __future__ import annotations

import httpx
import pytest

from conveyor_client import (
    BrokerUnavailableError,
    ConveyorError,
    IdempotencyConflictError,
    InvalidArgumentsError,
    InvalidRequestError,
    NotFoundError,
    UnknownTaskError,
)
from conveyor_client.client import parse, submit_call


def answer(status: int, body: object) -> httpx.Response:
    if isinstance(body, str):
        return httpx.Response(status, text=body)
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (422, "invalid_arguments", InvalidArgumentsError),
        (422, "invalid_request", InvalidRequestError),
        (404, "unknown_task", UnknownTaskError),
        (404, "unknown_task_id", NotFoundError),
        (409, "idempotency_conflict", IdempotencyConflictError),
        (503, "broker_unavailable", BrokerUnavailableError),
        (418, "teapot", ConveyorError),
    ],
)
def test_each_error_code_is_its_exception(
    status: int, code: str, kind: type[ConveyorError]
) -> None:
    body = {"error": {"code": code, "message": "args[1]: must be a number", "field": "args[1]"}}
    with pytest.raises(ConveyorError) as raised:
        parse(answer(status, body))
    error = raised.value
    assert type(error) is kind
    assert (error.status, error.code, error.field) == (status, code, "args[1]")


def test_an_answer_not_from_the_api_is_still_an_error() -> None:
    with pytest.raises(BrokerUnavailableError) as raised:
        parse(answer(503, "<html>bad gateway</html>"))
    assert raised.value.code == "http_error" and "bad gateway" in raised.value.message


def test_a_success_is_its_body() -> None:
    assert parse(answer(202, {"id": "x"})) == {"id": "x"}


def test_api_options_and_task_keywords_are_told_apart() -> None:
    call = submit_call("add", (2,), {"y": 3, "countdown": 5, "idempotency_key": "k"})
    assert call.body == {
        "task": "add",
        "args": [2],
        "kwargs": {"y": 3},
        "countdown": 5,
        "idempotency_key": "k",
    }
