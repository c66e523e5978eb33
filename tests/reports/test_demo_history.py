"""The demo's history stage: past weeks written to the database only, then the report has something in every section."""
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from jitad.audit.services import audit_verify
from jitad.breakglass.models import SealedAccount
from jitad.elevation.models import AccessRequest, Grant
from jitad.reports.models import DailySnapshot
from jitad.reports.selectors.kpis import report_build

from .rows import person, target

pytestmark = pytest.mark.django_db


def _estate():
    """Like ops/policy.example.yaml: auto servers, a manual SQL server, a tier-0 role with two approvers."""
    target("SRV01", policy="low-risk-servers", mode="auto", eligible_groups=["Server-Operators"], winrm=True)
    target("SRV02", policy="low-risk-servers")
    sql = target("SQL01", policy="sql-admins", eligible_groups=["DBAs"])
    sql.policies.update(approver_groups=["DBA-Leads"], approvals_required=1, require_ticket=True)
    da = target("Domain Admins (JIT)", tier=0, policy="domain-admins", eligible_groups=["Tier0-Admins"])
    da.kind = "domain_role"
    da.save()
    da.policies.update(approver_groups=["Tier0-Approvers", "Security-Managers"], approvals_required=2,
                       max_duration_minutes=60)
    person("alice", groups=["Server-Operators", "DBAs"])
    person("bob", groups=["DBA-Leads", "Tier0-Approvers"])
    person("carol", groups=["Tier0-Admins", "Tier0-Approvers"])
    person("dave", groups=["Security-Managers"])
    SealedAccount.objects.create(name="bg-da-01", state=SealedAccount.State.SEALED)


def test_history_stage_fills_every_section_once():
    """GIVEN the demo's targets, policies and people
    WHEN jitad_demo_seed --stage=history runs (twice)
    THEN past requests, grants, scans and snapshots exist, none live, the audit chain verifies, every
    section of the last 30 days has data, and the second run adds nothing."""
    _estate()
    out = StringIO()
    call_command("jitad_demo_seed", "--stage=history", stdout=out)
    counts = json.loads(out.getvalue().strip().splitlines()[-1])
    assert counts["requests"] > 200 and counts["grants"] > 150 and counts["snapshots"] > 0
    assert not Grant.objects.exclude(state=Grant.State.REVOKED).exists()
    assert not Grant.objects.filter(revoked_at__gt=timezone.now()).exists()
    assert audit_verify() == []
    assert DailySnapshot.objects.values("day").distinct().count() >= 70

    now = timezone.now()
    report = report_build(start=now - timedelta(days=30), end=now)
    value = report.figure
    assert value("standing", "baseline").value > value("standing", "now").value
    assert value("standing", "reduction_pct").value > 0
    assert len(report.section("standing").tables[0].rows) >= 29
    assert value("utilisation", "jit_share_pct").value > 0
    assert value("approval", "auto_count").value > 0 and value("approval", "manual_count").value > 0
    assert value("approval", "decision_p95_s").value >= value("approval", "decision_p50_s").value
    assert value("revocation", "ended").value > 50
    assert 0 < value("revocation", "on_time_pct").value < 100
    assert value("revocation", "ever_pct").value == 100.0
    assert value("risk", "always_on").value >= 1
    assert "gina" in [r["user"] for r in report.section("risk").tables[1].rows]
    assert value("risk", "request_bursts").value >= 1
    assert value("risk", "off_hours_activations").value > 0
    assert value("risk", "breakglass_checkouts").value == 1
    assert value("risk", "out_of_band").value >= 1

    before = AccessRequest.objects.count()
    out = StringIO()
    call_command("jitad_demo_seed", "--stage=history", stdout=out)
    assert json.loads(out.getvalue().strip().splitlines()[-1]) == {"already": True}
    assert AccessRequest.objects.count() == before
