"""The runbook (agent/runbook.md, also dashboards/runbook.md) as the agent serves it at
/runbook, so that alert links resolve without any web site: a small, safe Markdown-to-HTML
rendering (headings get GitHub's anchors; everything else is escaped text)."""

from __future__ import annotations

import functools
import html
import importlib.resources
import re

_HEADING = re.compile(r"^(#{1,6}) (.+)$")


def anchor(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


@functools.cache
def page() -> bytes:
    text = (importlib.resources.files("agent") / "runbook.md").read_text(encoding="utf-8")
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>svcprobe runbook</title>",
           "<style>body{font-family:sans-serif;max-width:60rem;margin:auto;padding:1rem}"
           "p,pre{white-space:pre-wrap}pre{background:#f4f4f4;padding:.5rem}</style></head><body>"]
    block: list[str] = []
    fenced = False

    def flush() -> None:
        if block:
            out.append(f"<p>{html.escape(chr(10).join(block))}</p>")
            block.clear()

    for line in text.splitlines():
        if line.startswith("```"):
            flush()
            out.append("</pre>" if fenced else "<pre>")
            fenced = not fenced
        elif fenced:
            out.append(html.escape(line) + "\n")
        elif m := _HEADING.match(line):
            flush()
            level, title = len(m.group(1)), m.group(2)
            out.append(f"<h{level} id='{html.escape(anchor(title))}'>{html.escape(title)}</h{level}>")
        elif not line.strip():
            flush()
        else:
            block.append(line)
    flush()
    if fenced:
        out.append("</pre>")
    out.append("</body></html>")
    return "\n".join(out).encode()
