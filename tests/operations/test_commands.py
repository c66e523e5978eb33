"""Every ``manage.py jitad_*`` command takes ``--format json`` and ends with the exit code ops/README.md's "Exit codes"
table gives it: one JSON object on stdout (``ok``, ``exit_code``, the command's own fields, ``error`` when it fails),
the text output unchanged without it. The commands that need a DC or a WinRM host are shown with their tests
(tests/operations/test_check.py, tests/elevation/); here, what runs on the database alone, with real rows."""
import json
import os
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import CommandError

from jitad.commands import ExitCode, JitadCommand

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db

# Each jitad_* command and the fields its JSON object carries besides ok and exit_code (a test below runs it).
SHAPES = {
    "jitad_apply_policy": {"file", "dry_run", "created", "updated", "unchanged", "disabled"},  # or file, errors
    "jitad_audit_verify": {"checkpoint", "breaks"},
    "jitad_backup_check": {"database", "audit", "sealed", "counts"},
    "jitad_breakglass": {"accounts"},  # status; the other subcommands: their account, state, seal
    "jitad_breakglass_envelope": {"verdict", "message", "rotated"},
    "jitad_check": {"version", "environment", "counts", "checks"},
    "jitad_demo_history": {"already"},  # or the counts written, by kind
    "jitad_demo_seed": set(),  # the stage's facts (tests/elevation/test_demo_seed.py)
    "jitad_enrolment_code": {"user"},  # and code, expires_at (issue); revoked (revoke); codes (status)
    "jitad_automation": {"identities"},  # list; the others: the identity (tests/accounts/test_automation.py)
    "jitad_provision": {"people"},  # needs a DC: tests/accounts/test_provisioning.py
    "jitad_held_removals": {"held"},  # list; confirm and discard: action, changed, refused
    "jitad_login_throttle": {"counted"},  # status; clear: cleared
    "jitad_pam_document": {"format", "period", "output", "bytes", "document"},
    "jitad_pam_validate": {"document", "result", "checks", "suggestions", "report"},
    "jitad_prune": {"dry_run", "before", "audit_before", "counts", "total"},
    "jitad_rekey": {"key_id", "not_under_first_key"},  # --check; the rest: re_encrypted, or key with --keygen
    "jitad_report": set(),  # its JSON is the report itself (docs/reports.md)
    "jitad_runbooks": {"directory", "runbooks", "errors"},
    "jitad_standing_admins": {"checked", "findings", "scan_failures", "ntlm_targets"},
}


def run(*args) -> tuple[int, dict]:
    """(exit code, the one JSON object on stdout) of ``manage.py <args> --format json`` in this process."""
    out, err = StringIO(), StringIO()
    try:
        call_command(*args, "--format", "json", stdout=out, stderr=err)
        code = 0
    except CommandError as e:
        code = e.returncode
    except SystemExit as e:
        code = e.code
    doc = json.loads(out.getvalue())  # exactly one object: a second would not parse
    assert doc["exit_code"] == code and doc["ok"] is (code == 0), doc
    return code, doc


