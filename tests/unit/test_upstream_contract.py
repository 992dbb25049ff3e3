"""Contract: the private Celery and kombu names conveyor_core.celery_internals uses are there.

One test per hook: the name exists, its signature is what Conveyor calls or overrides,
and the upstream code still reaches it the way the hook's docstring says. A Celery or
kombu release that moves one fails here, before anything is deployed; the integration
twin (tests/integration/test_celery_internals.py) checks each is reached by a real worker.
"""

from __future__ import annotations

import inspect
import re
import threading
import tomllib
from collections import OrderedDict
from importlib.metadata import version
from types import SimpleNamespace
from typing import Any

import celery.app.autoretry
import celery.app.base
import celery.app.task
import celery.backends.base
import celery.backends.redis
import celery.events.dispatcher
import celery.worker.consumer.consumer
import celery.worker.consumer.events
import celery.worker.control
import celery.worker.pidbox
import celery.worker.worker
import kombu.transport.redis
import kombu.transport.virtual.base as virtual_base
import kombu.utils
import pytest

from conveyor_core import celery_internals as fence
from conveyor_core.result_store import ConveyorRedisBackend
from conveyor_producer.results import PublishOnlyRedisBackend
from conveyor_worker.consumer import WorkerConsumer
from conveyor_worker.remote_control import DISABLED
from tests.helpers import ROOT

# Typed Any: the private names are what these tests look up, and the stubs leave them out.
VIRTUAL: Any = virtual_base
REDIS_CHANNEL: Any = kombu.transport.redis.Channel
REDIS_QOS: Any = kombu.transport.redis.QoS
CONSUMER: Any = celery.worker.consumer.consumer.Consumer
KEY_VALUE_BACKEND: Any = celery.backends.base.BaseKeyValueStoreBackend


def parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def calls(function: Any, name: str) -> bool:
    """Whether the source of `function` calls or passes on `name` (attribute or global)."""
    source = inspect.getsource(function).split(":", 1)[1]  # without the def line
    return re.search(rf"(?<!\w){re.escape(name)}\b", source) is not None


# ---- the pin -----------------------------------------------------------------------


@pytest.mark.parametrize("package", ["celery", "kombu"])
def test_installed_version_is_the_pinned_minor(package: str) -> None:
    major, minor = (int(part) for part in version(package).split(".")[:2])
    assert (major, minor) == fence.PINNED_MINOR[package], (
        f"{package} {version(package)} is installed; the hooks in conveyor_core."
        "celery_internals were checked against "
        f"{'.'.join(map(str, fence.PINNED_MINOR[package]))} (re-check them, then the pin)"
    )


@pytest.mark.parametrize("package", ["celery", "kombu"])
def test_pyproject_and_locks_hold_the_pinned_minor(package: str) -> None:
    major, minor = fence.PINNED_MINOR[package]
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in dependencies if re.match(rf"{package}\b", d))
    assert spec.endswith(f">={major}.{minor}.0,<{major}.{minor + 1}"), spec
    for lock in ("requirements.lock", "requirements-dev.lock"):
        pinned = re.search(rf"^{package}==([^\s\\\\]+)", (ROOT / lock).read_text(), re.MULTILINE)
        assert pinned and pinned.group(1).startswith(f"{major}.{minor}."), (lock, pinned)


# ---- kombu: emergency_dump_state ---------------------------------------------------


def test_emergency_dump_is_the_global_restore_unacked_once_calls() -> None:
    assert hasattr(virtual_base, "emergency_dump_state")
    assert calls(virtual_base.QoS.restore_unacked_once, "emergency_dump_state")
    assert parameters(kombu.utils.emergency_dump_state)[:1] == ["state"]
    assert "stderr" in parameters(kombu.utils.emergency_dump_state)


