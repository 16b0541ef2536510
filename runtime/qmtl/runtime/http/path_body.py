"""A `body: "*"` request must not carry the fields its path binds (docs/api/HTTP.md).

google.api.http defines the body of such a rule as every field *not* bound by the path
template, and the OpenAPI documents say so: the body schema leaves those fields out of its
closed object. A body that sets one anyway is refused with 400, whether or not it equals the
path, so that document and server agree and one request has one spelling.

"Sets" follows the encoding. In JSON the key is there (under its JSON or proto name, whatever
its value, `null` and `""` included), as that is what the document forbids. In the binary
encoding a field without presence holding its default cannot be told from an absent one, so
there it is a field the decoded message has set.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from google.protobuf import message

from qmtl.runtime import codec
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.http.params import Param


def refuse_path_fields(
    msg: message.Message, params: Sequence[Param], body: bytes, encoding: codec.Encoding
) -> None:
    """QmtlError E_INVALID_ARGUMENT (400) if the decoded body `msg` sets a path-bound field."""
    loaded: Any = None
    if encoding is codec.Encoding.JSON and body:
        # The body decoded already, so it is a JSON object; parsed again only on the routes
        # that bind a path and take a whole-request body.
        loaded = json.loads(body)
    for param in params:
        present = _in_json(loaded, param) if loaded is not None else param.read(msg)[0]
        if present:
            name = param.names[0]
            raise QmtlError(
                ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
                f"{name} is bound to the path and must not be sent in the body",
                details={"parameter": name},
            )


def _in_json(loaded: Any, param: Param) -> bool:
    node = loaded
    for proto_name, json_name in zip(param.path, param.names[0].split("."), strict=True):
        if not isinstance(node, dict):
            return False
        if proto_name in node:
            node = node[proto_name]
        elif json_name in node:
            node = node[json_name]
        else:
            return False
    return True
