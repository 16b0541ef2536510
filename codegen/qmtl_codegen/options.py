"""Typed readers for the custom options the generators act on.

Custom options are extensions of `google.protobuf.*Options` declared by files of the request
(google/api/annotations.proto, qmtl/api/v1/access.proto, ...). A descriptor's GetOptions()
returns the runtime's compiled descriptor_pb2 class, which knows these extensions only if the
generated modules declaring them were imported, and codegen imports no generated code: without
them the values sit in unknown fields. So the options are re-parsed into a class built from the
request's own pool, where the extensions are declared, and returned as plain frozen dataclasses.
"""

from __future__ import annotations

import re
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
    # Path template, e.g. `/v1/dag-manager/nodes/{node_id}`.
    path: str
    # Request field carried in the body: "*" for the whole request, "" for no body.
    body: str = ""
    # Response field sent as the body; "" for the whole response.
    response_body: str = ""

    @property
    def path_parameters(self) -> tuple[str, ...]:
        return path_parameters(self.path)


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


@dataclass(frozen=True, slots=True)
class PathVariable:
    """One `{field}` or `{field=pattern}` variable of an HTTP path template."""

    # Request field the segment binds to; may be a dotted path into nested messages.
    field: str
    # Segments it matches: "*" (one, the default), "**" (the rest) or a template of them.
    pattern: str = "*"


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
    try:
        path_variables(path)
        refuse_verb_after_variable(path)
    except GeneratorError as exc:
        # Checked here so that the error names the method, not only the template.
        raise GeneratorError(f"{where}: {exc}") from exc
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


# A variable is `{field}` or `{field=pattern}`; the field may be a dotted path.
_VARIABLE = re.compile(r"\{([^{}=]*)(?:=([^{}]*))?\}")
_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def path_variables(template: str) -> tuple[PathVariable, ...]:
    """The variables of an HTTP path template, in order: `/v1/x/{id}` -> (PathVariable("id"),).

    Raises GeneratorError for a template that is not absolute, has stray or nested braces, a
    variable that does not name a field, or the same field twice.
    """
    if not template.startswith("/"):
        raise GeneratorError(f"HTTP path {template!r} must start with '/'")
    found: list[PathVariable] = []
    for match in _VARIABLE.finditer(template):
        field, pattern = match.group(1), match.group(2)
        if not _FIELD_PATH.fullmatch(field) or pattern == "":
            raise GeneratorError(f"HTTP path {template!r}: malformed variable {match.group(0)}")
        if any(known.field == field for known in found):
            raise GeneratorError(f"HTTP path {template!r} binds {field} twice")
        found.append(PathVariable(field, pattern or "*"))
    rest = _VARIABLE.sub("", template)
    if "{" in rest or "}" in rest:
        raise GeneratorError(f"HTTP path {template!r} has unbalanced or nested braces")
    return tuple(found)


# A custom verb (`:name`) in the last segment, after a variable: `/v1/x/{id}:peek`.
_VERB_AFTER_VARIABLE = re.compile(r"\}[^/{}]*?(:[^/{}]*)$")


def refuse_verb_after_variable(template: str) -> None:
    """Raises GeneratorError for a template whose custom verb follows a path variable.

    The routers match a variable as a whole segment, and the values our paths carry (node ids,
    strategy ids) may themselves contain `:`, so `/v1/x/{id}:peek` could not tell the id
    `s-1:peek` from the id `s-1` with the verb `peek`: it would route to the plain `{id}`
    route instead (docs/api/HTTP.md). A verb after a literal segment (`/v1/x/{id}/y:peek`)
    is unambiguous and allowed.
    """
    match = _VERB_AFTER_VARIABLE.search(template)
    if match is not None:
        raise GeneratorError(
            f"HTTP path {template!r} has the custom verb {match.group(1)!r} after a path "
            "variable; path values may contain ':', so the verb would be read as part of the "
            "value: put it after a literal segment"
        )


def path_parameters(template: str) -> tuple[str, ...]:
    """The request fields an HTTP path template binds: `/v1/x/{name=**}` -> ("name",)."""
    return tuple(variable.field for variable in path_variables(template))
