"""Check that a backup can be read with the keys on hand: restored into a scratch database, migrated, the audit
chain verified, every sealed secret opened, the rows counted."""
import argparse
from pathlib import Path

from django.core.management.base import CommandError

from jitad.commands import ExitCode, JitadCommand, usage_error
from jitad.operations.backup import BackupError, backup_check, database_inspect, database_migrate


class Command(JitadCommand):
    help = ("Check a backup (ops/README.md, 'Backups and restore'): a PostgreSQL dump (pg_dump -Fc) is "
            "restored into a scratch database on --scratch-url's server and dropped after, a SQLite file is copied; the copy is migrated to this "
            "version, its audit chain verified and every sealed secret opened with this installation's vault keys "
            "(or --keys-file). Exit 0 when it can be restored and read, 1 when it cannot.")

    def add_arguments(self, parser):
        parser.add_argument("backup", nargs="?", help="the dump or SQLite file to check")
        parser.add_argument("--keys-file", default="",
                            help="vault keys to check with (one per line, as JITAD_VAULT_KEYS_FILE), e.g. the copy "
                                 "kept with the backups; default: this installation's keys")
        parser.add_argument("--scratch-url", default="",
                            help="for a PostgreSQL dump (required then): the server and role to restore it as, "
                                 "postgres://jitad_restore@host:5432/postgres; the role may create databases and is "
                                 "neither a superuser nor jitad's own (the dump's SQL runs as it)")
        parser.add_argument("--current-database", action="store_true",
                            help="check the database this installation is configured with instead (nothing restored)")
        # The scratch copy's child process: migrate the copy, then read it (jitad/operations/backup.py).
        parser.add_argument("--migrate-first", action="store_true", help=argparse.SUPPRESS)

    def handle(self, *args, **options):
        if options["current_database"] == bool(options["backup"]):
            raise usage_error("name a backup file, or --current-database")
        if options["migrate_first"] and not options["current_database"]:
            raise usage_error("--migrate-first goes with --current-database")
        if options["current_database"]:
            applied = database_migrate() if options["migrate_first"] else None
            found = database_inspect()
            if applied is not None:
                found["migrations_applied"] = applied
        else:
            try:
                found = backup_check(Path(options["backup"]), keys_file=options["keys_file"],
                                     scratch_url=options["scratch_url"])
            except BackupError as e:
                raise CommandError(str(e), returncode=e.code) from e
        self.result = found
        self._report(found)
        broken = found["audit"]["breaks"]
        unopened = {name: c for name, c in found["sealed"].items() if c["unopened"]}
        if broken or unopened:
            parts = ([f"the audit chain is broken in {len(broken)} place(s)"] if broken else []) + [
                f"{c['unopened']} of {c['values']} {name} do not open" for name, c in unopened.items()]
            raise CommandError("cannot be relied on: " + "; ".join(parts), returncode=ExitCode.PROBLEMS)
        self.say("the backup can be restored and read with these keys" if options["backup"]
                 else "the database can be read with these keys")

    def _report(self, found: dict) -> None:
        if found.get("backup"):
            how = "copied to a scratch folder" if found["kind"] == "sqlite" else "restored into a scratch database"
            self.say(f"backup {found['backup']} ({found['kind']}), {how}; {len(found['migrations_applied'])} "
                     "migration(s) applied to bring it to this version")
        audit = found["audit"]
        since = f" from the pruning checkpoint at seq {audit['verified_from']}" if audit["verified_from"] else ""
        self.say(f"audit chain: {audit['events']} event(s), "
                 + (f"BROKEN in {len(audit['breaks'])} place(s)" if audit["breaks"] else f"verified{since}"))
        for line in audit["breaks"][:10]:
            self.stderr.write(f"  {line}")
        self.say(f"vault keys: {', '.join(found['key_ids'])}")
        for name, c in found["sealed"].items():
            self.say(f"sealed {name}: {c['opened']} of {c['values']} open")
            for line in c["failed"]:
                self.stderr.write(f"  {line}")
        for label, n in found["counts"].items():
            self.say(f"  {n:>8}  {label}")
