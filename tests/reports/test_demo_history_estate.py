"""make demo's order against the session's Samba DC: groups, the example policy, the estate, then the history stage."""
import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from jitad.elevation.models import Grant
from jitad.reports.selectors.kpis import report_build

EXAMPLE = Path(__file__).resolve().parents[2] / "ops" / "policy.example.yaml"
pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_history_after_the_demo_estate(samba_dc, demo_estate, settings, tmp_path):
    """GIVEN the demo estate seeded as make demo does (example policy, AD people, sealed break-glass accounts)
    WHEN the history stage runs
    THEN the example's targets have weeks of ended grants, no live one, and every KPI section has figures."""
    settings.VAR_DIR = tmp_path  # the estate writes the demo credentials file there
    _run("jitad_demo_seed", "--stage=groups", f"--policy-file={EXAMPLE}")
    _run("jitad_apply_policy", str(EXAMPLE))
    _run("jitad_demo_seed", "--stage=estate")
    counts = json.loads(_run("jitad_demo_seed", "--stage=history").strip().splitlines()[-1])
    assert counts["grants"] > 100 and counts["snapshots"] > 0
    assert not Grant.objects.exclude(state=Grant.State.REVOKED).exists()
    now = timezone.now()
    report = report_build(start=now - timedelta(days=30), end=now)
    assert report.figure("standing", "reduction_pct").value > 0
    assert report.figure("approval", "manual_count").value > 0
    assert report.figure("revocation", "ended").value > 0
    assert report.figure("risk", "breakglass_checkouts").value == 1
    assert report.figure("risk", "always_on").value >= 1
