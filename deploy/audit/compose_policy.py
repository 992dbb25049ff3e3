"""The compose policy: docs/security.md's controls, checked in the rendered configuration.

The configuration is what `docker compose config --format json` prints.

    docker compose config --format json | python deploy/audit/compose_policy.py

Exit 1 with one line per violation, naming the service and the control.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

#: Services that may publish a port (on loopback by default), and nothing else may.
PUBLISHED = {"producer", "flower", "mailbox"}
#: Development-only services and the password that guards each: in a compose profile, so
#: `make up` starts one only when asked (the mailbox: while SMTP_HOST=mailbox).
DEV_ONLY = {"mailbox": "MAILBOX_PASSWORD"}
LOOPBACK = {"127.0.0.1", "::1"}
#: Commands no Redis user may have (roles.acl's `operator` is the most privileged).
REDIS_DENIED = ("-config", "-flushall", "-debug", "-module", "-shutdown", "-acl")
#: Redis users no service may log in as: `default` is off, `operator` is for people.
REDIS_UNUSABLE = {"", "default", "operator"}
#: Services that talk to the outside world (SMTP): each of their networks with a route
#: out must hold nothing else, so what they reach out to cannot reach the others.
EGRESS_ONLY = {"email-worker"}
ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "services" / "Dockerfile"
REDIS_ROLES = ROOT / "deploy" / "redis" / "roles.acl"
REDIS_START = ROOT / "deploy" / "redis" / "start-redis.sh"


def image_user_is_root(dockerfile: Path = DOCKERFILE) -> bool:
    """Whether the app image's last USER is root (or missing)."""
    users = re.findall(r"^USER\s+(\S+)", dockerfile.read_text(), re.M)
    return not users or users[-1].split(":")[0] in {"0", "root"}


def service_problems(name: str, service: dict[str, Any], networks: dict[str, Any]) -> list[str]:
    """The controls one service breaks."""
    problems = []
    if "ALL" not in (service.get("cap_drop") or []):
        problems.append("cap_drop must include ALL")
    if service.get("cap_add"):
        problems.append(f"cap_add {service['cap_add']} (document and allow-list it first)")
    if "no-new-privileges:true" not in (service.get("security_opt") or []):
        problems.append("security_opt must include no-new-privileges:true")
    if service.get("read_only") is not True:
        problems.append("read_only must be true")
    if not service.get("mem_limit"):
        problems.append("mem_limit missing")
    if not service.get("pids_limit"):
        problems.append("pids_limit missing")
    if service.get("privileged"):
        problems.append("privileged")
    for key in ("network_mode", "pid", "ipc"):
        if service.get(key) == "host":
            problems.append(f"{key}: host")
    for volume in service.get("volumes") or []:
        if "docker.sock" in str(volume.get("source", "")):
            problems.append("mounts the Docker socket")
    user = str(service.get("user") or "")
    if user.split(":")[0] in {"0", "root"} or (not user and image_user_is_root()):
        problems.append("runs as root")
    if "FLOWER_UNAUTHENTICATED_API" in (service.get("environment") or {}):
        problems.append("sets FLOWER_UNAUTHENTICATED_API")
    if str((service.get("environment") or {}).get("CONVEYOR_TEST_TASKS", "")).lower() == "true":
        problems.append("sets CONVEYOR_TEST_TASKS (a task that kills its worker)")
    if str((service.get("environment") or {}).get("MAILBOX_FAULTS", "")).lower() == "true":
        problems.append("sets MAILBOX_FAULTS (an open switch that makes e-mail fail)")
    if name in DEV_ONLY:
        problems += dev_only_problems(service, DEV_ONLY[name])
    ports = service.get("ports") or []
    if ports and name not in PUBLISHED and not (name == "redis" and redis_tls(service)):
        problems.append("publishes a port")
    for port in ports:
        if port.get("host_ip") not in LOOPBACK:
            problems.append(
                f"publishes {port.get('target')} on {port.get('host_ip') or 'every address'}"
            )
    if name == "redis":
        problems += redis_problems(service, networks)
    return problems


def dev_only_problems(service: dict[str, Any], password: str) -> list[str]:
    """A development-only service: in a profile (never started by default), behind a password."""
    problems = []
    if not service.get("profiles"):
        problems.append("development only, yet in no profile: every `up` would start it")
    if not (service.get("environment") or {}).get(password):
        problems.append(f"no {password}: its pages and API would need no login")
    return problems


