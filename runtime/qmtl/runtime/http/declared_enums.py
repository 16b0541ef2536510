"""Refuses request bodies holding enum numbers their enum does not declare.

proto3 enums are open: protobuf's binary and JSON parsers keep any number. Over HTTP such a
number is far more likely a client's mistake than a value from a newer schema, so a route's
Binding.from_body refuses it (400 E_INVALID_ARGUMENT), as the query and path parsers already do
(qmtl.runtime.http.params.enum_parser), and the OpenAPI documents list the declared numbers.
Only message types that can reach an enum field are walked, and only their set fields.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from google.protobuf import descriptor, message

from qmtl.runtime.errors import ErrorCode, QmtlError

FD = descriptor.FieldDescriptor


@functools.cache
def _reaches_enum(desc: descriptor.Descriptor) -> bool:
    return _search(desc, set())


def _search(desc: descriptor.Descriptor, seen: set[str]) -> bool:
    seen.add(desc.full_name)
    for fld in desc.fields:
        if fld.enum_type is not None:
            return True
        inner = fld.message_type
        if inner is not None and inner.full_name not in seen and _search(inner, seen):
            return True
    return False


@functools.cache
def _declared(enum_type: descriptor.EnumDescriptor) -> frozenset[int]:
    return frozenset(value.number for value in enum_type.values)


def _values(msg: message.Message, fld: FD) -> Iterator[object]:
    value = getattr(msg, fld.name)
    if fld.message_type is not None and fld.message_type.GetOptions().map_entry:
        yield from value.values()
    elif fld.is_repeated:
        yield from value
    else:
        yield value


def _first_undeclared(msg: message.Message, path: str) -> tuple[str, int] | None:
    for fld, _ in msg.ListFields():
        where = f"{path}.{fld.name}" if path else fld.name
        target = fld
        if fld.message_type is not None and fld.message_type.GetOptions().map_entry:
            target = fld.message_type.fields_by_name["value"]
        if target.enum_type is not None:
            declared = _declared(target.enum_type)
            for number in _values(msg, fld):
                if number not in declared:
                    assert isinstance(number, int)
                    return where, number
        elif target.message_type is not None and _reaches_enum(target.message_type):
            for item in _values(msg, fld):
                assert isinstance(item, message.Message)
                found = _first_undeclared(item, where)
                if found is not None:
                    return found
    return None


def check_declared(msg: message.Message) -> None:
    """Raises 400 E_INVALID_ARGUMENT naming the first enum field with an undeclared number."""
    if not _reaches_enum(msg.DESCRIPTOR):
        return
    found = _first_undeclared(msg, "")
    if found is not None:
        where, number = found
        raise QmtlError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"{where}: {number} is not a declared value of its enum",
            details={"field": where},
        )
