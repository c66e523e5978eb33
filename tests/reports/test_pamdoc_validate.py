"""manage.py jitad_pam_validate as a text check on hand-written documents: each check found or missing with
its line, suggestions, PASS/FAIL, and the exit status (0, 1, 2) of the real command."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jitad.reports.pamdoc.document import MAX_BYTES, document_lines
from jitad.reports.pamdoc.validate import text_checks

from .pamdoc_world import run_validate

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
# Privileged access at Example Corp

We run admin access through jitad.

Privileged access is granted just-in-time;
nobody keeps admin rights.

Grants last at most 4 hours.

MFA is required for 100% of privileged sessions.

Break-glass accounts are sealed and need two approvers.
"""


def _doc(tmp_path, text: str, name: str = "doc.md") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _by_key(path) -> dict:
    return {r.key: r for r in text_checks(document_lines(path))}


def test_each_check_is_found_with_its_line(tmp_path):
    """GIVEN a hand-written document whose JIT statement wraps over two lines WHEN checked THEN every check is found,
    each with the (first) line of its statement."""
    checks = _by_key(_doc(tmp_path, GOOD))
    assert [h.line for h in checks["jit"].hits] == [5]
    assert [(h.line, h.kind) for h in checks["duration_or_approval"].hits] == [(8, "duration"), (12, "approval")]
    assert [h.line for h in checks["mfa"].hits] == [10]
    assert [h.line for h in checks["breakglass"].hits] == [12]
    code, report = run_validate(_doc(tmp_path, GOOD))
    assert code == 0
    assert "[found]   JIT coverage (just-in-time, time-bound or no standing privilege)" in report
    assert "line 5: Privileged access is granted just-in-time; nobody keeps admin rights." in report
    assert "line 8 (duration): Grants last at most 4 hours." in report
    assert "line 12 (approval): Break-glass accounts are sealed and need two approvers." in report
    assert "line 10: MFA is required for 100% of privileged sessions." in report
    assert report.rstrip().endswith("Result: PASS") and "Suggestions" not in report


@pytest.mark.parametrize("drop, title", [
    ("Privileged access is granted just-in-time;\n", "JIT coverage"),
    ("Grants last at most 4 hours.\n", None),  # the approval line still states the workflow
    ("MFA is required for 100% of privileged sessions.\n", "MFA for 100% of privileged sessions"),
])
def test_each_required_check_missing_fails_with_a_suggestion(tmp_path, drop, title):
    code, report = run_validate(_doc(tmp_path, GOOD.replace(drop, "")))
    if title is None:
        assert code == 0, report
        return
    assert code == 1
    assert f"[missing] {title}" in report
    assert "Suggestions:" in report and report.rstrip().endswith("Result: FAIL")


def test_duration_or_approval_missing(tmp_path):
    text = "Access is just-in-time.\n\nMFA protects every privileged session.\n"
    code, report = run_validate(_doc(tmp_path, text))
    assert code == 1 and "[missing] Duration or approval workflow" in report
    assert "State how long access lasts or who approves it" in report


def test_break_glass_is_reported_but_not_required(tmp_path):
    code, report = run_validate(_doc(tmp_path, GOOD.replace("Break-glass accounts are sealed and need two approvers.\n",
                                                            "Every request needs approval by a lead.\n")))
    assert code == 0
    assert "[missing] Break-glass reported (not required)" in report
    assert "Describe emergency access" in report and report.rstrip().endswith("Result: PASS")


def test_negated_or_partial_mfa_statements_do_not_count(tmp_path):
    for text in ("MFA is not required for privileged sessions.", "MFA is optional for every session.",
                 "Every admin logs in with a password."):
        checks = _by_key(_doc(tmp_path, f"Just-in-time access for 2 hours.\n\n{text}\n"))
        assert not checks["mfa"].found, text


def test_html_documents_are_read_by_line(tmp_path):
    html = ("<!DOCTYPE html>\n<html><body>\n<h1>PAM</h1>\n<p>Access is <b>time-bound</b>.</p>\n"
            "<table><tr><th>Policy</th><th>Max duration</th></tr>\n<tr><td>servers</td><td>2 h</td></tr></table>\n"
            "<p>MFA for every privileged session.</p>\n<script>MFA for all privileged sessions</script>\n</body></html>\n")
    checks = _by_key(_doc(tmp_path, html, "doc.html"))
    assert [h.line for h in checks["jit"].hits] == [4]
    assert [h.line for h in checks["mfa"].hits] == [7]  # script text is not the document's
    lines = document_lines(tmp_path / "doc.html")
    assert [ln.text for ln in lines if ln.is_table_row] == ["| Policy | Max duration |", "| servers | 2 h |"]


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"%PDF-1.4\n...", "a PDF cannot be checked as text"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "binary data"),
    (b"\xff\xfe\xfa not utf-8", "not UTF-8 text"),
])
def test_a_document_that_cannot_be_read_is_exit_2(tmp_path, content, message):
    path = tmp_path / "doc.md"
    if content is not None:
        path.write_bytes(content)
    code, report = run_validate(path)
    assert code == 2 and message in report


def test_a_huge_document_is_refused(tmp_path):
    path = tmp_path / "doc.md"
    with path.open("wb") as f:
        f.truncate(MAX_BYTES + 1)
    code, report = run_validate(path)
    assert code == 2 and "too big" in report


def _command(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "jitad_pam_validate", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())


def test_exit_status_of_the_real_command(tmp_path):
    """GIVEN documents that pass, fail and cannot be read WHEN the command runs as a process THEN it exits 0, 1, 2."""
    ok = _command(_doc(tmp_path, GOOD))
    assert ok.returncode == 0 and ok.stdout.rstrip().endswith("Result: PASS"), ok.stderr
    bad = _command(_doc(tmp_path, "Admins are admins.\n", "bad.md"))
    assert bad.returncode == 1 and bad.stdout.rstrip().endswith("Result: FAIL")
    missing = _command(tmp_path / "nope.md")
    assert missing.returncode == 2 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