def test_emergency_dump_receives_what_a_virtual_transport_could_not_restore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The hook's mechanism, on the virtual base every kombu transport shares.
    dumped: list[Any] = []
    monkeypatch.setattr(virtual_base, "emergency_dump_state", VIRTUAL.emergency_dump_state)

    def record(state: Any, **_: Any) -> str:
        dumped.append(state)
        return "path"

    fence.replace_emergency_dump(record)
    assert fence.installed_emergency_dump() is not kombu.utils.emergency_dump_state

    def refuse(message: Any) -> None:
        raise ConnectionError("broker gone")

    channel = SimpleNamespace(do_restore=True, _restore=refuse)
    qos = VIRTUAL.QoS(channel)
    message = SimpleNamespace(serializable=lambda: {"body": "e30="})
    qos._delivered["tag"] = message
    qos.restore_unacked_once()
    assert dumped == [[{"body": "e30="}]]


def test_emergency_dump_is_dead_on_the_redis_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """kombu 5.7's Redis QoS never reaches the dump: the hook is kept, documented dead.

    If this fails, kombu hands Redis messages to the dump again: rescue.py becomes live
    and needs a test that a real worker reaches it.
    """
    assert kombu.transport.redis.QoS.restore_unacked is not virtual_base.QoS.restore_unacked
    dumped: list[Any] = []
    monkeypatch.setattr(virtual_base, "emergency_dump_state", lambda *a, **k: dumped.append(a))

    class Down:
        def __enter__(self) -> Any:
            raise ConnectionError("Redis is down")

        def __exit__(self, *exc: object) -> None:
            return None

    channel = SimpleNamespace(
        do_restore=True,
        conn_or_acquire=lambda client=None: Down(),
        unacked_key="unacked",
        unacked_index_key="unacked_index",
    )
    qos = REDIS_QOS(channel)
    qos._delivered = OrderedDict(tag=SimpleNamespace(serializable=dict))
    with pytest.raises(ConnectionError):
        qos.restore_unacked_once()
    assert dumped == []


# ---- kombu: Channel._do_restore_message --------------------------------------------


def test_do_restore_message_takes_what_restore_message_passes() -> None:
    restore = REDIS_CHANNEL._do_restore_message
    assert parameters(restore) == [
        "self",
        "payload",
        "exchange",
        "routing_key",
        "pipe",
        "leftmost",
    ]
    assert calls(kombu.transport.redis.QoS.restore_by_tag, "_do_restore_message")


# ---- Celery: _store_result, _get_result_meta, _MAX_STR_VALUE_SIZE -------------------


def test_store_result_is_what_store_result_calls() -> None:
    assert calls(celery.backends.redis.RedisBackend.store_result, "_store_result")
    store = KEY_VALUE_BACKEND._store_result
    expected = ["self", "task_id", "result", "state", "traceback", "request", "kwargs"]
    assert parameters(store) == expected
    assert parameters(fence.StoreStateBackend._store_result) == parameters(store)
    # Conveyor's backends write through store_state, not Celery's GET-then-SET.
    for backend in (ConveyorRedisBackend, PublishOnlyRedisBackend):
        assert backend._store_result is fence.StoreStateBackend._store_result


def test_get_result_meta_and_max_value_size() -> None:
    meta = KEY_VALUE_BACKEND._get_result_meta
    assert parameters(meta)[:5] == ["self", "result", "state", "traceback", "request"]
    redis_backend: Any = celery.backends.redis.RedisBackend
    assert isinstance(redis_backend._MAX_STR_VALUE_SIZE, int)


# ---- Celery: on_task_call ----------------------------------------------------------


def test_on_task_call_is_what_send_task_calls() -> None:
    assert calls(celery.app.base.Celery.send_task, "on_task_call")
    for backend in (celery.backends.base.Backend, celery.backends.redis.RedisBackend):
        assert parameters(backend.on_task_call) == ["self", "producer", "task_id"]
    redis_source = inspect.getsource(celery.backends.redis.RedisBackend.on_task_call)
    assert "consume_from" in redis_source  # what the mixin leaves out
    assert PublishOnlyRedisBackend.on_task_call is fence.NoSubscriptionOnTaskCall.on_task_call


# ---- Celery: Consumer._flush_events and on_send_event_buffered ---------------------


