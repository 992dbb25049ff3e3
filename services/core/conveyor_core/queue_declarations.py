"""The queues, declared once: everything that runs a queue follows from its declaration.

Conveyor's queues are declared in ``queues.toml`` at the repository's root; a team's task
project (CONVEYOR_TASKS) adds its own under ``[tool.conveyor.queues.NAME]`` in its
``pyproject.toml``. One entry holds what differs between queues (the kind of work, the
pool, its size, the prefetch, a time limit) and the rest is rendered from it: a compose
worker service per queue, the queue's key patterns in the Redis ACL of every role, the
queues Celery declares and the API accepts, ``make scale QUEUE=``.

Standard library only: the Makefile runs this module on the host (``python3 -m
conveyor_core.queue_declarations render``) before compose is called, and the services
read the merged declarations it writes (``.build/queues.json``, baked into the image at
/etc/conveyor/queues.json; ``CONVEYOR_QUEUES_FILE`` names another file).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

#: The queue a task goes to unless it names another; the e-mail role's queue.
DEFAULT_QUEUE = "default"
EMAIL_QUEUE = "email"
#: Where the services find the declarations (the image's copy of .build/queues.json).
IMAGE_QUEUES_FILE = "/etc/conveyor/queues.json"
#: A task or queue given only a hard time limit gets a soft one at this share of it.
SOFT_SHARE = 0.9

Kind = Literal["cpu", "io"]
Pool = Literal["prefork", "threads", "gevent", "solo"]
KINDS: tuple[Kind, ...] = ("cpu", "io")
POOLS: tuple[Pool, ...] = ("prefork", "threads", "gevent", "solo")
#: What each kind of work gets unless its entry says otherwise: CPU work one process per
#: core (the two cores measured in docs/performance.md); waiting work (network, SMTP) many
#: threads, so a slow peer holds up a thread, not a core.
KIND_DEFAULTS: Mapping[Kind, tuple[Pool, int]] = {"cpu": ("prefork", 2), "io": ("threads", 16)}
#: A queue's name becomes a compose service, a Kubernetes object, an environment variable
#: prefix and a Redis key pattern: lower-case letters, digits and inner dashes.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
NAME_MAX = 40
FIELDS = ("kind", "pool", "concurrency", "prefetch", "time_limit", "max_replicas", "summary")


class QueueDeclarationError(ValueError):
    """A declaration that cannot be used; the message names the file, queue and field."""


@dataclass(frozen=True)
class QueueDeclaration:
    """One queue and how its workers run."""

    name: str
    kind: Kind = "cpu"
    pool: Pool = "prefork"
    concurrency: int = 2
    prefetch: int = 1
    #: Seconds; None: the TASK_TIME_LIMIT every worker has.
    time_limit: int | None = None
    #: The most worker replicas an autoscaler may run (Kubernetes HPA, KEDA).
    max_replicas: int = 10
    summary: str = ""
    #: The file that declared it (for messages).
    source: str = ""

    @property
    def service(self) -> str:
        """Its worker service (compose, Swarm, Kubernetes): `worker` for the default queue."""
        return "worker" if self.name == DEFAULT_QUEUE else f"{self.name}-worker"

    @property
    def worker_name(self) -> str:
        """The Celery node name's prefix of its workers (NAME@host)."""
        return "worker" if self.name == DEFAULT_QUEUE else self.name

    @property
    def env_prefix(self) -> str:
        """Prefix of the variables that override it: WORKER_POOL, EMAIL_WORKER_POOL, ..."""
        if self.name == DEFAULT_QUEUE:
            return ""
        return self.name.upper().replace("-", "_") + "_"

    @property
    def soft_time_limit(self) -> int | None:
        """The soft limit its tasks get (SOFT_SHARE of the hard one)."""
        if self.time_limit is None:
            return None
        return max(1, min(self.time_limit - 1, int(self.time_limit * SOFT_SHARE)))


def _problem(source: str, name: str, field: str, message: str) -> QueueDeclarationError:
    where = f"queues.{name}.{field}" if field else f"queues.{name}"
    return QueueDeclarationError(f"{source}: {where}: {message}")


