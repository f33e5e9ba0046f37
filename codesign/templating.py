"""The one templating method for generated C++ and scripts.

Placeholders are written ``{{NAME}}``. Rendering fails when a placeholder has
no value or a value has no placeholder, so a renamed field cannot silently
produce a file with a stale or empty hole in it.
"""

from __future__ import annotations

import re
from pathlib import Path

_PLACEHOLDER = re.compile(r"\{\{([A-Z][A-Z0-9_]*)\}\}")
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "hls_templates"


class TemplateError(Exception):
    """A template and its values do not match."""


def render(text: str, values: dict[str, object], name: str = "template") -> str:
    """Replace every ``{{NAME}}`` in text; raise TemplateError on a missing or unused value."""
    placeholders = set(_PLACEHOLDER.findall(text))
    provided = set(values)
    if placeholders - provided:
        raise TemplateError(f"{name}: no value for placeholder(s) {sorted(placeholders - provided)}")
    if provided - placeholders:
        raise TemplateError(f"{name}: value(s) {sorted(provided - placeholders)} have no placeholder")
    return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text)


def render_file(template: str, values: dict[str, object]) -> str:
    """Render a file from hls_templates/ by its relative path."""
    path = TEMPLATE_DIR / template
    return render(path.read_text(), values, name=str(path.name))
