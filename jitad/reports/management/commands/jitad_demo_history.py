"""Seed the Reports' demo history: past requests, grants, scans and incidents, and the daily snapshots."""
import json

from django.conf import settings
from django.core.management.base import CommandError

from jitad.commands import JitadCommand, usage_error
from jitad.reports.services.demo_history import history_seed


class Command(JitadCommand):
    help = "Write ~75 days of past access history into a throwaway demo database (nothing touches AD)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=75, help="how many days back (default 75)")

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("jitad_demo_history is for throwaway demo databases only")
        if not 7 <= options["days"] <= 400:
            raise usage_error("--days must be between 7 and 400")
        self.result = dict(history_seed(days=options["days"]))
        self.say(json.dumps(self.result, default=str))