def _whole(source: str, name: str, field: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _problem(source, name, field, f"must be a whole number >= {low}, got {value!r}")
    return value


def declaration(name: str, entry: Mapping[str, Any], source: str) -> QueueDeclaration:
    """One queue from its entry, refused with a message naming the file, queue and field."""
    if not NAME_PATTERN.match(name) or len(name) > NAME_MAX:
        raise _problem(
            source,
            name,
            "",
            f"a queue's name is lower-case letters, digits and inner dashes, "
            f"at most {NAME_MAX} characters (it names a service and a Kubernetes object)",
        )
    if not isinstance(entry, Mapping):
        raise _problem(source, name, "", "must be a table of settings")
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise _problem(source, name, unknown[0], f"unknown setting; known: {', '.join(FIELDS)}")
    kind = entry.get("kind", "cpu")
    if kind not in KINDS:
        raise _problem(source, name, "kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    pool, concurrency = KIND_DEFAULTS[kind]
    pool = entry.get("pool", pool)
    if pool not in POOLS:
        raise _problem(source, name, "pool", f"must be one of {', '.join(POOLS)}, got {pool!r}")
    time_limit = entry.get("time_limit")
    summary = entry.get("summary", "")
    if not isinstance(summary, str):
        raise _problem(source, name, "summary", "must be a string")
    return QueueDeclaration(
        name=name,
        kind=kind,
        pool=pool,
        concurrency=_whole(source, name, "concurrency", entry.get("concurrency", concurrency), 1),
        prefetch=_whole(source, name, "prefetch", entry.get("prefetch", 1), 1),
        time_limit=None
        if time_limit is None
        else _whole(source, name, "time_limit", time_limit, 2),
        max_replicas=_whole(source, name, "max_replicas", entry.get("max_replicas", 10), 1),
        summary=summary,
        source=source,
    )


def _table(document: Mapping[str, Any], path: Iterable[str]) -> Mapping[str, Any]:
    for key in path:
        document = document.get(key, {})
        if not isinstance(document, Mapping):
            return {}
    return document


def read_toml(path: Path, *, in_project: bool = False) -> list[QueueDeclaration]:
    """The queues of queues.toml or of a task project's pyproject.toml.

    ``[queues.NAME]`` in the first, ``[tool.conveyor.queues.NAME]`` in the second.
    """
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise QueueDeclarationError(f"{path}: cannot read the queue declarations: {exc}") from exc
    table = _table(document, ("tool", "conveyor", "queues") if in_project else ("queues",))
    return [declaration(name, entry, str(path)) for name, entry in table.items()]


def merge(*groups: Iterable[QueueDeclaration]) -> tuple[QueueDeclaration, ...]:
    """Every queue once, Conveyor's two among them.

    No queue's name may start another's: a Redis ACL pattern `name*` would cover both.
    """
    queues: dict[str, QueueDeclaration] = {}
    for queue in (queue for group in groups for queue in group):
        if queue.name in queues:
            first = queues[queue.name].source
            raise QueueDeclarationError(
                f"{queue.source}: queues.{queue.name}: declared already in {first}; "
                "a queue is declared once"
            )
        queues[queue.name] = queue
    for required in (DEFAULT_QUEUE, EMAIL_QUEUE):
        if required not in queues:
            raise QueueDeclarationError(
                f"queues.{required}: Conveyor's own queue is not declared "
                f"(sources: {', '.join(sorted({q.source for q in queues.values()}))})"
            )
    names = sorted(queues)
    for shorter, longer in ((a, b) for a in names for b in names if a != b):
        if longer.startswith(shorter):
            raise _problem(
                queues[longer].source,
                longer,
                "",
                f"starts with the name of queue {shorter!r}: Redis's key pattern "
                f"{shorter}* would give {longer}'s messages to {shorter}'s workers; rename it",
            )
    return tuple(queues[name] for name in names)


def to_json(queues: Iterable[QueueDeclaration]) -> str:
    """The merged declarations as the services read them."""
    return json.dumps({"queues": [asdict(queue) for queue in queues]}, indent=2) + "\n"


def read_json(path: Path) -> tuple[QueueDeclaration, ...]:
    """The merged declarations written by `render`."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["queues"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise QueueDeclarationError(f"{path}: cannot read the queue declarations: {exc}") from exc
    return merge(
        declaration(entry["name"], {k: v for k, v in entry.items() if k in FIELDS}, entry["source"])
        for entry in entries
    )


def load(path: Path) -> tuple[QueueDeclaration, ...]:
    """The declarations in a file: the merged JSON, or a queues.toml on its own."""
    if path.suffix == ".json":
        return read_json(path)
    return merge(read_toml(path))


@lru_cache(maxsize=4)
def _declared(path: str) -> tuple[QueueDeclaration, ...]:
    return load(Path(path))


def declared_queues() -> tuple[QueueDeclaration, ...]:
    """The queues this process serves, from CONVEYOR_QUEUES_FILE (read once)."""
    return _declared(os.environ.get("CONVEYOR_QUEUES_FILE") or IMAGE_QUEUES_FILE)


def queue_problems() -> list[str]:
    """What stops a role at start-up: a declaration file that is missing or wrong."""
    try:
        declared_queues()
    except QueueDeclarationError as exc:
        return [str(exc)]
    return []


# ---- Rendering (the Makefile, on the host) -------------------------------------------------


#: The settings .env may override per queue (PREFIX_WORKER_POOL, ...) under compose.
OVERRIDABLE = ("WORKER_POOL", "WORKER_CONCURRENCY", "WORKER_PREFETCH_MULTIPLIER")


def queue_settings(queue: QueueDeclaration) -> dict[str, str]:
    """The settings a queue's workers get from its declaration."""
    env = {
        "WORKER_QUEUES": queue.name,
        "WORKER_NAME": queue.worker_name,
        "WORKER_POOL": queue.pool,
        "WORKER_CONCURRENCY": str(queue.concurrency),
        "WORKER_PREFETCH_MULTIPLIER": str(queue.prefetch),
    }
    if queue.time_limit is not None:
        env["TASK_TIME_LIMIT"] = str(queue.time_limit)
        env["TASK_SOFT_TIME_LIMIT"] = str(queue.soft_time_limit)
    return env


def worker_environment(queue: QueueDeclaration) -> dict[str, str]:
    """A queue's compose settings; the pool, size and prefetch yield to ${PREFIX}WORKER_*."""
    return {
        name: f"${{{queue.env_prefix}{name}:-{value}}}" if name in OVERRIDABLE else value
        for name, value in queue_settings(queue).items()
    }


#: The base compose file's worker service each queue's service is made from: the e-mail
#: queue's is the e-mail role's own (its Redis user, SMTP, the egress network).
BASE_SERVICES = {DEFAULT_QUEUE: "worker", EMAIL_QUEUE: "email-worker"}
#: An overlay that changes the workers (TLS, `make dev`, a task project's secrets) names
#: the base `worker` service at this indentation under `services:` (yamllint's style).
OVERLAY_WORKER = re.compile(r"^services:\s*$.*?^  worker:\s*$", re.MULTILINE | re.DOTALL)


def compose_override(queues: Iterable[QueueDeclaration], base_file: str) -> dict[str, Any]:
    """The compose layer that gives each queue its worker service.

    Conveyor's two queues have theirs in the base file (which runs on its own, with the
    same settings); this layer restates their settings from the declaration. Any other
    queue's service extends the base `worker` service (the `worker` Redis user, the
    backend network only) with its own settings. Redis gets the list of queues, from
    which it writes each role's key patterns (deploy/redis/roles.acl).
    """
    queues = tuple(queues)
    services: dict[str, Any] = {
        "redis": {"environment": {"CONVEYOR_QUEUES": " ".join(q.name for q in queues)}}
    }
    for queue in queues:
        service: dict[str, Any] = {"environment": worker_environment(queue)}
        if queue.name not in BASE_SERVICES:
            service = {"extends": {"file": base_file, "service": "worker"}, **service}
        services[queue.service] = service
    return {"services": services}


def overlay_layer(queues: Iterable[QueueDeclaration], overlay: str) -> dict[str, Any]:
    """What an overlay does to `worker`, done to every other queue's service too.

    `extends` reads the service from one file only, so each overlay that changes the
    workers gets a layer of its own after it (extending a partial service merges it).
    """
    return {
        "services": {
            queue.service: {"extends": {"file": overlay, "service": "worker"}}
            for queue in queues
            if queue.name not in BASE_SERVICES
        }
    }


# ---- Kubernetes: two kustomize components under .build/k8s ---------------------------------
#: Where the templates of a queue's objects live (deploy/k8s/queue-worker, queue-keda).
K8S_TEMPLATES = Path("deploy") / "k8s"


def _env_patch(kind: str, name: str, settings: Mapping[str, str]) -> str:
    """A strategic-merge patch setting the env of the container named as its workload."""
    container = {"name": name, "env": [{"name": k, "value": v} for k, v in settings.items()]}
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {"name": name},
            "spec": {"template": {"spec": {"containers": [container]}}},
        }
    )


