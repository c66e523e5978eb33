"""The policy file's limits, and what an apply holds while it runs.

* A file over JITAD_POLICY_MAX_BYTES, nested deeper than MAX_DEPTH, or malformed is refused
  by ``manage.py jitad_apply_policy`` with a line error and exit 1: never a traceback, and
  nothing is written.
* Applying a policy never blocks revocations: while the file is parsed and validated and
  while the DC is asked about its groups (with --dry-run too), jitad's real sweeper, in
  another process, claims a due revocation and commits.
* The writes happen in one transaction: a failure half-way leaves nothing applied.

Against the session's Samba DC (the files' groups exist in the session's JIT OU).
"""
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from jitad import directory
from jitad.audit.models import AuditEvent
from jitad.elevation.models import AccessRequest, Grant, Policy, Target
from jitad.elevation.policy_file import MAX_DEPTH, PolicyFileError, apply, apply_policy_text, validation
from tests.support.sweeper import database_url, sweep_elsewhere

from .builders import user

REPO = Path(__file__).resolve().parents[2]
DEPTH_ERROR = f"nested deeper than {MAX_DEPTH} levels (a policy file needs 5)"


@pytest.fixture(scope="module")
def groups(samba_dc, jit_ou, django_db_blocker):
    """Two JIT groups the files below name."""
    tag = uuid.uuid4().hex[:6]
    with django_db_blocker.unblock(), directory.connect() as d:
        return [d.ensure_group(f"JIT-LIM{i}-{tag}", jit_ou) for i in (1, 2)]


def base(groups, *, description: str = "first") -> str:
    """A valid file: LIM01 on the first group, one policy over it."""
    return f"""\
version: 1
targets:
  - name: LIM01
    group: "{groups[0]}"
    description: {description}
policies:
  - name: lim-policy
    targets: [LIM01]
    eligible: {{groups: [Ops]}}
    approval: {{mode: auto}}
"""


def many(groups, n: int) -> str:
    """A valid file of ``n`` targets (two groups between them) and one policy over all of them."""
    targets = "".join(f'  - name: T{i:05d}\n    group: "{groups[i % 2]}"\n    description: target {i}\n'
                      for i in range(n))
    names = ", ".join(f"T{i:05d}" for i in range(n))
    return (f"version: 1\ntargets:\n{targets}policies:\n  - name: many\n    targets: [{names}]\n"
            "    eligible: {groups: [Ops]}\n    approval: {mode: auto}\n")


def snapshot() -> tuple:
    """Targets, policies and the audit trail of everything but alerts (alerts are audited too, and the
    session's worker may raise one meanwhile: it is not the command's change)."""
    return (list(Target.objects.order_by("id").values()), list(Policy.objects.order_by("id").values()),
            list(AuditEvent.objects.exclude(object_type="alert").order_by("id").values_list("hash", flat=True)))


