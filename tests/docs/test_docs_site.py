"""The docs site (`make docs`): built by scripts/docs.sh, opened in headless Chromium.

The site is built into a temporary folder, so the test neither needs nor disturbs docs/site/.
Chromium renders each page with networking closed and `--dump-dom` hands back the DOM after
Redoc's and mermaid's JavaScript ran; the checks read that DOM, not the HTML the build wrote,
so an operation counts as listed (and an example as shown, a diagram as drawn) only if it was
actually rendered. The internal documents get pages of their own, which must say so.
Network use is observed from inside each page: a probe script records every resource the page
loaded (Resource Timing) and every load the Content-Security-Policy refused.
QMTL_DOCS_OPENAPI points the test at another OpenAPI document (to try the site on a draft).
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.chromium import CHROMIUM_TIMEOUT_S, chromium_command

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = Path(os.environ.get("QMTL_DOCS_OPENAPI", ROOT / "docs/openapi/public.openapi.json"))
REFERENCE = ROOT / "docs/schemas/reference.md"
ACCESS = ROOT / "docs/api/ACCESS.md"
INTERNAL = sorted((ROOT / "docs/openapi").glob("*.internal.openapi.json"))
INTERNAL_BANNER = "internal: not exposed publicly"
DOCS_SH = ROOT / "scripts/docs.sh"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# A cold build runs `npm ci`; a warm one takes about a second.
BUILD_TIMEOUT_S = 600


# --- a small DOM, enough to ask "what text is inside the element with this id" ----------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    def text(self) -> str:
        if self.tag in ("script", "style"):
            return ""
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join(" ".join(parts).split())

    def iter(self) -> list[Element]:
        found = [self]
        for child in self.children:
            if isinstance(child, Element):
                found.extend(child.iter())
        return found


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        # Chromium's serialisation is well formed, but stay safe on a stray end tag.
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


@dataclass
class Dom:
    root: Element

    @classmethod
    def parse(cls, html: str) -> Dom:
        builder = _TreeBuilder()
        builder.feed(html)
        builder.close()
        return cls(builder.root)

    def elements(self) -> list[Element]:
        return self.root.iter()

    def by_id(self) -> dict[str, Element]:
        return {e.attrs["id"]: e for e in self.elements() if "id" in e.attrs}


# --- building and rendering -------------------------------------------------------------------


def build_site(out: Path) -> None:
    proc = subprocess.run(
        ["bash", str(DOCS_SH), "--openapi", str(OPENAPI), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"scripts/docs.sh failed:\n{proc.stdout}\n{proc.stderr}"


def chromium_dom(page: Path, profile: Path, budget_ms: int = 15000) -> Dom:
    profile.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        # Virtual time runs Redoc's rendering to completion before the DOM is dumped.
        chromium_command(
            profile, f"--virtual-time-budget={budget_ms}", "--dump-dom", page.as_uri()
        ),
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"chromium failed on {page.name}:\n{proc.stderr[-4000:]}"
    assert "<body" in proc.stdout, f"chromium dumped no DOM for {page.name}:\n{proc.stderr[-4000:]}"
    return Dom.parse(proc.stdout)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert OPENAPI.is_file(), f"{OPENAPI} is missing: run `make generate`"
    out = tmp_path_factory.mktemp("docs") / "site"
    build_site(out)
    return out


@pytest.fixture(scope="module")
def api_dom(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Dom:
    return chromium_dom(site / "index.html", tmp_path_factory.mktemp("chromium-api"))


@pytest.fixture(scope="module")
def reference_dom(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Dom:
    return chromium_dom(site / "reference.html", tmp_path_factory.mktemp("chromium-ref"), 3000)


def internal_page(document: Path) -> str:
    """The page build.mjs writes for an internal document: internal-<area>.html."""
    return f"internal-{document.name.removesuffix('.internal.openapi.json')}.html"


@pytest.fixture(scope="module")
def internal_doms(site: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Dom]:
    assert INTERNAL, "docs/openapi has no internal documents: run `make generate`"
    return {
        document: chromium_dom(site / internal_page(document), tmp_path_factory.mktemp("chr-int"))
        for document in INTERNAL
    }


@pytest.fixture(scope="module")
def access_dom(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Dom:
    return chromium_dom(site / "access.html", tmp_path_factory.mktemp("chromium-access"))


def public_operations() -> list[tuple[str, str, dict[str, Any]]]:
    return operations_of(OPENAPI)


def operations_of(document: Path) -> list[tuple[str, str, dict[str, Any]]]:
    spec = json.loads(document.read_text())
    ops = [
        (method, path, item[method])
        for path, item in spec["paths"].items()
        for method in HTTP_METHODS
        if method in item
    ]
    assert ops, f"{document} has no operations"
    return ops


# --- the API page ------------------------------------------------------------------------------


def test_redoc_rendered_without_error(api_dom: Dom) -> None:
    body = next(e for e in api_dom.elements() if e.tag == "body")
    assert body.attrs.get("data-redoc") == "ready", "Redoc.init did not report success"
    assert "Something went wrong" not in body.text()


def test_every_public_operation_is_rendered(api_dom: Dom) -> None:
    ids = api_dom.by_id()
    menu = {
        e.attrs["data-item-id"]: e.attrs.get("aria-label", "")
        for e in api_dom.elements()
        if e.tag == "li" and e.attrs.get("role") == "menuitem" and "data-item-id" in e.attrs
    }
    problems = []
    for method, path, op in public_operations():
        op_id = op.get("operationId")
        if not op_id:
            problems.append(f"{method.upper()} {path}: no operationId")
            continue
        section = ids.get(f"operation/{op_id}")
        if section is None:
            problems.append(f"{op_id}: no rendered section")
            continue
        text = section.text()
        title = op.get("summary") or op_id
        for expected in (title, path, method):
            if expected not in text:
                problems.append(f"{op_id}: section does not show {expected!r}")
        entries = [label for item, label in menu.items() if item.endswith(f"operation/{op_id}")]
        if entries != [title]:
            problems.append(f"{op_id}: sidebar entries {entries}, expected [{title!r}]")
    assert not problems, "\n".join(problems)


def test_api_page_links_to_the_reference(api_dom: Dom) -> None:
    nav = [e for e in api_dom.elements() if e.tag == "nav"]
    assert nav, "the page has no nav bar"
    assert "reference.html" in {a.attrs.get("href") for a in nav[0].iter() if a.tag == "a"}


# --- the schema reference page -----------------------------------------------------------------


def markdown_headings(markdown: str) -> list[tuple[int, str]]:
    return [
        (len(m.group(1)), m.group(2).replace("`", "").strip())
        for m in re.finditer(r"^(#{1,6}) (.+)$", markdown, re.MULTILINE)
    ]


def test_reference_has_every_anchor_and_heading(reference_dom: Dom) -> None:
    markdown = REFERENCE.read_text()
    anchors = re.findall(r'<a id="([^"]+)"></a>', markdown)
    assert anchors, "reference.md has no anchors"
    ids = reference_dom.by_id()
    missing = [a for a in anchors if a not in ids]
    assert not missing, f"anchors of reference.md missing from reference.html: {missing}"

    rendered = [
        (int(e.tag[1]), e.text())
        for e in reference_dom.elements()
        if re.fullmatch(r"h[1-6]", e.tag)
    ]
    assert rendered == markdown_headings(markdown)


def test_reference_links_resolve(reference_dom: Dom, site: Path) -> None:
    ids = reference_dom.by_id()
    dead = []
    for a in reference_dom.elements():
        href = a.attrs.get("href", "") if a.tag == "a" else ""
        if href.startswith("#"):
            if href[1:] not in ids:
                dead.append(href)
        elif href and "://" not in href and not (site / href.split("#")[0]).is_file():
            dead.append(href)
    assert not dead, f"links in reference.html that go nowhere: {sorted(set(dead))}"
    nav = next(e for e in reference_dom.elements() if e.tag == "nav")
    assert "index.html" in {a.attrs.get("href") for a in nav.iter() if a.tag == "a"}


# --- the build ---------------------------------------------------------------------------------


def test_pages_load_nothing_from_the_network(site: Path) -> None:
    for page in sorted(site.glob("*.html")):
        html = page.read_text()
        assert 'http-equiv="Content-Security-Policy"' in html, page.name
        outside = [
            e.attrs.get("src") or e.attrs.get("href")
            for e in Dom.parse(html).elements()
            if e.tag in ("script", "link", "img", "iframe")
            and "://" in (e.attrs.get("src") or e.attrs.get("href") or "")
        ]
        assert not outside, f"{page.name} loads {outside}"


def test_build_is_deterministic(site: Path, tmp_path: Path) -> None:
    again = tmp_path / "site"
    build_site(again)
    names = sorted(p.name for p in site.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    _, mismatch, errors = filecmp.cmpfiles(site, again, names, shallow=False)
    assert not mismatch, f"files that differ between two builds: {mismatch}"
    assert not errors, errors


# --- examples, internal pages, diagrams, network -----------------------------------------------


def body_of(dom: Dom) -> Element:
    return next(e for e in dom.elements() if e.tag == "body")


def first_string(value: Any) -> str | None:
    """The first string leaf of a JSON value, depth first: a value an example must show."""
    if isinstance(value, str):
        return value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    for item in items:
        found = first_string(item)
        if found is not None:
            return found
    return None


def rendered_samples(dom: Dom, ops: list[tuple[str, str, dict[str, Any]]], url: str) -> list[str]:
    """What the operations' sections lack of their curl sample and 200 example."""
    ids = dom.by_id()
    problems = []
    for _, _, op in ops:
        op_id = op["operationId"]
        section = ids.get(f"operation/{op_id}")
        if section is None:
            problems.append(f"{op_id}: no rendered section")
            continue
        text = section.text()
        for expected in ("Request samples", "curl", url, "Response samples"):
            if expected not in text:
                problems.append(f"{op_id}: section does not show {expected!r}")
        if "requestBody" in op and "Payload" not in text:
            problems.append(f"{op_id}: no Payload tab for the request body")
        token = "Authorization: Bearer" in text
        if token != ("security" in op):
            problems.append(f"{op_id}: curl sample Authorization shown: {token}")
        example = op["responses"]["200"]["content"]["application/json"]["examples"]["fixture"]
        leaf = first_string(example["value"])
        if leaf is not None and f'"{leaf}"' not in text:
            problems.append(f"{op_id}: the 200 example value {leaf!r} is not shown")
    return problems


