"""Hold a JIT PAM document's claims against jitad's records for a period; name the record that disproves each.

Claims are read from the text (see ``claims_find``): a stated maximum duration (overall or
per policy), MFA for every privileged session, no standing privilege, every request
approved by people, at least N approvals, every break-glass checkout under dual control.
A request or approval with no MFA step recorded (made before jitad recorded it) disproves
an MFA claim: it is reported, never passed over.
"""
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, Q

from jitad.elevation.models import Approval, Policy

from . import records
from .document import Line
from .records import Period
from .validate import states_mfa_for_all

_I = re.IGNORECASE
LISTED = 20
_DUR = r"(\d+(?:\.\d+)?)\s*(minutes?|mins?|min|hours?|hrs?|h)\b(?:\s*(\d+)\s*(?:minutes?|mins?|min|m)\b)?"
GLOBAL_MAX = re.compile(r"(?:\b(?:longer|more)\s+than|\bat\s+most|\bmaximum(?:\s+\w+){0,2}?\s+(?:is|of)|\bmax(?:imum)?:?|"
                        r"\bup\s+to|\blimited\s+to|\bcapped\s+at|\bno\s+more\s+than)\s*" + _DUR, _I)
GLOBAL_SUBJECT = re.compile(r"\b(grants?|access|elevations?|privileges?|durations?)\b", _I)
NOT_A_GRANT = re.compile(r"\b(pending|timeout|fresh\w*|window|checkouts?|break[- ]?glass|mfa|otp|verif\w*|sweep\w*|"
                         r"alert|polic(?:y|ies)\s+[`\"']?[\w.-]+[`\"']?\s+(?:allows?|grants?|has))\b", _I)
POLICY_MAX = re.compile(r"\bpolicy\s+[`\"']?([\w.-]+)[`\"']?[^.]*?(?:at\s+most|maximum(?:\s+duration)?(?:\s+of|\s+is)?|"
                        r"max(?:imum)?\s+duration(?:\s+of|\s+is)?|up\s+to|no\s+longer\s+than)\s*" + _DUR, _I)
NO_STANDING = re.compile(r"\b(?:no|zero)\s+standing\s+(?:privileges?|admins?|administrators?|access|rights?)\b|"
                         r"\bwithout\s+standing\s+(?:privileges?|access)\b", _I)
APPROVAL_ALL = re.compile(
    r"\b(?:every|all|each)\s+(?:\w+\s+){0,2}?(?:requests?|elevations?)\b[^.]*?\b(?:requires?|needs?|must\s+(?:be|have)|"
    r"is\s+subject\s+to|goes\s+through|go\s+through)\b[^.]*?\bapprov|"
    r"\bno\s+(?:\w+\s+)?(?:requests?|elevations?|access)\s+(?:is|are)\s+(?:ever\s+)?(?:auto(?:matically)?[- ]?approved|"
    r"approved\s+automatically)|\b(?:no|never|without)\s+auto(?:matic)?[- ]?approv", _I)
AT_LEAST = re.compile(r"\bat\s+least\s+(\d+|one|two|three|four)\s+(?:distinct\s+|different\s+)?(?:approvers?|approvals?)", _I)
DUAL_ALL = re.compile(r"\b(?:every|all|each)\b[^.]*\bcheckouts?\b[^.]*\bdual[- ]control\b|"
                      r"\bdual[- ]control\b[^.]*\b(?:every|all|each)\b[^.]*\bcheckouts?\b", _I)
_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4}


@dataclass
class Claim:
    """One checkable statement of the document, and the records that contradict it."""

    kind: str
    line: int
    text: str
    value: object = None
    contradictions: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return not self.contradictions


def _minutes(m: re.Match, first: int) -> int:
    number, unit, extra = float(m.group(first)), m.group(first + 1).lower(), m.group(first + 2)
    minutes = number * 60 if unit.startswith("h") else number
    return int(round(minutes + (int(extra) if extra and unit.startswith("h") else 0)))


