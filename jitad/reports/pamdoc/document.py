"""Read a JIT PAM document (Markdown, text or HTML; written by jitad or by hand) into numbered logical lines.

A paragraph wrapped over several lines becomes one logical line (numbered by its first
line), so a statement is checked whole; table rows stay one line each, cells split by "|".
HTML is reduced to the same shape: one line per paragraph, heading, list item or table row.
"""
import re
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

MAX_BYTES = 5 * 1024 * 1024
_MD_ESCAPE = re.compile(r"\\([\\`*_\[\]<>|#])")
_BLOCK_START = re.compile(r"^\s*(#{1,6}\s|[-*+]\s|\d+[.)]\s|\||>)")


class DocumentError(Exception):
    """The document cannot be checked at all (missing, unreadable, too big, binary)."""


@dataclass(frozen=True)
class Line:
    """One logical line: its first source line number and its text (Markdown escapes undone)."""

    no: int
    text: str

    @property
    def is_table_row(self) -> bool:
        return self.text.lstrip().startswith("|")

    def cells(self) -> list[str]:
        return [c.strip() for c in self.text.strip().strip("|").split("|")]


def _read(path: Path) -> str:
    try:
        if not path.is_file():
            raise DocumentError(f"{path}: no such file")
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise DocumentError(f"{path}: {size} bytes is too big for a document (at most {MAX_BYTES})")
        raw = path.read_bytes()
    except OSError as e:
        raise DocumentError(f"{path}: cannot be read ({e.strerror or e})") from None
    if raw.startswith(b"%PDF"):
        raise DocumentError(f"{path}: a PDF cannot be checked as text; check the Markdown or HTML version")
    if b"\x00" in raw[:65536]:
        raise DocumentError(f"{path}: binary data, not a text document")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DocumentError(f"{path}: not UTF-8 text (byte {e.start})") from None


def _markdown_lines(text: str) -> list[Line]:
    out: list[Line] = []
    para: list[str] = []
    start = 0
    in_fence = False

    def flush():
        if para:
            out.append(Line(start, " ".join(p.strip() for p in para)))
            para.clear()

    for no, raw in enumerate(text.splitlines(), start=1):
        line = _MD_ESCAPE.sub(r"\1", raw.replace("\\\\", "\x01")).replace("\x01", "\\")
        if line.strip().startswith(("```", "~~~")):
            flush()
            in_fence = not in_fence
            continue
        if not line.strip():
            flush()
        elif in_fence or _BLOCK_START.match(line):
            flush()
            out.append(Line(no, line.strip()))
        else:
            if not para:
                start = no
            para.append(line)
    flush()
    return out


class _HtmlLines(HTMLParser):
    BLOCKS = {"p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "div", "br", "title", "pre", "blockquote", "dt", "dd"}
    SKIP = {"script", "style", "head"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.lines: list[Line] = []
        self.buf: list[str] = []
        self.start = 1
        self.row = False
        self.skip = 0

    def _flush(self):
        text = " ".join("".join(self.buf).split())
        if text:
            self.lines.append(Line(self.start, f"| {text} |" if self.row else text))
        self.buf = []
        self.start = self.getpos()[0]

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        elif tag in self.BLOCKS:
            self._flush()
            self.row = tag == "tr"
        elif tag in ("td", "th") and self.row and self.buf:
            self.buf.append(" | ")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self._flush()
            self.row = False

    def handle_data(self, data):
        if not self.skip:
            if not "".join(self.buf).strip():
                self.start = self.getpos()[0]
            self.buf.append(data)


def _html_lines(text: str) -> list[Line]:
    parser = _HtmlLines()
    parser.feed(text)
    parser.close()
    parser._flush()
    return [Line(ln.no, unescape(ln.text)) for ln in parser.lines]


def _is_html(path: Path, text: str) -> bool:
    head = text.lstrip()[:200].lower()
    return path.suffix.lower() in (".html", ".htm") or head.startswith(("<!doctype html", "<html"))


def document_lines(path) -> list[Line]:
    """The logical lines of the document at ``path``; raises DocumentError when it cannot be read as text."""
    path = Path(path)
    text = _read(path)
    return _html_lines(text) if _is_html(path, text) else _markdown_lines(text)
