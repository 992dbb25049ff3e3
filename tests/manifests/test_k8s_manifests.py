"""The Kubernetes manifests (deploy/k8s): each overlay renders with `make k8s-render`,
every object is valid against the Kubernetes schemas (offline, kubernetes-validate,
strict: no unknown field), and the deployment's invariants hold."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.helpers import ROOT

OVERLAYS = ("dev", "production")
#: The oldest Kubernetes these manifests are checked against, and the newest.
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
#: Kinds that are not Kubernetes' own (KEDA's): checked by the invariants below only.
CUSTOM_KINDS = {"ScaledObject", "TriggerAuthentication"}
WORKERS = {"worker": "default", "email-worker": "email"}


def render(overlay: str) -> list[dict[str, Any]]:
    if not (shutil.which("kubectl") or shutil.which("kustomize")):
        pytest.fail("rendering the manifests needs kubectl or kustomize (.ci/run installs it)")
    done = subprocess.run(
        ["make", "--no-print-directory", "k8s-render", f"OVERLAY={overlay}"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def manifests(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def env_of(container: dict[str, Any], name: str) -> str | None:
    values = [e.get("value") for e in container.get("env", []) if e["name"] == name]
    return values[0] if values else None


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_kubernetes(manifests: list[dict[str, Any]], version: str) -> None:
    for manifest in manifests:
        if manifest["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{manifest['kind']}/{manifest['metadata']['name']}: {error.message}")


def test_one_namespace_and_the_services_of_the_compose_stack(
    manifests: list[dict[str, Any]],
) -> None:
    namespaces = {m["metadata"].get("namespace") for m in manifests if m["kind"] != "Namespace"}
    assert len(namespaces) == 1 and None not in namespaces
    deployments = set(by_kind(manifests, "Deployment"))
    assert deployments >= {"producer", "worker", "email-worker", "reconciler", "flower"}
    assert set(by_kind(manifests, "StatefulSet")) == {"redis"}


def test_workers_outlast_their_tasks_and_keep_a_disruption_budget(
    manifests: list[dict[str, Any]],
) -> None:
    config = by_kind(manifests, "ConfigMap")["conveyor-config"]["data"]
    time_limit = int(config["TASK_TIME_LIMIT"])
    budgets = {
        b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for b in by_kind(manifests, "PodDisruptionBudget").values()
    }
    deployments = by_kind(manifests, "Deployment")
    for name, queue in WORKERS.items():
        spec = deployments[name]["spec"]["template"]["spec"]
        [container] = spec["containers"]
        assert env_of(container, "WORKER_QUEUES") == queue
        grace = spec["terminationGracePeriodSeconds"]
        # The e-mail worker's sends are bounded by SMTP_TIMEOUT, not by the task limit.
        assert grace > (time_limit if name == "worker" else 30), (name, grace)
        assert name in budgets
        strategy = deployments[name]["spec"]["strategy"]["rollingUpdate"]
        assert strategy["maxUnavailable"] == 0, "a rolling update must not drop capacity"


def test_redis_is_private_tls_only_and_reached_only_by_our_pods(
    manifests: list[dict[str, Any]],
) -> None:
    for service in by_kind(manifests, "Service").values():
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", service["metadata"]
    [redis] = by_kind(manifests, "StatefulSet").values()
    [container] = redis["spec"]["template"]["spec"]["containers"]
    assert env_of(container, "REDIS_TLS") == "true"
    policies = by_kind(manifests, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
    }
    [rule] = policies["redis-clients-only"]["spec"]["ingress"]
    clients = rule["from"][0]["podSelector"]["matchLabels"]
    talkers = {
        d["metadata"]["name"]
        for d in by_kind(manifests, "Deployment").values()
        if d["spec"]["template"]["metadata"]["labels"].get("conveyor.io/redis-client") == "true"
    }
    assert clients == {"conveyor.io/redis-client": "true"}
    assert talkers == {"producer", "worker", "email-worker", "reconciler", "flower"}


def test_each_role_logs_in_as_its_own_redis_user(manifests: list[dict[str, Any]]) -> None:
    expected = {
        "producer": "producer",
        "worker": "worker",
        "email-worker": "email",
        "reconciler": "reconciler",
        "flower": "flower",
    }
    for name, deployment in by_kind(manifests, "Deployment").items():
        if name not in expected:
            continue
        spec = deployment["spec"]["template"]["spec"]
        [container] = spec["containers"]
        assert env_of(container, "REDIS_USERNAME") == expected[name]
        [secret] = [v["secret"] for v in spec["volumes"] if v["name"] == "secrets"]
        keys = {item["path"]: item["key"] for item in secret["items"]}
        assert keys["redis_password"] == f"redis-{expected[name]}-password"
    # Redis creates each of those users (the `default` one is always off).
    [redis] = by_kind(manifests, "StatefulSet")["redis"]["spec"]["template"]["spec"]["containers"]
    roles = (env_of(redis, "REDIS_ROLES") or "").split()
    assert set(expected.values()) | {"autoscaler"} <= set(roles)
    [passwords] = [
        v["secret"]
        for v in by_kind(manifests, "StatefulSet")["redis"]["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "passwords"
    ]
    paths = {item["path"] for item in passwords["items"]}
    assert {f"redis_{role}_password" for role in roles} | {"redis_password"} <= paths


def test_every_container_runs_locked_down_with_probes(manifests: list[dict[str, Any]]) -> None:
    deployments = by_kind(manifests, "Deployment").values()
    for workload in [*deployments, *by_kind(manifests, "StatefulSet").values()]:
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert "livenessProbe" in container or "readinessProbe" in container
            assert container["resources"]["limits"]["memory"]


def test_workers_autoscale_on_their_queue_or_on_cpu(manifests: list[dict[str, Any]]) -> None:
    scaled = by_kind(manifests, "ScaledObject")
    hpas = by_kind(manifests, "HorizontalPodAutoscaler")
    for name, queue in WORKERS.items():
        if scaled:
            # KEDA owns the HPA: a second one on the same Deployment would fight it.
            assert name not in hpas
            spec = scaled[name]["spec"]
            assert spec["scaleTargetRef"]["name"] == name
            triggers = {t["type"]: t for t in spec["triggers"]}
            assert triggers["redis"]["metadata"]["listName"] == queue
            assert triggers["redis"]["metadata"]["enableTLS"] == "true"
            assert "cpu" in triggers and spec["fallback"]["replicas"] >= 1
            namespace = scaled[name]["metadata"]["namespace"]
            address = triggers["redis"]["metadata"]["address"]
            assert re.fullmatch(rf"redis\.{namespace}\.svc\.cluster\.local:6379", address)
        else:
            target = hpas[name]["spec"]["scaleTargetRef"]
            assert (target["kind"], target["name"]) == ("Deployment", name)
            assert hpas[name]["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_no_overlay_runs_the_development_mailbox(manifests: list[dict[str, Any]]) -> None:
    # The mailbox keeps every e-mail and shows it on a web page: never on Kubernetes. The
    # e-mail worker's host comes from the operator's ConfigMap, never the sink's name.
    assert "mailbox" not in yaml.safe_dump(manifests)
    email = by_kind(manifests, "Deployment")["email-worker"]["spec"]["template"]["spec"]
    [container] = email["containers"]
    [host] = [entry for entry in container["env"] if entry["name"] == "SMTP_HOST"]
    assert host == {
        "name": "SMTP_HOST",
        "valueFrom": {"configMapKeyRef": {"name": "conveyor-smtp", "key": "smtp-host"}},
    }


def test_the_production_overlay_scales_with_keda_and_sends_real_mail() -> None:
    manifests = render("production")
    assert set(by_kind(manifests, "ScaledObject")) == set(WORKERS)
    assert not by_kind(manifests, "HorizontalPodAutoscaler")
    assert "mailbox" not in by_kind(manifests, "Deployment")
    email = by_kind(manifests, "Deployment")["email-worker"]["spec"]["template"]["spec"]
    [container] = email["containers"]
    assert env_of(container, "SMTP_SECURITY") == "starttls"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_declared_queue_gets_its_own_objects(
    overlay: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A queue declared by a task project (one entry in its pyproject.toml, no other file
    edited) gets its Deployment, budget and autoscaler, and Redis its key patterns."""
    project = tmp_path_factory.mktemp("reports-tasks")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "reports"\n\n[tool.conveyor.queues.reports]\n'
        'kind = "io"\nconcurrency = 4\nmax_replicas = 7\ntime_limit = 120\n'
    )
    done = subprocess.run(
        ["make", "--no-print-directory", "k8s-render", f"OVERLAY={overlay}",
         f"CONVEYOR_TASKS={project}"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    manifests = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    deployment = by_kind(manifests, "Deployment")["reports-worker"]
    kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    settings = ("WORKER_QUEUES", "WORKER_POOL", "WORKER_CONCURRENCY", "TASK_TIME_LIMIT")
    assert [env_of(container, name) for name in settings] == ["reports", "threads", "4", "120"]
    assert env_of(container, "REDIS_USERNAME") == "worker"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "reports-worker"
    }
    assert labels["app.kubernetes.io/name"] == "reports-worker"
    budget = by_kind(manifests, "PodDisruptionBudget")["reports-worker"]
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    if overlay == "production":
        scaler = by_kind(manifests, "ScaledObject")["reports-worker"]
        assert scaler["spec"]["scaleTargetRef"] == {"name": "reports-worker"}
        assert scaler["spec"]["maxReplicaCount"] == 7
        assert scaler["spec"]["triggers"][0]["metadata"]["listName"] == "reports"
        assert by_kind(manifests, "ScaledObject")["worker"]["spec"]["maxReplicaCount"] == 20
    else:
        autoscaler = by_kind(manifests, "HorizontalPodAutoscaler")["reports-worker"]
        assert autoscaler["spec"]["scaleTargetRef"]["name"] == "reports-worker"
        assert autoscaler["spec"]["maxReplicas"] == 7
    # The default queue's workers keep their own settings.
    [default] = by_kind(manifests, "Deployment")["worker"]["spec"]["template"]["spec"]["containers"]
    assert env_of(default, "WORKER_QUEUES") == "default"
    [redis] = by_kind(manifests, "StatefulSet")["redis"]["spec"]["template"]["spec"]["containers"]
    assert env_of(redis, "CONVEYOR_QUEUES") == "default email reports"
