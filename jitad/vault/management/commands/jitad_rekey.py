"""Key rotation for everything the vault seals (break-glass passwords, MFA keys, backup codes)."""
from django.core.management.base import CommandError

from jitad.commands import JitadCommand
from jitad.vault import VaultError, key_generate, key_ids, rekey_all, rekey_check


class Command(JitadCommand):
    help = ("Re-encrypt every stored secret under the first key of JITAD_VAULT_KEYS; --check: exit 1 unless the "
            "old keys may be dropped; --keygen: print a new key (docs/mfa.md).")

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true",
                            help="only check that every secret is under the first key (exit 1 if not); run it before "
                                 "dropping an old key")
        parser.add_argument("--keygen", action="store_true", help="print a new vault key and its id")

    def handle(self, *args, **options):
        if options["keygen"]:
            from jitad.vault import key_id

            key = key_generate()
            self.result = {"key": key, "key_id": key_id(key)}
            self.stderr.write(f"key id {key_id(key)}")
            self.say(key)
            return
        try:
            if options["check"]:
                return self._check()
            counts = rekey_all()
            self.result = {"re_encrypted": counts, "key_id": key_ids()[0]}
        except VaultError as e:
            raise CommandError(str(e)) from e
        for name, count in counts.items():
            self.say(f"{name}: {count} re-encrypted")
        self.say(f"every stored secret is under key {key_ids()[0]}")

    def _check(self):
        problems = rekey_check()
        self.result = {"key_id": key_ids()[0], "not_under_first_key": problems}
        if problems:
            raise CommandError("not under the first key yet: " + "; ".join(problems)
                               + ". Run `manage.py jitad_rekey` (after restarting every process with the new key first).")
        self.say(f"every stored secret is under key {key_ids()[0]}: the old keys may be dropped")
