"""Checks on a written report page: well-formed tags, local images only, visible text."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

from PIL import Image

VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
# Tags that start a new line where a browser renders the page: their text never runs into the next.
BLOCK_TAGS = {
    "p",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "td",
    "th",
    "tr",
    "div",
    "figure",
    "figcaption",
    "section",
    "nav",
    "pre",
    "br",
    "summary",
    "details",
    "table",
    "span",
}


class PageParser(HTMLParser):
    """Records problems instead of guessing: every non-void tag must be closed, in order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open_tags: list[str] = []
        self.problems: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self.links: list[str] = []
        self.doctype = False
        self.rows: list[list[str]] = []  # every table row, as its cells' text
        self._cell: list[str] | None = None
        self.sections: list[str] = []  # ids of the <section> elements, in page order
        self.section_text: dict[str, list[str]] = {}  # section id -> its text
        self._section: str | None = None

    def handle_decl(self, decl):
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def _break(self, tag: str) -> None:
        if tag in BLOCK_TAGS:
            self.handle_data(" ")

    def handle_starttag(self, tag, attrs):
        self._break(tag)
        attributes = dict(attrs)
        if tag == "section":
            self._section = attributes.get("id") or ""
            self.sections.append(self._section)
            self.section_text[self._section] = []
        if tag == "img":
            self.images.append(attributes.get("src") or "")
        for name in ("href", "src"):
            if name in attributes and tag != "img":
                self.links.append(attributes[name])
        if tag not in VOID_TAGS:
            self.open_tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID_TAGS:
            self.open_tags.pop()

    def handle_endtag(self, tag):
        self._break(tag)
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag == "section":
            self._section = None
        if not self.open_tags or self.open_tags[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open_tags[-1:] or 'nothing'}")
        else:
            self.open_tags.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._section is not None:
            self.section_text[self._section].append(data)
        if self._cell is not None:
            self._cell.append(data)

    def text_of(self, section: str) -> str:
        """The visible text of one section, whitespace collapsed."""
        return " ".join("".join(self.section_text[section]).split())

    def table(self, *first_headers: str) -> list[list[str]]:
        """The rows (header first) of the first table whose header row starts with `first_headers`."""
        first_header = first_headers[0]
        for i, row in enumerate(self.rows):
            if row[: len(first_headers)] == list(first_headers):
                rows = [row]
                for following in self.rows[i + 1 :]:
                    if len(following) != len(row) or following[0] == first_header:
                        break
                    rows.append(following)
                return rows
        raise AssertionError(f"no table whose header starts with {first_headers!r}")

    def row(self, first_cell: str) -> list[str]:
        """The table row whose first cell is `first_cell`, or starts with it and a second line (the first such)."""
        matches = [
            row for row in self.rows if row and (row[0] == first_cell or row[0].startswith(first_cell + " "))
        ]
        assert matches, f"no table row starts with {first_cell!r}"
        return matches[0]


def parse_page(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert parser.doctype, "no <!DOCTYPE html>"
    assert not parser.problems, parser.problems
    assert not parser.open_tags, f"unclosed tags: {parser.open_tags}"
    return parser


def check_local_images(path: Path, parser: PageParser) -> list[Path]:
    """Every <img> is an SVG or PNG file beside the page (or in its samples/ folder) that opens; returns them."""
    files = []
    for src in parser.images:
        assert "\\" not in src and ":" not in src and ".." not in src, src
        assert src.count("/") == 0 or src.startswith("samples/"), src
        file = path.parent / src
        assert file.is_file(), src
        if src.endswith(".svg"):
            root = ElementTree.parse(file).getroot()
            assert root.tag == "{http://www.w3.org/2000/svg}svg", src
            width = float(root.get("width").removesuffix("pt"))
            assert width > 100, (src, width)
        else:
            assert src.endswith(".png"), src
            with Image.open(file) as image:
                assert image.format == "PNG"
                image.load()
                assert image.width > 10 and image.height > 10
        files.append(file)
    return files


def check_links(path: Path, parser: PageParser) -> None:
    """Every link is an in-page anchor that exists, or a relative path to a file or folder that exists."""
    anchors = set(parser.sections) | {"headline"}
    for link in parser.links:
        if link.startswith("#"):
            assert link[1:] in anchors or link[1:].startswith("finding-"), link
            continue
        assert ":" not in link and not link.startswith("/"), (
            link
        )  # relative: works offline, wherever the study is
        assert (path.parent / unquote(link)).exists(), link


def page_text(parser: PageParser) -> str:
    return " ".join("".join(parser.text).split())