def redis_tls(service: dict[str, Any]) -> bool:
    """Whether this Redis speaks TLS only (then it may be published, on loopback by default)."""
    return str((service.get("environment") or {}).get("REDIS_TLS", "")).lower() == "true"


def redis_problems(service: dict[str, Any], networks: dict[str, Any]) -> list[str]:
    """Redis: Conveyor's start script (passwords, ACL), internal networks unless TLS."""
    problems = []
    if not redis_tls(service):
        for network in service.get("networks") or {}:
            if not (networks.get(network) or {}).get("internal"):
                problems.append(f"on network {network}, which is not internal")
    context = str((service.get("build") or {}).get("context", ""))
    if not context.endswith("deploy/redis"):
        problems.append("not built from deploy/redis (its start script sets the ACL)")
    command = service.get("command") or []
    if service.get("entrypoint") or (command and not str(command[0]).startswith("--")):
        problems.append("the start script is replaced: Redis's users need a password and an ACL")
    return problems + acl_problems(REDIS_ROLES.read_text())


def acl_problems(roles: str, start_script: str | None = None) -> list[str]:
    """What weakens the Redis users: a user without a password or with a denied command.

    Also: the start script must turn `default` off, and roles.acl never turn it on again.
    """
    problems = []
    script = REDIS_START.read_text() if start_script is None else start_script
    if "--user default reset off" not in script:
        problems.append("the start script does not turn the default user off")
    for line in roles.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        user, *rules = line.split()
        if user == "default":
            problems.append("roles.acl defines the default user (it must stay off)")
        if "+@all" in rules and "-@dangerous" not in rules:
            problems += [
                f"the ACL of {user} does not deny {rule[1:]}"
                for rule in REDIS_DENIED
                if rule not in rules
            ]
        if "nopass" in rules:
            problems.append(f"the ACL user {user} has no password")
    return problems


def redis_users(services: dict[str, Any]) -> dict[str, str]:
    """Each service that holds a Redis password, and the Redis user it logs in as."""
    return {
        name: str(env.get("REDIS_USERNAME") or "")
        for name, service in services.items()
        if name != "redis" and "REDIS_PASSWORD" in (env := service.get("environment") or {})
    }


def redis_user_problems(services: dict[str, Any]) -> list[str]:
    """Redis clients that do not log in as a role of their own.

    Never `default` (off) or the operator, never a user another service has too.
    """
    users = redis_users(services)
    problems = []
    for name, user in sorted(users.items()):
        if user in REDIS_UNUSABLE:
            problems.append(f"{name}: logs in to Redis as {user or 'default'}, not as its role")
        elif others := sorted(n for n, u in users.items() if u == user and n != name):
            problems.append(f"{name}: shares the Redis user {user} with {', '.join(others)}")
    return problems


def egress_problems(services: dict[str, Any], networks: dict[str, Any]) -> list[str]:
    """An EGRESS_ONLY service's networks with a route out hold no other service."""
    problems = []
    for name in sorted(EGRESS_ONLY & services.keys()):
        for network in services[name].get("networks") or {}:
            if (networks.get(network) or {}).get("internal"):
                continue
            others = sorted(
                other
                for other, service in services.items()
                if other != name and network in (service.get("networks") or {})
            )
            if others:
                problems.append(
                    f"{name}: its way out, network {network}, also holds {', '.join(others)}"
                )
    return problems


def build_problems(services: dict[str, Any]) -> list[str]:
    """Each image is built by one service at most.

    Compose labels every build with its service, so two services building one tag make
    two images; the tag goes to whichever finished last, and each `make up` recreates the
    containers of the other (a warm shutdown of every worker, each time).
    """
    builders: dict[str, list[str]] = {}
    for name, service in services.items():
        if service.get("build") and service.get("image"):
            builders.setdefault(str(service["image"]), []).append(name)
    return [
        f"{', '.join(sorted(names))}: all build {image}; let one build it, the others use it"
        for image, names in sorted(builders.items())
        if len(names) > 1
    ]


def check(config: dict[str, Any]) -> list[str]:
    """Every violation in a rendered compose configuration."""
    networks = config.get("networks") or {}
    services = config.get("services") or {}
    return (
        [
            f"{name}: {problem}"
            for name, service in sorted(services.items())
            for problem in service_problems(name, service, networks)
        ]
        + redis_user_problems(services)
        + egress_problems(services, networks)
        + build_problems(services)
    )


def main() -> int:
    """Read the configuration from stdin; print violations; exit 1 if any."""
    problems = check(json.load(sys.stdin))
    for problem in problems:
        print(f"compose policy: {problem}")
    if not problems:
        print("compose policy: every service passes")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
