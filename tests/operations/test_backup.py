"""Backups and disaster recovery (ops/README.md, "Backups and restore"), as an operator does them, with real tools:
a populated installation is backed up (SQLite's backup API; pg_dump -Fc), jitad_backup_check reads the backup
with the keys on hand (and fails without them: sealed secrets cannot be opened), and the backup is restored into a
fresh install whose migrations run, whose audit chain verifies and whose sealed secrets open.

Each installation is a process of its own (manage.py), with its own var dir (its generated vault key) and
database, so the round trip runs the same in the suite's SQLite and PostgreSQL modes. The PostgreSQL part needs a
server: the suite's own when it runs on PostgreSQL (CI), else JITAD_TEST_POSTGRES_URL; without one it is skipped.
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from jitad.commands import ExitCode

REPO = Path(__file__).resolve().parents[2]
PEOPLE = 3
# Run in the installation's own process: people with sealed MFA keys and backup codes, and audit events.
POPULATE = """
import django
django.setup()
from django.contrib.auth import get_user_model
from django.db import transaction
from jitad.audit.services import audit_record
from tests.support.mfa import backup_codes, totp_device
for i in range(%(people)d):
    user = get_user_model().objects.create_user(username=f"person{i}")
    totp_device(user)
    backup_codes(user, n=2)
    with transaction.atomic():
        audit_record(actor=f"person{i}", action="test.enrolled", object_type="user", object_id=str(user.pk))
"""


def install_env(var_dir: Path, database_url: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JITAD_", "CELERY_", "DJANGO_"))}
    env.update(DJANGO_SETTINGS_MODULE="jitad.settings", JITAD_VAR_DIR=str(var_dir), JITAD_DATABASE_URL=database_url,
               PYTHONPATH=str(REPO), **extra)
    return env


def manage(env: dict, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


def populated(env: dict) -> None:
    migrate = manage(env, "migrate", "--noinput", "-v", "0")
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    run = subprocess.run([sys.executable, "-c", POPULATE % {"people": PEOPLE}], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]


def backup_check(env: dict, *args) -> tuple[int, dict]:
    result = manage(env, "jitad_backup_check", *args, "--format", "json")
    try:
        doc = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not one JSON object: {result.stdout[-1000:]} {result.stderr[-2000:]}") from None
    assert doc["exit_code"] == result.returncode, (doc, result.stderr[-2000:])
    return result.returncode, doc


def assert_readable(doc: dict) -> None:
    """The backup's rows as the populating process wrote them, the chain verified, every sealed value open."""
    assert doc["audit"]["breaks"] == [] and doc["audit"]["events"] >= PEOPLE, doc["audit"]
    sealed = doc["sealed"]
    assert sealed["MFA authenticator keys"] == {"values": PEOPLE, "opened": PEOPLE, "failed": [], "unopened": 0}
    assert sealed["MFA backup codes"]["values"] == PEOPLE * 2 and sealed["MFA backup codes"]["unopened"] == 0
    assert doc["counts"]["auth.User"] == PEOPLE


def check_without_and_with_the_keys(tmp_path: Path, backup: Path, source: dict, extra_args=()) -> None:
    """The backup read with the installation's keys (exit 0); from another machine with only its own generated key
    (exit 1: the sealed secrets are lost without the keys); and there with the keys file kept beside the backup."""
    code, doc = backup_check(source, str(backup), *extra_args)
    assert code == 0, doc
    assert_readable(doc)

    elsewhere = install_env(tmp_path / "elsewhere", source["JITAD_DATABASE_URL"])
    code, doc = backup_check(elsewhere, str(backup), *extra_args)
    assert code == ExitCode.PROBLEMS and "do not open" in doc["error"], doc
    assert doc["sealed"]["MFA authenticator keys"]["unopened"] == PEOPLE
    assert doc["audit"]["breaks"] == []  # the chain needs no key
    keys = Path(source["JITAD_VAR_DIR"]) / "vault.keys"
    code, doc = backup_check(elsewhere, str(backup), "--keys-file", str(keys), *extra_args)
    assert code == 0, doc


