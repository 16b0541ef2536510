"""Typed readers for the custom options the generators act on.

Custom options are extensions of `google.protobuf.*Options` declared by files of the request
(google/api/annotations.proto, qmtl/api/v1/access.proto, ...). A descriptor's GetOptions()
returns the runtime's compiled descriptor_pb2 class, which knows these extensions only if the
generated modules declaring them were imported, and codegen imports no generated code: without
them the values sit in unknown fields. So the options are re-parsed into a class built from the
request's own pool, where the extensions are declared, and returned as plain frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from google.protobuf import descriptor, descriptor_pool, message, message_factory

from qmtl_codegen.plugin import GeneratorError

HTTP_RULE = "google.api.http"
FIELD_BEHAVIOR = "google.api.field_behavior"
ACCESS_RULE = "qmtl.api.v1.access"
ERROR_INFO = "qmtl.api.v1.error_info"
INTERNAL_ONLY = "qmtl.api.v1.internal_only"

ACCESS_UNSPECIFIED = "ACCESS_UNSPECIFIED"
ACCESS_PUBLIC_READ = "ACCESS_PUBLIC_READ"
ACCESS_INTERNAL = "ACCESS_INTERNAL"


class _HasOptions(Protocol):
    # Enum values have no full_name, so errors name the element by its short name.
    name: str

    def GetOptions(self) -> message.Message: ...


@dataclass(frozen=True, slots=True)
class HttpBinding:
    """One HTTP route of a method, as google.api.HttpRule states it."""

    # Upper-case HTTP method (GET, POST, ...), or the `kind` of a custom pattern as written.
    method: str
    # Path template as written, e.g. `/v1/dag-manager/nodes/{node_id}`; parsed and checked
    # once by qmtl_codegen.api (pathtemplate, model), never here.
    path: str
    # Request field carried in the body: "*" for the whole request, "" for no body.
    body: str = ""
    # Response field sent as the body; "" for the whole response (the only form served).
    response_body: str = ""


@dataclass(frozen=True, slots=True)
class HttpRule:
    """A method's google.api.http option: its main binding and any additional ones."""

    primary: HttpBinding
    additional: tuple[HttpBinding, ...] = ()

    @property
    def bindings(self) -> tuple[HttpBinding, ...]:
        return (self.primary, *self.additional)


@dataclass(frozen=True, slots=True)
class AccessInfo:
    """A method's qmtl.api.v1.access option."""

    # Name of the qmtl.api.v1.Access value, e.g. ACCESS_PUBLIC_READ; a number it has no name for
    # (a newer schema) is kept as its decimal string.
    access: str
    scopes: tuple[str, ...]
    allow_anonymous: bool

    @property
    def exposure(self) -> str:
        """The access class without its enum prefix: PUBLIC_READ, INTERNAL, ..."""
        return self.access.removeprefix("ACCESS_")

    @property
    def is_public(self) -> bool:
        return self.access == ACCESS_PUBLIC_READ


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error-code enum value's qmtl.api.v1.error_info option."""

    code: str
    http_status: int
    retryable: bool


def options_message(pool: descriptor_pool.DescriptorPool, desc: _HasOptions) -> Any | None:
    """`desc`'s options as an instance of the pool's own options class, or None if it has none.

    The result's Extensions resolve every extension declared in the pool.
    """
    compiled = desc.GetOptions()
    if not compiled.ByteSize():
        return None
    try:
        options_type = pool.FindMessageTypeByName(compiled.DESCRIPTOR.full_name)  # type: ignore[no-untyped-call]
    except KeyError:
        # Without descriptor.proto in the request no file can declare a custom option.
        return None
    return message_factory.GetMessageClass(options_type).FromString(compiled.SerializeToString())


def find_extension(
    pool: descriptor_pool.DescriptorPool, name: str
) -> descriptor.FieldDescriptor | None:
    """The extension called `name`; None when no file of the pool declares it."""
    try:
        found: descriptor.FieldDescriptor = pool.FindExtensionByName(name)  # type: ignore[no-untyped-call]
    except KeyError:
        return None
    return found