def _table_claims(lines: list[Line]) -> list[Claim]:
    """Per-policy maxima from any table whose header has a policy column and a max (duration) column."""
    claims, cols = [], None
    for line in lines:
        if not line.is_table_row:
            cols = None
            continue
        cells = line.cells()
        if cols is None:
            low = [c.lower() for c in cells]
            policy = next((i for i, c in enumerate(low) if "polic" in c), None)
            maximum = next((i for i, c in enumerate(low) if "max" in c), None)
            cols = (policy, maximum) if policy is not None and maximum is not None else (None, None)
            continue
        policy, maximum = cols
        if policy is None or len(cells) <= max(policy, maximum) or set(cells[0]) <= set("-: "):
            continue
        m = re.search(_DUR, cells[maximum], _I)
        name = cells[policy].strip("`*\"' ")
        if m and name:
            claims.append(Claim("policy_max", line.no, line.text, (name, _minutes(m, 1))))
    return claims


def claims_find(lines: list[Line]) -> list[Claim]:
    """Every checkable claim of the document, with its line."""
    claims = _table_claims(lines)
    for line in lines:
        t = line.text
        if line.is_table_row:
            continue
        for m in POLICY_MAX.finditer(t):
            claims.append(Claim("policy_max", line.no, t, (m.group(1), _minutes(m, 2))))
        m = GLOBAL_MAX.search(t)
        if m and GLOBAL_SUBJECT.search(t) and not NOT_A_GRANT.search(t) and not POLICY_MAX.search(t):
            claims.append(Claim("max_duration", line.no, t, _minutes(m, 1)))
        if states_mfa_for_all(t):
            claims.append(Claim("mfa_all", line.no, t))
        if NO_STANDING.search(t) and not re.search(r"\bnot\b|\bgoal\b|\baim", t, _I):
            claims.append(Claim("no_standing", line.no, t))
        if APPROVAL_ALL.search(t):
            claims.append(Claim("approval_all", line.no, t))
        m = AT_LEAST.search(t)
        if m and not re.search(r"break[- ]?glass|checkout", t, _I):
            n = m.group(1).lower()
            claims.append(Claim("approvals_at_least", line.no, t, int(n) if n.isdigit() else _WORDS[n]))
        if DUAL_ALL.search(t):
            claims.append(Claim("dual_control_all", line.no, t))
    return sorted(claims, key=lambda c: c.line)


def _listed(found: list[str], total: int) -> list[str]:
    return found[:LISTED] + ([f"... and {total - LISTED} more"] if total > LISTED else [])


def _check_max(stated: int, period: Period) -> list[str]:
    policies = [f"policy {p.name}: max_duration_minutes={p.max_duration_minutes} > stated {stated}"
                for p in Policy.objects.filter(enabled=True, max_duration_minutes__gt=stated).order_by("name")]
    longer = records.approved_requests(period).filter(duration_minutes__gt=stated)
    out = policies + [f"request #{r.pk}: duration_minutes={r.duration_minutes} > stated {stated} (policy {r.policy.name})"
                      for r in longer[:LISTED]]
    return _listed(out, len(policies) + longer.count())


def _check_policy_max(value, period: Period) -> list[str]:
    name, stated = value
    policy = Policy.objects.filter(name__iexact=name).first()
    if policy is None:
        return [f"policy {name}: no such policy in jitad"]
    out = []
    if policy.max_duration_minutes > stated:
        out.append(f"policy {policy.name}: max_duration_minutes={policy.max_duration_minutes} > stated {stated}")
    longer = records.approved_requests(period).filter(policy=policy, duration_minutes__gt=stated)
    out += [f"request #{r.pk}: duration_minutes={r.duration_minutes} > stated {stated} (policy {policy.name})"
            for r in longer[:LISTED]]
    return out


def _check_mfa(period: Period) -> list[str]:
    out, total = [], 0
    for record, gap in records.mfa_steps(period, settings.JITAD_MFA_FRESH_SECONDS):
        if gap:
            total += 1
            if len(out) < LISTED:
                out.append(f"{record}: {gap}")
    return _listed(out, total)


