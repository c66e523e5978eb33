"""The record queries the document and the evidence check share, so what one states the other can confirm."""
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone

from django.db.models import Q

from jitad.breakglass.models import Checkout, CheckoutApproval, SealedAccount
from jitad.elevation.models import AccessRequest, Approval, HostScan, Policy, StandingAdmin

from jitad.elevation.selectors.workflow import policy_stages

from ..period import PeriodError, period_resolve

__all__ = ["Period", "PeriodError", "period_parse", "period_stated"]

_DATE = r"\d{4}-\d{2}-\d{2}"
_RANGE_RE = re.compile(rf"^({_DATE})\.\.({_DATE})$")


@dataclass(frozen=True)
class Period:
    """A half-open interval [start, end) of timezone-aware UTC datetimes."""

    start: datetime
    end: datetime

    def text(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M:%S} to {self.end:%Y-%m-%d %H:%M:%S} UTC"


def period_parse(value: str | None, *, now: datetime | None = None) -> Period:
    """A period as the Reports read it (``30d``, ``12h``, ``2w``; the default JITAD_REPORT_PERIOD_DAYS) ending now,
    or a date range ``2026-11-01..2026-12-01`` (the end date excluded)."""
    value = (value or "").strip()
    m = _RANGE_RE.fullmatch(value)
    try:
        if m:
            start, end = (date.fromisoformat(d) for d in m.groups())
            # period_resolve includes an end date whole: the day before the excluded one.
            return Period(*period_resolve(start=start, end=end - timedelta(days=1), now=now))
        return Period(*period_resolve(period=value or None, now=now))
    except ValueError as e:  # PeriodError, or a date that does not exist
        raise PeriodError(f"--period: {e} A date range works too: 2026-11-01..2026-12-01 (the end date excluded).") \
            from None


_STATED_RE = re.compile(r"for the period (\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)?) to (\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)?) UTC")


def period_stated(text: str) -> Period | None:
    """The period a document says it covers ("for the period <start> to <end> UTC"), if it says one.

    The text is to the second: the end is taken to the end of its second, so the records the
    document was written from are all inside (a record a moment younger may be too: never fewer).
    """
    m = _STATED_RE.search(text)
    if not m:
        return None
    start, end = (datetime.fromisoformat(v).replace(tzinfo=dt_timezone.utc) for v in m.groups())
    return Period(start, end + timedelta(seconds=1)) if start < end else None


def approved_requests(period: Period):
    """Requests approved during the period: each created or extended a grant (a privileged session)."""
    return (AccessRequest.objects.filter(state=AccessRequest.State.APPROVED, decided_at__gte=period.start,
                                         decided_at__lt=period.end)
            .select_related("policy", "target", "requester").order_by("id"))


def auto_approved_requests(period: Period):
    """Approved requests no person had to decide (approval mode auto, or a time window approving automatically)."""
    return approved_requests(period).filter(approvals_required=0)


def approvals_given(period: Period):
    """Approvals (decision approve) recorded during the period."""
    return (Approval.objects.filter(decision=Approval.Decision.APPROVE, at__gte=period.start, at__lt=period.end)
            .select_related("request", "approver").order_by("id"))


def mfa_gap(*, method: str, verified_at, acted_at, window_seconds: float) -> str:
    """Why an MFA record does not prove a fresh verified step ("" when it does)."""
    if not method or verified_at is None:
        return "no verified MFA step recorded"
    age = (acted_at - verified_at).total_seconds()
    if age > window_seconds + 5:  # a few seconds between the check and the row's own clock
        return f"MFA verified {int(age)} s before (freshness window {int(window_seconds)} s)"
    return ""


