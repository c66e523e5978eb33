"""Print the KPI report for a period as JSON, CSV or Markdown: the same figures as the Reports pages."""
from datetime import date, datetime

from django.conf import settings

from jitad.commands import JitadCommand, usage_error
from jitad.elevation.models import Target
from jitad.reports import exports
from jitad.reports.selectors import kpis
from jitad.reports.period import EXAMPLES, PeriodError, period_resolve
from jitad.reports.selectors.filters import report_filter_errors

FORMATS = ("json", "csv", "md")


def _when(text: str, name: str):
    """A date (YYYY-MM-DD) or an ISO 8601 time from the command line."""
    try:
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError as e:
        raise usage_error(f"--{name} {text[:40]!r} is not a date (YYYY-MM-DD) or an ISO 8601 time.") from e


def report_build(**kwargs):
    """The KPI selector, behind one name the tests can replace with a hand-made report."""
    return kpis.report_build(**kwargs)


class Command(JitadCommand):
    # --format json writes the report itself; only a failure is written as jitad's JSON error (jitad/commands.py).
    json_document = True
    help = ("The KPI report (standing access, JIT use, approval time, revocation, risk signals) for a period, "
            "as JSON, CSV or Markdown; the same figures as /reports/ (see docs/reports.md).")

    def add_arguments(self, parser):
        parser.add_argument("--period", help=f"ending now (or --end), {EXAMPLES}; default JITAD_REPORT_PERIOD_DAYS (30) days")
        parser.add_argument("--start", help="start date (YYYY-MM-DD, UTC midnight) or ISO 8601 time, instead of --period")
        parser.add_argument("--end", help="end date (included) or ISO 8601 time; default now")
        parser.add_argument("--tier", type=str, help="only targets of this tier (0, 1 or 2)")
        parser.add_argument("--target", help="only this target (its name)")
        parser.add_argument("--policy", help="only this policy (its name)")
        parser.add_argument("--format", default="json", help="json (the whole report), csv (the headline figures, "
                                                             "or --table's rows) or md")
        parser.add_argument("--table", help="with --format csv: one table, as SECTION.TABLE (e.g. standing.trend)")
        parser.add_argument("--output", help="write to this file instead of standard output")

    def handle(self, *args, **options):
        fmt = (options["format"] or "").lower()
        if fmt not in FORMATS:
            raise usage_error(f"--format {options['format']!r}: choose one of {', '.join(FORMATS)}.")
        if options["table"] and fmt != "csv":
            raise usage_error("--table goes with --format csv.")
        tier = options["tier"]
        if tier is not None:
            if tier.strip() not in {str(v) for v in Target.Tier.values}:
                raise usage_error(f"--tier {tier[:20]!r}: choose one of {', '.join(map(str, Target.Tier.values))}.")
            tier = int(tier)
        start = _when(options["start"], "start") if options["start"] else None
        end = _when(options["end"], "end") if options["end"] else None
        try:
            start_at, end_at = period_resolve(period=options["period"], start=start, end=end)
        except PeriodError as e:
            raise usage_error(str(e)) from e
        unknown = report_filter_errors(target=options["target"] or None, policy=options["policy"] or None)
        if unknown:
            raise usage_error(" ".join(f"--{field}: {message}" for field, message in unknown.items()))
        report = report_build(start=start_at, end=end_at, tier=tier, target=options["target"] or None,
                              policy=options["policy"] or None)
        base = getattr(settings, "JITAD_BASE_URL", "")
        text = self._render(report, fmt, options["table"], base)
        if options["output"]:
            try:
                with open(options["output"], "w", encoding="utf-8", newline="") as f:
                    f.write(text)
            except OSError as e:
                raise usage_error(f"Cannot write {options['output']}: {e.strerror}.") from e
        else:
            self.stdout.write(text, ending="")

    def _render(self, report, fmt: str, table: str | None, base: str) -> str:
        if fmt == "json":
            return exports.report_json(report, base)
        if fmt == "md":
            return exports.report_markdown(report, base)
        if not table:
            return exports.figures_csv(report, base=base)
        section_key, _, table_key = table.partition(".")
        section = next((s for s in report.sections if s.key == section_key), None)
        found = next((t for t in section.tables if t.key == table_key), None) if section else None
        if found is None:
            known = ", ".join(f"{s.key}.{t.key}" for s in report.sections for t in s.tables) or "none"
            raise usage_error(f"--table {table[:60]!r}: no such table; the tables are {known}.")
        return exports.table_csv(found, base)
