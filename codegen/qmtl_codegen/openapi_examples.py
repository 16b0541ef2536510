"""Examples and curl samples of the OpenAPI operations, from the golden fixtures.

The example of a message is its golden "full" fixture (qmtl_codegen.golden: every singular
field set, two elements per repeated field), so every example is a file under
`tests/golden/fixtures/<message>/` that the round-trip tests already prove the server reads;
its summary names that file. The sample is computed, not read from disk, because the golden
plugin may write the file in the same `make generate` run, and a document must not change
between two runs. Two things are cut from it, as the server would: fields a public listener
never sends (`(qmtl.api.v1.internal_only)`, public documents only) and, in a `body: "*"`
request, the fields bound to the path (the body must not carry them).

Curl samples (`x-codeSamples`, which Redoc shows beside the operation) call the listener at
`$QMTL_PUBLIC_URL` or `$QMTL_INTERNAL_URL`, with the path variables and REQUIRED query
parameters of the request's fixture, and `Authorization: Bearer $QMTL_TOKEN` on every
authenticated operation. They ask for JSON; the body goes in through a here-document so that
no quoting of the JSON is needed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from google.protobuf import descriptor, json_format, message

from qmtl_codegen import golden
from qmtl_codegen.jsonmapping import JsonObject

FD = descriptor.FieldDescriptor
FIXTURES = "tests/golden/fixtures"
PUBLIC_URL = "$QMTL_PUBLIC_URL"
INTERNAL_URL = "$QMTL_INTERNAL_URL"
TOKEN = "$QMTL_TOKEN"

Visible = Callable[[descriptor.FieldDescriptor], bool]


def fixture_name(desc: descriptor.Descriptor) -> str:
    """The golden fixture the example of `desc` comes from, relative to the project."""
    return _fixture_name(desc, golden.full_sample(desc))


def _fixture_name(desc: descriptor.Descriptor, full: golden.Sample) -> str:
    data = full.instance.SerializeToString(deterministic=True)
    digest = hashlib.sha256(data).hexdigest()[:12]
    return f"{FIXTURES}/{desc.full_name}/{full.variant}-{digest}.json"


def sample(desc: descriptor.Descriptor, visible: Visible, drop: Iterable[str] = ()) -> JsonObject:
    """The proto3 JSON of `desc`'s full fixture without hidden fields and the `drop` fields."""
    return _cut(golden.full_sample(desc).instance, visible, drop)


def _cut(instance: message.Message, visible: Visible, drop: Iterable[str]) -> JsonObject:
    _hide(instance, visible)
    for name in drop:
        instance.ClearField(name)
    # What parsing golden.to_json's text gives (its keys sorted), without writing the text.
    value: JsonObject = _sorted_keys(json_format.MessageToDict(instance))
    return value


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


def example(desc: descriptor.Descriptor, visible: Visible, drop: Iterable[str] = ()) -> JsonObject:
    """An OpenAPI `examples` map with the one fixture example."""
    dropped = sorted(drop)
    full = golden.full_sample(desc)
    summary = f"Golden fixture {_fixture_name(desc, full)}"
    if dropped:
        summary += f", without the path fields {', '.join(dropped)}"
    return {"fixture": {"summary": summary, "value": _cut(full.instance, visible, dropped)}}


def _hide(msg: message.Message, visible: Visible) -> None:
    for fld, value in msg.ListFields():
        if not visible(fld):
            msg.ClearField(fld.name)
        elif fld.message_type is not None:
            if fld.message_type.GetOptions().map_entry:
                values = (
                    value.values() if fld.message_type.fields_by_name["value"].message_type else []
                )
            elif fld.is_repeated:
                values = value
            else:
                values = [value]
            for nested in values:
                _hide(nested, visible)


# --- curl -------------------------------------------------------------------------------------


def curl(
    *,
    verb: str,
    path: str,
    variables: Iterable[tuple[str, bool]],
    query: Iterable[tuple[str, bool]],
    request: JsonObject,
    body: JsonObject | None,
    authenticated: bool,
    public: bool,
) -> str:
    """A curl command for one operation.

    `path` is the OpenAPI path (`{field}` variables); `variables` pairs each variable's dotted
    proto field with whether it spans segments (`**`); `query` pairs each REQUIRED query
    parameter's JSON name with whether it repeats. Values come from `request`, the fixture.
    """
    url = path
    for field, spans in variables:
        value = _at(request, field, by_proto=True)
        text = str(value) if value not in (None, "") else f"<{field}>"
        url = url.replace("{" + field + "}", quote(text, safe="/" if spans else ""))
    pairs = []
    for name, repeated in query:
        value = _at(request, name, by_proto=False)
        for item in value if repeated and isinstance(value, list) else [value]:
            pairs.append(f"{quote(name)}={quote(str(item), safe='')}")
    if pairs:
        url += "?" + "&".join(pairs)
    base = PUBLIC_URL if public else INTERNAL_URL
    lines = [f'curl -sS -X {verb.upper()} "{base}{url}"', '-H "Accept: application/json"']
    if authenticated:
        lines.append(f'-H "Authorization: Bearer {TOKEN}"')
    if body is not None:
        lines += ['-H "Content-Type: application/json"', "--data-binary @- <<'JSON'"]
        return " \\\n  ".join(lines) + "\n" + json.dumps(body, indent=2) + "\nJSON"
    return " \\\n  ".join(lines)


def _at(value: Any, dotted: str, *, by_proto: bool) -> Any:
    """The value at a dotted field path in proto3 JSON; path fields are named by proto name."""
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        key = _camel(part) if by_proto else part
        value = value.get(key)
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)
