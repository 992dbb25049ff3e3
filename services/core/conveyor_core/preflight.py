"""Start-up check: refuse a configuration that would lose or duplicate work.

Run by the container entrypoint before the producer, a worker or Flower starts:
`python -m conveyor_core.preflight ROLE`. It exits 2 with one line per problem, each
naming the setting to change, so a misconfigured service stops at once instead of
losing tasks later. Settings that are merely risky (Redis without persistence) only
print a warning.
"""

from __future__ import annotations

import importlib
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery
from pydantic import ValidationError

from conveyor_core.queue_declarations import declared_queues, queue_problems
from conveyor_core.settings import (
    FlowerSettings,
    ProducerSettings,
    ReconcilerSettings,
    Settings,
    WorkerSettings,
)
from conveyor_core.task_packages import TaskPackageError, load_definitions

#: Settings class of each role: each refuses its own missing or placeholder secrets.
ROLES: dict[str, Callable[[], Settings]] = {
    "producer": ProducerSettings,
    # Workers read the e-mail settings too: a bad SMTP setup stops the worker at start.
    "worker": WorkerSettings,
    "flower": FlowerSettings,
    "reconciler": ReconcilerSettings,
}
#: Roles that load the task packages (Flower shows whatever the workers run).
TASK_ROLES = ("producer", "worker", "reconciler")
#: Module whose `app` the role runs, when not the bare shared app.
APP_MODULES = {"worker": "conveyor_worker.main"}
#: The only Redis eviction policy that never deletes a queued task or a result.
SAFE_EVICTION = "noeviction"
#: How long to wait for Redis to answer before giving up (it may still be starting).
REDIS_WAIT_SECONDS = 60.0


class PreflightError(Exception):
    """The configuration is refused; the message says which setting and why."""


def settings_problems(role: str) -> tuple[Settings | None, list[str]]:
    """The role's settings, or the problems that prevent reading them."""
    try:
        return ROLES[role](), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]).upper()
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        return None, problems


def celery_problems(app: Celery, settings: Settings) -> list[str]:
    """Celery settings that break JSON-only or at-least-once delivery."""
    conf = app.conf
    problems = []
    for name in ("task_serializer", "result_serializer", "event_serializer"):
        if conf[name] != "json":
            problems.append(f"{name} is {conf[name]!r}: Conveyor accepts JSON only")
    for name in ("accept_content", "result_accept_content"):
        if list(conf[name] or []) != ["json"]:
            problems.append(f"{name} is {conf[name]!r}: Conveyor accepts JSON only")
    if not (conf.task_acks_late and conf.task_reject_on_worker_lost):
        problems.append("task_acks_late and task_reject_on_worker_lost must both be on")
    broker = conf.broker_transport_options.get("visibility_timeout")
    backend = (conf.result_backend_transport_options or {}).get("visibility_timeout")
    if broker != settings.visibility_timeout or backend != settings.visibility_timeout:
        problems.append(
            f"VISIBILITY_TIMEOUT differs between broker ({broker}) and result backend ({backend})"
        )
    for task in app.tasks.values():
        limit = getattr(task, "time_limit", None)
        if limit and limit >= settings.visibility_timeout:
            problems.append(
                f"task {task.name} has a time limit of {limit} s, not shorter than "
                f"VISIBILITY_TIMEOUT ({settings.visibility_timeout} s)"
            )
    return problems


def task_problems(role: str, settings: Settings) -> list[str]:
    """A task package the role cannot serve: one line naming the module and the task."""
    if role not in TASK_ROLES:
        return []
    try:
        load_definitions(settings)
    except TaskPackageError as exc:
        return [str(exc)]
    return []


def worker_queue_problems(role: str, settings: Settings) -> list[str]:
    """A worker told to consume a queue nobody declared (queues.toml, the task project)."""
    if role != "worker" or not isinstance(settings, WorkerSettings):
        return []
    declared = [queue.name for queue in declared_queues()]
    return [
        f"WORKER_QUEUES names {name!r}, which is not a declared queue ({', '.join(declared)}): "
        "declare it in queues.toml or the task project's [tool.conveyor.queues]"
        for name in (part.strip() for part in settings.worker_queues.split(","))
        if name not in declared
    ]


