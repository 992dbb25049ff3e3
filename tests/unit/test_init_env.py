"""`make env` (deploy/scripts/init-env.sh) on temporary files: no Docker.

`cp .env.example .env` is what most people do first; `make env` (and so `make up`) must
then fill every empty generated secret, and never change one that is set.
"""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

from pydantic import SecretStr

from conveyor_core.env_file import read_env_file
from conveyor_core.settings import check_secret
from tests.helpers import ROOT

SCRIPT = ROOT / "deploy" / "scripts" / "init-env.sh"
LIST = ROOT / "deploy" / "scripts" / "generated-secrets.list"
EXAMPLE = ROOT / ".env.example"


def generated() -> list[str]:
    """The names in generated-secrets.list (comments and blank lines skipped)."""
    names = (line.split("#", 1)[0].strip() for line in LIST.read_text().splitlines())
    return [name for name in names if name]


def init_env(target: Path, example: Path = EXAMPLE) -> str:
    """Run `init-env.sh EXAMPLE TARGET` as `make env` does; its output."""
    done = subprocess.run(
        ["bash", str(SCRIPT), str(example), str(target)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def assert_usable_secrets(values: dict[str, str], output: str) -> None:
    """Every generated secret is set, passes the services' own check, is unique and unprinted."""
    secrets = [values.get(name, "") for name in generated()]
    for name, value in zip(generated(), secrets, strict=True):
        check_secret(SecretStr(value), name, "production")
        assert value not in output, f"{name} was printed"
    assert len(set(secrets)) == len(secrets)


def test_a_copied_example_gets_every_secret_and_no_other_line_changes(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text(EXAMPLE.read_text())  # cp .env.example .env
    output = init_env(target)
    assert_usable_secrets(read_env_file(target), output)
    before, after = EXAMPLE.read_text().splitlines(), target.read_text().splitlines()
    assert len(after) == len(before)
    changed = {a.split("=", 1)[0] for b, a in zip(before, after, strict=True) if a != b}
    assert changed == set(generated())


def test_a_set_secret_is_never_changed_an_empty_one_is_filled_a_missing_one_added(
    tmp_path: Path,
) -> None:
    target = tmp_path / ".env"
    kept = {"REDIS_PASSWORD": "my-own-redis-password-0123"}
    target.write_text(
        "# mine\n"
        f"REDIS_PASSWORD={kept['REDIS_PASSWORD']}\n"
        "CONVEYOR_API_KEY=an-older-key-that-a-later-line-empties\n"
        "CONVEYOR_API_KEY=\n"  # the last line wins: empty, so filled
        'export FLOWER_PASSWORD=""  # quoted and empty\n'
        "FLOWER_COOKIE_SECRET = \n"
        "LOG_LEVEL=DEBUG\n"
    )
    output = init_env(target)
    values = read_env_file(target)
    assert_usable_secrets(values, output)
    assert values["REDIS_PASSWORD"] == kept["REDIS_PASSWORD"]
    assert values["LOG_LEVEL"] == "DEBUG"
    lines = target.read_text().splitlines()
    assert lines[:3] == [
        "# mine",
        f"REDIS_PASSWORD={kept['REDIS_PASSWORD']}",
        "CONVEYOR_API_KEY=an-older-key-that-a-later-line-empties",
    ]
    assert lines[4].startswith("export FLOWER_PASSWORD=")
    # A second run has nothing left to do and leaves the file as it is.
    text = target.read_text()
    assert init_env(target) == ""
    assert target.read_text() == text


def test_without_env_it_is_created_from_the_example_owner_only(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    output = init_env(target)
    assert_usable_secrets(read_env_file(target), output)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".env.*")), "a temporary file was left behind"


def test_the_list_and_env_example_agree() -> None:
    """Each listed secret is in .env.example, empty, and each variable that
    .env.example says is generated is listed: a new secret cannot miss either place."""
    example = read_env_file(EXAMPLE)
    for name in generated():
        assert example.get(name) == "", f"{name} is not set empty in .env.example"
    said_generated: set[str] = set()
    comment, in_variables = "", False
    for line in EXAMPLE.read_text().splitlines():
        if line.startswith("#"):
            if in_variables:  # a new comment block begins
                comment, in_variables = "", False
            comment += line
        elif match := re.match(r"([A-Z0-9_]+)=", line):
            in_variables = True
            if "generated" in comment:
                said_generated.add(match[1])
        else:  # a blank line ends the block
            comment, in_variables = "", False
    assert said_generated == set(generated())
