"""The text of every generated JSON document: two-space indent, non-ASCII as is, one newline.

With an indent the standard library's json encodes in pure Python, which cost the OpenAPI and
JSON Schema generators more than building their documents, so orjson (the project's JSON
library) writes the text. For what the documents hold (string keys, integers within 64 bits,
strings, and floats between 1e-4 and 1e16, which is what protobuf's JSON gives the golden
examples) it writes the very bytes of `json.dumps(document, indent=2, ensure_ascii=False)`;
the tests compare the two on every generated document. A value orjson refuses (an integer past
64 bits) is written by the standard library instead.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any


def _orjson_dumps() -> Callable[[Any], bytes] | None:
    try:
        import orjson
    except ImportError:  # pragma: no cover - the project's venv has it
        return None
    return functools.partial(orjson.dumps, option=orjson.OPT_INDENT_2)


_FAST_DUMPS = _orjson_dumps()


def dump(document: Any) -> str:
    """The canonical text of a generated JSON document."""
    if _FAST_DUMPS is not None:
        try:
            return _FAST_DUMPS(document).decode() + "\n"
        except TypeError:  # orjson.JSONEncodeError: e.g. an integer past 64 bits
            pass
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
