"""One reader per kind of record that shows someone held a right: each returns ``Holding`` rows in a few queries.

Every reader takes the window ``[lo, hi]`` (closed at both ends), the ``Target`` or ``None``, and
the person's identities (``Person``) or ``None``; its queries do not grow with the rows found.
"""
from dataclasses import dataclass, field

from django.db.models import Case, Count, F, IntegerField, OuterRef, Prefetch, Q, Subquery, When
from django.db.models.functions import Coalesce

from jitad import directory
from jitad.audit.models import AuditEvent
from jitad.breakglass.models import Checkout, CheckoutApproval
from jitad.elevation.models import AccessRequest, Approval, Grant, HeldRemoval, SessionEvent, StandingAdmin, Target

from .rows import Holding, Source, approvals_of

# The reconciler's audit action for an unbacked member it removed (jitad.elevation.services.reconciler).
REMOVED_UNBACKED = "membership.removed_unbacked"


@dataclass
class Person:
    """A jitad user and every name the records may know them by: DNs and SIDs (normalised)."""

    user: object
    username: str
    dns: set[str] = field(default_factory=set)
    sids: set[str] = field(default_factory=set)


def norm_dn(dn: str) -> str:
    """A DN comparable with another, or the text lower-cased when it does not parse."""
    try:
        return directory.normalize_dn(dn)
    except directory.DirectoryError:
        return (dn or "").strip().lower()


def person_of(user) -> Person:
    """The user's identities: the AD account's DN and SID now, those its grants were made to, and its grants'
    ephemeral accounts (two queries)."""
    p = Person(user=user, username=user.get_username())
    account = getattr(user, "directory_account", None)  # a local user has none
    if account is not None:
        p.dns.add(norm_dn(account.dn))
        if account.sid:
            p.sids.add(account.sid.upper())
    rows = Grant.objects.filter(user=user).values_list("user_dn", "user_sid", "account_dn", "account_sid").distinct()
    for user_dn, user_sid, account_dn, account_sid in rows:
        for dn, sid in ((user_dn, user_sid), (account_dn, account_sid)):
            if dn:
                p.dns.add(norm_dn(dn))
            if sid:
                p.sids.add(sid.upper())
    return p


def _ended(grant: Grant) -> str:
    if grant.state == Grant.State.REVOKED:
        how = grant.get_revoke_reason_display() or "revoked"
        return f"{how} by {grant.revoke_requested_by}" if grant.revoke_requested_by else how
    return f"still {grant.get_state_display().lower()}"


def _session_count(**filters) -> Coalesce:
    """How many of the grant's Security log events match ``filters``: a subquery in the grants' one query."""
    counted = (SessionEvent.objects.filter(grant=OuterRef("pk"), **filters).order_by().values("grant")
               .annotate(n=Count("id")).values("n"))
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def grants(*, lo, hi, target: Target | None, person: Person | None) -> list[Holding]:
    """JIT grants: held from activation (creation when never activated) to revocation, or still held; with
    what the grant's account did on the server (logons, processes, events after the end) counted."""
    qs = (
        Grant.objects.annotate(held_from=Coalesce("activated_at", "created_at"),
                               session_logons=_session_count(event_id=SessionEvent.Kind.LOGON),
                               session_processes=_session_count(event_id=SessionEvent.Kind.PROCESS),
                               session_after_end=_session_count(after_end=True))
        .exclude(state__in=[Grant.State.APPROVED, Grant.State.SCHEDULED], activated_at__isnull=True)  # not yet in AD
        # ended before it started (a scheduled grant released, revoked or out of time): never in AD
        .exclude(state=Grant.State.REVOKED, activated_at__isnull=True, membership_removed__isnull=True, user_dn="")
        .filter(held_from__lte=hi)
        .filter(~Q(state=Grant.State.REVOKED) | Q(revoked_at__isnull=True) | Q(revoked_at__gte=lo))
        .select_related("target", "user", "request__policy", "request__requester")
        .prefetch_related(
            Prefetch("request__approvals", queryset=Approval.objects.select_related("approver")),
            Prefetch("extension_requests", queryset=AccessRequest.objects.select_related("requester")
                     .prefetch_related(Prefetch("approvals", queryset=Approval.objects.select_related("approver")))
                     .order_by("created_at", "id")),
        )
        .order_by("held_from", "id")
    )
    if target is not None:
        qs = qs.filter(target=target)
    if person is not None:
        qs = qs.filter(user=person.user)
    rows = []
    for g in qs:
        req = g.request
        rows.append(Holding(
            source=Source.GRANT, target=g.target.name, target_id=g.target_id, principal=g.user.get_username(),
            person=g.user.get_username(), start=g.held_from,
            end=g.revoked_at if g.state == Grant.State.REVOKED else None, ended=_ended(g), record_id=g.pk,
            evidence={
                "grant_id": g.pk, "state": g.state, "request_id": req.pk, "requester": req.requester.get_username(),
                "policy": req.policy.name, "justification": req.justification, "ticket": req.ticket,
                "requested_at": req.created_at, "approved_at": req.decided_at, "activated_at": g.activated_at,
                "expires_at": g.expires_at, "revoked_at": g.revoked_at, "revoke_reason": g.revoke_reason,
                "revoke_comment": g.revoke_comment, "group_dn": g.group_dn, "approvals": approvals_of(req.approvals.all()),
                "session_logons": g.session_logons, "session_processes": g.session_processes,
                "session_after_end": g.session_after_end,
                "extensions": [
                    {"request_id": x.pk, "state": x.state, "minutes": x.duration_minutes,
                     "justification": x.justification, "ticket": x.ticket, "requested_at": x.created_at,
                     "approvals": approvals_of(x.approvals.all())}
                    for x in g.extension_requests.all()
                ],
            },
        ))
    return rows


