"""The Jinja environment every template-driven generator renders with.

Undefined names raise instead of rendering as empty text, so a template and the context built
for it cannot drift apart unnoticed. Nothing is escaped: the outputs are Markdown and source
code, and the generators escape what they put in them.
"""

from __future__ import annotations

import functools

import jinja2


@functools.cache
def environment() -> jinja2.Environment:
    # PackageLoader reads qmtl_codegen/templates from the installed package (wheel or editable).
    return jinja2.Environment(
        loader=jinja2.PackageLoader("qmtl_codegen", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: object) -> str:
    """Renders `template` (a name under qmtl_codegen/templates) with `context`."""
    return environment().get_template(template).render(**context)