def shell(*args, env_extra=None, tmp_path=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JITAD_", "CELERY_", "DJANGO_"))}
    env["JITAD_VAR_DIR"] = str(tmp_path / "var")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


def test_every_jitad_command_takes_format_json_and_is_covered_here():
    """GIVEN every jitad_* command Django knows WHEN its parser is built THEN it takes --format json (after the
    subcommand where it has some), and each command has its JSON shape written down above."""
    names = sorted(n for n in get_commands() if n.startswith("jitad_"))
    assert set(names) == set(SHAPES), set(names) ^ set(SHAPES)
    for name in names:
        command = load_command_class(get_commands()[name], name)
        assert isinstance(command, JitadCommand), name
        parser = command.create_parser("manage.py", name)
        subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        for sub, sub_parser in (subs[0].choices.items() if subs else [(None, parser)]):
            formats = [a for a in sub_parser._actions if a.dest == "format"]
            # jitad_report checks its --format itself (any case): its help names json.
            assert formats and "json" in (formats[0].choices or formats[0].help), (name, sub)


def test_audit_verify(db):
    from jitad.audit.models import AuditEvent
    from jitad.audit.services import audit_record

    audit_record(actor="alice", action="test.step", object_type="thing", object_id="1")
    code, doc = run("jitad_audit_verify")
    assert code == 0 and set(doc) >= SHAPES["jitad_audit_verify"] and doc["breaks"] == []
    AuditEvent.objects.filter(pk=AuditEvent.objects.order_by("-pk").first().pk).update(reason="edited")
    code, doc = run("jitad_audit_verify")
    assert code == ExitCode.PROBLEMS and len(doc["breaks"]) == 1 and "broken in 1 place" in doc["error"]


def test_rekey(settings):
    from jitad import vault

    code, doc = run("jitad_rekey", "--check")
    assert code == 0 and doc["not_under_first_key"] == [] and doc["key_id"] == vault.key_ids()[0]
    code, doc = run("jitad_rekey", "--keygen")
    assert code == 0 and vault.key_id(doc["key"]) == doc["key_id"]
    code, doc = run("jitad_rekey")
    assert code == 0 and set(doc["re_encrypted"]) == {f.name for f in vault.sealed_fields()}


def test_login_throttle():
    code, doc = run("jitad_login_throttle", "status")
    assert code == 0 and doc["counted"] == []
    code, doc = run("jitad_login_throttle", "clear", "--client", "not-an-address")
    assert code == ExitCode.USAGE and "not an IP address" in doc["error"]


def test_runbooks(tmp_path, settings):
    settings.JITAD_RUNBOOK_DIR = tmp_path
    (tmp_path / "bad.md").write_text("no front matter\n")
    code, doc = run("jitad_runbooks")
    assert code == 0 and set(doc) >= SHAPES["jitad_runbooks"] and doc["runbooks"] == [] and doc["errors"]
    code, doc = run("jitad_runbooks", "--check")
    assert code == ExitCode.PROBLEMS and "1 runbook file(s) with problems" in doc["error"]


def test_breakglass_and_envelope():
    code, doc = run("jitad_breakglass", "status")
    assert code == 0 and doc["accounts"] == []
    code, doc = run("jitad_breakglass", "rotate", "nobody", "--reason", "test")
    assert code == ExitCode.USAGE and "no sealed account" in doc["error"]
    code, doc = run("jitad_breakglass", "rekey", "--check")
    assert code == 0 and doc["not_under_first_key"] == []
    code, doc = run("jitad_breakglass_envelope", "verify", "nobody", "SEAL-1")
    assert code == ExitCode.PROBLEMS and "No sealed account" in doc["error"]


def test_apply_policy_without_a_file_and_with_a_rejected_one(tmp_path):
    code, doc = run("jitad_apply_policy", str(tmp_path / "missing.yaml"))
    assert code == ExitCode.USAGE and "cannot read" in doc["error"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ntargets: 7\n")
    code, doc = run("jitad_apply_policy", str(bad))
    assert code == ExitCode.PROBLEMS and doc["file"] == str(bad) and doc["errors"], doc


def test_held_removals():
    from jitad.elevation.models import HeldRemoval

    code, doc = run("jitad_held_removals", "list")
    assert code == 0 and doc["held"] == []
    member = "CN=someone,CN=Users,DC=jitad,DC=test"
    held = HeldRemoval.objects.create(group_dn="CN=JIT-x,OU=JIT,DC=jitad,DC=test", member_dn=member,
                                      member_key=member.lower(), batch=uuid.uuid4())
    code, doc = run("jitad_held_removals", "list")
    assert code == ExitCode.ATTENTION and [h["id"] for h in doc["held"]] == [held.pk]
    code, doc = run("jitad_held_removals", "discard", str(held.pk), "--reason", "expected")
    assert code == 0 and doc["changed"] == [held.pk] and doc["refused"] == []
    code, doc = run("jitad_held_removals", "confirm")
    assert code == ExitCode.USAGE


def test_standing_admins_with_nothing_to_scan():
    code, doc = run("jitad_standing_admins")
    assert code == 0 and doc == {"ok": True, "exit_code": 0, "checked": 0, "findings": [], "scan_failures": [],
                                     "ntlm_targets": []}
    code, doc = run("jitad_standing_admins", "--target", "nosuch")
    assert code == ExitCode.USAGE and "nosuch" in doc["error"]


def test_prune_and_demo_history_usage(settings):
    code, doc = run("jitad_prune", "--dry-run")
    assert code == 0 and set(doc) >= SHAPES["jitad_prune"] and doc["total"] == 0
    code, doc = run("jitad_prune", "--days", "-1")
    assert code == ExitCode.USAGE
    code, doc = run("jitad_demo_history", "--days", "3")
    assert code == ExitCode.USAGE and "between 7 and 400" in doc["error"]


def test_pam_document_and_validate(tmp_path):
    code, doc = run("jitad_pam_document")
    assert code == 0 and set(doc) >= SHAPES["jitad_pam_document"] and doc["document"].startswith("#")
    path = tmp_path / "pam.md"
    path.write_text(doc["document"])
    code, doc = run("jitad_pam_validate", str(path))
    assert set(doc) >= SHAPES["jitad_pam_validate"] and doc["result"] in ("PASS", "FAIL")
    assert code == (0 if doc["result"] == "PASS" else ExitCode.PROBLEMS)
    code, doc = run("jitad_pam_validate", str(tmp_path / "missing.md"))
    assert code == ExitCode.USAGE
    code, doc = run("jitad_pam_document", "--period", "yesterday-ish")
    assert code == ExitCode.USAGE


def test_report_keeps_its_own_json_and_says_errors_in_json():
    """jitad_report's JSON is the report (unchanged); a bad period is bad usage, said as jitad's JSON error."""
    out = StringIO()
    call_command("jitad_report", "--period", "7d", stdout=out)
    report = json.loads(out.getvalue())
    assert "ok" not in report and report  # the report's own document, as before
    code, doc = run("jitad_report", "--period", "soon")
    assert code == ExitCode.USAGE and doc["ok"] is False and doc["error"]


def test_text_output_is_unchanged_without_format():
    out = StringIO()
    call_command("jitad_held_removals", "list", stdout=out)
    assert out.getvalue() == "no held removals waiting (--all shows past ones)\n"
    out = StringIO()
    call_command("jitad_audit_verify", stdout=out)
    assert out.getvalue() == "audit chain intact\n"


def test_exit_codes_from_the_shell(tmp_path):
    """The codes as a shell sees them: bad usage 2 (argparse's, after a subcommand too), a database that does not
    answer 69, with the JSON error on stdout."""
    result = shell("jitad_held_removals", "list", "--nosuch", tmp_path=tmp_path)
    assert result.returncode == ExitCode.USAGE, result.stderr[-2000:]
    result = shell("jitad_audit_verify", "--format", "json", tmp_path=tmp_path,
                   env_extra={"JITAD_DATABASE_URL": "postgres://jitad@127.0.0.1:1/nothing"})
    assert result.returncode == ExitCode.UNREACHABLE, result.stderr[-2000:]
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["exit_code"] == ExitCode.UNREACHABLE and "database" in doc["error"]
    assert "Traceback" not in result.stderr
    # --traceback shows where it failed, and the code stays the command's own.
    result = shell("jitad_audit_verify", "--traceback", tmp_path=tmp_path,
                   env_extra={"JITAD_DATABASE_URL": "postgres://jitad@127.0.0.1:1/nothing"})
    assert result.returncode == ExitCode.UNREACHABLE and "Traceback" in result.stderr, result.stderr[-2000:]


def test_enrolment_code_and_automation(django_user_model):
    person = django_user_model.objects.create_user(f"ec{uuid.uuid4().hex[:6]}")
    code, doc = run("jitad_enrolment_code", "status", "nobody-here")
    assert code == ExitCode.USAGE and "no jitad user" in doc["error"]
    code, doc = run("jitad_enrolment_code", "issue", person.username)
    assert code == 0 and set(doc) >= {"user", "code", "expires_at"}
    code, doc = run("jitad_enrolment_code", "status", person.username)
    assert code == 0 and [c["state"] for c in doc["codes"]] == ["live"]
    code, doc = run("jitad_automation", "list")
    assert code == 0 and doc["identities"] == []
    code, doc = run("jitad_automation", "rights", "nobody-here", "--scope", "requests.read")
    assert code == ExitCode.USAGE and "no automation identity" in doc["error"]
    code, doc = run("jitad_automation", "create", "bot-x", "--scope", "requests.create")
    assert code == ExitCode.PROBLEMS and "needs the targets" in doc["error"]
