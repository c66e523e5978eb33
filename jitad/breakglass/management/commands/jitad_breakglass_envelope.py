"""Check a paper envelope against jitad's seals; an opened envelope of the current seal gets its password rotated."""
from django.core.management.base import CommandError

from jitad.breakglass import services
from jitad.breakglass.errors import BreakglassRefused
from jitad.breakglass.models import SealedAccount
from jitad.commands import JitadCommand

# The verdict is the exit code: this command's own codes (ops/README.md, "Exit codes").
EXIT = {"current": 0, "stale": 2, "unknown": 3}


class Command(JitadCommand):
    help = ("verify ACCOUNT SEAL_ID [--opened]: is this envelope the current seal (exit 0), stale (2) or not "
            "jitad's (3)? With --opened the current seal is broken and the password rotated now (exit 0 once sealed "
            "again, 1 if the rotation failed and the account is exposed).")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="check an envelope's seal id")
        verify.add_argument("account")
        verify.add_argument("seal_id")
        verify.add_argument("--opened", action="store_true", help="the envelope was opened (its password was used)")

    def handle(self, *args, **o):
        try:
            verdict = services.envelope_verify(account_name=o["account"], seal_id=o["seal_id"], opened=o["opened"],
                                               actor="system:manage.py")
        except BreakglassRefused as e:
            raise CommandError(e.message) from e
        self.result = {"verdict": verdict.status, "message": verdict.message, "rotated": False}
        self.say(f"{verdict.status}: {verdict.message}")
        if verdict.rotation is not None:
            account = services.account_rotate_here(account=verdict.account, token=verdict.rotation)
            self.result.update(rotated=account.state == SealedAccount.State.SEALED, state=account.state,
                               seal_id=account.seal_id)
            if account.state != SealedAccount.State.SEALED:
                raise CommandError(f"rotation failed, {account.name} is {account.state}: {account.last_error}. "
                                   "jitad keeps retrying from the worker.")
            self.say(f"{account.name} rotated and sealed again: seal {account.seal_id}. Print a new envelope.")
        if EXIT[verdict.status]:
            raise SystemExit(EXIT[verdict.status])
