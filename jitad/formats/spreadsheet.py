"""CSV that is safe to open in a spreadsheet: a cell that would run as a formula is written as text.

Every app's CSV export goes through here (the reports, a grant's evidence), so one rule
decides what a spreadsheet may run: a text cell starting with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return gets a leading apostrophe (the OWASP advice for CSV injection).
"""
import csv
import io

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs: quoted with a leading apostrophe when it looks like a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(header: list[str], rows: list[list]) -> str:
    """A CSV document (CRLF lines): the header, then each row; numbers as written, every other cell made safe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(str(h)) for h in header])
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return str(value)  # a negative number is a number, not a formula
    return safe_cell(str(value))
