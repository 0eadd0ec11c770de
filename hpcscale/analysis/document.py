"""A report's blocks (``("h1", text)``, ``("p", text)``, ``("table", (head, rows))``,
``("img", (file, alt))``, ``("link", (href, text))``) written as Markdown or as HTML (every
text escaped)."""

from __future__ import annotations

from html import escape
from typing import Any

Block = tuple[str, Any]


def markdown(blocks: list[Block]) -> str:
    lines: list[str] = []
    for kind, value in blocks:
        if kind in ("h1", "h2"):
            lines += ["#" * int(kind[1]) + " " + value, ""]
        elif kind == "p":
            lines += [value, ""]
        elif kind == "table":
            head, rows = value
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "img":
            lines += [f"![{value[1]}]({value[0]})", ""]
        elif kind == "link":
            lines += [f"[{value[1]}]({value[0]})", ""]
    return "\n".join(lines)


def html(blocks: list[Block]) -> str:
    parts = [
        "<!doctype html><meta charset='utf-8'><title>hpcscale report</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>",
    ]
    esc = escape
    for kind, value in blocks:
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{esc(value)}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{esc(value)}</p>")
        elif kind == "table":
            head, rows = value
            parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>")
            parts += [
                "<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in rows
            ]
            parts.append("</table>")
        elif kind == "img":
            parts.append(f"<p><img src='{esc(value[0])}' alt='{esc(value[1])}' width='800'></p>")
        elif kind == "link":
            parts.append(f"<p><a href='{esc(value[0])}'>{esc(value[1])}</a></p>")
    return "\n".join(parts) + "\n"
