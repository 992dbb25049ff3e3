"""A new task project: `python -m conveyor.scaffold NAME [DEST]` (`make new-tasks NAME=...`).

The project it writes is a normal Python project (pyproject.toml with the
`conveyor.tasks` entry point, a package with one task, its tests) that passes its own
tests as written, and that `CONVEYOR_TASKS=DEST make up` builds into the stack.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).parent / "project_template"
#: A project name: lower-case words joined by - or _ ("billing", "billing-tasks").
NAME = re.compile(r"^[a-z][a-z0-9]*([-_][a-z0-9]+)*$")


class ScaffoldError(Exception):
    """The project cannot be written as asked; the message says why."""


def names(name: str) -> dict[str, str]:
    """The template's variables for a project name."""
    if not NAME.match(name):
        raise ScaffoldError(
            f"NAME={name!r}: use lower-case words joined by - or _ (like billing or billing-tasks)"
        )
    base = name.removesuffix("-tasks").removesuffix("_tasks")
    words = re.split(r"[-_]", base)
    return {
        "project": f"{base}-tasks",
        "package": f"{'_'.join(words)}_tasks",
        "entry_point": "_".join(words),
        "task_prefix": "_".join(words),
        "title": " ".join(words).capitalize(),
    }


def render(name: str, dest: Path) -> list[Path]:
    """Write the project into `dest` (absent or empty); the files written."""
    if dest.exists() and any(dest.iterdir()):
        raise ScaffoldError(f"{dest} exists and is not empty: choose another DEST")
    variables = names(name)
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701  # Python and TOML, not HTML
    )
    written = []
    for template in sorted(TEMPLATES.rglob("*.j2")):
        relative = template.relative_to(TEMPLATES).with_suffix("")
        parts = [variables["package"] if p == "package" else p for p in relative.parts]
        target = dest.joinpath(*parts)
        if target.name == "gitignore":
            target = target.with_name(".gitignore")
        target.parent.mkdir(parents=True, exist_ok=True)
        text = environment.get_template(template.relative_to(TEMPLATES).as_posix()).render(
            **variables
        )
        target.write_text(text)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """Write a project; 2 with the reason when it cannot be written."""
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        print("usage: python -m conveyor.scaffold NAME [DEST]", file=sys.stderr)
        return 64
    name = args[0]
    try:
        dest = Path(args[1] if len(args) == 2 else f"../{names(name)['project']}")
        written = render(name, dest)
    except ScaffoldError as exc:
        print(f"new-tasks: {exc}", file=sys.stderr)
        return 2
    print(f"new-tasks: wrote {len(written)} files in {dest}")
    print(f"  test it:  cd {dest} && {sys.executable} -m pytest")
    print(f"  serve it: CONVEYOR_TASKS={dest} in .env, then make up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
