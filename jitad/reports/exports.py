"""A Report written out: CSV (the headline figures, or one table), JSON (the whole report) and Markdown.

The pages' export links and ``manage.py jitad_report`` both write through here, so a
figure reads the same everywhere. Every figure and row keeps the link to the records
behind it (the admin changelist, filtered); a definition points at docs/reports.md.
"""
import csv
import io
import json
from datetime import date, datetime, timezone as dt_timezone
from decimal import Decimal
from urllib.parse import urlencode

from django.urls import NoReverseMatch, reverse

from jitad.formats.spreadsheet import safe_cell

from .figures import Figure, Records, Report, Section, Table

DOCS = "docs/reports.md"


def records_url(records: Records | None, base: str = "") -> str:
    """The admin changelist of ``records.model`` filtered by ``records.query`` ("" when there is none)."""
    if records is None:
        return ""
    app, _, model = records.model.partition(".")
    try:
        path = reverse(f"admin:{app}_{model.lower()}_changelist")
    except NoReverseMatch:
        return ""
    query = urlencode({k: _plain(v) for k, v in records.query.items()})
    return f"{base}{path}" + (f"?{query}" if query else "")


def definition_url(section: Section) -> str:
    """Where the section's definition is written down (docs/reports.md, the section's anchor)."""
    return f"{DOCS}#{section.key}"


def _plain(value):
    """A value as JSON/CSV hold it: dates in ISO 8601, Decimals as floats, lists joined by commas."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (list, tuple, set)):
        return ",".join(str(v) for v in value)
    return value


def _text(value) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value else (f"{value:.2f}".rstrip("0").rstrip(".") or "0")
    return str(value)


def _cell(value) -> str:
    """A CSV cell: text that a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    text = _text(value)
    return text if isinstance(_plain(value), (int, float)) else safe_cell(text)


def _csv(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return out.getvalue()


def table_csv(table: Table, base: str = "") -> str:
    """One table: a header of column keys, a row per row, and a ``records`` column when rows name their records."""
    keys = [c.key for c in table.columns]
    linked = bool(table.records)
    rows = [[row.get(k) for k in keys] + ([records_url(table.records.get(i), base)] if linked else [])
            for i, row in enumerate(table.rows)]
    return _csv(keys + (["records"] if linked else []), rows)


def figures_csv(report: Report, sections: list[Section] | None = None, base: str = "") -> str:
    """The headline figures (of every section, or of ``sections``), one per line, with the period and filters."""
    filters = ";".join(f"{k}={v}" for k, v in sorted(report.filters.items()))
    rows = [[s.key, f.key, f.label, f.value, f.unit, report.start, report.end, filters, records_url(f.records, base),
             definition_url(s)]
            for s in (sections if sections is not None else report.sections) for f in s.figures]
    return _csv(["section", "figure", "label", "value", "unit", "start", "end", "filters", "records", "definition"], rows)


def _records(records: Records | None, base: str) -> dict | None:
    if records is None:
        return None
    return {"model": records.model, "query": {k: _plain(v) for k, v in records.query.items()}, "count": records.count,
            "url": records_url(records, base)}


def _figure(f: Figure, base: str) -> dict:
    return {"key": f.key, "label": f.label, "value": _plain(f.value), "unit": f.unit, "records": _records(f.records, base)}


def _table(t: Table, base: str) -> dict:
    return {
        "key": t.key, "title": t.title,
        "columns": [{"key": c.key, "label": c.label, "unit": c.unit} for c in t.columns],
        "rows": [{k: _plain(v) for k, v in row.items()} for row in t.rows],
        "chart": None if t.chart is None else {"kind": t.chart.kind, "x": t.chart.x, "y": list(t.chart.y)},
        "records": {str(i): _records(r, base) for i, r in sorted(t.records.items())},
    }


def report_dict(report: Report, base: str = "") -> dict:
    """The whole report as plain data: period, filters, and per section its definition, figures and tables."""
    return {
        "start": report.start.isoformat(), "end": report.end.isoformat(),
        "generated_at": report.generated_at.isoformat() if report.generated_at else None,
        "filters": {k: _plain(v) for k, v in report.filters.items()},
        "sections": [{"key": s.key, "title": s.title, "definition": s.definition, "definition_url": definition_url(s),
                      "figures": [_figure(f, base) for f in s.figures], "tables": [_table(t, base) for t in s.tables]}
                     for s in report.sections],
    }


def report_json(report: Report, base: str = "") -> str:
    """``report_dict`` as indented JSON."""
    return json.dumps(report_dict(report, base), indent=2, ensure_ascii=False) + "\n"


def seconds_text(value: float) -> str:
    """A duration in seconds as people read it: "45 s", "12 min", "2 h 5 min", "3 d 4 h"."""
    v = float(value)
    sign, v = ("-" if v < 0 else ""), abs(v)
    if v < 120:
        return f"{sign}{_text(round(v, 1))} s"
    minutes = round(v / 60)
    if minutes < 120:
        return f"{sign}{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{sign}{hours} h" + (f" {rest} min" if rest else "")
    days, hours = divmod(hours, 24)
    return f"{sign}{days} d" + (f" {hours} h" if hours else "")


def _when_text(value: str) -> str | None:
    """An ISO 8601 timestamp string as "2026-12-01 23:21 UTC" (None if it is not one)."""
    if len(value) < 16 or value[4:5] != "-" or value[10:11] != "T":
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    if at.tzinfo is not None:
        at = at.astimezone(dt_timezone.utc)
    return at.strftime("%Y-%m-%d %H:%M") + (" UTC" if at.tzinfo is not None else "")


def value_text(value, unit: str = "") -> str:
    """A value as people read it on a page: "—" for nothing, durations ("s") in words, times without microseconds."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        value = value.isoformat()
    if isinstance(value, str):
        return _when_text(value) or value
    if unit == "s" and isinstance(value, (int, float, Decimal)):
        return seconds_text(value)
    text = _text(value)
    if not unit:
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


def _md(text) -> str:
    """A Markdown table cell: pipes and line breaks cannot end the cell or the row."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def report_markdown(report: Report, base: str = "") -> str:
    """The report as Markdown: per section the definition, the figures and each table, with records links."""
    lines = [f"# jitad report {report.start:%Y-%m-%d %H:%M} – {report.end:%Y-%m-%d %H:%M} UTC", ""]
    if report.filters:
        lines += ["Filters: " + ", ".join(f"{_md(k)} = {_md(v)}" for k, v in sorted(report.filters.items())), ""]
    for s in report.sections:
        lines += [f"## {_md(s.title)}", "", _md(s.definition) + f" ([definition]({definition_url(s)}))", ""]
        if s.figures:
            lines += ["| figure | value | records |", "|---|---:|---|"]
            for f in s.figures:
                url = records_url(f.records, base)
                lines.append(f"| {_md(f.label)} | {_md(value_text(f.value, f.unit))} | {f'[records]({url})' if url else ''} |")
            lines.append("")
        for t in s.tables:
            lines += [f"### {_md(t.title)}", ""]
            head = [_md(c.label + (f" ({c.unit})" if c.unit and c.unit != "s" else "")) for c in t.columns] + (["records"] if t.records else [])
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for i, row in enumerate(t.rows):
                cells = [_md(value_text(row.get(c.key), c.unit if c.unit == "s" else "")) for c in t.columns]
                if t.records:
                    url = records_url(t.records.get(i), base)
                    cells.append(f"[records]({url})" if url else "")
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)
