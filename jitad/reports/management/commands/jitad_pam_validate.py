"""manage.py jitad_pam_validate DOC: check a JIT PAM document as text and, with --evidence, against jitad's records.

Exit status: 0 PASS, 1 FAIL, 2 the document (or --period) cannot be used at all.
"""
import sys

from jitad.commands import ExitCode, JitadCommand, usage_error
from jitad.reports.pamdoc.document import DocumentError, document_lines
from jitad.reports.pamdoc.evidence import claims_check, claims_find, evidence_report
from jitad.reports.pamdoc.records import period_parse, period_stated
from jitad.reports.period import PeriodError
from jitad.reports.pamdoc.validate import text_checks, text_passed, text_report


class Command(JitadCommand):
    help = ("Check a JIT privileged-access document (jitad's or hand-written; Markdown, text or HTML): JIT coverage, "
            "duration or approval, MFA for every privileged session, break-glass; --evidence also holds its claims "
            "against the records. Ends in 'Result: PASS' (exit 0) or 'Result: FAIL' (exit 1).")

    def add_arguments(self, parser):
        parser.add_argument("doc", metavar="DOC", help="the document to check")
        parser.add_argument("--evidence", action="store_true",
                            help="hold the document's claims against jitad's records and name each that disproves one")
        parser.add_argument("--period", default="",
                            help="records' period for --evidence: 30d or 2026-11-01..2026-12-01 (default: the period "
                                 "the document states, else the last 30 days)")

    def handle(self, *args, **options):
        try:
            lines = document_lines(options["doc"])
        except DocumentError as e:
            raise usage_error(str(e)) from None
        results = text_checks(lines)
        out = [f"JIT PAM document check: {options['doc']}", *text_report(results)]
        passed = text_passed(results)
        suggestions = [r.suggestion for r in results if not r.found]
        if options["evidence"]:
            try:
                period = (period_parse(options["period"]) if options["period"]
                          else period_stated("\n".join(ln.text for ln in lines)) or period_parse(None))
            except PeriodError as e:
                raise usage_error(str(e)) from None
            claims = claims_check(claims_find(lines), period)
            out += ["", *evidence_report(claims, period)]
            wrong = [c for c in claims if not c.holds]
            if wrong:
                passed = False
                suggestions.append(f"{len(wrong)} claim(s) are contradicted by the records listed: correct the records "
                                   "(or the configuration), or say in the document what the records show.")
        if suggestions:
            out += ["", "Suggestions:", *[f"- {s}" for s in suggestions]]
        out += ["", f"Result: {'PASS' if passed else 'FAIL'}"]
        self.result = {"document": options["doc"], "result": "PASS" if passed else "FAIL",
                       "checks": [{"key": r.key, "title": r.title, "required": r.required, "found": r.found,
                                   "lines": [h.line for h in r.hits]} for r in results],
                       "suggestions": suggestions, "report": out}
        self.say("\n".join(out))
        if not passed:
            sys.exit(ExitCode.PROBLEMS)  # the report above says why; no second message
