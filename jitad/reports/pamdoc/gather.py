"""Read live configuration and the period's records into the facts the JIT PAM document states."""
from dataclasses import dataclass, field
from datetime import datetime

from django.apps import apps
from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from jitad.audit.models import AuditChainHead, AuditEvent
from jitad.audit.selectors import siem_destinations
from jitad.audit.services import audit_verify
from jitad.breakglass.models import Checkout, Seal, SealedAccount
from jitad.breakglass.runbooks import runbooks_load
from jitad.elevation.models import HostScan, Policy, Target
from jitad.elevation.selectors.workflow import policy_stages, window_text

from ..selectors.kpis import report_build
from . import records
from .records import Period


@dataclass
class MfaFacts:
    """Which factors exist, how fresh a privileged step's verification must be, and what the records show."""

    factors: list[str]
    fresh_seconds: int
    steps: int = 0  # privileged steps in the period (approved requests, approvals, checkouts opened and approved)
    steps_verified: int = 0
    gaps: list[str] = field(default_factory=list)  # "request #12: no verified MFA step recorded"

    @property
    def all_verified(self) -> bool:
        return self.steps_verified == self.steps


@dataclass
class PamFacts:
    """Everything the document says, read at ``generated_at`` for ``period``."""

    generated_at: datetime
    period: Period
    targets: list[dict]
    policies: list[dict]
    standing: list[dict]  # findings open during the period
    scans: dict  # {"servers_scanned": n, "last_scan_at": datetime | None, "scan_interval_seconds": s}
    mfa: MfaFacts
    revocation: dict
    approval: dict  # {"auto_policies": [...], "auto_approved": n, "approved": n}
    breakglass: dict
    audit: dict
    kpis: list[dict]  # [{"section": title, "label": ..., "value": ..., "unit": ...}]
    figures: dict = field(default_factory=dict)  # (section, key) -> value, for the figures quoted in prose


def _targets() -> list[dict]:
    rows = []
    for t in Target.objects.prefetch_related("policies").order_by("tier", "name"):
        rows.append({"name": t.name, "kind": t.get_kind_display(), "tier": t.tier, "tier_label": t.get_tier_display(),
                     "hostname": t.hostname, "host_checked": t.host_checked, "enabled": t.enabled,
                     "policies": sorted(p.name for p in t.policies.all())})
    return rows


def _policies() -> list[dict]:
    rows = []
    for p in Policy.objects.prefetch_related("targets").order_by("priority", "name"):
        rows.append({
            "name": p.name, "enabled": p.enabled, "priority": p.priority,
            "targets": sorted(t.name for t in p.targets.all()),
            "eligible": sorted(p.eligible_groups or []) + [f"user {u}" for u in sorted(p.eligible_users or [])],
            "default_minutes": p.default_duration_minutes, "max_minutes": p.max_duration_minutes,
            "auto": p.approval_mode == Policy.ApprovalMode.AUTO, "approvals_required": p.approvals_required,
            "approver_groups": list(p.approver_groups or []), "distinct_groups": p.distinct_approver_groups,
            "max_extensions": p.max_extensions, "pending_timeout_minutes": p.pending_timeout_minutes,
            "justification": p.require_justification, "ticket": p.require_ticket,
            "end_sessions": p.end_sessions_on_revoke,
            "stages": policy_stages(p), "windows": window_text(p), "auto_reasons": records.auto_reasons(p),
            "networks": list(p.networks or []), "schedule_max_lead_minutes": p.schedule_max_lead_minutes,
            "review": dict(p.review or {}),
        })
    return rows


def _standing(period: Period) -> list[dict]:
    rows = []
    for f in records.standing_findings(period)[:500]:
        scan = records.scan_that_found(f)
        rows.append({"id": f.pk, "name": f.name or f.sid, "target": f.target.name, "first_seen_at": f.first_seen_at,
                     "resolved_at": f.resolved_at, "scan": scan.pk if scan else None})
    return rows


def _scans() -> dict:
    last = HostScan.objects.order_by("-started_at").first()
    return {"servers_scanned": HostScan.objects.values("target").distinct().count(),
            "last_scan_at": last.started_at if last else None,
            "scan_interval_seconds": settings.JITAD_HOST_SCAN_INTERVAL}