def restored_install_works(env: dict) -> None:
    """A fresh install on the restored database: migrations, the system checks, the audit chain, the sealed values."""
    for args in (["migrate", "--noinput", "-v", "0"], ["check"]):
        result = manage(env, *args)
        assert result.returncode == 0, (args, result.stderr[-3000:])
    verify = manage(env, "jitad_audit_verify")
    assert verify.returncode == 0 and "audit chain intact" in verify.stdout, verify.stderr[-2000:]
    code, doc = backup_check(env, "--current-database")
    assert code == 0, doc
    assert_readable(doc)


# Each step is a process of its own (Django's start-up, migrations on a fresh database): minutes on a busy machine.
@pytest.mark.timeout(900)
def test_sqlite_backup_check_and_restore_round_trip(tmp_path):
    """GIVEN a populated one-machine installation (SQLite) WHEN its database is backed up with SQLite's backup API
    (what `sqlite3 jitad.sqlite3 ".backup FILE"` does) THEN jitad_backup_check reads it with the keys on hand, and
    without them names the secrets that do not open; a fresh install restored from it migrates, verifies its
    audit chain and opens its sealed secrets; an edited audit event in a backup is found (exit 1)."""
    source = install_env(tmp_path / "source", f"sqlite:///{tmp_path / 'source.sqlite3'}")
    populated(source)
    backup = tmp_path / "backup.sqlite3"
    live, copy = sqlite3.connect(tmp_path / "source.sqlite3"), sqlite3.connect(backup)
    live.backup(copy)
    live.close(), copy.close()
    before = backup.read_bytes()

    check_without_and_with_the_keys(tmp_path, backup, source)
    assert backup.read_bytes() == before  # checked on a copy: the backup itself is never written

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copyfile(backup, fresh / "jitad.sqlite3")
    restored_install_works(install_env(fresh / "var", f"sqlite:///{fresh / 'jitad.sqlite3'}",
                                       JITAD_VAULT_KEYS_FILE=str(tmp_path / "source" / "vault.keys")))

    tampered = tmp_path / "tampered.sqlite3"
    shutil.copyfile(backup, tampered)
    db = sqlite3.connect(tampered)
    with db:
        db.execute("UPDATE audit_auditevent SET reason = 'edited' WHERE id = (SELECT MIN(id) FROM audit_auditevent)")
    db.close()
    code, doc = backup_check(source, str(tampered))
    assert code == ExitCode.PROBLEMS and len(doc["audit"]["breaks"]) == 1 and "audit chain" in doc["error"]


def test_the_keys_on_hand_reach_the_check_without_a_copy_on_disk(tmp_path, settings):
    """The checking process gets this process's vault keys in its environment (readable by this user only), not
    in a file of ours: a copy of the keys on disk could outlive the check (a crash, a backup of /tmp)."""
    from jitad.operations.backup import _child_env

    settings.JITAD_VAULT_KEYS = ["key-one", "key-two"]
    env = _child_env("sqlite:///x.sqlite3", "", str(tmp_path))
    assert env["JITAD_VAULT_KEYS"].split(",") == ["key-one", "key-two"] and "JITAD_VAULT_KEYS_FILE" not in env
    assert list(tmp_path.iterdir()) == []
    given = _child_env("sqlite:///x.sqlite3", "/etc/jitad/vault.keys", str(tmp_path))
    assert given["JITAD_VAULT_KEYS_FILE"] == "/etc/jitad/vault.keys" and "JITAD_VAULT_KEYS" not in given


