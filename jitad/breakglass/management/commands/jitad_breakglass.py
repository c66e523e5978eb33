"""Operate sealed accounts from the shell: enrol, status, rotate, check seals, vault keys."""
from django.core.management.base import CommandError

from jitad.breakglass import services
from jitad.breakglass.errors import BreakglassRefused
from jitad.breakglass.models import Checkout, SealedAccount
from jitad.breakglass.vault import VaultError, key_generate
from jitad.commands import JitadCommand, usage_error


def _wait_rotation(account: SealedAccount, token) -> SealedAccount:
    """Run the rotation in this process (the worker may be down: that is when this command is used)."""
    if token is None:
        account.refresh_from_db()
        return account
    return services.account_rotate_here(account=account, token=token)


class Command(JitadCommand):
    help = "Sealed break-glass accounts: enrol, status, rotate, seal-check, rekey, keygen (see docs/breakglass.md)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        enrol = sub.add_parser("enrol", help="seal an AD account: jitad sets a password nobody knows, now")
        enrol.add_argument("name", help="the account's sAMAccountName")
        enrol.add_argument("--description", default="")
        enrol.add_argument("--responders", default="", help="comma-separated AD groups who may check it out")
        enrol.add_argument("--approvers", default="", help="comma-separated AD groups who approve checkouts")
        enrol.add_argument("--approvals", type=int, default=2)
        enrol.add_argument("--max-minutes", type=int, default=240)
        enrol.add_argument("--keep-enabled", action="store_true",
                           help="leave it enabled while sealed (for accounts kept in paper envelopes)")
        enrol.add_argument("--no-emergency", action="store_true", help="never allow emergency (single-person) checkout")
        sub.add_parser("status", help="every sealed account and its state (exit 1 when one is exposed)")
        rotate = sub.add_parser("rotate", help="set a new password now (or retry an exposed account's rotation)")
        rotate.add_argument("name")
        rotate.add_argument("--reason", required=True)
        sub.add_parser("seal-check", help="compare every sealed account with AD now")
        rekey = sub.add_parser("rekey", help="re-encrypt every stored secret (break-glass and MFA) under the first key "
                                             "of JITAD_VAULT_KEYS: the same as manage.py jitad_rekey")
        rekey.add_argument("--check", action="store_true",
                           help="only check that every secret opens with the first key alone (exit 1 if not); run it "
                                "before dropping an old key")
        sub.add_parser("keygen", help="print a new vault key")

    def handle(self, *args, **options):
        action = options["action"]
        try:
            return getattr(self, "_" + action.replace("-", "_"))(options)
        except BreakglassRefused as e:
            raise CommandError(e.message) from e
        except VaultError as e:
            raise CommandError(str(e)) from e

    def _account(self, name) -> SealedAccount:
        account = SealedAccount.objects.filter(name__iexact=name).first()
        if account is None:
            raise usage_error(f"no sealed account {name!r}")
        return account

    def _enrol(self, o):
        groups = lambda text: [g.strip() for g in text.split(",") if g.strip()]  # noqa: E731
        account = SealedAccount(
            name=o["name"], description=o["description"], responder_groups=groups(o["responders"]),
            approver_groups=groups(o["approvers"]), approvals_required=o["approvals"],
            max_checkout_minutes=o["max_minutes"], disable_when_sealed=not o["keep_enabled"],
            emergency_allowed=not o["no_emergency"],
        )
        try:
            account.clean()
        except Exception as e:  # ValidationError: say which field
            raise usage_error(f"{e}") from e
        account = services.account_enrol(account=account, actor="system:manage.py")
        account = _wait_rotation(account, account.claim_token)
        self.result = {"account": account.name, "state": account.state, "seal_id": account.seal_id}
        if account.state != SealedAccount.State.SEALED:
            raise CommandError(f"{account.name} is {account.state}: {account.last_error} (jitad keeps retrying)")
        self.say(f"{account.name} sealed: seal {account.seal_id}; nobody knows its password.")

    def _status(self, o):
        live = {c.account_id: c for c in Checkout.objects.filter(state__in=Checkout.LIVE_STATES).select_related("holder")}
        rows = []
        for a in SealedAccount.objects.order_by("name"):
            c = live.get(a.pk)
            rows.append({"name": a.name, "state": a.state, "seal_id": a.seal_id,
                         "sealed_at": a.sealed_at.isoformat() if a.sealed_at else None,
                         "holder": c.holder.get_username() if c else None,
                         "until": c.expires_at.isoformat() if c and c.expires_at else None,
                         "exposed_since": a.exposed_since.isoformat() if a.exposed_since else None,
                         "last_error": a.last_error})
        self.result = {"accounts": rows}
        for r in rows:
            extra = f" held by {r['holder']} until {r['until']}" if r["holder"] else ""
            if r["state"] == SealedAccount.State.EXPOSED:
                extra += f" EXPOSED since {r['exposed_since']}: {r['last_error']}"
            self.say(f"{r['name']:<20} {r['state']:<12} {r['seal_id'] or '-':<20}{extra}")
        if any(r["state"] == SealedAccount.State.EXPOSED for r in rows):
            raise CommandError("at least one account is exposed")

    def _rotate(self, o):
        account = services.account_rotate(account=self._account(o["name"]), actor="system:manage.py", reason=o["reason"])
        account = _wait_rotation(account, account.claim_token)
        self.result = {"account": account.name, "state": account.state, "seal_id": account.seal_id,
                       "last_error": account.last_error}
        self.say(f"{account.name}: {account.state}" + (f" ({account.last_error})" if account.last_error else "")
                          + (f", seal {account.seal_id}" if account.state == SealedAccount.State.SEALED else ""))

    def _seal_check(self, o):
        counts = services.seals_check()
        self.result = dict(counts)
        self.say(f"checked {counts['checked']}, broken {counts['broken']}, not checked {counts['failed']}")
        if counts["broken"] or counts["failed"]:
            raise CommandError("seals broken or not checked; see the alerts")

    def _rekey(self, o):
        from django.core.management import call_command

        try:
            call_command("jitad_rekey", *(["--check"] if o["check"] else []), "--format", o["format"],
                         stdout=self.stdout, stderr=self.stderr)
        finally:
            self._format = "text"  # jitad_rekey wrote the JSON document (or its error) itself

    def _keygen(self, o):
        key = key_generate()
        self.result = {"key": key}
        self.say(key)
