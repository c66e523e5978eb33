"""Verify the audit hash chain; exit 1 on any break."""
from django.core.management.base import BaseCommand, CommandError

from jitad.audit.selectors import audit_checkpoint
from jitad.audit.services import audit_verify


class Command(BaseCommand):
    help = "Check that no audit event was edited, removed or reordered (from the pruning checkpoint on)."

    def handle(self, *args, **options):
        checkpoint = audit_checkpoint()
        if checkpoint is not None:
            self.stdout.write(
                f"pruned: {checkpoint.pruned_total} event(s) up to seq {checkpoint.seq} "
                f"(last run {checkpoint.pruned_at:%Y-%m-%d %H:%M:%S} UTC removed {checkpoint.last_pruned}, "
                f"cut-off {checkpoint.before:%Y-%m-%d %H:%M:%S}); verifying from checkpoint hash {checkpoint.hash}"
            )
        problems = audit_verify()
        if problems:
            for p in problems:
                self.stderr.write(p)
            raise CommandError(f"audit chain broken in {len(problems)} place(s)")
        self.stdout.write("audit chain intact")
