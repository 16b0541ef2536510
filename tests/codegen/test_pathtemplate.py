"""google.api.http path templates are parsed once, into the tree every generator reads."""

from __future__ import annotations

import pytest

from qmtl_codegen.api.pathtemplate import (
    Literal,
    PathTemplate,
    Variable,
    Wildcard,
    parse,
    require_servable,
)
from qmtl_codegen.httpmodel import RouteModel, client_path_code
from qmtl_codegen.plugin import GeneratorError

ONE, REST = Wildcard(spans=False), Wildcard(spans=True)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            "/v1/dag-manager/nodes/{node_id}",
            PathTemplate(
                (
                    Literal("v1"),
                    Literal("dag-manager"),
                    Literal("nodes"),
                    Variable("node_id", (ONE,)),
                ),
                None,
            ),
        ),
        ("/v1/{a=*}", PathTemplate((Literal("v1"), Variable("a", (ONE,))), None)),
        ("/v1/{name=**}", PathTemplate((Literal("v1"), Variable("name", (REST,))), None)),
        (
            "/v1/{name=shelves/*/books/**}:cancel",
            PathTemplate(
                (
                    Literal("v1"),
                    Variable("name", (Literal("shelves"), ONE, Literal("books"), REST)),
                ),
                "cancel",
            ),
        ),
        (
            "/v1/{page.page_token}/{id}",
            PathTemplate(
                (Literal("v1"), Variable("page.page_token", (ONE,)), Variable("id", (ONE,))), None
            ),
        ),
        ("/v1/x:peek", PathTemplate((Literal("v1"), Literal("x")), "peek")),
        # A ':' before the last '/' is part of a literal, not a verb.
        (
            "/v1/a:b/{id}",
            PathTemplate((Literal("v1"), Literal("a:b"), Variable("id", (ONE,))), None),
        ),
        ("/v1/*/**", PathTemplate((Literal("v1"), ONE, REST), None)),
    ],
)
def test_templates_parse_to_their_tree(template: str, expected: PathTemplate) -> None:
    assert parse(template, "probe") == expected


@pytest.mark.parametrize(
    "template",
    ["/v1/{a}", "/v1/{name=**}", "/v1/{page.page_token}/{id}", "/v1/{a=b/*}:c", "/v1/x:peek"],
)
def test_str_gives_the_template_back(template: str) -> None:
    assert str(parse(template, "probe")) == template


def test_variables_and_fields() -> None:
    tree = parse("/v1/{a}/x/{b.c=**}", "probe")
    assert tree.fields == ("a", "b.c")
    assert [v.spans for v in tree.variables] == [False, True]
    assert tree.render("{{{name}{suffix}}}") == "/v1/{a}/x/{b__c:path}"


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("v1/{a}", "must start with '/'"),
        ("", "must start with '/'"),
        ("/v1/{a", "unclosed variable a"),
        ("/v1/a}", "unexpected '}'"),
        ("/v1/{}", "malformed variable field ''"),
        ("/v1/{a=}", "empty pattern for variable a"),
        ("/v1/{a{b}}", "unclosed variable a"),
        ("/v1/{a}/{a}", "binds a twice"),
        ("/v1/{1a}", "malformed variable field '1a'"),
        ("/v1/{a..b}", "malformed variable field 'a..b'"),
        ("/v1/a/{id}.json:peek", "variable that is not a whole segment"),
        ("/v1/x-{id}", "unexpected '{'"),
        ("/v1/x/", "empty segment"),
        ("/v1//x", "empty segment"),
        ("/v1/{a=**}/b", "'**' before its last segment"),
        ("/v1/**/{a}", "'**' before its last segment"),
        ("/v1/x:", "malformed custom verb ''"),
        ("/v1/x:a*b", "malformed custom verb 'a*b'"),
        ("/v1/a*b", "malformed segment 'a*b'"),
        ("/v1/{a=b=c}", "unexpected '='"),
        ("/v1/{a={b}}", "nests a variable in a variable"),
    ],
)
def test_malformed_templates_are_generator_errors_naming_the_rpc(
    template: str, reason: str
) -> None:
    with pytest.raises(GeneratorError) as raised:
        parse(template, "probe.v1.Probe.Get")
    assert str(raised.value).startswith(f"probe.v1.Probe.Get: HTTP path {template!r} ")
    assert reason in str(raised.value)


@pytest.mark.parametrize(
    "template", ["/v1/gateway/strategies/{id}:peek", "/v1/{name=**}:cancel", "/v1/a/{id}:x"]
)
def test_a_custom_verb_after_a_variable_is_refused(template: str) -> None:
    # `{id}:peek` would route `s-1:peek` to the plain `{id}` route: ids may contain ':'.
    with pytest.raises(GeneratorError, match=r"^rpc: .*custom verb ':.*' after a path variable"):
        require_servable(parse(template, "rpc"), "rpc")


@pytest.mark.parametrize(
    "template",
    ["/v1/gateway/strategies:peek", "/v1/x/{id}/items:peek", "/v1/a:b/{id}", "/v1/{a=*}/{b=**}"],
)
def test_served_templates_pass(template: str) -> None:
    require_servable(parse(template, "rpc"), "rpc")


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("/v1/{name=shelves/*}", "path pattern shelves/* of variable name is not supported"),
        ("/v1/{name=x}", "path pattern x of variable name is not supported"),
        ("/v1/*/x", "bare '*' segment"),
        ("/v1/x/**", "bare '**' segment"),
    ],
)
def test_templates_the_routers_cannot_serve_are_refused(template: str, reason: str) -> None:
    with pytest.raises(GeneratorError, match=r"^rpc: ") as raised:
        require_servable(parse(template, "rpc"), "rpc")
    assert reason in str(raised.value)


def _route(template: str) -> RouteModel:
    path = parse(template, "rpc")
    return RouteModel("_X", "serve_x", "GET", template, "", "x", "", (), (), (), path=path)


@pytest.mark.parametrize(
    ("template", "code"),
    [
        ("/v1/gateway/strategies", '("/v1/gateway/strategies",)'),
        (
            "/v1/gateway/strategies/{strategy_id}/status",
            '("/v1/gateway/strategies/", _qmtl_client.Var("strategy_id"), "/status")',
        ),
        ("/v1/{name=**}", '("/v1/", _qmtl_client.Var("name", spans=True))'),
        (
            "/v1/{page.page_token}/{id}/items:peek",
            '("/v1/", _qmtl_client.Var("page.page_token"), "/", _qmtl_client.Var("id"), '
            '"/items:peek")',
        ),
        ("/v1/x:peek", '("/v1/x:peek",)'),
    ],
)
def test_client_path_code_renders_literals_and_variables(template: str, code: str) -> None:
    assert client_path_code(_route(template)) == code
