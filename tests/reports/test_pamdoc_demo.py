"""The JIT PAM document on the demo: the demo's own steps (ops/demo.py: groups, the example policy file,
the estate, the requests, the history for the Reports) against the session's Samba DC, then the document jitad writes passes its
validator with and without --evidence."""
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from .pamdoc_world import run_validate, write_document

EXAMPLE = Path(__file__).resolve().parents[2] / "ops" / "policy.example.yaml"
pytestmark = pytest.mark.django_db


def test_the_demo_s_document_passes_its_own_validator(samba_dc, demo_estate, tmp_path):
    """GIVEN the demo seeded as ops/demo.py does (without the worker: grants stay approved) WHEN the document is
    written in Markdown and HTML THEN both pass the text checks and every claim holds against the records."""
    quiet = {"stdout": StringIO(), "stderr": StringIO()}
    call_command("jitad_demo_seed", "--stage=groups", f"--policy-file={EXAMPLE}", **quiet)
    call_command("jitad_apply_policy", str(EXAMPLE), **quiet)
    call_command("jitad_demo_seed", "--stage=estate", **quiet)
    call_command("jitad_demo_seed", "--stage=requests", **quiet)
    call_command("jitad_demo_seed", "--stage=history", **quiet)
    for name in ("pam.md", "pam.html"):
        path = tmp_path / name
        text = write_document(path, name.rsplit(".", 1)[1]).decode()
        assert "SQL01" in text and "domain-admins" in text and "bg-" in text
        code, report = run_validate(path)
        assert code == 0, report
        code, report = run_validate(path, "--evidence")
        assert code == 0 and "[holds]" in report and "[contradicted]" not in report, report