def test_examples_and_curl_samples_render(api_dom: Dom) -> None:
    problems = rendered_samples(api_dom, public_operations(), "$QMTL_PUBLIC_URL")
    assert not problems, "\n".join(problems)


def test_json_is_the_first_content_type_shown(api_dom: Dom) -> None:
    section = api_dom.by_id()["operation/GatewayService_GetStrategy"].text()
    samples = section.split("Response samples", 1)[1]
    assert samples.index("application/json") < samples.index("application/x-protobuf")


def test_internal_documents_have_their_own_marked_pages(
    internal_doms: dict[Path, Dom], api_dom: Dom
) -> None:
    public_ids = set(api_dom.by_id())
    for document, dom in internal_doms.items():
        body = body_of(dom)
        assert body.attrs.get("data-redoc") == "ready", document.name
        assert body.attrs.get("data-audience") == "internal", document.name
        banners = [e for e in dom.elements() if "qmtl-internal-banner" in e.attrs.get("class", "")]
        assert len(banners) == 1, document.name
        assert INTERNAL_BANNER in banners[0].text(), document.name
        title = next(e for e in dom.elements() if e.tag == "title").text()
        assert INTERNAL_BANNER in title
        ops = operations_of(document)
        problems = rendered_samples(dom, ops, "$QMTL_INTERNAL_URL")
        assert not problems, "\n".join(problems)
        leaked = [
            op["operationId"] for _, _, op in ops if f"operation/{op['operationId']}" in public_ids
        ]
        assert not leaked, f"internal operations on the public page: {leaked}"
    public = body_of(api_dom)
    assert public.attrs.get("data-audience") == "public"
    assert INTERNAL_BANNER not in public.text()