def _factors() -> list[str]:
    factors = ["TOTP authenticator app (django-otp)", "single-use backup codes"]
    if apps.is_installed("django_otp_webauthn"):
        factors.insert(1, "WebAuthn passkeys / security keys (phishing-resistant)")
    return factors


def _mfa(period: Period) -> MfaFacts:
    facts = MfaFacts(factors=_factors(), fresh_seconds=settings.JITAD_MFA_FRESH_SECONDS)
    for record, gap in records.mfa_steps(period, facts.fresh_seconds):
        facts.steps += 1
        if gap:
            facts.gaps.append(f"{record}: {gap}")
        else:
            facts.steps_verified += 1
    return facts


def _revocation(policies: list[dict]) -> dict:
    return {"sweep_interval_seconds": settings.JITAD_SWEEP_INTERVAL,
            "sla_seconds": settings.JITAD_REVOCATION_SLA_SECONDS,
            "member_ttl": settings.JITAD_LDAP_MEMBER_TTL,
            "host_checked_targets": Target.objects.exclude(winrm_url="").count(),
            "end_sessions_policies": [p["name"] for p in policies if p["end_sessions"]]}


def _breakglass(period: Period) -> dict:
    loaded = runbooks_load()
    accounts = [{"name": a.name, "state": a.get_state_display(), "approvals_required": a.approvals_required,
                 "emergency_allowed": a.emergency_allowed, "max_checkout_minutes": a.max_checkout_minutes,
                 "runbooks": [rb.slug for rb in loaded.runbooks.values() if rb.applies(a.name)]}
                for a in SealedAccount.objects.order_by("name")]
    envelopes = [{"account": s.account.name, "seal": s.seal_id, "printed_at": s.envelope_printed_at}
                 for s in Seal.objects.filter(broken_at__isnull=True, envelope_printed_at__isnull=False)
                 .select_related("account").order_by("account__name")]
    in_period = Checkout.objects.filter(requested_at__gte=period.start, requested_at__lt=period.end)
    return {"accounts": accounts, "envelopes": envelopes,
            "runbooks": [{"slug": rb.slug, "title": rb.title, "severity": rb.severity,
                          "applies_to": list(rb.applies_to), "steps": len(rb.steps)} for rb in loaded.runbooks.values()],
            "runbook_errors": dict(loaded.errors),
            "checkouts": in_period.count(),
            "emergency_checkouts": [c.pk for c in records.checkouts_without_dual_control(period)],
            "accounts_without_dual_control": [a.name for a in records.accounts_without_dual_control()]}


def _siem() -> tuple[list[dict] | None, str]:
    destinations = siem_destinations()
    if not destinations:
        return None, "no SIEM destination is configured (JITAD_SIEM_<NAME>_URL, docs/siem.md)"
    return destinations, ""


def _audit() -> dict:
    head = AuditChainHead.objects.filter(pk=1).first()
    problems = audit_verify()
    siem, note = _siem()
    return {"events": head.count if head else AuditEvent.objects.count(), "problems": problems[:20],
            "problem_count": len(problems), "siem": siem, "siem_note": note}


def _kpis(period: Period) -> tuple[list[dict], dict]:
    report = report_build(start=period.start, end=period.end)
    rows, figures = [], {}
    for section in report.sections:
        for f in section.figures:
            rows.append({"section": section.title, "key": f"{section.key}.{f.key}", "label": f.label,
                         "value": f.value, "unit": f.unit})
            figures[(section.key, f.key)] = f.value
    return rows, figures


def pam_facts_gather(*, period: Period, now: datetime | None = None) -> PamFacts:
    """Read configuration and the period's records (nothing is written)."""
    policies = _policies()
    kpis, figures = _kpis(period)
    auto_approved = records.auto_approved_requests(period).count()
    longest = records.approved_requests(period).aggregate(m=Max("duration_minutes"))["m"]
    return PamFacts(
        generated_at=now or timezone.now(), period=period, targets=_targets(), policies=policies,
        standing=_standing(period), scans=_scans(), mfa=_mfa(period), revocation=_revocation(policies),
        approval={"auto_policies": [p.name for p in records.auto_policies()], "auto_approved": auto_approved,
                  "approved": records.approved_requests(period).count(), "longest_approved_minutes": longest},
        breakglass=_breakglass(period), audit=_audit(), kpis=kpis, figures=figures,
    )
