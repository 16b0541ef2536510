"""Markdown output of schema comments.

Comments are written as Markdown with `code` spans, so they pass through mostly unchanged. Two
things are escaped: a `<` outside code spans, because `strategies/<strategy_id>` would otherwise
be read as an HTML tag and vanish, and, inside table cells, `|` and line breaks, which would end
the cell or the row.
"""

from __future__ import annotations

import re

# A code span is a run of backticks closed by the same run; it may continue across lines.
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
# A line that starts a list item keeps its own line inside a table cell.
_LIST_ITEM = re.compile(r"(?:[-*+]|\d+[.)])\s")


def block(comment: str) -> str:
    """A comment as Markdown paragraphs."""
    pieces: list[str] = []
    last = 0
    for span in _CODE_SPAN.finditer(comment):
        pieces.append(_escape(comment[last : span.start()]))
        pieces.append(span.group(0))
        last = span.end()
    pieces.append(_escape(comment[last:]))
    return "".join(pieces)


def cell(comment: str) -> str:
    """A comment as the content of one table cell: a single line, pipes escaped."""
    paragraphs: list[str] = []
    for paragraph in re.split(r"\n\s*\n", block(comment).strip()):
        lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
        joined = lines[0] if lines else ""
        for line in lines[1:]:
            joined += ("<br>" if _LIST_ITEM.match(line) else " ") + line
        paragraphs.append(joined)
    # GFM splits cells on `|` before it sees code spans, so pipes are escaped even inside them.
    return "<br><br>".join(p for p in paragraphs if p).replace("|", "\\|")


def code(text: str) -> str:
    """`text` as a code span, fenced with more backticks than it contains."""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def link(text: str, anchor: str) -> str:
    return f"[{text}](#{anchor})"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")
