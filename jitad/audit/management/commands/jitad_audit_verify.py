"""Verify the audit hash chain; exit 1 on any break."""
from django.core.management.base import BaseCommand, CommandError

from jitad.audit.services import audit_verify


class Command(BaseCommand):
    help = "Check that no audit event was edited, removed or reordered."

    def handle(self, *args, **options):
        problems = audit_verify()
        if problems:
            for p in problems:
                self.stderr.write(p)
            raise CommandError(f"audit chain broken in {len(problems)} place(s)")
        self.stdout.write("audit chain intact")
