"""Queues declared once (queues.toml, a task project's [tool.conveyor.queues]): what is
refused, and what is rendered from a declaration (the compose layers, the Redis ACL)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from conveyor_core.queue_declarations import (
    QueueDeclarationError,
    declaration,
    load,
    merge,
    read_toml,
    render,
    render_swarm,
    worker_environment,
)
from tests.helpers import ROOT

QUEUES = ROOT / "queues.toml"
START_REDIS = ROOT / "deploy" / "redis" / "start-redis.sh"


def project(tmp_path: Path, queues: str) -> Path:
    """A task project whose pyproject.toml declares `queues` (TOML tables)."""
    folder = tmp_path / "billing-tasks"
    folder.mkdir(exist_ok=True)
    (folder / "pyproject.toml").write_text(f'[project]\nname = "billing"\n\n{queues}')
    return folder


def test_the_repository_declares_conveyors_two_queues() -> None:
    queues = {queue.name: queue for queue in load(QUEUES)}
    assert list(queues) == ["default", "email"]
    assert (queues["default"].pool, queues["default"].concurrency) == ("prefork", 2)
    assert (queues["email"].pool, queues["email"].concurrency) == ("threads", 16)
    assert queues["email"].service == "email-worker"


def test_a_task_project_adds_a_queue(tmp_path: Path) -> None:
    folder = project(tmp_path, '[tool.conveyor.queues.reports]\nkind = "io"\nconcurrency = 4\n')
    queues, layers = render(QUEUES, folder, tmp_path / "out")
    reports = next(queue for queue in queues if queue.name == "reports")
    assert (reports.pool, reports.concurrency, reports.service) == ("threads", 4, "reports-worker")
    merged = json.loads((tmp_path / "out" / "queues.json").read_text())
    assert [entry["name"] for entry in merged["queues"]] == ["default", "email", "reports"]
    assert load(tmp_path / "out" / "queues.json") == queues
    layer = json.loads(Path(layers[0]).read_text())["services"]
    assert layer["redis"]["environment"]["CONVEYOR_QUEUES"] == "default email reports"
    assert layer["reports-worker"]["extends"] == {"file": "docker-compose.yml", "service": "worker"}
    assert layer["reports-worker"]["environment"]["WORKER_QUEUES"] == "reports"
    assert (
        layer["reports-worker"]["environment"]["WORKER_POOL"] == "${REPORTS_WORKER_POOL:-threads}"
    )


@pytest.mark.parametrize(
    ("queues", "named"),
    [
        ('[tool.conveyor.queues.email]\nkind = "io"\n', "declared already in"),
        ('[tool.conveyor.queues.emails]\nkind = "io"\n', "starts with the name of queue 'email'"),
        ("[tool.conveyor.queues.reports]\nthreads = 4\n", "queues.reports.threads: unknown"),
        ('[tool.conveyor.queues.reports]\nkind = "gpu"\n', "queues.reports.kind: must be one"),
        ("[tool.conveyor.queues.reports]\nconcurrency = 0\n", "queues.reports.concurrency"),
        ('[tool.conveyor.queues.reports]\npool = "eventlet"\n', "queues.reports.pool"),
        ("[tool.conveyor.queues.Reports]\n", "queues.Reports: a queue's name is lower-case"),
        ("[tool.conveyor.queues.reports\n", "cannot read the queue declarations"),
    ],
)
def test_a_declaration_that_cannot_be_used_is_refused_naming_it(
    tmp_path: Path, queues: str, named: str
) -> None:
    folder = project(tmp_path, queues)
    with pytest.raises(QueueDeclarationError) as refused:
        render(QUEUES, folder, tmp_path / "out")
    assert named in str(refused.value)
    assert str(folder / "pyproject.toml") in str(refused.value)


def test_conveyors_own_queues_must_stay_declared() -> None:
    with pytest.raises(QueueDeclarationError, match=r"queues\.email: Conveyor's own queue"):
        merge([declaration("default", {}, "queues.toml")])


def test_the_base_compose_file_agrees_with_the_declarations() -> None:
    """The base file runs Conveyor's two queues on its own; the rendered layer restates
    their settings, so `make up` and a bare `docker compose up` make the same containers."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    queues = {queue.name: queue for queue in load(QUEUES)}
    for name, service in (("default", "worker"), ("email", "email-worker")):
        base = services[service]["environment"]
        assert {k: base.get(k) for k in worker_environment(queues[name])} == worker_environment(
            queues[name]
        )
    assert services["redis"]["environment"]["CONVEYOR_QUEUES"] == " ".join(queues)