def test_flush_events_and_the_buffered_callback() -> None:
    consumer = CONSUMER
    assert parameters(consumer._flush_events) == ["self"]
    assert parameters(consumer.on_send_event_buffered) == ["self"]
    assert parameters(consumer.shutdown) == ["self"]
    # The dispatcher calls the consumer's callback for each buffered task event...
    events_start = celery.worker.consumer.events.Events.start
    assert "on_send_buffered=c.on_send_event_buffered" in inspect.getsource(events_start)
    dispatcher = celery.events.dispatcher.EventDispatcher
    assert inspect.signature(dispatcher).parameters["buffer_limit"].default == 24
    assert calls(dispatcher.send, "on_send_buffered")
    # ... and a warm shutdown ends in Consumer.shutdown (after the pool has stopped),
    # where WorkerConsumer flushes the buffer before Celery closes the dispatcher.
    assert calls(celery.worker.worker.WorkController.on_stopped, "shutdown")
    assert WorkerConsumer.shutdown is not consumer.shutdown


# ---- Celery: Panel.data ------------------------------------------------------------


def test_panel_data_is_the_table_the_worker_answers_from() -> None:
    panel = celery.worker.control.Panel
    assert isinstance(panel.__dict__["data"], dict)
    assert fence.control_commands() is panel.data
    assert "handlers=control.Panel.data" in inspect.getsource(celery.worker.pidbox.Pidbox)
    # Each command Conveyor refuses still exists under that name (a rename would let
    # the new name through).
    assert set(DISABLED) <= set(panel.data)


# ---- kombu's and Celery's Redis key layout -----------------------------------------


def test_redis_key_layout() -> None:
    channel = REDIS_CHANNEL
    assert channel.unacked_key == fence.UNACKED_KEY
    assert channel.unacked_index_key == fence.UNACKED_INDEX_KEY
    assert channel.unacked_mutex_key == fence.UNACKED_MUTEX_KEY
    assert channel.keyprefix_queue == fence.BINDING_KEY_PREFIX + "%s"
    assert channel.sep == fence.PRIORITY_SEPARATOR
    assert tuple(channel.priority_steps) == fence.PRIORITY_STEPS
    # kombu's own naming of each priority's list is ours.
    this = SimpleNamespace(sep=channel.sep, priority_steps=channel.priority_steps)
    this.priority = lambda n: channel.priority(this, n)
    lists = [channel._q_for_pri(this, "q", step) for step in fence.PRIORITY_STEPS]
    assert lists == fence.priority_lists("q")
    assert "dumps([message._raw, EX, RK])" in inspect.getsource(kombu.transport.redis.QoS.append)
    backend = celery.backends.base.BaseKeyValueStoreBackend
    assert backend.task_keyprefix == fence.RESULT_KEY_PREFIX


def test_retry_keeps_its_max_retries_on_the_task_and_autoretry_reads_it() -> None:
    """Task.retry stores a given max_retries as an attribute, and autoretry reuses it."""
    retry = inspect.getsource(celery.app.task.Task.retry)
    assert f"self.{fence.OVERRIDE_MAX_RETRIES} = max_retries" in retry
    autoretry = inspect.getsource(celery.app.autoretry.add_autoretry_behaviour)
    assert f"hasattr(task, '{fence.OVERRIDE_MAX_RETRIES}')" in autoretry


def test_a_retry_limit_stays_in_its_thread_until_forgotten() -> None:
    class Probe(fence.RetryLimitPerCall):
        pass

    task, other = Probe(), Probe()
    assert not hasattr(task, fence.OVERRIDE_MAX_RETRIES)
    setattr(task, fence.OVERRIDE_MAX_RETRIES, 2)  # what Task.retry does
    assert getattr(task, fence.OVERRIDE_MAX_RETRIES) == 2
    assert not hasattr(other, fence.OVERRIDE_MAX_RETRIES)  # per task
    seen: list[bool] = []
    thread = threading.Thread(target=lambda: seen.append(hasattr(task, "override_max_retries")))
    thread.start()
    thread.join()
    assert seen == [False]  # per thread
    task.forget_retry_limit()
    assert not hasattr(task, fence.OVERRIDE_MAX_RETRIES)
