"""manage.py jitad_prune [--dry-run] [--days N] [--audit-days N]: delete closed records past their retention."""
from django.core.management.base import BaseCommand, CommandError

from jitad.reports.services.retention import retention_prune


class Command(BaseCommand):
    help = ("Delete ended grants, finished scans, done notifications, closed held removals and checkouts older than "
            "JITAD_RETENTION_DAYS, and audit events older than JITAD_AUDIT_RETENTION_DAYS (0: keep). "
            "--dry-run counts and changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
        parser.add_argument("--days", type=int, help="override JITAD_RETENTION_DAYS for this run")
        parser.add_argument("--audit-days", type=int, help="override JITAD_AUDIT_RETENTION_DAYS for this run")

    def handle(self, *args, dry_run=False, days=None, audit_days=None, **options):
        for name, value in (("--days", days), ("--audit-days", audit_days)):
            if value is not None and value < 0:
                raise CommandError(f"{name} must be 0 (keep) or more")
        result = retention_prune(days=days, audit_days=audit_days, dry_run=dry_run)
        if result.before is None and result.audit_before is None:
            self.stdout.write("Retention is off (JITAD_RETENTION_DAYS and JITAD_AUDIT_RETENTION_DAYS are 0): nothing to do.")
            return
        verb = "would delete" if dry_run else "deleted"
        if result.before:
            self.stdout.write(f"Closed records before {result.before:%Y-%m-%d %H:%M} UTC:")
        if result.audit_before:
            self.stdout.write(f"Audit events before {result.audit_before:%Y-%m-%d %H:%M} UTC"
                              + (" (at most: unsent SIEM events are kept)" if dry_run else "") + ":")
        for kind, n in sorted(result.counts.items()):
            self.stdout.write(f"  {verb} {n} {kind.replace('_', ' ')}")
        self.stdout.write(f"Total: {result.total}{' (dry run: nothing changed)' if dry_run else ''}")
