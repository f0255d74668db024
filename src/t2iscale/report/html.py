"""HTML as string templates: one self-contained page, inline CSS, no scripts, no external assets.

Every piece of text goes through `html.escape` here; callers pass plain text, never markup, except the
bodies these helpers return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 76em; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.8em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; }
th { background: #f3f3f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #555; }
.law { font-family: ui-monospace, monospace; font-size: 1.05em; background: #f6f6f6; padding: 0.4em 0.6em; }
.note { color: #8a4b00; }
nav ol { columns: 2; font-size: 0.9em; }
""".strip()


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    body: str  # HTML built by the helpers below


def paragraph(text: str, css_class: str | None = None) -> str:
    attribute = f' class="{escape(css_class)}"' if css_class else ""
    return f"<p{attribute}>{escape(text)}</p>"


def note(text: str) -> str:
    return paragraph(text, "note")


def law(text: str) -> str:
    return paragraph(text, "law")


def items(texts: Sequence[str], ordered: bool = False) -> str:
    tag = "ol" if ordered else "ul"
    return f"<{tag}>" + "".join(f"<li>{escape(t)}</li>" for t in texts) + f"</{tag}>"


def figure(src: str, alt: str, caption: str) -> str:
    """An image by its file name relative to the page (the PNGs lie beside it)."""
    return (
        f'<figure><img src="{escape(src)}" alt="{escape(alt)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool] | None = None
) -> str:
    """A table of plain-text cells; `numeric[i]` right-aligns column i."""
    numeric = list(numeric) if numeric is not None else [False] * len(headers)
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{escape(cell)}</td>' if is_number else f"<td>{escape(cell)}</td>"
            for cell, is_number in zip(row, numeric)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page(title: str, intro: str, sections: Sequence[Section]) -> str:
    """The whole document; `intro` is HTML from the helpers above."""
    nav = "".join(f'<li><a href="#{escape(s.anchor)}">{escape(s.title)}</a></li>' for s in sections)
    body = "".join(
        f'<section id="{escape(s.anchor)}"><h2>{escape(s.title)}</h2>{s.body}</section>' for s in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n{intro}\n<nav><ol>{nav}</ol></nav>\n{body}\n</body>\n</html>\n"
    )
