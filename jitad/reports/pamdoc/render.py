"""Write the document's blocks as Markdown (canonical), self-contained HTML (every value escaped) or PDF (fpdf2)."""
from html import escape

from .blocks import Bullets, Heading, Para, Table

FORMATS = ("md", "html", "pdf")


# -- Markdown --------------------------------------------------------------------------------
def _md_inline(text: str) -> str:
    """One line of Markdown: newlines folded, characters that would start markup escaped."""
    text = " ".join(str(text).split())
    for ch in "\\`*[]<>|":
        text = text.replace(ch, "\\" + ch)
    return text


def render_markdown(blocks: list) -> str:
    """The canonical form: what ``jitad_pam_validate`` reads best (one statement a line)."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + _md_inline(b.text), ""]
        elif isinstance(b, Para):
            out += [_md_inline(b.text), ""]
        elif isinstance(b, Bullets):
            out += [f"- {_md_inline(item)}" for item in b.items] + [""]
        elif isinstance(b, Table) and not b.rows:
            out += ["None.", ""]
        elif isinstance(b, Table):
            out.append("| " + " | ".join(_md_inline(h) for h in b.headers) + " |")
            out.append("|" + "|".join("---" for _ in b.headers) + "|")
            out += ["| " + " | ".join(_md_inline(c) or "-" for c in row) + " |" for row in b.rows]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


# -- HTML ------------------------------------------------------------------------------------
_CSS = ("body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;line-height:1.45}"
        "table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}"
        "th,td{border:1px solid #bbb;padding:.25rem .5rem;text-align:left;vertical-align:top}th{background:#eee}")


def render_html(blocks: list) -> str:
    """One self-contained page: inline CSS, no script, no external resource; all text escaped."""
    title = next((b.text for b in blocks if isinstance(b, Heading)), "JIT privileged access")
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"]
    for b in blocks:
        if isinstance(b, Heading):
            level = min(max(b.level, 1), 6)
            out.append(f"<h{level}>{escape(b.text)}</h{level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{escape(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table) and not b.rows:
            out.append("<p>None.</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{escape(h)}</th>" for h in b.headers)
            body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in b.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# -- PDF -------------------------------------------------------------------------------------
_LATIN1 = str.maketrans({"\u2014": "-", "\u2013": "-", "\u2192": "->", "\u2018": "'", "\u2019": "'",
                         "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u00a0": " "})


def _pdf_text(text) -> str:
    """PDF core fonts are Latin-1: common punctuation is mapped, anything else becomes '?'."""
    return str(text).translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")


def render_pdf(blocks: list) -> bytes:
    """A landscape A4 PDF with the same headings, paragraphs, lists and tables."""
    from fpdf import FPDF

    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.set_title("JIT privileged access")
    pdf.set_creator("jitad")
    pdf.add_page()
    sizes = {1: 16, 2: 13, 3: 11}
    for b in blocks:
        if isinstance(b, Heading):
            pdf.set_font("Helvetica", "B", sizes.get(b.level, 10))
            pdf.multi_cell(0, 8, _pdf_text(b.text), new_x="LMARGIN", new_y="NEXT")
        elif isinstance(b, Para):
            pdf.set_font("Helvetica", "", 9)
            pdf.multi_cell(0, 5, _pdf_text(b.text), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        elif isinstance(b, Bullets):
            pdf.set_font("Helvetica", "", 9)
            for item in b.items:
                pdf.multi_cell(0, 5, _pdf_text(f"- {item}"), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        elif isinstance(b, Table) and b.rows:
            pdf.set_font("Helvetica", "", 7)
            with pdf.table(text_align="LEFT", line_height=4, wrapmode="CHAR") as t:
                for row in (b.headers, *b.rows):
                    cells = t.row()
                    for c in row:
                        cells.cell(_pdf_text(c or "-"))
            pdf.ln(3)
    return bytes(pdf.output())


def render(blocks: list, fmt: str) -> bytes:
    """The document in ``fmt`` (md, html or pdf), as bytes to write."""
    if fmt == "md":
        return render_markdown(blocks).encode("utf-8")
    if fmt == "html":
        return render_html(blocks).encode("utf-8")
    if fmt == "pdf":
        return render_pdf(blocks)
    raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
