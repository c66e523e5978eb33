"""jitad_pam_validate --evidence: each kind of claim a document makes, held against the records, and the record
that disproves it named in the report (database only)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from jitad.breakglass.models import Checkout
from jitad.elevation import services
from jitad.elevation.models import AccessRequest, HostScan, Policy, StandingAdmin

from .pamdoc_world import demo_world, run_validate, step, write_document

pytestmark = pytest.mark.usefixtures("db")

BASE = """\
# PAM at Example Corp

Privileged access is just-in-time, and a lead approves requests before access starts.

{claim}

MFA is required for every privileged session.
"""


@pytest.fixture
def world():
    return demo_world()


def check(tmp_path, claim: str, *extra) -> tuple[int, str]:
    path = tmp_path / "claims.md"
    path.write_text(BASE.format(claim=claim), encoding="utf-8")
    return run_validate(path, "--evidence", "--period", "7d", *extra)


def test_a_stated_maximum_the_policies_exceed(world, tmp_path):
    """GIVEN policies allowing 240 and 180 minutes WHEN the document says grants last at most 2 hours
    THEN both policies are named with their maxima, and the 180-minute claim fails only on the 240 one."""
    code, report = check(tmp_path, "No grant lasts longer than 2 hours.")
    assert code == 1
    assert "[contradicted] line 5: maximum duration 120 min" in report
    assert "- policy low-risk-servers: max_duration_minutes=240 > stated 120" in report
    assert "- policy sql-admins: max_duration_minutes=180 > stated 120" in report
    code, report = check(tmp_path, "Access is limited to 180 minutes.")
    assert "- policy low-risk-servers: max_duration_minutes=240 > stated 180" in report
    assert "sql-admins: max_duration_minutes" not in report
    code, report = check(tmp_path, "Access is limited to 4 hours.")
    assert code == 0 and "[holds]        line 5: maximum duration 240 min" in report


def test_a_policy_table_and_a_policy_sentence(world, tmp_path):
    table = "| Policy | Max duration |\n|---|---|\n| sql-admins | 2 h |\n| domain-admins | 60 min |\n| web | 1 h |"
    code, report = check(tmp_path, table)
    assert code == 1
    assert "[contradicted] line 7: policy sql-admins: at most 120 min" in report
    assert "- policy sql-admins: max_duration_minutes=180 > stated 120" in report
    assert "[holds]        line 8: policy domain-admins: at most 60 min" in report
    assert "- policy web: no such policy in jitad" in report
    code, report = check(tmp_path, "Policy sql-admins allows at most 1 hour.")
    assert "- policy sql-admins: max_duration_minutes=180 > stated 60" in report
    assert "request #%d: duration_minutes=90 > stated 60 (policy sql-admins)" % world["manual"].pk in report


def test_mfa_for_every_session_while_a_request_lacked_a_verified_step(world, tmp_path):
    """GIVEN a grant whose request has no MFA step recorded (as rows older than the record), an approval whose
    step is two hours older than it, and a checkout opened with none WHEN the document claims MFA for every
    privileged session THEN each is named."""
    code, report = check(tmp_path, "")
    assert code == 0 and "[holds]        line 7: MFA for every privileged session" in report
    old = services.request_create(requester=world["alice"], target=world["srv"], duration_minutes=30)
    stale = services.request_create(requester=world["alice"], target=world["sql"], duration_minutes=30, mfa=step())
    services.request_approve(request=stale, approver=world["bob"], mfa=step("totp", 7200))
    code, report = check(tmp_path, "")
    assert code == 1 and "[contradicted] line 7: MFA for every privileged session" in report
    assert f"- request #{old.pk}: no verified MFA step recorded (granted SRV01 to alice)" in report
    approval = stale.approvals.get()
    assert f"- approval #{approval.pk} on request #{stale.pk} by bob: MFA verified 72" in report
    assert "(freshness window 900 s)" in report
    assert report.rstrip().endswith("Result: FAIL")
    checkout = Checkout.objects.create(account=world["account"], holder=world["alice"], incident_ref="INC-8",
                                       reason="the portal is down", duration_minutes=30, state=Checkout.State.CLOSED,
                                       decided_at=timezone.now())
    code, report = check(tmp_path, "")
    assert f"- checkout #{checkout.pk} of bg-da-01 by alice: no verified MFA step recorded" in report


def test_no_standing_privilege_while_a_scan_found_standing_admins(world, tmp_path):
    code, report = check(tmp_path, "There is no standing privilege on any server.")
    assert code == 0 and "[holds]        line 5: no standing privilege" in report
    now = timezone.now()
    scan = HostScan.objects.create(target=world["srv"], started_at=now, finished_at=now, ok=True, members=3, standing=1)
    StandingAdmin.objects.create(target=world["srv"], sid="S-1-5-21-1-2-3-1107", name="CORP\\bob", first_seen_at=now,
                                 last_seen_at=now)
    code, report = check(tmp_path, "There is no standing privilege on any server.")
    assert code == 1
    assert f"- standing admin CORP\\bob on SRV01 found by scan #{scan.pk}, first seen" in report
    # A finding resolved before the period is not a contradiction of it.
    StandingAdmin.objects.update(first_seen_at=now - timedelta(days=20), resolved_at=now - timedelta(days=10))
    code, report = check(tmp_path, "There is no standing privilege on any server.")
    assert code == 0, report


def test_an_approval_claim_that_auto_approved_requests_contradict(world, tmp_path):
    code, report = check(tmp_path, "Every request requires approval by a second person.")
    assert code == 1 and "[contradicted] line 5: every request approved by a person" in report
    assert "- policy low-risk-servers: approval_mode=auto" in report
    assert f"- request #{world['auto'].pk}: approved automatically by policy low-risk-servers, no approver" in report
    code, report = check(tmp_path, "No request is approved automatically; at least 2 approvers decide each.")
    assert "- policy sql-admins: approvals_required=1 < stated 2" in report
    assert f"- request #{world['manual'].pk}: approved with 1 approval(s) < stated 2" in report
    Policy.objects.filter(name="low-risk-servers").update(approval_mode=Policy.ApprovalMode.MANUAL, approvals_required=1)
    AccessRequest.objects.filter(pk=world["auto"].pk).update(decided_at=timezone.now() - timedelta(days=9))
    code, report = check(tmp_path, "Every request requires approval by a second person.")
    assert code == 0, report


def test_dual_control_claim_and_an_emergency_checkout(world, tmp_path):
    claim = "Every break-glass checkout is under dual control."
    code, report = check(tmp_path, claim)
    assert code == 0 and "[holds]        line 5: every break-glass checkout under dual control" in report
    checkout = Checkout.objects.create(account=world["account"], holder=world["alice"], mode=Checkout.Mode.EMERGENCY,
                                       incident_ref="INC-7", reason="the portal is down", duration_minutes=30,
                                       state=Checkout.State.CLOSED)
    code, report = check(tmp_path, claim)
    assert code == 1
    assert f"- checkout #{checkout.pk} of bg-da-01 by alice: mode=emergency (opened without an approval)" in report


def test_the_generated_document_reports_old_rows_honestly(world, tmp_path):
    """GIVEN an approved request made before jitad recorded MFA steps WHEN the document is generated THEN it says how
    many steps carry one and lists the request, and --evidence names it against the enforcement statement."""
    old = services.request_create(requester=world["alice"], target=world["srv"], duration_minutes=30)
    text = write_document(tmp_path / "pam.md").decode()
    assert "on 3 of 4 privileged steps (75.0%)" in text
    assert f"- request #{old.pk}: no verified MFA step recorded" in text
    code, report = run_validate(tmp_path / "pam.md", "--evidence")
    assert code == 1 and f"- request #{old.pk}: no verified MFA step recorded" in report


def test_a_document_without_checkable_claims_and_a_bad_period(tmp_path, world):
    path = tmp_path / "plain.md"
    path.write_text("Just-in-time access, approved by a lead before it starts.\n\nMFA protects our logins.\n")
    code, report = run_validate(path, "--evidence")
    assert "no checkable claim found" in report
    code, report = run_validate(path, "--evidence", "--period", "forever")
    assert code == 2 and "'forever' is not a period such as 30d" in report and "date range" in report


def test_a_manual_policy_that_can_approve_without_a_person_contradicts_every_request_approved(world, tmp_path):
    """GIVEN only manual policies, one of which has a time window that approves automatically and a stage that
    approves itself when nobody decides WHEN the document claims every request needs a person
    THEN --evidence names that policy with both ways, and the generated document lists it under automatic approval
    with its stages and windows spelt out."""
    Policy.objects.filter(name="low-risk-servers").update(approval_mode=Policy.ApprovalMode.MANUAL, approvals_required=1)
    AccessRequest.objects.filter(pk=world["auto"].pk).update(decided_at=timezone.now() - timedelta(days=9))
    claim = "Every request requires approval by a second person."
    assert check(tmp_path, claim)[0] == 0
    Policy.objects.filter(name="sql-admins").update(
        stages=[{"name": "peer", "approvals_required": 1, "approver_groups": ["DBA-Leads"], "distinct_groups": False,
                 "escalation": {"after_minutes": 30, "groups": ["IT-Managers"], "notify": [], "add_as_approvers": True},
                 "timeout": {"after_minutes": 120, "action": "approve"}},
                {"name": "manager", "approvals_required": 1, "approver_groups": ["IT-Managers"], "distinct_groups": False,
                 "escalation": None, "timeout": None}],
        time_windows={"timezone": "Europe/Paris", "rules": [{"days": ["sat", "sun"], "then": "auto"}],
                      "otherwise": "policy"})
    code, report = check(tmp_path, claim)
    assert code == 1, report
    assert ("- policy sql-admins: a time window approves automatically; stage peer approves itself after 120 min "
            "undecided") in report
    text = write_document(tmp_path / "pam.md").decode()
    assert "sql-admins (a time window approves automatically; stage peer approves itself after 120 min undecided)" in text
    assert ("stage 1 (peer): 1 approval(s) from DBA-Leads; after 30 min undecided, escalates to IT-Managers (who may then decide); "
            "approved without a decision after 2 h undecided; then stage 2 (manager): 1 approval(s) from IT-Managers") in text
    assert "Policy sql-admins: time windows sat,sun: auto; otherwise policy (Europe/Paris)." in text