def _ops(target: Mapping[str, str], *ops: tuple[str, str, object]) -> dict[str, Any]:
    """A JSON 6902 patch of one object."""
    return {
        "target": dict(target),
        "patch": json.dumps([{"op": op, "path": path, "value": value} for op, path, value in ops]),
    }


def _kustomization(kind: str = "Kustomization", **fields: Any) -> str:
    api = "v1alpha1" if kind == "Component" else "v1beta1"
    return _as_json({"apiVersion": f"kustomize.config.k8s.io/{api}", "kind": kind, **fields})


def _queue_objects(queue: QueueDeclaration, template: Path, folder: Path) -> str:
    """The kustomization that makes a queue's objects from the default queue's."""
    patches = [
        {
            "target": {"kind": "Deployment"},
            "patch": _env_patch("Deployment", "worker", queue_settings(queue)),
        },
    ]
    if template.name == "queue-worker":
        patches.append(
            _ops(
                {"kind": "HorizontalPodAutoscaler"},
                ("replace", "/spec/maxReplicas", queue.max_replicas),
            )
        )
    else:
        patches = [
            _ops(
                {"kind": "ScaledObject"},
                ("replace", "/spec/scaleTargetRef/name", queue.service),
                ("replace", "/spec/maxReplicaCount", queue.max_replicas),
                ("replace", "/spec/triggers/0/metadata/listName", queue.name),
            )
        ]
    return _kustomization(
        resources=[os.path.relpath(template.resolve(), folder.resolve())],
        namePrefix=f"{queue.name}-",
        labels=[
            {"pairs": {"app.kubernetes.io/name": queue.service}, "includeSelectors": True},
            {"pairs": {"conveyor.io/queue": queue.name}, "includeSelectors": False},
        ],
        patches=patches,
    )


