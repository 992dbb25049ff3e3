"""E-mail templates: Jinja2 files, one folder per template.

    <templates dir>/<name>/subject.txt   one line (required)
    <templates dir>/<name>/body.txt      the plain-text body (required)
    <templates dir>/<name>/body.html     the HTML alternative (optional)

The producer renders a template once when a request comes in, so a missing context
variable is a 422 naming it instead of a failed task; the worker renders it again to send.
Undefined variables are errors (StrictUndefined), and the HTML is autoescaped: context
values are client data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2

from conveyor_core.settings import TemplateSettings

#: What a template name may look like (it becomes a folder name).
TEMPLATE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SUBJECT, TEXT, HTML = "subject.txt", "body.txt", "body.html"


class TemplateError(ValueError):
    """A template is unknown or cannot be rendered with the given context."""


@dataclass(frozen=True)
class Rendered:
    """A rendered template."""

    subject: str
    text: str
    html: str | None


def templates_dir() -> Path:
    """The configured templates folder, or the one shipped with the worker."""
    configured = TemplateSettings().email_templates_dir
    if configured is not None:
        return configured
    # The templates ship inside the worker package; the producer runs the same image.
    return Path(str(files("conveyor_worker"))) / "templates" / "email"


@lru_cache(maxsize=4)
def _environment(folder: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        keep_trailing_newline=True,
        auto_reload=False,
    )


def available(folder: Path | None = None) -> list[str]:
    """Names of the templates in the folder (those with a subject and a text body)."""
    folder = folder or templates_dir()
    if not folder.is_dir():
        return []
    return sorted(
        entry.name
        for entry in folder.iterdir()
        if TEMPLATE_NAME.match(entry.name)
        and (entry / SUBJECT).is_file()
        and (entry / TEXT).is_file()
    )


def render(name: str, context: dict[str, Any], folder: Path | None = None) -> Rendered:
    """Render template `name`; raises TemplateError saying what is wrong."""
    folder = folder or templates_dir()
    if name not in available(folder):
        raise TemplateError(f"unknown template {name!r}; known: {available(folder)}")
    env = _environment(folder)
    try:
        subject = env.get_template(f"{name}/{SUBJECT}").render(context)
        text = env.get_template(f"{name}/{TEXT}").render(context)
        html = None
        if (folder / name / HTML).is_file():
            html = env.get_template(f"{name}/{HTML}").render(context)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template {name!r}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {name!r} cannot be rendered: {exc}") from None
    # One header line: newlines in a subject would let context values inject headers.
    return Rendered(subject=" ".join(subject.split()), text=text, html=html)
