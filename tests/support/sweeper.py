"""Run jitad's real sweeper once in a separate process against the test database, with a short lock wait.

A test that must prove something never holds the database's write lock (a policy apply
while it validates, an admin save while it asks the DC) runs this at that moment: the sweep
claims due revocations in a transaction of its own and commits, or gives up after
``lock_timeout`` seconds with "database is locked" (SQLite) or a lock timeout (PostgreSQL).
"""
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CODE = """
import json, sys
import django
django.setup()
from django.db import connection
timeout = float(sys.argv[1])
if connection.vendor == "sqlite":
    connection.settings_dict["OPTIONS"]["timeout"] = timeout
else:
    connection.ensure_connection()
    with connection.cursor() as c:
        c.execute(f"SET lock_timeout = {int(timeout * 1000)}")
from jitad.elevation.services.grant_sweep import sweep
print(json.dumps(sweep()))
"""


@dataclass
class SweepResult:
    returncode: int
    counts: dict | None
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.counts is not None


def database_url() -> str:
    """The test database, as a URL another process can open."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def sweep_elsewhere(var_dir: Path, *, lock_timeout: float = 2.0) -> SweepResult:
    """One sweep in a child process (its broker folder under ``var_dir``, so nothing it enqueues
    reaches a test worker); returns its exit code, the counts it printed, and its stderr."""
    env = dict(os.environ)
    env.update(DJANGO_SETTINGS_MODULE="tests.settings", JITAD_DATABASE_URL=database_url(),
               JITAD_VAR_DIR=str(var_dir), PYTHONPATH=str(REPO))
    env.pop("CELERY_BROKER_URL", None)
    result = subprocess.run([sys.executable, "-c", CODE, str(lock_timeout)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60 + lock_timeout)
    counts = None
    if result.returncode == 0:
        counts = json.loads(result.stdout.strip().splitlines()[-1])
    return SweepResult(result.returncode, counts, result.stderr)
