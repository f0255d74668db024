"""HTML as string templates: one self-contained page, inline CSS, no scripts, no external assets.

Every piece of text goes through `html.escape` here (and a `backquoted` span becomes code); callers pass plain
text, never markup, except the bodies these helpers return and `Markup` (a string these helpers made, e.g. a
link, placed in a table cell).

The layout holds at any width from about 360 px: the page body never scrolls sideways. Wide tables scroll inside
their own box (`div.scroll`), long words and paths break, figures shrink to the column, and at wide windows the
figures of a `figures` group sit side by side.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

STYLE = """
html { -webkit-text-size-adjust: 100%; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; line-height: 1.45; margin: 1.2em auto;
       max-width: 84em; padding: 0 1em; color: #222; overflow-wrap: anywhere; }
h1 { margin: 0 0 0.3em; font-size: 1.6em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
h3 { margin: 1.4em 0 0.4em; }
code, pre, .law { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
code { font-size: 0.92em; background: #f1f1f1; padding: 0 0.2em; border-radius: 3px; }
.scroll { overflow-x: auto; max-width: 100%; margin: 0.8em 0; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; white-space: nowrap; overflow-wrap: normal;
         vertical-align: top; }
th { background: #f3f3f3; text-align: left; white-space: normal; vertical-align: bottom; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #555; max-width: 60em; }
.figures { display: grid; gap: 0 1.5em; grid-template-columns: minmax(0, 1fr); }
@media (min-width: 1100px) { .figures { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
.law { font-size: 1.0em; background: #f6f6f6; padding: 0.4em 0.6em; }
.note { color: #8a4b00; }
.headline { border: 2px solid #2b5f8a; border-radius: 6px; padding: 0.6em 1.1em 0.8em; background: #f7fafd; }
.headline h2 { margin-top: 0.2em; border: none; }
.headline .question { font-size: 1.15em; }
.headline ul { padding-left: 1.2em; }
.headline li { margin: 0.3em 0; }
.headline-grid { display: grid; gap: 0 1.5em; grid-template-columns: minmax(0, 1fr); }
@media (min-width: 1100px) { .headline-grid { grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); } }
.pass { color: #14622d; font-weight: 600; }
.fail { color: #a11919; font-weight: 600; }
.sub { display: block; color: #666; font-size: 0.85em; font-weight: normal; }
table.samples th, table.samples td { white-space: normal; overflow-wrap: normal; }
table.samples thead th { font-weight: normal; font-size: 0.85em; width: 6em; vertical-align: bottom; }
table.samples tbody th { font-size: 0.85em; min-width: 9em; max-width: 14em; }
table.samples td { padding: 2px; }
table.samples img { display: block; image-rendering: pixelated; }
table.samples tr.truth td { background: #eef5ee; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.8em; white-space: pre; }
nav ol { columns: 2 14em; font-size: 0.9em; }
""".strip()


class Markup(str):
    """HTML made by these helpers: placed as is, never escaped again."""


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    body: str  # HTML built by the helpers below


_CODE = re.compile(r"`([^`]+)`")


def text(value: str) -> str:
    """Plain text escaped, with `backquoted` spans (commands, options) set as code; Markup as is."""
    if isinstance(value, Markup):
        return value
    return _CODE.sub(r"<code>\1</code>", escape(value))


def paragraph(content: str, css_class: str | None = None) -> Markup:
    attribute = f' class="{escape(css_class)}"' if css_class else ""
    return Markup(f"<p{attribute}>{text(content)}</p>")


def note(content: str) -> Markup:
    return paragraph(content, "note")


def law(content: str) -> Markup:
    return paragraph(content, "law")


def heading(content: str, level: int = 3, anchor: str | None = None) -> Markup:
    attribute = f' id="{escape(anchor)}"' if anchor else ""
    return Markup(f"<h{level}{attribute}>{text(content)}</h{level}>")


def strong(content: str) -> Markup:
    return Markup(f"<strong>{text(content)}</strong>")


def span(content: str, css_class: str) -> Markup:
    return Markup(f'<span class="{escape(css_class)}">{text(content)}</span>')


def code(content: str) -> Markup:
    return Markup(f"<code>{text(content)}</code>")


def join(*parts: str) -> Markup:
    """Text and markup in a row: plain strings are escaped, Markup is kept."""
    return Markup("".join(text(part) for part in parts))


def link(href: str, content: str) -> Markup:
    return Markup(f'<a href="{escape(href)}">{text(content)}</a>')


def items(texts: Sequence[str], ordered: bool = False, css_class: str | None = None) -> Markup:
    tag = "ol" if ordered else "ul"
    attribute = f' class="{escape(css_class)}"' if css_class else ""
    return Markup(f"<{tag}{attribute}>" + "".join(f"<li>{text(t)}</li>" for t in texts) + f"</{tag}>")


def preformatted(content: str) -> Markup:
    return Markup(f"<pre>{escape(content)}</pre>")


def details(summary: str, body: str) -> Markup:
    """A block the reader opens (plain HTML, no script)."""
    return Markup(f"<details><summary>{text(summary)}</summary>{body}</details>")


def figure(src: str, alt: str, caption: str) -> Markup:
    """An image by its file name relative to the page (the figures lie beside it)."""
    return Markup(
        f'<figure><img src="{escape(src)}" alt="{escape(alt)}">'
        f"<figcaption>{text(caption)}</figcaption></figure>"
    )


def figures(*bodies: str) -> Markup:
    """Figures side by side where the window is wide, one above the other where it is not."""
    return Markup('<div class="figures">' + "".join(f"<div>{body}</div>" for body in bodies) + "</div>")


def div(body: str, css_class: str) -> Markup:
    return Markup(f'<div class="{escape(css_class)}">{body}</div>')


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool] | None = None
) -> Markup:
    """A table of plain-text (or `Markup`) cells in a box that scrolls sideways when the table is wider than the
    page; `numeric[i]` right-aligns column i."""
    numeric = list(numeric) if numeric is not None else [False] * len(headers)
    head = "".join(f"<th>{text(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{text(cell)}</td>' if is_number else f"<td>{text(cell)}</td>"
            for cell, is_number in zip(row, numeric)
        )
        body.append(f"<tr>{cells}</tr>")
    return Markup(
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )


def page(title: str, headline: Section, sections: Sequence[Section]) -> str:
    """The whole document: the title, the headline first, a table of contents, then the sections."""
    nav = "".join(f'<li><a href="#{escape(s.anchor)}">{escape(s.title)}</a></li>' for s in sections)
    body = "".join(
        f'<section id="{escape(s.anchor)}"><h2>{escape(s.title)}</h2>{s.body}</section>' for s in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n"
        f'<section id="{escape(headline.anchor)}" class="headline"><h2>{escape(headline.title)}</h2>'
        f"{headline.body}</section>\n"
        f"<nav><ol>{nav}</ol></nav>\n{body}\n</body>\n</html>\n"
    )
