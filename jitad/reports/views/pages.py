"""The Reports pages: the overview (filters, headline figures), one page per section, and the exports.

Only for holders of ``reports.view_reports`` (superusers pass); login and verified MFA are
already demanded by the middleware. Bad filters show as form errors (400), never a 500.
"""
from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from .. import exports
from ..charts import chart_svg
from ..figures import Report
from ..selectors import kpis
from .forms import ReportFilterForm

SECTIONS = ("standing", "utilisation", "approval", "revocation", "risk")
PERMISSION = "reports.view_reports"
# A page shows at most this many rows of a table; the CSV export has them all.
PAGE_ROWS = 200


def report_build(**kwargs) -> Report:
    """The KPI selector, behind one name the tests can replace with a hand-made report."""
    return kpis.report_build(**kwargs)


def reports_required(view):
    """403 for anyone without ``reports.view_reports``; GET only."""

    @require_GET
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.has_perm(PERMISSION):
            raise PermissionDenied("Reports are for holders of the view_reports permission.")
        return view(request, *args, **kwargs)

    return wrapper


def _filtered(request, key: str | None = None) -> tuple[ReportFilterForm, Report | None]:
    """The filter form bound to the querystring (defaults when empty) and, when it is valid, the report
    (only section ``key``'s when given: a section's page and export need no other)."""
    if key is not None and key not in SECTIONS:
        raise Http404("No such report section.")
    form = ReportFilterForm(request.GET or {})
    if not form.is_valid():
        return form, None
    return form, report_build(**form.build_args(), **({"sections": (key,)} if key else {}))


def _query(request) -> str:
    """The filters of this page, to carry to the other pages and exports (re-encoded, so escaped)."""
    keep = request.GET.copy()
    keep.pop("table", None)
    encoded = keep.urlencode()
    return f"?{encoded}" if encoded else ""


def _section(report: Report, key: str):
    if key not in SECTIONS:
        raise Http404("No such report section.")
    try:
        return report.section(key)
    except StopIteration as e:
        raise Http404("This report has no such section.") from e


def _context(request, form, report, **extra) -> dict:
    return {"form": form, "report": report, "query": _query(request), "sections": SECTIONS, **extra}


def _figure_rows(section):
    return [{"figure": f, "text": exports.value_text(f.value, f.unit), "url": exports.records_url(f.records)}
            for f in section.figures]


@reports_required
def overview(request):
    """Filters, and per section its headline figures, its definition and a link to its page."""
    form, report = _filtered(request)
    blocks = [{"section": s, "figures": _figure_rows(s)} for s in report.sections] if report else []
    return render(request, "reports/overview.html", _context(request, form, report, blocks=blocks),
                  status=200 if report else 400)


@reports_required
def section(request, key: str):
    """One section: headline figures, and per table its chart, the table behind it, records links and exports."""
    form, report = _filtered(request, key)
    if report is None:
        return render(request, "reports/overview.html", _context(request, form, None, blocks=[]), status=400)
    s = _section(report, key)
    tables = []
    for t in s.tables:
        rows = [{"cells": [exports.value_text(row.get(c.key), c.unit if c.unit == "s" else "") for c in t.columns],
                 "url": exports.records_url(t.records.get(i))} for i, row in enumerate(t.rows[:PAGE_ROWS])]
        tables.append({"table": t, "svg": chart_svg(t, chart_id=f"chart-{slugify(s.key)}-{slugify(t.key)}"),
                       "rows": rows, "linked": bool(t.records), "more": max(0, len(t.rows) - PAGE_ROWS)})
    return render(request, "reports/section.html",
                  _context(request, form, report, section=s, figures=_figure_rows(s), tables=tables))


def _download(body: str, content_type: str, name: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _bad(form) -> HttpResponse:
    text = "\n".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())
    return HttpResponse(f"Bad filters.\n{text}\n", status=400, content_type="text/plain; charset=utf-8")


@reports_required
def section_csv(request, key: str):
    """``?table=KEY``: that table as CSV; without it, the section's headline figures."""
    form, report = _filtered(request, key)
    if report is None:
        return _bad(form)
    s = _section(report, key)
    base = request.build_absolute_uri("/").rstrip("/")
    wanted = request.GET.get("table")
    if wanted is None:
        return _download(exports.figures_csv(report, [s], base), "text/csv; charset=utf-8", f"jitad-{s.key}.csv")
    table = next((t for t in s.tables if t.key == wanted), None)
    if table is None:
        names = ", ".join(t.key for t in s.tables) or "none"
        return HttpResponse(f"No table {wanted[:60]!r} in {s.key}; its tables: {names}.\n", status=404,
                            content_type="text/plain; charset=utf-8")
    return _download(exports.table_csv(table, base), "text/csv; charset=utf-8", f"jitad-{s.key}-{slugify(table.key)}.csv")


@reports_required
def report_json(request):
    """The whole report as JSON (definitions, figures, tables, records links)."""
    form, report = _filtered(request)
    if report is None:
        return _bad(form)
    base = request.build_absolute_uri("/").rstrip("/")
    return _download(exports.report_json(report, base), "application/json", "jitad-report.json")


@reports_required
def report_markdown(request):
    """The whole report as Markdown."""
    form, report = _filtered(request)
    if report is None:
        return _bad(form)
    base = request.build_absolute_uri("/").rstrip("/")
    return _download(exports.report_markdown(report, base), "text/markdown; charset=utf-8", "jitad-report.md")
