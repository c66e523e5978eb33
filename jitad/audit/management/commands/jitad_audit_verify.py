"""Verify the audit hash chain; exit 1 on any break."""
from django.core.management.base import CommandError

from jitad.audit.selectors import audit_checkpoint
from jitad.audit.services import audit_verify
from jitad.commands import JitadCommand


class Command(JitadCommand):
    help = "Check that no audit event was edited, removed or reordered (from the pruning checkpoint on)."

    def handle(self, *args, **options):
        checkpoint = audit_checkpoint()
        self.result = {"checkpoint": None, "breaks": []}
        if checkpoint is not None:
            self.result["checkpoint"] = {"seq": checkpoint.seq, "hash": checkpoint.hash,
                                         "pruned_total": checkpoint.pruned_total, "pruned_at": checkpoint.pruned_at,
                                         "last_pruned": checkpoint.last_pruned, "before": checkpoint.before}
            self.say(
                f"pruned: {checkpoint.pruned_total} event(s) up to seq {checkpoint.seq} "
                f"(last run {checkpoint.pruned_at:%Y-%m-%d %H:%M:%S} UTC removed {checkpoint.last_pruned}, "
                f"cut-off {checkpoint.before:%Y-%m-%d %H:%M:%S}); verifying from checkpoint hash {checkpoint.hash}"
            )
        problems = audit_verify()
        self.result["breaks"] = list(problems)
        if problems:
            for p in problems:
                self.stderr.write(p)
            raise CommandError(f"audit chain broken in {len(problems)} place(s)")
        self.say("audit chain intact")