def mfa_steps(period: Period, window_seconds: float):
    """Each privileged step of the period as (record, why it proves no fresh MFA step or ""): requests approved,
    approvals given, break-glass checkouts opened and checkout approvals given."""
    for r in approved_requests(period).iterator(chunk_size=2000):
        gap = mfa_gap(method=r.mfa_method, verified_at=r.mfa_verified_at, acted_at=r.created_at, window_seconds=window_seconds)
        yield f"request #{r.pk}", gap and f"{gap} (granted {r.target.name} to {r.requester.get_username()})"
    for a in approvals_given(period).iterator(chunk_size=2000):
        gap = mfa_gap(method=a.mfa_method, verified_at=a.mfa_verified_at, acted_at=a.at, window_seconds=window_seconds)
        yield f"approval #{a.pk} on request #{a.request_id} by {a.approver.get_username()}", gap
    opened = (Checkout.objects.filter(decided_at__gte=period.start, decided_at__lt=period.end)
              .exclude(state__in=[Checkout.State.DENIED, Checkout.State.CANCELLED, Checkout.State.EXPIRED])
              .select_related("account", "holder").order_by("id"))
    for c in opened.iterator(chunk_size=2000):
        gap = mfa_gap(method=c.mfa_method, verified_at=c.mfa_verified_at, acted_at=c.requested_at,
                      window_seconds=window_seconds)
        yield f"checkout #{c.pk} of {c.account.name} by {c.holder.get_username()}", gap
    given = (CheckoutApproval.objects.filter(decision=CheckoutApproval.Decision.APPROVE, at__gte=period.start,
                                             at__lt=period.end).select_related("approver").order_by("id"))
    for a in given.iterator(chunk_size=2000):
        gap = mfa_gap(method=a.mfa_method, verified_at=a.mfa_verified_at, acted_at=a.at, window_seconds=window_seconds)
        yield f"checkout approval #{a.pk} on checkout #{a.checkout_id} by {a.approver.get_username()}", gap


def standing_findings(period: Period):
    """Standing admins seen during the period (open then, whether or not resolved since)."""
    return (StandingAdmin.objects.filter(first_seen_at__lt=period.end)
            .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=period.start))
            .select_related("target").order_by("target__name", "name"))


def scan_that_found(finding: StandingAdmin) -> HostScan | None:
    """The latest successful scan of the finding's server that saw standing admins while it was open."""
    scans = HostScan.objects.filter(target=finding.target, ok=True, standing__gt=0,
                                    started_at__lte=finding.last_seen_at + timedelta(minutes=5))
    return scans.order_by("-started_at").first()


def auto_reasons(policy: Policy) -> list[str]:
    """How ``policy`` can approve a request without a person: automatic mode, a time window that approves
    automatically, or a stage that approves itself when nobody decides in time ([] when it cannot)."""
    if policy.approval_mode == Policy.ApprovalMode.AUTO:
        return ["approval_mode=auto"]
    windows = policy.time_windows or {}
    actions = [rule.get("then") for rule in windows.get("rules", [])] + [windows.get("otherwise")]
    reasons = ["a time window approves automatically"] if windows and "auto" in actions else []
    stages = [*policy_stages(policy), *([windows["extra_stage"]] if windows.get("extra_stage") else [])]
    reasons += [f"stage {stage['name']} approves itself after {stage['timeout']['after_minutes']} min undecided"
                for stage in stages if (stage.get("timeout") or {}).get("action") == "approve"]
    return reasons


def auto_policies() -> list[Policy]:
    """Enabled policies that can approve without a person (``auto_reasons``), by name."""
    return [p for p in Policy.objects.filter(enabled=True).order_by("name") if auto_reasons(p)]


def checkouts_without_dual_control(period: Period):
    """Break-glass checkouts requested in the period that no second person approved first (emergency mode)."""
    return (Checkout.objects.filter(requested_at__gte=period.start, requested_at__lt=period.end)
            .exclude(mode=Checkout.Mode.DUAL).select_related("account", "holder").order_by("id"))


def accounts_without_dual_control():
    """Sealed accounts whose checkouts need no approver."""
    return SealedAccount.objects.filter(approvals_required__lt=1).order_by("name")
