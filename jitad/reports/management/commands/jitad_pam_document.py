"""manage.py jitad_pam_document: write the JIT privileged-access document (NIST SP 800-207) from live configuration."""
from pathlib import Path

from jitad.commands import JitadCommand, usage_error
from jitad.reports.pamdoc.compose import pam_document_blocks
from jitad.reports.pamdoc.gather import pam_facts_gather
from jitad.reports.pamdoc.records import period_parse
from jitad.reports.period import PeriodError
from jitad.reports.pamdoc.render import FORMATS, render


class Command(JitadCommand):
    help = ("Write the JIT privileged-access document from live configuration and the period's records: scope, the "
            "JIT model, the authorization flow, session controls, break-glass, audit and KPIs.")

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=(*FORMATS, "json"), default="md",
                            help="md (canonical, default), html or pdf; json: the Markdown inside jitad's JSON object "
                                 "(with --output, the Markdown goes to the file)")
        parser.add_argument("--output", "-o", default="", help="file to write (default: standard output)")
        parser.add_argument("--period", default="30d",
                            help="the records' period: 30d (the last 30 days, default) or 2026-11-01..2026-12-01")

    def handle(self, *args, **options):
        try:
            period = period_parse(options["period"])
        except PeriodError as e:
            raise usage_error(str(e)) from None
        if options["format"] == "pdf" and not options["output"]:
            raise usage_error("a PDF needs --output FILE")
        fmt = "md" if self.as_json else options["format"]
        data = render(pam_document_blocks(pam_facts_gather(period=period)), fmt)
        self.result = {"format": fmt, "period": options["period"], "output": options["output"] or None,
                       "bytes": len(data)}
        if not options["output"]:
            self.result["document"] = data.decode("utf-8")
            self.say(data.decode("utf-8"), ending="")
            return
        try:
            Path(options["output"]).write_bytes(data)
        except OSError as e:
            raise usage_error(f"cannot write {options['output']}: {e.strerror or e}") from None
        self.stderr.write(f"wrote {options['output']} ({len(data)} bytes, {fmt})")