def test_nav_links_every_page_and_marks_the_internal_ones(api_dom: Dom, site: Path) -> None:
    nav = next(e for e in api_dom.elements() if e.tag == "nav")
    links = {a.attrs["href"]: a.attrs.get("class", "") for a in nav.iter() if a.tag == "a"}
    for document in INTERNAL:
        assert "qmtl-internal-link" in links[internal_page(document)]
    assert "access.html" in links
    assert all((site / href).is_file() for href in links)


def test_auth_flow_diagrams_are_drawn(access_dom: Dom) -> None:
    assert body_of(access_dom).attrs.get("data-mermaid") == "ready"
    blocks = [
        e for e in access_dom.elements() if e.tag == "pre" and "mermaid" in e.attrs.get("class", "")
    ]
    expected = ACCESS.read_text().count("```mermaid")
    assert expected == 2, "ACCESS.md draws the HTTP and the gRPC flow"
    assert len(blocks) == expected
    drawings = []
    for block in blocks:
        (svg,) = [e for e in block.iter() if e.tag == "svg"]
        drawings.append(svg.text())
    http, grpc = drawings
    for label in ("401 E_UNAUTHENTICATED", "403 E_PERMISSION_DENIED", "allow_anonymous"):
        assert label in http, label
    for label in ("UNAUTHENTICATED", "PERMISSION_DENIED", "qmtl-error-detail-bin"):
        assert label in grpc, label