def render_k8s(queues: Iterable[QueueDeclaration], out: Path) -> None:
    """The components the base (queues) and the production overlay (keda) include.

    Each queue besides Conveyor's two gets the default queue's Deployment, budget and
    autoscaler (base) and ScaledObject (production), renamed NAME-worker, with its own
    settings; Conveyor's two get their declared settings and maximum; Redis gets the list.
    """
    queues = tuple(queues)
    own = [queue for queue in queues if queue.name not in BASE_SERVICES]
    names = {"CONVEYOR_QUEUES": " ".join(queue.name for queue in queues)}
    base_patches: list[dict[str, Any]] = [
        {
            "target": {"kind": "StatefulSet", "name": "^redis$"},
            "patch": _env_patch("StatefulSet", "redis", names),
        }
    ]
    keda_patches: list[dict[str, Any]] = []
    for queue in queues:
        if queue.name not in BASE_SERVICES:
            continue
        # By the queue's label: a patch's target name also matches the objects made from
        # the default queue's (kustomize matches names from before their prefix).
        selector = f"conveyor.io/queue={queue.name}"
        base_patches.append(
            {
                "target": {"kind": "Deployment", "labelSelector": selector},
                "patch": _env_patch("Deployment", queue.service, queue_settings(queue)),
            }
        )
        target = {"kind": "HorizontalPodAutoscaler", "labelSelector": selector}
        base_patches.append(_ops(target, ("replace", "/spec/maxReplicas", queue.max_replicas)))
        target = {"kind": "ScaledObject", "labelSelector": selector}
        keda_patches.append(_ops(target, ("replace", "/spec/maxReplicaCount", queue.max_replicas)))
    for component, template, patches in (
        ("queues", K8S_TEMPLATES / "queue-worker", base_patches),
        ("keda", K8S_TEMPLATES / "queue-keda", keda_patches),
    ):
        folder = out / "k8s" / component
        # A queue no longer declared leaves no folder behind.
        for stale in folder.glob("*/kustomization.yaml"):
            if stale.parent.name not in {queue.name for queue in own}:
                stale.unlink()
                stale.parent.rmdir()
        for queue in own:
            (folder / queue.name).mkdir(parents=True, exist_ok=True)
            _write_if_changed(
                folder / queue.name / "kustomization.yaml",
                _queue_objects(queue, template, folder / queue.name),
            )
        _write_if_changed(
            folder / "kustomization.yaml",
            _kustomization("Component", resources=[queue.name for queue in own], patches=patches),
        )


# ---- Docker Swarm: the stack file with a worker service per queue ------------------------


