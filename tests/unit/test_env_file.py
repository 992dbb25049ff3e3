"""The two .env readers (conveyor_core.env_file and deploy/scripts/env-file.sh) agree.

Each tricky line is read by both; both must give the value python-dotenv documents
(None: the line sets nothing). Runs bash, never Docker.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conveyor_core.env_file import read_env_file
from tests.helpers import ROOT

READER = ROOT / "deploy" / "scripts" / "env-file.sh"
SENDER = "Conveyor <conveyor@example.com>"

#: (line as written in .env, the key it names, the value it sets or None).
CASES = [
    ("KEY=value", "KEY", "value"),
    ("KEY=", "KEY", ""),
    ('KEY=""', "KEY", ""),
    ('KEY="quoted value"', "KEY", "quoted value"),
    ("KEY='single quoted'", "KEY", "single quoted"),
    (f'EMAIL_FROM="{SENDER}"', "EMAIL_FROM", SENDER),
    (f"EMAIL_FROM={SENDER}", "EMAIL_FROM", SENDER),
    ("KEY = spaced", "KEY", "spaced"),
    ("   KEY=indented", "KEY", "indented"),
    ("export KEY=exported", "KEY", "exported"),
    ("export\tKEY='exported'", "KEY", "exported"),
    ("KEY=a=b=c", "KEY", "a=b=c"),
    ("KEY=trailing   ", "KEY", "trailing"),
    ("KEY=value # a comment", "KEY", "value"),
    ("KEY=value\t# a comment", "KEY", "value"),
    ("KEY=value#not-a-comment", "KEY", "value#not-a-comment"),
    ("KEY=#novalue", "KEY", "#novalue"),
    ("KEY= # only a comment", "KEY", ""),
    ('KEY="a # b"', "KEY", "a # b"),
    ('KEY="x"   # a comment', "KEY", "x"),
    ('KEY="say \\"hi\\""', "KEY", 'say "hi"'),
    ('KEY="tab\\there"', "KEY", "tab\there"),
    ('KEY="back\\\\slash"', "KEY", "back\\slash"),
    ('KEY="\\x41 stays"', "KEY", "\\x41 stays"),
    ("KEY='no \\n escape'", "KEY", "no \\n escape"),
    ("KEY='it\\'s'", "KEY", "it's"),
    ('KEY=un"quoted', "KEY", 'un"quoted'),
    ("KEY=a\\b", "KEY", "a\\b"),
    ("KEY=$HOME/not-expanded", "KEY", "$HOME/not-expanded"),
    ("KEY=${OTHER:-x}", "KEY", "${OTHER:-x}"),
    ("KEY=crlf\r", "KEY", "crlf"),
    ("KEY=héllo wörld", "KEY", "héllo wörld"),
    ("DOTTED.KEY=1", "DOTTED.KEY", "1"),
    # Lines that set nothing.
    ('KEY="unterminated', "KEY", None),
    ("KEY='unterminated", "KEY", None),
    ('KEY="closed"junk', "KEY", None),
    ("KEY='it''s'", "KEY", None),
    ("# KEY=commented out", "KEY", None),
    ("KEY", "KEY", None),
    ("", "KEY", None),
]


def shell(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the shell reader with ARGS."""
    return subprocess.run(
        ["bash", str(READER), *args], capture_output=True, text=True, env=env, check=False
    )


def shell_get(key: str, path: Path) -> str | None:
    """`env-file.sh get KEY FILE`: the value, or None when the file does not set KEY."""
    done = shell("get", key, str(path))
    if done.returncode == 1:
        return None
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("\n")
    return done.stdout[:-1]


def write(tmp_path: Path, text: str) -> Path:
    """An env file with exactly TEXT (no newline translation)."""
    path = tmp_path / "test.env"
    path.write_bytes(text.encode())
    return path


@pytest.mark.parametrize(("line", "key", "expected"), CASES)
def test_both_readers_read_a_line_alike(tmp_path, line, key, expected):
    path = write(tmp_path, line + "\n")
    assert read_env_file(path).get(key) == expected
    assert shell_get(key, path) == expected


def test_a_whole_file_last_key_wins_and_comments_are_skipped(tmp_path):
    path = write(
        tmp_path,
        "# a comment\r\n\r\nA=1\r\nB='two words'  # why\r\nA=3\r\n  # indented comment\r\nC=last",
    )
    assert read_env_file(path) == {"A": "3", "B": "two words", "C": "last"}
    assert [shell_get(k, path) for k in "ABC"] == ["3", "two words", "last"]


def test_a_missing_file_holds_no_key(tmp_path):
    assert read_env_file(tmp_path / "absent.env") == {}
    assert shell_get("KEY", tmp_path / "absent.env") is None


def test_has_counts_an_empty_value(tmp_path):
    path = write(tmp_path, "EMPTY=\n")
    assert shell("has", "EMPTY", str(path)).returncode == 0
    assert shell("has", "OTHER", str(path)).returncode == 1


def test_export_lets_the_environment_win(tmp_path):
    path = write(tmp_path, "FROM_ENV=file\nFROM_FILE='file value'\nFROM_FILE=last\n")
    script = f'. "{READER}"; env_file_export "{path}"; printf "%s|%s" "$FROM_ENV" "$FROM_FILE"'
    done = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "FROM_ENV": "environment"},
        check=True,
    )
    assert done.stdout == "environment|last"


def test_the_example_file_reads_alike(tmp_path):
    """Every key of .env.example has the same value in both readers."""
    example = ROOT / ".env.example"
    values = read_env_file(example)
    assert values["EMAIL_FROM"] == SENDER
    script = f'. "{READER}"; for k in "$@"; do env_file_get "$k" "{example}"; done'
    done = subprocess.run(
        ["bash", "-c", script, "_", *values],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines() == list(values.values())
