"""Defaults repeated outside the settings classes equal the settings' own defaults.

Compose (`${VAR:-default}` and literal values), Swarm, the Kubernetes manifests and
`.env.example` each repeat some of them (TASK_TIME_LIMIT is written in five places).
They are read here as plain YAML and text: no Docker, no kustomize. A place that sets a
different value on purpose is listed in OVERRIDES with its reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from conveyor_core import settings as core
from conveyor_core.env_file import read_env_file
from tests.helpers import ROOT

SETTINGS_CLASSES: tuple[type[BaseSettings], ...] = (
    core.Settings,
    core.ProducerSettings,
    core.ReconcilerSettings,
    core.WorkerSettings,
    core.FlowerSettings,
    core.TemplateSettings,
    core.MailboxSettings,
)
#: Compose and Swarm files of the deployment (bench/ and tests/chaos/ overlays change
#: settings on purpose, to measure or to break things, and are not checked).
COMPOSE_FILES = [
    ROOT / "docker-compose.yml",
    *sorted((ROOT / "deploy" / "compose").glob("*.yml")),
    *sorted((ROOT / "deploy" / "swarm").glob("*.yml")),
]
K8S_FILES = sorted((ROOT / "deploy" / "k8s").rglob("*.yaml"))
ENV_EXAMPLE = ROOT / ".env.example"
#: Files where `${VAR:-default}` of a setting is looked for anywhere, not only in env.
SHELL_FILES = [ROOT / "services" / "entrypoint.sh"]

#: (file relative to the root, service or container or "*" for any, variable) that set
#: a value other than the default on purpose.
OVERRIDES = {
    # The e-mail worker waits on SMTP: threads, many of them; its own queue and name.
    *(
        (path, "email-worker", name)
        for path in (
            "docker-compose.yml",
            "deploy/swarm/stack.yml",
            "deploy/k8s/base/email-worker.yaml",
        )
        for name in ("WORKER_POOL", "WORKER_CONCURRENCY", "WORKER_NAME", "WORKER_QUEUES")
    ),
    # One Redis user per role, in every deployment.
    ("docker-compose.yml", "*", "REDIS_USERNAME"),
    # TLS: the TLS overlay, Swarm and Kubernetes.
    ("deploy/compose/tls.yml", "*", "REDIS_TLS"),
    ("deploy/swarm/stack.yml", "*", "REDIS_TLS"),
    ("deploy/swarm/stack.yml", "*", "REDIS_USERNAME"),
    ("deploy/k8s/base/config.yaml", "*", "REDIS_TLS"),
    ("deploy/k8s/base/redis.yaml", "*", "REDIS_TLS"),
    *(
        (f"deploy/k8s/base/{role}.yaml", "*", "REDIS_USERNAME")
        for role in ("producer", "email-worker", "reconciler", "flower")
    ),
    # Every queue's workers (made from the default queue's) log in as `worker`.
    ("deploy/k8s/queue-worker/worker.yaml", "*", "REDIS_USERNAME"),
    # Swarm mounts the CA certificate as a secret.
    ("deploy/swarm/stack.yml", "*", "REDIS_TLS_CA_FILE"),
    # The mailbox keeps its messages on a volume (default: memory only).
    ("docker-compose.yml", "mailbox", "MAILBOX_DATA_DIR"),
    # `make up` makes a development stack (the mailbox catches e-mail); unset, the
    # services assume production.
    (".env.example", "*", "CONVEYOR_ENV"),
    # A real SMTP provider in production, over STARTTLS.
    ("deploy/k8s/overlays/production/kustomization.yaml", "email-worker", "SMTP_PORT"),
    ("deploy/k8s/overlays/production/kustomization.yaml", "email-worker", "SMTP_SECURITY"),
}


@dataclass(frozen=True)
class Found:
    """One value of a setting written outside the settings classes."""

    path: Path
    where: str  # the service, container or ConfigMap; "*" when not in one
    name: str
    text: str

    @property
    def source(self) -> str:
        return str(self.path.relative_to(ROOT))

    def __str__(self) -> str:
        return f"{self.source} ({self.where}): {self.name}={self.text!r}"


def setting_fields() -> dict[str, FieldInfo]:
    """Every environment variable a settings class reads, with its field."""
    fields: dict[str, FieldInfo] = {}
    for cls in SETTINGS_CLASSES:
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            fields[alias if isinstance(alias, str) else f"{prefix}{name}".upper()] = field
    return fields


FIELDS = setting_fields()
#: `${VAR:-default}` or `${VAR-default}`, the whole value.
INTERPOLATION = re.compile(r"^\$\{(\w+):?-([^}]*)\}$")
#: The same anywhere in a text.
INTERPOLATIONS = re.compile(r"\$\{(\w+):?-([^}]*)\}")


def default_text(raw: Any) -> str | None:
    """The value a compose or k8s entry gives when nothing is set; None: no default."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    text = str(raw)
    if match := INTERPOLATION.match(text):
        return match.group(2)
    return None if "$" in text else text


