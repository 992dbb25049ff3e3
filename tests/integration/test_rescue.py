"""Messages kombu could not restore at shutdown are written as JSON and requeued at start."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import redis

from conveyor_core.celery_app import create_app
from conveyor_core.settings import Settings
from conveyor_worker import rescue
from tests.integration.conftest import RedisServer

BROKER_DB, RESULT_DB = 6, 7


def settings_for(server: RedisServer) -> Settings:
    return server.settings(BROKER_DB, RESULT_DB)


def a_dumped_message(settings: Settings, task_id: str) -> dict[str, object]:
    """A real task message, in the shape kombu's emergency dump receives it."""
    create_app(settings).send_task(
        "conveyor.add", kwargs={"x": 2, "y": 3}, task_id=task_id, queue="default"
    )
    raw = redis.Redis.from_url(settings.broker_url).rpop("default")
    assert raw, "the message should have been queued"
    message: dict[str, object] = json.loads(raw)  # type: ignore[arg-type]
    return message


def test_dump_is_json_and_a_bad_file_is_kept_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    monkeypatch.setattr(rescue, "rescue_dir", lambda: tmp_path)
    path = Path(rescue.dump_messages([{"body": "e30=", "headers": {"id": "x"}}]))
    assert path.parent == tmp_path
    assert json.loads(path.read_text()) == [{"body": "e30=", "headers": {"id": "x"}}]
    path.unlink()
    (tmp_path / "broken.json").write_text("{not json")
    assert rescue.requeue_rescued(create_app(settings_for(redis_server))) == 0
    assert (tmp_path / "broken.bad").exists()


def test_a_starting_worker_requeues_and_runs_rescued_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, start_worker
) -> None:
    settings = settings_for(redis_server)
    task_id = str(uuid.uuid4())
    monkeypatch.setattr(rescue, "rescue_dir", lambda: tmp_path)
    dumped = Path(rescue.dump_messages([a_dumped_message(settings, task_id)]))
    assert redis.Redis.from_url(settings.broker_url).llen("default") == 0  # only in the file

    start_worker(BROKER_DB, RESULT_DB, extra_env={"WORKER_RESCUE_DIR": str(tmp_path)})
    result = create_app(settings).AsyncResult(task_id)
    assert result.get(timeout=60) == 5
    assert not dumped.exists()
    assert list(tmp_path.iterdir()) == []
