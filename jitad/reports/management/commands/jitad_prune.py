"""manage.py jitad_prune [--dry-run] [--days N] [--audit-days N]: delete closed records past their retention."""
from jitad.commands import JitadCommand, usage_error
from jitad.reports.services.retention import retention_prune


class Command(JitadCommand):
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
                raise usage_error(f"{name} must be 0 (keep) or more")
        result = retention_prune(days=days, audit_days=audit_days, dry_run=dry_run)
        self.result = {"dry_run": dry_run, "before": result.before, "audit_before": result.audit_before,
                       "counts": dict(result.counts), "total": result.total}
        if result.before is None and result.audit_before is None:
            self.say("Retention is off (JITAD_RETENTION_DAYS and JITAD_AUDIT_RETENTION_DAYS are 0): nothing to do.")
            return
        verb = "would delete" if dry_run else "deleted"
        if result.before:
            self.say(f"Closed records before {result.before:%Y-%m-%d %H:%M} UTC:")
        if result.audit_before:
            self.say(f"Audit events before {result.audit_before:%Y-%m-%d %H:%M} UTC"
                              + (" (at most: unsent SIEM events are kept)" if dry_run else "") + ":")
        for kind, n in sorted(result.counts.items()):
            self.say(f"  {verb} {n} {kind.replace('_', ' ')}")
        self.say(f"Total: {result.total}{' (dry run: nothing changed)' if dry_run else ''}")
