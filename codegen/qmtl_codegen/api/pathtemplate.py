"""google.api.http path templates, parsed once into a syntax tree every generator reads.

The grammar is the one google/api/http.proto states:

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;

`parse` accepts the whole grammar, so that an error can say *why* a template is not served;
which templates the routers serve (`{f}`, `{f=*}`, `{f=**}`, no verb after a variable) is
decided by `require_servable`, the one place that policy lives (docs/api/HTTP.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qmtl_codegen.plugin import GeneratorError

__all__ = [
    "Literal",
    "PathTemplate",
    "Variable",
    "Wildcard",
    "parse",
    "require_servable",
]


@dataclass(frozen=True, slots=True)
class Literal:
    text: str


@dataclass(frozen=True, slots=True)
class Wildcard:
    # `**` (True) matches the rest of the path, slashes included; `*` (False) one segment.
    spans: bool


@dataclass(frozen=True, slots=True)
class Variable:
    # Request field the matched text fills; may be a dotted path into nested messages.
    field: str
    # What it matches; `{f}` is the grammar's shorthand for `{f=*}` and parses to the same.
    segments: tuple[Literal | Wildcard, ...]

    @property
    def spans(self) -> bool:
        """Whether it is `{f=**}`: the value may hold slashes."""
        return self.segments == (Wildcard(True),)

    @property
    def pattern(self) -> str:
        """The segments as written after `=`: "*", "**", "shelves/*", ..."""
        return "/".join(_segment_text(segment) for segment in self.segments)


Segment = Literal | Wildcard | Variable


@dataclass(frozen=True, slots=True)
class PathTemplate:
    segments: tuple[Segment, ...]
    verb: str | None

    @property
    def variables(self) -> tuple[Variable, ...]:
        return tuple(s for s in self.segments if isinstance(s, Variable))

    @property
    def fields(self) -> tuple[str, ...]:
        """The request fields the path binds, in order."""
        return tuple(variable.field for variable in self.variables)

    def __str__(self) -> str:
        """The template in google.api.http syntax (`{f=*}` written `{f}`)."""
        return self.render("{{{written}}}")

    def render(self, variable: str) -> str:
        """The template with each variable written as `variable.format(field=..., ...)`.

        `variable` may use `{field}` (the dotted field path), `{name}` (the same with `.` as
        `__`, for routers that refuse dots), `{suffix}` (`:path` for `{f=**}`, else "") and
        `{written}` (`f` or `f=pattern`, as google.api.http writes it).
        """
        parts = []
        for segment in self.segments:
            if isinstance(segment, Variable):
                parts.append(
                    variable.format(
                        field=segment.field,
                        name=segment.field.replace(".", "__"),
                        suffix=":path" if segment.spans else "",
                        written=segment.field
                        if segment.pattern == "*"
                        else f"{segment.field}={segment.pattern}",
                    )
                )
            else:
                parts.append(_segment_text(segment))
        return "/" + "/".join(parts) + (f":{self.verb}" if self.verb is not None else "")


def _segment_text(segment: Literal | Wildcard) -> str:
    if isinstance(segment, Literal):
        return segment.text
    return "**" if segment.spans else "*"


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What a literal segment or verb may not hold: the template's own syntax characters.
_NOT_LITERAL = re.compile(r"[/{}*=:]")


class _Parser:
    def __init__(self, template: str, where: str) -> None:
        self.text = template
        # The template as written, for errors: `text` loses its verb while segments are read.
        self.full = template
        self.where = where
        self.pos = 0

    def fail(self, reason: str) -> GeneratorError:
        return GeneratorError(f"{self.where}: HTTP path {self.full!r} {reason}")

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def template(self) -> PathTemplate:
        if not self.text.startswith("/"):
            raise self.fail("must start with '/'")
        body, verb = self.split_verb()
        self.text, self.pos = body, 1
        segments = self.segments(inside_variable=False)
        if self.pos != len(self.text):
            raise self.fail(f"has an unexpected {self.text[self.pos]!r} at {self.pos}")
        template = PathTemplate(segments, verb)
        self.check(template)
        return template

    def split_verb(self) -> tuple[str, str | None]:
        # The verb is the text after the last ':' that lies outside every variable and after
        # the last '/': `/v1/x:peek`, `/v1/{id}:peek`; `/v1/{name=a:b}` has none.
        colon = self.text.rfind(":")
        if colon < 0 or colon < self.text.rfind("/") or colon < self.text.rfind("}"):
            return self.text, None
        if self.text.rfind("{") > self.text.rfind("}"):
            return self.text, None  # inside an unclosed variable: reported by the parser
        verb = self.text[colon + 1 :]
        if not verb or _NOT_LITERAL.search(verb):
            raise self.fail(f"has a malformed custom verb {verb!r}")
        return self.text[:colon], verb

    def segments(self, *, inside_variable: bool) -> tuple[Segment, ...]:
        found: list[Segment] = [self.segment(inside_variable=inside_variable)]
        while self.peek() == "/":
            self.pos += 1
            found.append(self.segment(inside_variable=inside_variable))
        return tuple(found)

    def segment(self, *, inside_variable: bool) -> Segment:
        start = self.pos
        if self.peek() == "{":
            if inside_variable:
                raise self.fail("nests a variable in a variable")
            variable = self.variable()
            if self.peek() not in ("", "/"):
                raise self.fail("has a variable that is not a whole segment")
            return variable
        end = start
        while end < len(self.text) and self.text[end] not in "/{}=":
            end += 1
        text = self.text[start:end]
        self.pos = end
        if text in ("*", "**"):
            return Wildcard(text == "**")
        if not text:
            raise self.fail(f"has an empty segment at {start}")
        if _NOT_LITERAL.search(text.replace(":", "")):
            raise self.fail(f"has a malformed segment {text!r}")
        if self.peek() not in ("", "/", "}"):
            raise self.fail(f"has an unexpected {self.peek()!r} at {self.pos}")
        return Literal(text)

    def variable(self) -> Variable:
        self.pos += 1  # "{"
        end = self.pos
        while end < len(self.text) and self.text[end] not in "=}{/":
            end += 1
        field = self.text[self.pos : end]
        if not all(_IDENT.fullmatch(part) for part in field.split(".")):
            raise self.fail(f"has a malformed variable field {field!r}")
        self.pos = end
        segments: tuple[Literal | Wildcard, ...] = (Wildcard(False),)
        if self.peek() == "=":
            self.pos += 1
            if self.peek() in ("}", ""):
                raise self.fail(f"has an empty pattern for variable {field}")
            inner = self.segments(inside_variable=True)
            segments = tuple(s for s in inner if not isinstance(s, Variable))
        if self.peek() != "}":
            raise self.fail(f"has an unclosed variable {field}")
        self.pos += 1
        return Variable(field, segments)

    def check(self, template: PathTemplate) -> None:
        flat: list[Literal | Wildcard] = []
        for segment in template.segments:
            flat += segment.segments if isinstance(segment, Variable) else (segment,)
        if any(s == Wildcard(True) for s in flat[:-1]):
            raise self.fail("has '**' before its last segment")
        seen: set[str] = set()
        for variable in template.variables:
            if variable.field in seen:
                raise self.fail(f"binds {variable.field} twice")
            seen.add(variable.field)


def parse(template: str, where: str) -> PathTemplate:
    """The syntax tree of `template`; GeneratorError naming `where` (the rpc) if malformed."""
    return _Parser(template, where).template()


def require_servable(template: PathTemplate, where: str) -> None:
    """Refuses, with a GeneratorError naming `where`, a template the routers cannot serve.

    Served: literal segments, and variables `{f}`, `{f=*}` and `{f=**}` (a variable holding
    literals or several segments, `{name=shelves/*}`, would need the value re-assembled from
    parts: refused). A custom verb after a path variable is refused: values our paths carry
    (node ids, strategy ids) may themselves contain ':', so `/v1/x/{id}:peek` could not tell
    the id `s-1:peek` from the id `s-1` with the verb `peek`. After a literal segment
    (`/v1/x/{id}/y:peek`) a verb is unambiguous and allowed. Bare `*`/`**` segments outside a
    variable bind nothing a handler could read: refused too.
    """
    text = str(template)
    for segment in template.segments:
        if isinstance(segment, Wildcard):
            raise GeneratorError(
                f"{where}: HTTP path {text!r} has a bare {_segment_text(segment)!r} segment; "
                "only variables may match variable text"
            )
        if isinstance(segment, Variable) and segment.pattern not in ("*", "**"):
            raise GeneratorError(
                f"{where}: path pattern {segment.pattern} of variable {segment.field} is not "
                "supported (only * and **)"
            )
    if template.verb is not None and isinstance(template.segments[-1], Variable):
        raise GeneratorError(
            f"{where}: HTTP path {text!r} has the custom verb ':{template.verb}' after a path "
            "variable; path values may contain ':', so the verb would be read as part of the "
            "value: put it after a literal segment"
        )