def environment(service: dict[str, Any]) -> dict[str, Any]:
    """A compose service's environment as a mapping (it may be a list of K=V)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def from_compose(path: Path) -> Iterator[Found]:
    """Settings in the environment of each service (YAML anchors merged)."""
    document = yaml.safe_load(path.read_text())
    for name, service in (document.get("services") or {}).items():
        for key, raw in environment(service or {}).items():
            if key in FIELDS and raw is not None and (text := default_text(raw)) is not None:
                yield Found(path, name, key, text)


def containers(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Containers of a Deployment, StatefulSet or a strategic-merge patch of one."""
    spec = document.get("spec", {}).get("template", {}).get("spec", {})
    yield from spec.get("containers", [])


def k8s_documents(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a manifest, and those of the inline patches of a kustomization."""
    for document in yaml.safe_load_all(path.read_text()):
        if not isinstance(document, dict):
            continue
        yield document
        for patch in document.get("patches", []) if document.get("kind") == "Kustomization" else []:
            inline = yaml.safe_load(patch.get("patch", "")) if "patch" in patch else None
            if isinstance(inline, dict):
                yield inline


def from_k8s(path: Path) -> Iterator[Found]:
    """Settings in ConfigMaps' data and containers' `env` values."""
    for document in k8s_documents(path):
        if document.get("kind") == "ConfigMap":
            for key, raw in (document.get("data") or {}).items():
                if key in FIELDS:
                    yield Found(path, document["metadata"]["name"], key, str(raw))
        for container in containers(document):
            for entry in container.get("env", []):
                if entry["name"] in FIELDS and entry.get("value") is not None:
                    yield Found(path, container["name"], entry["name"], str(entry["value"]))


def from_env_example() -> Iterator[Found]:
    """Settings given a value in .env.example (a blank one means the default)."""
    for key, value in read_env_file(ENV_EXAMPLE).items():
        if key in FIELDS and value != "":
            yield Found(ENV_EXAMPLE, "*", key, value)


#: "(default 240)", "(default 0.1; ...)", "(defaults redis and 6379)" in a comment.
COMMENTED_DEFAULT = re.compile(r"\(defaults? (.+?)(?:[;:]|, |\))")


def from_env_example_comments() -> Iterator[Found]:
    """The "(default X)" that the comment above a setting in .env.example states.

    "(defaults A and B)" names the defaults of the keys below it, in their order.
    """
    blocks: list[tuple[list[str], list[str]]] = []  # (comment lines, keys below them)
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.startswith("#"):
            if not blocks or blocks[-1][1]:
                blocks.append(([], []))
            blocks[-1][0].append(line.lstrip("# "))
        elif "=" in line and blocks:
            blocks[-1][1].append(line.partition("=")[0])
    for comment, keys in blocks:
        stated = COMMENTED_DEFAULT.findall(" ".join(comment))
        values = stated[-1].split(" and ") if stated else []
        if len(values) != len(keys):
            continue
        for key, value in zip(keys, values, strict=True):
            if key in FIELDS:
                yield Found(ENV_EXAMPLE, "comment", key, "" if value == "empty" else value)


def from_interpolations(path: Path) -> Iterator[Found]:
    """`${SETTING:-default}` anywhere in a file (commands, entrypoint, other keys)."""
    for match in INTERPOLATIONS.finditer(path.read_text()):
        if match.group(1) in FIELDS:
            yield Found(path, "*", match.group(1), match.group(2))


def everything() -> list[Found]:
    """Every repeated default of a setting this test knows where to find."""
    found: list[Found] = []
    for path in COMPOSE_FILES:
        found += [*from_compose(path), *from_interpolations(path)]
    for path in K8S_FILES:
        found += from_k8s(path)
    for path in SHELL_FILES:
        found += from_interpolations(path)
    found += [*from_env_example(), *from_env_example_comments()]
    return found


def overridden(found: Found) -> bool:
    """Whether OVERRIDES sets this place apart (for its service, or for the whole file)."""
    return bool(
        {(found.source, found.where, found.name), (found.source, "*", found.name)} & OVERRIDES
    )


def differs(found: Found) -> str | None:
    """Why the value differs from the setting's default; None when it equals it."""
    field = FIELDS[found.name]
    if field.is_required() or field.annotation in (None, SecretStr):
        return None  # a secret: no default to repeat
    if found.text == "" and field.default is None:
        return None  # compose passes an unset optional setting as empty
    try:
        value = TypeAdapter(field.annotation or str).validate_python(found.text)
    except ValidationError as exc:
        return f"not a valid value: {exc.errors()[0]['msg']}"
    if value != field.default:
        return f"the settings' default is {field.default!r}"
    return None


FOUND = everything()


def test_repeated_defaults_equal_the_settings_defaults() -> None:
    wrong = [
        f"{found}: {why}" for found in FOUND if (why := differs(found)) and not overridden(found)
    ]
    assert not wrong, "defaults that differ from the settings classes:\n" + "\n".join(wrong)


def test_every_override_is_still_needed() -> None:
    """An override whose place now holds the default is stale: remove it."""
    differing = [f for f in FOUND if differs(f)]
    needed = {(f.source, f.where, f.name) for f in differing}
    needed |= {(f.source, "*", f.name) for f in differing}
    assert not OVERRIDES - needed, f"stale overrides: {sorted(OVERRIDES - needed)}"


@pytest.mark.parametrize(
    ("source", "where"),
    [
        ("docker-compose.yml", "*"),
        ("deploy/swarm/stack.yml", "*"),
        ("deploy/k8s/base/config.yaml", "conveyor-config"),
        (".env.example", "*"),
        (".env.example", "comment"),
    ],
)
def test_the_scan_finds_task_time_limit(source: str, where: str) -> None:
    """The scanner reads each kind of file (it would pass vacuously otherwise)."""
    assert any((f.source, f.where, f.name) == (source, where, "TASK_TIME_LIMIT") for f in FOUND)


# ---- Names and reachability ---------------------------------------------------------
# Every setting is documented in .env.example (or listed in INTERNAL_SETTINGS), every
# variable there is read by something, and compose, Swarm and Kubernetes pass each role
# the settings it acts on, and no variable that nothing reads.

#: Deployments: the files of each, read together (compose with its TLS overlay, which
#: `make up` adds when REDIS_TLS=true).
DEPLOYMENTS = {
    "compose": [ROOT / "docker-compose.yml", ROOT / "deploy" / "compose" / "tls.yml"],
    "swarm": [ROOT / "deploy" / "swarm" / "stack.yml"],
    "kubernetes": K8S_FILES,
}
#: The settings classes each role's process reads (compose, Swarm and Kubernetes use
#: the same service names).
ROLE_CLASSES: dict[str, tuple[type[BaseSettings], ...]] = {
    "producer": (core.ProducerSettings, core.TemplateSettings),
    "worker": (core.WorkerSettings,),
    "email-worker": (core.WorkerSettings, core.TemplateSettings),
    "reconciler": (core.ReconcilerSettings,),
    "flower": (core.FlowerSettings,),
}
WORKERS = frozenset({"worker", "email-worker"})
#: Settings of a shared class that only some roles act on: the others parse them (one
#: class, one Celery configuration) but need not be given them.
ACTED_ON_BY: dict[str, frozenset[str]] = {
    **{
        name: WORKERS
        for name in (
            "WORKER_POOL",
            "WORKER_CONCURRENCY",
            "WORKER_PREFETCH_MULTIPLIER",
            "WORKER_SOFT_SHUTDOWN_TIMEOUT",
            "WORKER_SEND_TASK_EVENTS",
            "WORKER_EVENT_FLUSH_INTERVAL",
            "WORKER_LOG_TASKS",
            "RESTORE_INTERVAL",  # only workers sweep unacknowledged messages back
        )
    },
    # Flower shows whatever the workers run; the others load the task packages.
    **{
        name: frozenset({"producer", "worker", "email-worker", "reconciler"})
        for name in ("TASK_PACKAGES", "DEMO_TASKS")
    },
    # The `tally` test task runs on the default queue.
    "TALLY_REDIS_URL": frozenset({"worker"}),
    # Prefork only: the e-mail worker runs threads.
    "WORKER_MAX_TASKS_PER_CHILD": frozenset({"worker"}),
    "WORKER_MAX_MEMORY_PER_CHILD": frozenset({"worker"}),
    # Only the e-mail worker consumes the email queue (the CPU worker gets no SMTP
    # password); every worker parses them, so a misconfigured one fails at start.
    **{
        name: frozenset({"email-worker"})
        for name in FIELDS
        if name.startswith(("SMTP_", "EMAIL_")) and name != "EMAIL_TEMPLATES_DIR"
    },
}
#: (deployment, setting) left out on purpose, with the reason.
NOT_PASSED = {
    # The test stacks (integration, chaos) set them; `make audit` refuses them.
    **{(d, "CONVEYOR_TEST_TASKS"): "test stacks only" for d in DEPLOYMENTS},
    # Compose passes it (empty) so that the chaos overlay's value is the only one.
    **{(d, "TALLY_REDIS_URL"): "test stacks only" for d in ("swarm", "kubernetes")},
    ("swarm", "REDIS_PORT"): "the stack's own Redis, always redis:6379 (TLS)",
}
#: Variables of Redis's start script whose names it builds: REDIS_<ROLE>_PASSWORD.
REDIS_ROLE_PASSWORD = re.compile(r"^REDIS_[A-Z]+_PASSWORD$")
#: What reads the variables a service is given beside its settings classes.
READERS = {
    "redis": [ROOT / "deploy" / "redis" / "start-redis.sh"],
    "mailbox": [ROOT / "services" / "entrypoint.sh"],
    **{role: [ROOT / "services" / "entrypoint.sh"] for role in ROLE_CLASSES},
}
#: Where a variable of .env.example that no setting reads may be used instead.
ENV_USERS = [
    *(path for paths in DEPLOYMENTS.values() for path in paths if path.suffix == ".yml"),
    *sorted((ROOT / "deploy" / "compose").glob("*.yml")),
    ROOT / "Makefile",
    *sorted((ROOT / "deploy" / "scripts").glob("*.sh")),
]
#: Variables read in services/ and clients/ with os.environ or os.getenv rather than through the
#: settings, and why each is not a setting.
READ_BESIDE_SETTINGS = {
    "WORKER_HEARTBEAT_FILE": "the worker's healthcheck runs every 5 s and must not import "
    "pydantic; the integration tests move the file",
    "WORKER_HEARTBEAT_MAX_AGE": "the same healthcheck's bound, three beats of 5 s",
    "PROMETHEUS_MULTIPROC_DIR": "prometheus_client's own variable, set by gunicorn_conf",
    "PRODUCER_PORT": "the CLI's: the host port of the API, a client-side setting",
    "CONVEYOR_API_URL": "the CLI's: where the API is, a client-side setting",
    "CONVEYOR_API_KEY": "the CLI's: the key it sends (the producer reads it as a setting)",
    "CONVEYOR_QUEUES_FILE": "where the queue declarations are: read by a standard-library "
    "module that the Makefile also runs on the host, without pydantic (the tests move it)",
}


def env_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variables one settings class reads."""
    prefix = cls.model_config.get("env_prefix", "")
    names = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        names.add(alias if isinstance(alias, str) else f"{prefix}{name}".upper())
    return names


def role_fields(role: str) -> set[str]:
    """Every setting the classes of a role read."""
    return set().union(*(env_names(cls) for cls in ROLE_CLASSES[role]))


def acted_on(role: str) -> set[str]:
    """The settings a role acts on: the deployments must pass these."""
    return {name for name in role_fields(role) if role in ACTED_ON_BY.get(name, {role})}


ALL_CLASSES: tuple[type[BaseSettings], ...] = (*SETTINGS_CLASSES, core.SecretsLocation)


def compose_passed(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Per service: the variables the compose or stack files give it (env and secrets)."""
    passed: dict[str, dict[str, Any]] = {}
    for path in paths:
        document = yaml.safe_load(path.read_text())
        for name, service in (document.get("services") or {}).items():
            into = passed.setdefault(name, {})
            into.update(environment(service or {}))
            # Swarm secrets mounted in /run/secrets under a setting's name.
            for secret in (service or {}).get("secrets", []):
                target = secret["target"] if isinstance(secret, dict) else secret
                into.setdefault(f"file:{target}", None)
    return passed


def k8s_passed(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Per container: env entries, its ConfigMaps' keys and its secret files."""
    documents = [doc for path in paths for doc in k8s_documents(path)]
    config_maps = {
        doc["metadata"]["name"]: doc.get("data") or {}
        for doc in documents
        if doc.get("kind") == "ConfigMap"
    }
    passed: dict[str, dict[str, Any]] = {}
    for document in documents:
        spec = document.get("spec", {}).get("template", {}).get("spec", {})
        secret_items = {
            volume["name"]: [item["path"] for item in volume["secret"].get("items", [])]
            for volume in spec.get("volumes", [])
            if "secret" in volume
        }
        for container in spec.get("containers", []):
            into = passed.setdefault(container["name"], {})
            for source in container.get("envFrom", []):
                into.update(config_maps[source["configMapRef"]["name"]])
            into.update({entry["name"]: entry.get("value") for entry in container.get("env", [])})
            for mount in container.get("volumeMounts", []):
                if mount["mountPath"] == "/run/secrets":
                    into.update({f"file:{p}": None for p in secret_items[mount["name"]]})
    return passed


def passed_by(deployment: str) -> dict[str, set[str]]:
    """Per service of a deployment: the settings it is given (as variables or files)."""
    paths = DEPLOYMENTS[deployment]
    raw = k8s_passed(paths) if deployment == "kubernetes" else compose_passed(paths)
    return {
        service: {name.removeprefix("file:").upper() for name in names}
        for service, names in raw.items()
    }


def variables_given(deployment: str) -> dict[str, set[str]]:
    """Per service: the environment variables (not secret files) it is given."""
    paths = DEPLOYMENTS[deployment]
    raw = k8s_passed(paths) if deployment == "kubernetes" else compose_passed(paths)
    return {
        service: {name for name in names if not name.startswith("file:")}
        for service, names in raw.items()
    }


def test_every_setting_is_documented_or_internal() -> None:
    documented = set(read_env_file(ENV_EXAMPLE))
    names = set().union(*(env_names(cls) for cls in ALL_CLASSES))
    missing = sorted(names - documented - set(core.INTERNAL_SETTINGS))
    assert not missing, f"settings missing from .env.example (or from INTERNAL_SETTINGS): {missing}"
    both = sorted(documented & set(core.INTERNAL_SETTINGS))
    assert not both, f"internal settings that .env.example documents anyway: {both}"
    unknown = sorted(set(core.INTERNAL_SETTINGS) - names)
    assert not unknown, f"INTERNAL_SETTINGS names no setting: {unknown}"


def test_every_variable_of_env_example_is_read() -> None:
    """A variable no setting reads must be used by compose, Make or a deploy script."""
    fields = set().union(*(env_names(cls) for cls in ALL_CLASSES))
    texts = "\n".join(path.read_text() for path in ENV_USERS)
    unread = [
        name
        for name in read_env_file(ENV_EXAMPLE)
        if name not in fields and not re.search(rf"\b{name}\b", texts)
    ]
    assert not unread, f".env.example variables that nothing reads: {unread}"


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_each_role_is_given_the_settings_it_acts_on(deployment: str) -> None:
    passed = passed_by(deployment)
    missing = []
    for role in ROLE_CLASSES:
        assert role in passed, f"{deployment} has no {role} service"
        for name in sorted(acted_on(role) - passed[role]):
            if name not in core.INTERNAL_SETTINGS and (deployment, name) not in NOT_PASSED:
                missing.append(f"{role}: {name}")
    assert not missing, f"settings {deployment} does not pass to the role that reads them:\n" + (
        "\n".join(missing)
    )


def test_the_mailbox_is_given_its_settings() -> None:
    """Compose, the one deployment that runs the mailbox, passes it each of its settings
    (LOG_LEVEL too), but for the internal ones."""
    passed = passed_by("compose")["mailbox"]
    missing = sorted(env_names(core.MailboxSettings) - passed - set(core.INTERNAL_SETTINGS))
    assert not missing, f"settings compose does not pass to the mailbox: {missing}"


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_no_service_is_given_a_variable_nothing_reads(deployment: str) -> None:
    """A variable given to a service is a setting of its role or read by its start script."""
    unknown = []
    for service, names in variables_given(deployment).items():
        known = role_fields(service) if service in ROLE_CLASSES else set()
        if service == "mailbox":
            known = env_names(core.MailboxSettings)
        scripts = "\n".join(path.read_text() for path in READERS.get(service, []))
        unknown += [
            f"{service}: {name}"
            for name in sorted(names - known)
            if not re.search(rf"\b{name}\b", scripts)
            and not (service == "redis" and REDIS_ROLE_PASSWORD.match(name))
        ]
    assert not unknown, f"variables {deployment} passes that nothing reads:\n" + "\n".join(unknown)


def test_the_exceptions_are_still_needed() -> None:
    """An entry of NOT_PASSED for a setting the deployment now passes is stale."""
    stale = [
        key for key in NOT_PASSED if any(key[1] in names for names in passed_by(key[0]).values())
    ]
    assert not stale, f"stale NOT_PASSED entries: {stale}"


#: `os.environ.get("NAME"`, `os.environ["NAME"]`, `os.getenv("NAME"`, `setdefault("NAME"`.
ENVIRON_READ = re.compile(
    r"""(?:environ\.get|environ\[|getenv|environ\.setdefault)\(?\s*["'](\w+)"""
)


def test_services_read_variables_through_the_settings() -> None:
    """Configuration is read through the settings classes, not os.environ beside them."""
    read = {
        (match.group(1), str(path.relative_to(ROOT)))
        # The client packages too: they read their own few (no server settings there).
        for folder in ("services", "clients")
        for path in (ROOT / folder).rglob("*.py")
        for match in ENVIRON_READ.finditer(path.read_text())
    }
    beside = sorted(f"{name} ({where})" for name, where in read if name not in READ_BESIDE_SETTINGS)
    assert not beside, f"variables read beside the settings: {beside}"
    stale = set(READ_BESIDE_SETTINGS) - {name for name, _ in read}
    assert not stale, f"READ_BESIDE_SETTINGS names a variable nothing reads: {sorted(stale)}"


#: (deployment, service or "*", setting) that compose or Swarm set to a value of their
#: own, not from .env, on purpose.
NOT_FROM_ENV = {
    # The e-mail worker: its queue's declaration (queues.toml), which EMAIL_WORKER_POOL,
    # EMAIL_WORKER_CONCURRENCY and EMAIL_WORKER_PREFETCH_MULTIPLIER override.
    *(
        (d, "email-worker", n)
        for d in ("compose", "swarm")
        for n in ("WORKER_POOL", "WORKER_CONCURRENCY", "WORKER_PREFETCH_MULTIPLIER")
    ),
    # TLS on with the overlay and in Swarm; each role's own password there.
    ("compose", "*", "REDIS_TLS"),
    ("compose", "*", "REDIS_PASSWORD"),
    ("swarm", "*", "REDIS_TLS"),
    # Swarm always runs production (it never deploys the development mailbox).
    ("swarm", "*", "CONVEYOR_ENV"),
    # The stack's own Redis.
    ("swarm", "*", "REDIS_HOST"),
}


@pytest.mark.parametrize("deployment", ["compose", "swarm"])
def test_documented_settings_come_from_env(deployment: str) -> None:
    """A setting .env.example documents reaches a service as `${NAME...}`, not a literal."""
    documented = set(read_env_file(ENV_EXAMPLE)) & set(FIELDS)
    fixed = []
    for service, env in compose_passed(DEPLOYMENTS[deployment]).items():
        for name, raw in env.items():
            if name not in documented or raw is None:
                continue
            if re.search(rf"\$\{{{name}\b", str(raw)):
                continue
            if {(deployment, service, name), (deployment, "*", name)} & NOT_FROM_ENV:
                continue
            fixed.append(f"{service}: {name}={raw!r}")
    assert not fixed, f"{deployment} sets documented settings that .env cannot change:\n" + (
        "\n".join(fixed)
    )


def test_swarm_required_variable_messages_have_no_dash() -> None:
    """`docker stack deploy` reads a dash in `${VAR:?message}` as `:-`: the rest of the
    message would become the value (seen: CONVEYOR_QUEUES="up (it renders ...)")."""
    text = (ROOT / "deploy" / "swarm" / "stack.yml").read_text()
    dashed = re.findall(r"\$\{\w+:\?[^}]*-[^}]*\}", text)
    assert not dashed, dashed