def render_swarm(queues: Iterable[QueueDeclaration], stack: Path, out: Path) -> Path:
    """deploy/swarm/stack.yml with every declared queue's worker service, at `out`.

    Swarm's stack files have no `extends`: a queue besides Conveyor's two gets a copy of
    the `worker` service (its Redis user, secrets, network, limits) with its own
    settings and replicas (PREFIX_WORKERS, as WORKERS and EMAIL_WORKERS); Conveyor's two
    get their declared settings; Redis gets the list of queues. PyYAML reads and writes
    it, so this runs in .venv (`make swarm-up`), not with the host's bare Python.
    """
    import yaml  # here: .venv only; the Makefile's parse-time render stays standard library

    queues = tuple(queues)
    document = yaml.safe_load(stack.read_text(encoding="utf-8"))
    services = document["services"]
    template = services["worker"]
    for queue in queues:
        if queue.name not in BASE_SERVICES:
            service = copy.deepcopy(template)
            service["deploy"]["replicas"] = f"${{{queue.env_prefix}WORKERS:-1}}"
            services[queue.service] = service
        services[queue.service]["environment"].update(worker_environment(queue))
    services["redis"]["environment"]["CONVEYOR_QUEUES"] = " ".join(q.name for q in queues)
    header = f"# Rendered from {stack} and the declared queues by make swarm-up: do not edit.\n"
    _write_if_changed(out, header + yaml.safe_dump(document, sort_keys=False, width=100))
    return out


def _write_if_changed(path: Path, text: str) -> None:
    """Keep the file (and its time) when nothing changed: the image build caches on it."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _as_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def render(
    source: Path, tasks: Path | None, out: Path, compose_files: str = "docker-compose.yml"
) -> tuple[tuple[QueueDeclaration, ...], list[str]]:
    """Merge queues.toml and the task project's queues, write what follows from them.

    Returns the queues and the compose files to add after `compose_files` (COMPOSE_FILE's
    form: paths relative to the project folder, separated by colons).
    """
    groups = [read_toml(source)]
    project = tasks / "pyproject.toml" if tasks else None
    if project is not None and project.is_file():
        groups.append(read_toml(project, in_project=True))
    queues = merge(*groups)
    _write_if_changed(out / "queues.json", to_json(queues))
    render_k8s(queues, out)
    files = [name for name in compose_files.split(":") if name]
    base, overlays = (files[0], files[1:]) if files else ("docker-compose.yml", [])
    layers = [out / "compose.queues.json"]
    _write_if_changed(layers[0], _as_json(compose_override(queues, base)))
    if any(queue.name not in BASE_SERVICES for queue in queues):
        for number, overlay in enumerate(overlays, start=1):
            text = Path(overlay).read_text(encoding="utf-8") if Path(overlay).is_file() else ""
            if OVERLAY_WORKER.search(text):
                layers.append(out / f"compose.queues.{number}.json")
                _write_if_changed(layers[-1], _as_json(overlay_layer(queues, overlay)))
    return queues, [str(layer) for layer in layers]


def main(argv: list[str] | None = None) -> int:
    """`render`: write .build's files, print what the Makefile reads; `swarm`: the stack.

    `render` prints NAME=SERVICE per queue, then the compose files to add to COMPOSE_FILE
    (compose:PATH); `swarm` the path of the stack file it wrote.
    """
    parser = argparse.ArgumentParser(prog="python -m conveyor_core.queue_declarations")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("render", help="merge the declarations and render what follows")
    run.add_argument("--source", type=Path, default=Path("queues.toml"))
    run.add_argument("--tasks", default="", help="the task project (CONVEYOR_TASKS), if any")
    run.add_argument("--out", type=Path, default=Path(".build"))
    run.add_argument("--compose-files", default="docker-compose.yml", help="COMPOSE_FILE")
    swarm = sub.add_parser("swarm", help="the Swarm stack file with a service per queue")
    swarm.add_argument("--queues", type=Path, default=Path(".build/queues.json"))
    swarm.add_argument("--stack", type=Path, default=Path("deploy/swarm/stack.yml"))
    swarm.add_argument("--out", type=Path, default=Path(".build/swarm/stack.yml"))
    args = parser.parse_args(argv)
    try:
        if args.command == "swarm":
            print(render_swarm(read_json(args.queues), args.stack, args.out))
            return 0
        tasks = Path(args.tasks) if args.tasks else None
        queues, layers = render(args.source, tasks, args.out, args.compose_files)
    except QueueDeclarationError as exc:
        print(f"queue declarations: {exc}", file=sys.stderr)
        return 2
    words = [f"{queue.name}={queue.service}" for queue in queues]
    print(" ".join(words + [f"compose:{layer}" for layer in layers]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