def certificate_refused(exc: BaseException) -> bool:
    """Whether a Redis error comes from a failed TLS certificate check."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "certificate verify failed" in str(exc)


def redis_info(settings: Settings, wait: float = REDIS_WAIT_SECONDS) -> dict[str, Any]:
    """Redis's INFO, waiting up to `wait` seconds for it to answer ({} if not allowed)."""
    client = redis.Redis.from_url(
        settings.broker_url, socket_connect_timeout=2, socket_timeout=settings.redis_socket_timeout
    )
    deadline = time.monotonic() + wait
    while True:
        try:
            return dict(client.info())
        except redis.exceptions.NoPermissionError:
            # A Redis user without INFO (a managed Redis's role): it got this far, so
            # Redis answers and took its password; the workers check the server itself.
            return {}
        except redis.AuthenticationError as exc:
            raise PreflightError(f"Redis refused REDIS_PASSWORD: {exc}") from exc
        except redis.RedisError as exc:
            if certificate_refused(exc):
                # Waiting cannot help: Redis's certificate is not from our CA, or not for
                # REDIS_HOST (a worker host given a ca.crt other than the Redis host's).
                raise PreflightError(
                    f"Redis at REDIS_HOST={settings.redis_host}:{settings.redis_port} "
                    "presented a certificate that REDIS_TLS_CA_FILE's CA does not verify "
                    "(copy ca.crt from the host that runs Redis, docs/deploy.md): "
                    f"{exc}"
                ) from exc
            if time.monotonic() > deadline:
                raise PreflightError(
                    f"Redis at REDIS_HOST={settings.redis_host}:{settings.redis_port} "
                    f"did not answer for {wait:.0f} s: {exc}"
                ) from exc
            time.sleep(1)
        finally:
            client.close()


def redis_problems(info: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, warnings) about the Redis server itself (none when INFO was refused)."""
    problems: list[str] = []
    warnings: list[str] = []
    if not info:
        return problems, warnings
    policy = info.get("maxmemory_policy", SAFE_EVICTION)
    if policy != SAFE_EVICTION:
        problems.append(
            f"Redis maxmemory-policy is {policy!r}: eviction would delete queued tasks and "
            f"results; set it to {SAFE_EVICTION!r} (REDIS_MAXMEMORY only caps memory)"
        )
    if not int(info.get("aof_enabled", 0)):
        warnings.append(
            "Redis runs without its append-only file: a Redis restart loses every queued task"
        )
    return problems, warnings


def check(role: str, app: Celery | None = None, wait: float = REDIS_WAIT_SECONDS) -> list[str]:
    """Every problem found for `role`; warnings are printed, not returned."""
    settings, problems = settings_problems(role)
    if settings is None:
        return problems
    problems = queue_problems()
    if problems:
        return problems
    problems = worker_queue_problems(role, settings) + task_problems(role, settings)
    if problems:
        return problems
    if app is None:
        app = load_app(role)
    problems = celery_problems(app, settings)
    try:
        redis_issues, warnings = redis_problems(redis_info(settings, wait))
    except PreflightError as exc:
        return [*problems, str(exc)]
    for warning in warnings:
        print(f"conveyor preflight: warning: {warning}", file=sys.stderr)
    return problems + redis_issues


def load_app(role: str) -> Celery:
    """The Celery app as the role runs it (a worker's module also registers its tasks)."""
    module = importlib.import_module(APP_MODULES.get(role, "conveyor_core.celery_app"))
    app: Celery = module.app
    return app


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when the role may start, 2 (with the reasons on stderr) when it may not."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ROLES:
        print(f"usage: python -m conveyor_core.preflight {'|'.join(ROLES)}", file=sys.stderr)
        return 64
    problems = check(args[0])
    for problem in problems:
        print(f"conveyor preflight: refusing to start the {args[0]}: {problem}", file=sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
