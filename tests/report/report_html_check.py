"""Checks on a written report page: well-formed tags, local images only, visible text."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


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

    def handle_decl(self, decl):
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
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
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        if not self.open_tags or self.open_tags[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open_tags[-1:] or 'nothing'}")
        else:
            self.open_tags.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def row(self, first_cell: str) -> list[str]:
        """The table row whose first cell is `first_cell` (the first such row)."""
        matches = [row for row in self.rows if row and row[0] == first_cell]
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
    """Every <img> is a PNG file beside the page that PIL opens; returns them."""
    files = []
    for src in parser.images:
        assert "/" not in src and "\\" not in src and ":" not in src, src
        assert src.endswith(".png"), src
        file = path.parent / src
        assert file.is_file(), src
        with Image.open(file) as image:
            assert image.format == "PNG"
            image.load()
            assert image.width > 10 and image.height > 10
        files.append(file)
    return files


def page_text(parser: PageParser) -> str:
    return " ".join(" ".join(parser.text).split())