def _check_standing(period: Period) -> list[str]:
    findings = records.standing_findings(period)
    out = []
    for f in findings[:LISTED]:
        scan = records.scan_that_found(f)
        by = f"scan #{scan.pk}" if scan else f"the scans (finding #{f.pk})"
        out.append(f"standing admin {f.name or f.sid} on {f.target.name} found by {by}, first seen "
                   f"{f.first_seen_at:%Y-%m-%d %H:%M} UTC" + (f", resolved {f.resolved_at:%Y-%m-%d %H:%M} UTC" if f.resolved_at else ""))
    return _listed(out, findings.count())


def _check_approval_all(period: Period) -> list[str]:
    policies = [f"policy {p.name}: {'; '.join(records.auto_reasons(p))}" for p in records.auto_policies()]
    auto = records.auto_approved_requests(period)
    out = policies + [f"request #{r.pk}: approved automatically by policy {r.policy.name}, no approver"
                      for r in auto[:LISTED]]
    return _listed(out, len(policies) + auto.count())


def _check_at_least(n: int, period: Period) -> list[str]:
    out = [f"policy {p.name}: {'; '.join(records.auto_reasons(p))}" for p in records.auto_policies()]
    out += [f"policy {p.name}: approvals_required={p.approvals_required} < stated {n}"
            for p in Policy.objects.filter(enabled=True, approval_mode=Policy.ApprovalMode.MANUAL,
                                           approvals_required__lt=n).order_by("name")]
    short = (records.approved_requests(period)
             .annotate(given=Count("approvals", filter=Q(approvals__decision=Approval.Decision.APPROVE)))
             .filter(given__lt=n))
    out += [f"request #{r.pk}: approved with {r.given} approval(s) < stated {n}" for r in short[:LISTED]]
    return out


def _check_dual(period: Period) -> list[str]:
    out = [f"sealed account {a.name}: approvals_required={a.approvals_required}"
           for a in records.accounts_without_dual_control()]
    out += [f"checkout #{c.pk} of {c.account.name} by {c.holder.get_username()}: mode={c.mode} (opened without an approval)"
            for c in records.checkouts_without_dual_control(period)[:LISTED]]
    return out


def claims_check(claims: list[Claim], period: Period) -> list[Claim]:
    """Fill each claim's contradictions from the records of ``period``."""
    for c in claims:
        if c.kind == "max_duration":
            c.contradictions = _check_max(c.value, period)
        elif c.kind == "policy_max":
            c.contradictions = _check_policy_max(c.value, period)
        elif c.kind == "mfa_all":
            c.contradictions = _check_mfa(period)
        elif c.kind == "no_standing":
            c.contradictions = _check_standing(period)
        elif c.kind == "approval_all":
            c.contradictions = _check_approval_all(period)
        elif c.kind == "approvals_at_least":
            c.contradictions = _check_at_least(c.value, period)
        elif c.kind == "dual_control_all":
            c.contradictions = _check_dual(period)
    return claims


TITLES = {"max_duration": "maximum duration {v} min", "policy_max": "policy {v[0]}: at most {v[1]} min",
          "mfa_all": "MFA for every privileged session", "no_standing": "no standing privilege",
          "approval_all": "every request approved by a person", "approvals_at_least": "at least {v} approval(s)",
          "dual_control_all": "every break-glass checkout under dual control"}


def evidence_report(claims: list[Claim], period: Period) -> list[str]:
    """The lines of the evidence part of the report."""
    out = [f"Evidence: the document's claims against jitad's records for {period.text()}"]
    if not claims:
        out.append("          no checkable claim found (durations, MFA, standing privilege, approvals, dual control)")
    for c in claims:
        title = TITLES[c.kind].format(v=c.value)
        out.append(f"[{'holds' if c.holds else 'contradicted'}]{' ' * (13 - len('holds' if c.holds else 'contradicted'))}"
                   f"line {c.line}: {title}")
        out += [f"          - {x}" for x in c.contradictions]
    return out