def _targets_by_group() -> dict[str, list[Target]]:
    by_group: dict[str, list[Target]] = {}
    for t in Target.objects.only("id", "name", "group_dn"):
        by_group.setdefault(norm_dn(t.group_dn), []).append(t)
    return by_group


def out_of_band(*, lo, hi, target: Target | None, person: Person | None) -> list[Holding]:
    """Members the reconciler found in a JIT group with no grant and removed (from the audit trail).

    The record proves the member was there when the reconciler read the group; when it was
    added is not in jitad (the DC's security log has it: events 4728/4756), so the row is the
    moment of removal.
    """
    qs = AuditEvent.objects.filter(action=REMOVED_UNBACKED, at__gte=lo, at__lte=hi).order_by("at", "id")
    if target is not None:
        qs = qs.filter(object_id=target.group_dn[:64])
    events = list(qs.only("id", "at", "actor", "data", "reason"))
    if not events:
        return []
    by_group = _targets_by_group()
    rows = []
    for e in events:
        data = e.data if isinstance(e.data, dict) else {}
        member, group = str(data.get("member", "")), str(data.get("group", ""))
        if person is not None and norm_dn(member) not in person.dns:
            continue
        for t in by_group.get(norm_dn(group), []):
            if target is not None and t.pk != target.pk:
                continue
            rows.append(Holding(
                source=Source.OUT_OF_BAND, target=t.name, target_id=t.pk, principal=member,
                person=person.username if person else None, start=e.at, end=e.at,
                ended="removed by the reconciler (added out of band at a time jitad did not see)", record_id=e.pk,
                evidence={"audit_event_id": e.pk, "group_dn": group, "member_dn": member, "actor": e.actor,
                          "reason": e.reason},
            ))
    return rows


def held(*, lo, hi, target: Target | None, person: Person | None) -> list[Holding]:
    """Unbacked members the reconciler held for an operator: from the hold to their removal, or still there."""
    S = HeldRemoval.State
    qs = (
        HeldRemoval.objects.annotate(held_until=Case(
            When(state__in=[S.DONE, S.CLEARED], then=Coalesce("done_at", "decided_at", "held_at")),
            When(state=S.DISCARDED, left_at__isnull=False, then=F("left_at")),
            default=None,
        ))
        .filter(held_at__lte=hi).filter(Q(held_until__isnull=True) | Q(held_until__gte=lo))
        .order_by("held_at", "id")
    )
    if target is not None:
        qs = qs.filter(group_dn__iexact=target.group_dn)
    if person is not None:
        if not person.dns:
            return []
        qs = qs.filter(member_key__in=sorted(person.dns))
    holds = list(qs)
    if not holds:
        return []
    by_group = _targets_by_group()
    rows = []
    for h in holds:
        for t in by_group.get(norm_dn(h.group_dn), []):
            if target is not None and t.pk != target.pk:
                continue
            rows.append(Holding(
                source=Source.HELD, target=t.name, target_id=t.pk, principal=h.member_dn,
                person=person.username if person else None, start=h.held_at, end=h.held_until,
                ended=(h.outcome or h.get_state_display()) if h.held_until else h.get_state_display(), record_id=h.pk,
                evidence={"held_removal_id": h.pk, "state": h.state, "group_dn": h.group_dn, "member_dn": h.member_dn,
                          "reason": h.reason, "decided_by": h.decided_by, "decided_at": h.decided_at,
                          "decision_reason": h.decision_reason, "done_at": h.done_at, "left_at": h.left_at},
            ))
    return rows