def test_a_file_that_is_no_backup_is_bad_usage(tmp_path):
    env = install_env(tmp_path / "var", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    (tmp_path / "notes.txt").write_text("not a backup\n")
    code, doc = backup_check(env, str(tmp_path / "notes.txt"))
    assert code == ExitCode.USAGE and "nor a SQLite database" in doc["error"]
    code, doc = backup_check(env, str(tmp_path / "missing.dump"))
    assert code == ExitCode.USAGE and "cannot read" in doc["error"]


def test_a_plain_sql_dump_is_refused_unread(tmp_path):
    """GIVEN a plain SQL dump that carries a psql shell line (as a tampered one could) WHEN it is checked
    THEN it is refused as bad usage, pointing to pg_dump -Fc, and nothing it says is run."""
    env = install_env(tmp_path / "var", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    marker = tmp_path / "ran"
    dump = tmp_path / "plain.sql"
    dump.write_text(f"--\n-- PostgreSQL database dump\n--\n\\! touch {marker}\nSELECT 1;\n")
    code, doc = backup_check(env, str(dump))
    assert code == ExitCode.USAGE and "pg_dump -Fc" in doc["error"] and "plain SQL dump" in doc["error"]
    assert not marker.exists()


def test_a_postgresql_dump_needs_a_scratch_server_named(tmp_path):
    """GIVEN a dump in pg_dump's custom format WHEN it is checked without --scratch-url THEN bad usage, naming it:
    the dump's SQL would run as whatever role restores it, so jitad never picks its own."""
    env = install_env(tmp_path / "var", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    dump = tmp_path / "jitad.dump"
    dump.write_bytes(b"PGDMP" + b"\0" * 64)
    code, doc = backup_check(env, str(dump))
    assert code == ExitCode.USAGE and "--scratch-url" in doc["error"] and "superuser" in doc["error"]


def _postgres_server() -> str:
    """A PostgreSQL server URL (its maintenance database) for the round trip, or "" (the test is skipped)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        s = connection.settings_dict
        auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
        return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/postgres"
    return os.environ.get("JITAD_TEST_POSTGRES_URL", "")


def _psql(server: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


@pytest.mark.timeout(900)
def test_postgresql_dump_check_and_restore_round_trip(tmp_path):
    """GIVEN a populated installation on PostgreSQL WHEN it is dumped with pg_dump -Fc THEN jitad_backup_check
    restores the dump into a scratch database (dropped after) and reads it with the keys on hand, not without
    them; restored with pg_restore into a fresh database, a fresh install migrates, verifies its audit chain
    and opens its sealed secrets."""
    server = _postgres_server()
    if not server:
        pytest.skip("PostgreSQL-only (pg_dump/pg_restore): the suite runs on SQLite and JITAD_TEST_POSTGRES_URL is "
                    "not set; the SQLite round trip above runs in its place")
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.fail("pg_dump and pg_restore are needed (Debian: postgresql-client; `make deps` installs it)")
    tag = uuid.uuid4().hex[:8]
    source_db, restored_db = f"jitad_i19_source_{tag}", f"jitad_i19_restored_{tag}"
    base = server.rsplit("/", 1)[0]
    for name in (source_db, restored_db):
        _psql(server, f'CREATE DATABASE "{name}"')
    try:
        source = install_env(tmp_path / "source", f"{base}/{source_db}")
        populated(source)
        dump = tmp_path / "jitad.dump"
        run = subprocess.run(["pg_dump", "-Fc", "--file", str(dump), f"{base}/{source_db}"], capture_output=True,
                             text=True, timeout=300)
        assert run.returncode == 0, run.stderr

        # As ops/README.md says: a role kept for restores (may create databases), not a superuser, not jitad's own.
        code, doc = backup_check(source, str(dump), "--scratch-url", server)
        assert code == ExitCode.USAGE and "superuser" in doc["error"], doc
        restorer = f"jitad_restore_{tag}"
        _psql(server, f'CREATE ROLE "{restorer}" LOGIN CREATEDB')
        scratch = urlunsplit(urlsplit(server)._replace(netloc=f"{restorer}@{urlsplit(server).hostname}:"
                                                              f"{urlsplit(server).port or 5432}"))
        check_without_and_with_the_keys(tmp_path, dump, source, extra_args=("--scratch-url", scratch))

        run = subprocess.run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--dbname",
                              f"{base}/{restored_db}", str(dump)], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        restored_install_works(install_env(tmp_path / "fresh", f"{base}/{restored_db}",
                                           JITAD_VAULT_KEYS_FILE=str(tmp_path / "source" / "vault.keys")))
    finally:
        for name in (source_db, restored_db):
            _psql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _psql(server, f'DROP ROLE IF EXISTS "jitad_restore_{tag}"')
    import psycopg

    with psycopg.connect(server, connect_timeout=5) as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'jitad_backup_check_%'").fetchall()
    assert left == [], left  # jitad_backup_check dropped its scratch databases
