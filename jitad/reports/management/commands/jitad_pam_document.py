"""manage.py jitad_pam_document: write the JIT privileged-access document (NIST SP 800-207) from live configuration."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from jitad.reports.pamdoc.compose import pam_document_blocks
from jitad.reports.pamdoc.gather import pam_facts_gather
from jitad.reports.pamdoc.records import period_parse
from jitad.reports.period import PeriodError
from jitad.reports.pamdoc.render import FORMATS, render


class Command(BaseCommand):
    help = ("Write the JIT privileged-access document from live configuration and the period's records: scope, the "
            "JIT model, the authorization flow, session controls, break-glass, audit and KPIs.")

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=FORMATS, default="md", help="md (canonical, default), html or pdf")
        parser.add_argument("--output", "-o", default="", help="file to write (default: standard output)")
        parser.add_argument("--period", default="30d",
                            help="the records' period: 30d (the last 30 days, default) or 2026-11-01..2026-12-01")

    def handle(self, *args, **options):
        try:
            period = period_parse(options["period"])
        except PeriodError as e:
            raise CommandError(str(e), returncode=2) from None
        if options["format"] == "pdf" and not options["output"]:
            raise CommandError("a PDF needs --output FILE", returncode=2)
        data = render(pam_document_blocks(pam_facts_gather(period=period)), options["format"])
        if not options["output"]:
            self.stdout.write(data.decode("utf-8"), ending="")
            return
        try:
            Path(options["output"]).write_bytes(data)
        except OSError as e:
            raise CommandError(f"cannot write {options['output']}: {e.strerror or e}", returncode=2) from None
        self.stderr.write(f"wrote {options['output']} ({len(data)} bytes, {options['format']})")
