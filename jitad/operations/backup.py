"""Can a backup be read with the keys on hand (``manage.py jitad_backup_check``; ops/README.md, "Backups and restore").

A backup is a PostgreSQL dump in pg_dump's custom format (``pg_dump -Fc``) or a copy of the SQLite file.
A plain SQL dump is refused: checking it would mean running it through psql, which obeys any ``\\!``
(shell) line a tampered file carries, as the operator who checks it. It is never
opened in place: a dump is restored into a scratch database on a PostgreSQL server (dropped afterwards),
a SQLite file is copied into a scratch folder. Migrations bring the copy to this version of jitad, as a
restore into a fresh install would; then a child process configured with that copy as its database and
this installation's vault keys (or a key file given) reads it: the audit chain verifies, every sealed
secret opens, and the rows are counted (:func:`database_inspect`, which also checks a live database).
"""
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from django.conf import settings

from jitad.commands import ExitCode

log = logging.getLogger(__name__)

PGDUMP_MAGIC = b"PGDMP"
SQLITE_MAGIC = b"SQLite format 3\x00"


class BackupError(Exception):
    """The backup cannot be checked: ``code`` is the exit code (jitad.commands.ExitCode) that says why."""

    def __init__(self, message: str, code: int = ExitCode.PROBLEMS):
        super().__init__(message)
        self.code = code