def confers(t: Target, dn: str, sid: str, standing_sids: set[tuple[int, str]]) -> str:
    """Why a break-glass account holds ``t``'s right ('' when jitad's records do not say it does).

    Break-glass accounts are emergency accounts for domain-level recovery: a checkout counts for
    every domain-role and tier-0 target. For a server it counts when the account is a standing
    member of the target's JIT group (``Target.standing_members``) or a scan saw its SID in the
    server's local Administrators. jitad does not read the account's other AD groups here.
    """
    if t.kind == Target.Kind.DOMAIN_ROLE:
        return "domain-role target: break-glass accounts are emergency domain accounts"
    if t.tier == Target.Tier.IDENTITY:
        return "tier-0 target: break-glass accounts are emergency domain accounts"
    if dn and norm_dn(dn) in {norm_dn(m) for m in (t.standing_members or []) if isinstance(m, str)}:
        return "the account is a standing member of the target's JIT group"
    if sid and (t.pk, sid.upper()) in standing_sids:
        return "a scan saw the account in the server's local Administrators"
    return ""


def breakglass(*, lo, hi, target: Target | None, person: Person | None) -> list[Holding]:
    """Break-glass checkouts (to use the account) whose window meets [lo, hi], where the account confers the right."""
    qs = (
        Checkout.objects.filter(purpose=Checkout.Purpose.USE, opened_at__isnull=False, opened_at__lte=hi)
        .annotate(used_until=Case(When(state__in=Checkout.LIVE_STATES, then=None),
                                  default=Coalesce("closed_at", "checkin_at", "expires_at")))
        .filter(Q(used_until__isnull=True) | Q(used_until__gte=lo))
        .select_related("account", "holder")
        .prefetch_related(Prefetch("approvals", queryset=CheckoutApproval.objects.select_related("approver")))
        .order_by("opened_at", "id")
    )
    if person is not None:
        qs = qs.filter(holder=person.user)
    checkouts = list(qs)
    if not checkouts:
        return []
    targets = [target] if target is not None else list(Target.objects.all())
    sids = {c.account.user_sid.upper() for c in checkouts if c.account.user_sid}
    standing_sids = set()
    if sids:
        standing_sids = {(tid, s.upper()) for tid, s in StandingAdmin.objects.filter(
            target__in=targets, sid__in=sorted(sids)).values_list("target_id", "sid")}
    rows = []
    for c in checkouts:
        why = {t.pk: confers(t, c.account.user_dn, c.account.user_sid, standing_sids) for t in targets}
        conferred = [t for t in targets if why[t.pk]]
        if target is not None and not conferred:
            continue
        shown = conferred if target is not None else [None]
        for t in shown:
            rows.append(Holding(
                source=Source.BREAKGLASS, target=t.name if t else None, target_id=t.pk if t else None,
                principal=c.account.name, person=c.holder.get_username(), start=c.opened_at, end=c.used_until,
                ended=(c.get_checkin_kind_display() or c.get_state_display()) if c.used_until else c.get_state_display(),
                record_id=c.pk,
                evidence={"checkout_id": c.pk, "account": c.account.name, "holder": c.holder.get_username(),
                          "mode": c.mode, "incident": c.incident_ref, "reason": c.reason, "state": c.state,
                          "opened_at": c.opened_at, "expires_at": c.expires_at, "checkin_at": c.checkin_at,
                          "closed_at": c.closed_at, "approvals": approvals_of(c.approvals.all()),
                          "why": why[t.pk] if t else "",
                          "confers": [x.name for x in conferred]},
            ))
    return rows