def test_an_overlay_that_changes_the_workers_gets_a_layer_for_each_new_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = project(tmp_path, "[tool.conveyor.queues.reports]\n")
    files = "docker-compose.yml:deploy/compose/tls.yml:deploy/compose/dev.yml"
    monkeypatch.chdir(ROOT)
    _, layers = render(QUEUES, folder, tmp_path / "out", files)
    extended = [json.loads(Path(layer).read_text())["services"] for layer in layers[1:]]
    assert [layer["reports-worker"]["extends"]["file"] for layer in extended] == [
        "deploy/compose/tls.yml",
        "deploy/compose/dev.yml",
    ]


def test_rendering_again_keeps_unchanged_files(tmp_path: Path) -> None:
    """The image build caches on queues.json: an unchanged declaration keeps the file."""
    render(QUEUES, None, tmp_path)
    before = (tmp_path / "queues.json").stat().st_mtime_ns
    os.utime(tmp_path / "queues.json", ns=(before - 10**9, before - 10**9))
    render(QUEUES, None, tmp_path)
    assert (tmp_path / "queues.json").stat().st_mtime_ns == before - 10**9


def test_redis_writes_a_queue_rule_once_per_declared_queue(tmp_path: Path) -> None:
    """start-redis.sh turns `%W~{queue}*` into one pattern per queue of CONVEYOR_QUEUES."""
    script = START_REDIS.read_text()
    function = script[script.index("expand_queues() {") : script.index("\ntls_client_options")]
    probe = tmp_path / "probe.sh"
    probe.write_text(f'set -f\nqueues="default email reports"\n{function}\nexpand_queues "$1"\n')
    done = subprocess.run(
        ["sh", str(probe), "%R~* %W~{queue}* ~conveyor:*"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["%R~*", "%W~default*", "%W~email*", "%W~reports*", "~conveyor:*"]


def test_the_makefile_refuses_a_broken_declaration_naming_it(tmp_path: Path) -> None:
    folder = project(tmp_path, '[tool.conveyor.queues.reports]\nkind = "gpu"\n')
    done = subprocess.run(
        ["make", "-s", "help", f"CONVEYOR_TASKS={folder}", f"BUILD_DIR={tmp_path / 'out'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "queues.reports.kind: must be one of cpu, io" in done.stderr


def test_a_project_without_queues_adds_none(tmp_path: Path) -> None:
    assert read_toml(project(tmp_path, "") / "pyproject.toml", in_project=True) == []


def test_swarm_gets_a_worker_service_per_declared_queue(tmp_path: Path) -> None:
    """Swarm has no `extends`: a new queue's service is a copy of `worker`, its own."""
    folder = project(tmp_path, '[tool.conveyor.queues.reports]\nkind = "io"\nconcurrency = 4\n')
    queues, _ = render(QUEUES, folder, tmp_path / "out")
    stack = render_swarm(queues, ROOT / "deploy" / "swarm" / "stack.yml", tmp_path / "stack.yml")
    services = yaml.safe_load(stack.read_text())["services"]
    reports, worker = services["reports-worker"], services["worker"]
    assert reports["environment"]["WORKER_QUEUES"] == "reports"
    assert reports["environment"]["WORKER_POOL"] == "${REPORTS_WORKER_POOL:-threads}"
    assert reports["environment"]["REDIS_USERNAME"] == "worker"
    assert reports["deploy"]["replicas"] == "${REPORTS_WORKERS:-1}"
    assert (reports["secrets"], reports["networks"]) == (worker["secrets"], worker["networks"])
    assert worker["environment"]["WORKER_QUEUES"] == "default"
    assert services["email-worker"]["environment"]["WORKER_QUEUES"] == "email"
    assert services["redis"]["environment"]["CONVEYOR_QUEUES"] == "default email reports"