def extension_value(pool: descriptor_pool.DescriptorPool, desc: _HasOptions, name: str) -> Any:
    """The value of extension `name` on `desc`'s options; None if unset or never declared.

    A declared repeated extension gives a list, empty when unset.
    """
    extension = find_extension(pool, name)
    if extension is None:
        return None
    repeated = bool(extension.is_repeated)
    options = options_message(pool, desc)
    if options is None:
        return [] if repeated else None
    if extension.containing_type.full_name != options.DESCRIPTOR.full_name:
        raise GeneratorError(
            f"{name} extends {extension.containing_type.full_name}, not the options of {desc.name}"
        )
    if repeated:
        return list(options.Extensions[extension])
    return options.Extensions[extension] if options.HasExtension(extension) else None


def http_rule(
    pool: descriptor_pool.DescriptorPool, method: descriptor.MethodDescriptor
) -> HttpRule | None:
    """The method's google.api.http option; None for a gRPC-only method."""
    rule = extension_value(pool, method, HTTP_RULE)
    if rule is None:
        return None
    return HttpRule(
        primary=_binding(rule, method.full_name),
        additional=tuple(_binding(extra, method.full_name) for extra in rule.additional_bindings),
    )


def _binding(rule: Any, where: str) -> HttpBinding:
    pattern = rule.WhichOneof("pattern")
    if pattern is None:
        raise GeneratorError(f"{where}: google.api.http binding has no verb and path")
    if pattern == "custom":
        verb, path = rule.custom.kind, rule.custom.path
    else:
        verb, path = pattern.upper(), getattr(rule, pattern)
    if not path:
        raise GeneratorError(f"{where}: google.api.http {verb} binding has an empty path")
    return HttpBinding(method=verb, path=path, body=rule.body, response_body=rule.response_body)


def access_rule(
    pool: descriptor_pool.DescriptorPool, method: descriptor.MethodDescriptor
) -> AccessInfo | None:
    """The method's qmtl.api.v1.access option as written; None when the method has none."""
    rule = extension_value(pool, method, ACCESS_RULE)
    if rule is None:
        return None
    return AccessInfo(
        access=_enum_name(rule, "access"),
        scopes=tuple(rule.required_scopes),
        allow_anonymous=bool(rule.allow_anonymous),
    )


def require_access(
    pool: descriptor_pool.DescriptorPool, method: descriptor.MethodDescriptor
) -> AccessInfo:
    """The method's access rule, enforcing what access.proto asks of every generator."""
    info = access_rule(pool, method)
    if info is None or info.access == ACCESS_UNSPECIFIED:
        raise GeneratorError(f"{method.full_name}: option ({ACCESS_RULE}).access is required")
    if info.access not in (ACCESS_PUBLIC_READ, ACCESS_INTERNAL):
        raise GeneratorError(f"{method.full_name}: unknown access class {info.access}")
    if info.allow_anonymous and not info.is_public:
        raise GeneratorError(
            f"{method.full_name}: allow_anonymous is only allowed with {ACCESS_PUBLIC_READ}"
        )
    return info


def error_info(
    pool: descriptor_pool.DescriptorPool, value: descriptor.EnumValueDescriptor
) -> ErrorInfo | None:
    """The enum value's qmtl.api.v1.error_info option; None when it has none."""
    info = extension_value(pool, value, ERROR_INFO)
    if info is None:
        return None
    return ErrorInfo(
        code=info.code, http_status=int(info.http_status), retryable=bool(info.retryable)
    )


def field_behaviors(
    pool: descriptor_pool.DescriptorPool, field: descriptor.FieldDescriptor
) -> tuple[str, ...]:
    """Names of the field's google.api.field_behavior values, e.g. ("REQUIRED",)."""
    extension = find_extension(pool, FIELD_BEHAVIOR)
    if extension is None:
        return ()
    numbers = extension_value(pool, field, FIELD_BEHAVIOR)
    return tuple(_value_name(extension.enum_type, number) for number in numbers)


def internal_only(pool: descriptor_pool.DescriptorPool, field: descriptor.FieldDescriptor) -> bool:
    """Whether the field carries `[(qmtl.api.v1.internal_only) = true]` (visibility.proto)."""
    return bool(extension_value(pool, field, INTERNAL_ONLY))


def _enum_name(msg: Any, field_name: str) -> str:
    field: descriptor.FieldDescriptor = msg.DESCRIPTOR.fields_by_name[field_name]
    return _value_name(field.enum_type, getattr(msg, field_name))


def _value_name(enum: descriptor.EnumDescriptor, number: int) -> str:
    value = enum.values_by_number.get(number)
    return value.name if value is not None else str(number)