# Inserted first in <head> of a copy of each page: reports what the page loaded or tried to.
# Resource Timing lists no file: resources, so `data-loaded` holds only the outside ones.
PROBE = """<script>
(function () {
  var refused = [];
  document.addEventListener("securitypolicyviolation", function (e) {
    refused.push(e.blockedURI + " (" + e.violatedDirective + ")");
  });
  function report() {
    var loaded = performance.getEntriesByType("resource").map(function (e) { return e.name; });
    document.documentElement.setAttribute("data-loaded", JSON.stringify(loaded));
    document.documentElement.setAttribute("data-refused", JSON.stringify(refused));
  }
  setInterval(report, 100);
})();
</script>"""
LOCAL = ("file:", "data:", "blob:", "about:")


def test_pages_request_nothing_outside_file_urls(
    site: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    probed = tmp_path_factory.mktemp("probed") / "site"
    shutil.copytree(site, probed)
    problems = []
    pages = sorted(probed.glob("*.html"))
    assert {"index.html", "access.html", "reference.html"} <= {p.name for p in pages}
    for page in pages:
        html = page.read_text()
        page.write_text(html.replace("<head>", "<head>\n" + PROBE, 1))
        dom = chromium_dom(page, tmp_path_factory.mktemp("chromium-probe"))
        root = next(e for e in dom.elements() if e.tag == "html")
        assert "data-loaded" in root.attrs, f"{page.name}: the probe did not report"
        loaded = json.loads(root.attrs["data-loaded"])
        refused = json.loads(root.attrs["data-refused"])
        problems += [f"{page.name} loaded {url}" for url in loaded if not url.startswith(LOCAL)]
        problems += [f"{page.name} tried {what}" for what in refused]
    assert not problems, "\n".join(problems)


def test_the_network_probe_sees_an_outside_request(
    site: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The control for the test above: a page that does reach out is caught."""
    page = tmp_path_factory.mktemp("control") / "control.html"
    html = (site / "access.html").read_text().replace("<head>", "<head>\n" + PROBE, 1)
    page.write_text(html.replace("</main>", '<img src="https://example.invalid/x.png"></main>'))
    (page.parent / "site.css").write_text("")
    dom = chromium_dom(page, tmp_path_factory.mktemp("chromium-control"), 3000)
    root = next(e for e in dom.elements() if e.tag == "html")
    assert "https://example.invalid/x.png" in root.attrs["data-loaded"]
    assert "https://example.invalid/x.png (img-src)" in json.loads(root.attrs["data-refused"])


def test_the_committed_screenshot_is_a_capture_of_the_site() -> None:
    shot = ROOT / "docs/site-src/screenshot.png"
    assert shot.is_file(), "run `bash docs/site-src/screenshot.sh`"
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1440, 2200), "the size screenshot.sh takes"
    assert len(data) > 50_000, "a blank capture compresses to a few kilobytes"