def manage(tmp_path, samba_dc, *args) -> subprocess.CompletedProcess:
    """``manage.py jitad_apply_policy ARGS`` as an operator runs it, on the test database and DC."""
    env = dict(os.environ)
    env.update(samba_dc.settings_env())
    env.update(DJANGO_SETTINGS_MODULE="tests.settings", JITAD_DATABASE_URL=database_url(),
               JITAD_VAR_DIR=str(tmp_path / "var"), PYTHONPATH=str(REPO))
    env.pop("JITAD_POLICY_MAX_BYTES", None)  # the shipped default
    return subprocess.run([sys.executable, "manage.py", "jitad_apply_policy", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


# --- size, depth, malformed: refused by the command, exit 1, no traceback --------------------


def _too_large(groups):
    text = base(groups)
    return text + "# " + "x" * (5 * 1024 * 1024 - len(text) - 2) + "\n"  # valid YAML, 5 MiB + 1 byte


REFUSED = [
    pytest.param(_too_large, "line 1: (top level): the file is 5,242,881 bytes; the limit is 5,242,880 bytes "
                 "(JITAD_POLICY_MAX_BYTES)", id="over-the-size-limit"),
    pytest.param(lambda g: "version: 1\ntargets: " + "[" * 50_000 + "]" * 50_000 + "\n",
                 f"line 2: YAML error: {DEPTH_ERROR}", id="50000-nested-sequences"),
    pytest.param(lambda g: "version: 1\ntargets:\n  - " + "{a: " * 50_000 + "b" + "}" * 50_000 + "\n",
                 f"line 3: YAML error: {DEPTH_ERROR}", id="50000-nested-mappings"),
    pytest.param(lambda g: base(g).replace("    eligible: {groups: [Ops]}", "    eligible: groups: [Ops]"),
                 "line 9: YAML error: mapping values are not allowed here", id="malformed"),
]


@pytest.mark.parametrize(("make", "error"), REFUSED)
def test_the_command_refuses_with_a_line_error_and_exit_1(transactional_db, tmp_path, samba_dc, groups, make, error):
    """GIVEN a file too large, nested 50,000 levels deep, or malformed WHEN an operator applies it
    THEN the command names the line and what is wrong, exits 1 without a traceback, and writes
    nothing (a 5 MiB file is refused before it is read; a deep one before Python's recursion limit)."""
    apply_policy_text(base(groups))
    before = snapshot()
    path = tmp_path / "policy.yaml"
    path.write_text(make(groups))

    result = manage(tmp_path, samba_dc, str(path))

    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.splitlines() == [f"{path}: {error}",
                                          f"CommandError: {path} rejected with 1 error(s); nothing was changed"]
    assert snapshot() == before


def test_a_file_of_exactly_the_limit_is_read(db, settings, groups):
    text = base(groups)
    settings.JITAD_POLICY_MAX_BYTES = len(text.encode())

    assert apply_policy_text(text).created == ["target LIM01", "policy lim-policy"]

    settings.JITAD_POLICY_MAX_BYTES -= 1
    with pytest.raises(PolicyFileError) as excinfo:
        apply_policy_text(text.replace("first", "other"))
    assert excinfo.value.errors == [f"line 1: (top level): the file is {len(text.encode()):,} bytes; the limit is "
                                    f"{len(text.encode()) - 1:,} bytes (JITAD_POLICY_MAX_BYTES)"]
    assert Target.objects.get(name="LIM01").description == "first"


def test_nesting_within_the_limit_is_a_schema_error_not_a_depth_error(db, groups):
    """The limit counts collections: MAX_DEPTH levels parse (and fail the schema); one more does not."""
    def nested(levels: int) -> str:  # the document itself is one level, so MAX_DEPTH - 1 more
        return "version: 1\ntargets: " + "[" * levels + "]" * levels + "\n"

    with pytest.raises(PolicyFileError) as excinfo:
        apply_policy_text(nested(MAX_DEPTH - 1))
    assert DEPTH_ERROR not in str(excinfo.value)
    with pytest.raises(PolicyFileError) as excinfo:
        apply_policy_text(nested(MAX_DEPTH))
    assert excinfo.value.errors == [f"line 2: YAML error: {DEPTH_ERROR}"]


# --- an apply never blocks revocations --------------------------------------------------------


@pytest.fixture
def due_grant(groups, no_background_worker):
    """A grant on LIM01 whose end has passed: the next sweep claims it for revocation."""
    apply_policy_text(base(groups))
    tgt = Target.objects.get(name="LIM01")
    alice = user(f"alice{uuid.uuid4().hex[:6]}", "Ops")
    now = timezone.now()
    req = AccessRequest.objects.create(requester=alice, target=tgt, policy=tgt.policies.get(), duration_minutes=60,
                                       state=AccessRequest.State.APPROVED)
    return Grant.objects.create(request=req, user=alice, target=tgt, group_dn=tgt.group_dn, state=Grant.State.ACTIVE,
                                activated_at=now - timedelta(hours=1), expires_at=now - timedelta(seconds=5))


# Where validation is paused for the sweep: after the YAML is parsed (the schema and the
# semantic checks still to come), and while the DC is asked about the groups.
DURING = {
    "parsing": (validation, "_parse"),
    "asking-the-dc": (directory, "group_problems"),
}


@pytest.mark.parametrize("dry_run", [False, True], ids=["apply", "dry-run"])
@pytest.mark.parametrize("step", list(DURING))
def test_validation_never_holds_the_database(transactional_db, tmp_path, monkeypatch, groups, due_grant, step,
                                             dry_run):
    """GIVEN a due revocation and a policy file of 2,000 targets WHEN jitad_apply_policy is validating
    it (parsing, or waiting for the DC's answers) THEN jitad's sweeper in another process claims the
    revocation and commits within its 2-second lock wait: validation holds no transaction, so no
    write lock. (Before, the whole apply ran in one transaction, and on SQLite the sweeper waited
    for the file, or failed with "database is locked".)"""
    module, name = DURING[step]
    real = getattr(module, name)
    seen = {}

    def paused(*args, **kwargs):
        result = real(*args, **kwargs)
        if not seen:
            seen["in_transaction"] = connection.in_atomic_block
            seen["sweep"] = sweep_elsewhere(tmp_path / "sweeper")
        return result

    monkeypatch.setattr(module, name, paused)
    path = tmp_path / "policy.yaml"
    path.write_text(many(groups, 2000))

    out = StringIO()
    call_command("jitad_apply_policy", str(path), *(["--dry-run"] if dry_run else []), stdout=out, stderr=StringIO())

    sweep = seen["sweep"]
    assert sweep.ok, sweep.stderr[-3000:]
    assert seen["in_transaction"] is False
    assert sweep.counts["revoke"] == 1
    due_grant.refresh_from_db()
    assert due_grant.state == Grant.State.REVOKING  # committed by the other process, mid-validation
    if dry_run:
        assert "would be 2001 created, 0 updated, 0 unchanged, 0 disabled" in out.getvalue()
        assert Target.objects.count() == 1
    else:
        assert "Applied" in out.getvalue() and Target.objects.count() == 2001


# --- the writes: one transaction -------------------------------------------------------------


def test_the_writes_are_one_transaction_and_a_failure_half_way_leaves_nothing(transactional_db, monkeypatch, groups):
    """GIVEN LIM01 applied WHEN a file that changes it and adds three targets and a policy fails while
    writing its third object THEN nothing of it is applied (LIM01 unchanged, no new rows, no audit
    event); every write ran inside the same single transaction."""
    apply_policy_text(base(groups))
    before = snapshot()
    text = base(groups, description="second") + "".join(
        f'  - name: lim-{i}\n    targets: [NEW{i}]\n    eligible: {{users: [bob]}}\n    approval: {{mode: auto}}\n'
        for i in range(3)
    )
    text = text.replace("policies:\n", "".join(f'  - name: NEW{i}\n    group: "{groups[1]}"\n' for i in range(3))
                        + "policies:\n")
    real = apply._execute
    blocks = []

    def failing(change, **kwargs):
        blocks.append((len(connection.atomic_blocks), id(connection.atomic_blocks[0]) if connection.atomic_blocks else None))
        if len(blocks) == 3:
            raise RuntimeError("the disk filled up")
        return real(change, **kwargs)

    monkeypatch.setattr(apply, "_execute", failing)

    with pytest.raises(RuntimeError):
        apply_policy_text(text)

    assert len(blocks) == 3
    assert {depth for depth, _ in blocks} == {1}  # inside one atomic block, not one per object
    assert len({block for _, block in blocks}) == 1
    assert snapshot() == before
    monkeypatch.setattr(apply, "_execute", real)
    summary = apply_policy_text(text)  # the same file, once the fault is gone, applies whole
    assert summary.updated == ["target LIM01"] and len(summary.created) == 6
