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
from conveyor_mailbox.server import MailboxSettings
from tests.helpers import ROOT

SETTINGS_CLASSES: tuple[type[BaseSettings], ...] = (
    core.Settings,
    core.ProducerSettings,
    core.ReconcilerSettings,
    core.WorkerSettings,
    core.FlowerSettings,
    core.TemplateSettings,
    MailboxSettings,
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
    # The e-mail worker waits on SMTP: threads, many of them.
    *(
        (path, "email-worker", name)
        for path in (
            "docker-compose.yml",
            "deploy/swarm/stack.yml",
            "deploy/k8s/base/email-worker.yaml",
        )
        for name in ("WORKER_POOL", "WORKER_CONCURRENCY")
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
        for role in ("producer", "worker", "email-worker", "reconciler", "flower")
    ),
    # Swarm mounts the CA certificate as a secret.
    ("deploy/swarm/stack.yml", "*", "REDIS_TLS_CA_FILE"),
    # The mailbox keeps its messages on a volume (default: memory only).
    ("docker-compose.yml", "mailbox", "MAILBOX_DATA_DIR"),
    ("deploy/swarm/stack.yml", "mailbox", "MAILBOX_DATA_DIR"),
    ("deploy/k8s/overlays/dev/mailbox.yaml", "mailbox", "MAILBOX_DATA_DIR"),
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