def backup_kind(path: Path) -> str:
    """"pg-custom" or "sqlite", from the file's first bytes; BackupError (bad usage) otherwise, a plain SQL
    dump included (see the module's docstring)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise BackupError(f"cannot read {path}: {e.strerror or e}", ExitCode.USAGE) from e
    if head.startswith(PGDUMP_MAGIC):
        return "pg-custom"
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if b"PostgreSQL database dump" in head:
        raise BackupError(f"{path} is a plain SQL dump: jitad checks dumps in pg_dump's custom format (pg_dump -Fc), "
                          "which pg_restore reads without running anything the file says; a plain dump would go "
                          "through psql, which runs the shell commands a tampered one carries", ExitCode.USAGE)
    raise BackupError(f"{path} is not a PostgreSQL dump (pg_dump -Fc) nor a SQLite database", ExitCode.USAGE)


def _server_url(scratch_url: str) -> str:
    """The PostgreSQL server a dump is restored on: --scratch-url, always named.

    A dump's SQL runs as the role restoring it, so a tampered dump could change that role (its own password,
    say). Restoring as jitad's own role on its own server would let it lock jitad out or take its database
    over; the operator names a role kept for this (may create databases, not a superuser, not jitad's).
    """
    url = scratch_url
    if urlsplit(url).scheme not in ("postgres", "postgresql", "pgsql", "postgis"):
        raise BackupError("a PostgreSQL dump is restored into a scratch database: name the server and a role kept "
                          "for this with --scratch-url postgres://jitad_restore@host:5432/postgres (it may create "
                          "databases; neither a superuser nor jitad's own role, as the dump's SQL runs as it)",
                          ExitCode.USAGE)
    return url


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(name)))


def _admin(url: str, sql: str):
    """Run ``sql`` on ``url``'s server; its first row, if it returns one."""
    import psycopg

    try:
        with psycopg.connect(_with_database(url, urlsplit(url).path.lstrip("/") or "postgres"),
                             autocommit=True, connect_timeout=10) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchone() if cursor.description else None
    except psycopg.OperationalError as e:
        raise BackupError(f"the PostgreSQL server for the scratch database did not answer: {e}",
                          ExitCode.UNREACHABLE) from e
    except psycopg.Error as e:
        raise BackupError(f"the scratch database could not be made or dropped: {e}") from e


def _restore_role_check(server_url: str) -> None:
    """Refuse to restore as a superuser or as jitad's own role on jitad's own server: the dump's SQL runs as it."""
    role, superuser = _admin(server_url, "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
    if superuser:
        raise BackupError(f"--scratch-url logs on as {role}, a superuser: a tampered dump restored as it could do "
                          "anything on that server. Name a role kept for this (CREATEDB, not a superuser; "
                          "ops/README.md, 'Backups and restore')", ExitCode.USAGE)
    own = settings.DATABASES["default"]
    parts = urlsplit(server_url)
    if (own["ENGINE"].endswith("postgresql") and role == own.get("USER")
            and (parts.hostname or "") == (own.get("HOST") or "") and str(parts.port or 5432) == str(own.get("PORT") or 5432)):
        raise BackupError(f"--scratch-url logs on as {role}, jitad's own role on its own server: a tampered dump "
                          "restored as it could change its password or its database. Name a role kept for this",
                          ExitCode.USAGE)


@contextmanager
def scratch_postgresql(dump: Path, *, server_url: str):
    """The dump restored into a new database on ``server_url``'s server; the database's URL. Dropped after."""
    name = f"jitad_backup_check_{uuid.uuid4().hex[:12]}"
    if shutil.which("pg_restore") is None:
        raise BackupError("pg_restore is not installed (Debian: postgresql-client)", ExitCode.USAGE)
    _restore_role_check(server_url)
    _admin(server_url, f'CREATE DATABASE "{name}"')
    url = _with_database(server_url, name)
    try:
        # No owner or grants from the source server: the roles of the machine that made the dump may not exist here.
        # The password goes in the child's environment, not on its command line (which any local user can read).
        parts, restore_url = urlsplit(url), url
        env = {k: v for k, v in os.environ.items() if not k.startswith("KRB5")}
        if parts.password:
            env["PGPASSWORD"] = unquote(parts.password)
            host = parts.netloc.rsplit("@", 1)[1]
            restore_url = urlunsplit(parts._replace(netloc=f"{parts.netloc.rsplit('@', 1)[0].split(':', 1)[0]}@{host}"))
        command = ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--dbname", restore_url, str(dump)]
        run = subprocess.run(command, capture_output=True, text=True, timeout=3600, env=env)
        if run.returncode != 0:
            raise BackupError(f"pg_restore could not restore {dump}: {run.stderr.strip()[-1500:]}")
        yield url
    except BaseException as e:
        failed = e
        raise
    else:
        failed = None
    finally:
        try:
            _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except BackupError as e:
            left = (f"the scratch database {name} was left on the server (it holds a copy of the backup: drop it "
                    f"by hand): {e}")
            if failed is None:
                raise BackupError(left, e.code) from e
            # The check's own failure stays the one reported, and says what was left behind (in --format json too).
            log.error("%s", left)
            if isinstance(failed, BackupError):
                failed.args = (f"{failed.args[0]}; also, {left}",)


@contextmanager
def scratch_sqlite(path: Path):
    """A copy of the SQLite backup in a scratch folder (the backup itself is never opened for writing).

    A write-ahead log left beside the file (``-wal``) holds its latest writes: it is copied too, and SQLite
    replays it when the copy is opened.
    """
    with tempfile.TemporaryDirectory(prefix="jitad-backup-check-") as folder:
        copy = Path(folder) / "jitad.sqlite3"
        shutil.copyfile(path, copy)
        wal = path.with_name(path.name + "-wal")
        if wal.is_file():
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        yield f"sqlite:///{copy}"


def _child_env(database_url: str, keys_file: str, var_dir: str) -> dict:
    env = dict(os.environ)
    env.update(JITAD_DATABASE_URL=database_url, JITAD_VAR_DIR=var_dir)
    # The keys on hand: this process's (from its environment, or the generated key file outside production),
    # or the file given. Passed in the child's environment (readable by this user only) or as the file's name:
    # never on a command line, and never copied to a file of ours.
    for name in ("JITAD_VAULT_KEYS", "JITAD_BREAKGLASS_KEYS", "JITAD_VAULT_KEYS_FILE", "JITAD_BREAKGLASS_KEYS_FILE"):
        env.pop(name, None)
    if keys_file:
        env["JITAD_VAULT_KEYS_FILE"] = keys_file
    else:
        env["JITAD_VAULT_KEYS"] = ",".join(settings.JITAD_VAULT_KEYS)
    return env


def _manage(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args], env=env,
                          capture_output=True, text=True, timeout=3600)


def backup_check(path: Path, *, keys_file: str = "", scratch_url: str = "") -> dict:
    """Restore ``path`` into a scratch database, migrate it, and inspect it with the keys on hand.

    The inspection's JSON fields (:func:`database_inspect`) and the backup's kind and migrations; BackupError if
    the backup cannot be restored or read at all.
    """
    kind = backup_kind(path)
    if keys_file and not os.path.isfile(keys_file):
        raise BackupError(f"--keys-file {keys_file}: no such file", ExitCode.USAGE)
    scratch = scratch_sqlite(path) if kind == "sqlite" else scratch_postgresql(path, server_url=_server_url(scratch_url))
    with scratch as database_url, tempfile.TemporaryDirectory(prefix="jitad-backup-var-") as var_dir:
        env = _child_env(database_url, keys_file, var_dir)
        # One child: migrations first (on the copy), then the reading; its JSON object on stdout.
        inspect = _manage(["jitad_backup_check", "--current-database", "--migrate-first", "--format", "json"], env)
        try:
            found = json.loads(inspect.stdout)
        except json.JSONDecodeError:
            found = {"error": inspect.stderr.strip()[-1500:]}
        if "audit" not in found:
            raise BackupError(f"the restored copy could not be migrated to this version of jitad or read: "
                              f"{found.get('error', '')}")
    found.pop("ok", None), found.pop("exit_code", None)
    return {"backup": str(path), "kind": kind, **found}


def database_migrate() -> list[str]:
    """Apply this version's migrations to this process's database (a restored copy); the ones applied."""
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        call_command("migrate", interactive=False, verbosity=0)
    return [f"{m.app_label}.{m.name}" for m, _ in plan]


def database_inspect() -> dict:
    """This process's database read with this process's keys: the audit chain, every sealed secret, row counts."""
    from django.apps import apps
    from django.db import connection

    from jitad import vault
    from jitad.audit.models import AuditEvent
    from jitad.audit.selectors import audit_checkpoint
    from jitad.audit.services import audit_verify

    checkpoint = audit_checkpoint()
    breaks = audit_verify()
    sealed = vault.sealed_values_open()
    counts = {}
    for label in ("accounts", "audit", "elevation", "breakglass", "notifications", "reviews", "reports", "auth",
                  "otp_totp", "otp_static"):
        try:
            app = apps.get_app_config(label)
        except LookupError:
            continue
        for model in app.get_models():
            # A permissions-only model has no table; Django's permissions are not the installation's data.
            if model._meta.managed and not model._meta.proxy and model._meta.label != "auth.Permission":
                counts[model._meta.label] = model._default_manager.count()
    return {
        "database": {"vendor": connection.vendor, "name": str(connection.settings_dict.get("NAME"))},
        "audit": {"events": AuditEvent.objects.count(), "breaks": breaks,
                  "verified_from": checkpoint.seq if checkpoint else None},
        "sealed": sealed,
        "counts": {k: v for k, v in sorted(counts.items()) if v},
        "key_ids": vault.key_ids(),
    }
