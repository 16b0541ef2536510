"""The Jinja environment every template-driven generator renders with.

Undefined names raise instead of rendering as empty text, so a template and the context built
for it cannot drift apart unnoticed. Nothing is escaped: the outputs are Markdown and source
code, and the generators escape what they put in them.

Compiling the templates cost a plugin run more than rendering them, so the compiled code is
kept on disk where Python keeps the package's own bytecode (`qmtl_codegen/__pycache__/jinja/`,
or `jinja/` under sys.pycache_prefix when that is set), and under the same rule: nothing is
written when Python writes no bytecode (PYTHONDONTWRITEBYTECODE). Jinja reuses an entry only
while the template's source is unchanged (it stores a checksum) and for the same Jinja and
Python. Where the folder cannot be written, the templates are compiled in every run; the
output is the same either way.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path

import jinja2
import jinja2.bccache


class _BytecodeCache(jinja2.FileSystemBytecodeCache):
    """A cache that never fails a render: an entry that cannot be written is just not kept."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    if sys.dont_write_bytecode:
        return None
    prefix = sys.pycache_prefix
    folder = Path(prefix) if prefix else Path(__file__).resolve().parent / "__pycache__"
    try:
        (folder / "jinja").mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return _BytecodeCache(str(folder / "jinja"), "%s.jinja.cache")


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
        bytecode_cache=_bytecode_cache(),
    )


def render(template: str, **context: object) -> str:
    """Renders `template` (a name under qmtl_codegen/templates) with `context`."""
    return environment().get_template(template).render(**context)
