"""Demo history for the Reports: ~75 days of requests, decisions, grants, scans and incidents, written to the
database only (never to AD: every past grant is over), then the daily snapshots back-filled from them.

For throwaway demo databases (``manage.py jitad_demo_seed --stage=history``). Deterministic (a fixed seed),
and run once: a second run finds its marker request and stops. Audit events of the past (revoke_failed
episodes, out-of-band removals) are appended to the chain with their past times, so the chain still verifies.
"""
import random
from datetime import datetime, timedelta, timezone as dt_timezone

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from jitad.audit import services as audit
from jitad.breakglass.models import Checkout, SealedAccount
from jitad.elevation.models import AccessRequest, Approval, Grant, HeldRemoval, HostScan, Policy, StandingAdmin, Target

from .snapshots import baseline_reading_record, snapshots_record

MARKER = "[history] "
# History-only people (no AD account): always elevated, a burst of refusals, eligible and never using it.
EXTRA_PEOPLE = {"erin": "Server-Operators", "frank": "DBAs", "gina": "Server-Operators"}
User = get_user_model()


def _mfa(method: str, when: datetime) -> dict:
    """The verified MFA step a request, an approval or a checkout records."""
    return {"mfa_method": method, "mfa_verified_at": when}


def _audit_at(when: datetime, **entry) -> None:
    """Append one event dated ``when`` (the chain covers the date as written, so it still verifies)."""
    audit.audit_record_many([audit.AuditEntry(at=when, **entry)])


class _History:
    def __init__(self, *, days: int, now: datetime, rng: random.Random):
        self.days, self.now, self.rng = days, now, rng
        self.counts = {"requests": 0, "grants": 0, "scans": 0, "late": 0, "revoke_failed": 0}

    # --- people and catalogue ------------------------------------------------------------
    def members(self, groups) -> list:
        lowered = {g.lower() for g in groups or []}
        return [u for u in User.objects.filter(is_active=True).prefetch_related("groups")
                if {g.name.lower() for g in u.groups.all()} & lowered]

    def people(self) -> None:
        for name, group in EXTRA_PEOPLE.items():
            user, created = User.objects.get_or_create(username=name, defaults={"email": f"{name}@jitad.test"})
            if created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
            user.groups.add(Group.objects.get_or_create(name=group)[0])

    # --- one request and its grant ---------------------------------------------------------
    def request(self, user, target, policy, created, *, outcome="grant", minutes=None, late=False, failed=False):
        rng = self.rng
        kw = {"requester": user, "target": target, "policy": policy, "created_at": created,
              "justification": f"{MARKER}routine administration of {target.name}",
              "duration_minutes": minutes or rng.choice(
                  [m for m in (30, 60, 60, 90, 120, 240) if m <= policy.max_duration_minutes] or [policy.max_duration_minutes]),
              "approvals_required": 0 if policy.approval_mode == "auto" else policy.approvals_required,
              "ticket": f"CHG{rng.randrange(10**5, 10**6):06d}" if policy.require_ticket else "",
              **_mfa("totp", created - timedelta(seconds=rng.randint(5, 60)))}
        approvers = [] if policy.approval_mode == "auto" else self.approvers(policy, user)
        if outcome == "timeout" or (approvers == [] and policy.approval_mode != "auto"):
            r = AccessRequest.objects.create(state=AccessRequest.State.EXPIRED_UNAPPROVED,
                                             pending_until=created + timedelta(minutes=policy.pending_timeout_minutes),
                                             decided_at=created + timedelta(minutes=policy.pending_timeout_minutes), **kw)
            self.counts["requests"] += 1
            return r
        decided = created + timedelta(seconds=rng.uniform(0.5, 3))
        state = AccessRequest.State.DENIED if outcome == "deny" else AccessRequest.State.APPROVED
        r = AccessRequest.objects.create(state=state, **kw)
        for approver, group in approvers:
            decided += timedelta(seconds=min(6 * 3600, rng.lognormvariate(5.9, 1.1)))
            Approval.objects.create(request=r, approver=approver, approver_groups=[group], at=decided,
                                    decision="deny" if outcome == "deny" else "approve",
                                    comment="" if outcome != "deny" else "not without a change ticket",
                                    **_mfa(rng.choice(["totp", "webauthn"]), decided - timedelta(seconds=8)))
            if outcome == "deny":
                break
        AccessRequest.objects.filter(pk=r.pk).update(decided_at=decided)
        self.counts["requests"] += 1
        if outcome == "deny":
            return r
        self.grant(r, decided, late=late, failed=failed)
        return r

    def approvers(self, policy, requester) -> list[tuple]:
        chosen = []
        for group in (policy.approver_groups or [])[: max(1, policy.approvals_required)]:
            people = [u for u in self.members([group]) if u != requester and u not in [c for c, _ in chosen]]
            if people:
                chosen.append((self.rng.choice(people), group))
        return chosen

    def grant(self, r, decided, *, late=False, failed=False) -> Grant:
        rng = self.rng
        activated = decided + timedelta(seconds=rng.uniform(0.3, 2.5))
        expires = activated + timedelta(minutes=r.duration_minutes)
        released = rng.random() < 0.15
        requested = activated + (expires - activated) * rng.uniform(0.2, 0.8) if released else None
        due = requested or expires
        if failed:
            removed = due + timedelta(hours=rng.uniform(0.5, 5))
        elif late:
            removed = due + timedelta(seconds=rng.uniform(90, 1800))
        else:
            removed = due + timedelta(seconds=rng.uniform(0.2, 6))
        removed = min(removed, self.now - timedelta(minutes=5))
        g = Grant.objects.create(
            request=r, user=r.requester, target=r.target, group_dn=r.target.group_dn, state=Grant.State.REVOKED,
            created_at=decided, activated_at=activated, expires_at=expires, revoke_requested_at=requested,
            revoke_requested_by=r.requester.username if released else "",
            revoke_reason=Grant.RevokeReason.RELEASED if released else Grant.RevokeReason.EXPIRED,
            revoked_at=removed, membership_removed=True, attempts=3 if failed else 0,
            host_verified_at=activated if r.target.winrm_url else None,
            host_revoke_check=(Grant.HostCheck.VERIFIED if rng.random() < 0.95 else Grant.HostCheck.FAILED)
            if r.target.winrm_url else "",
        )
        self.counts["grants"] += 1
        self.counts["late"] += int(late)
        if failed:
            self.counts["revoke_failed"] += 1
            _audit_at(due + timedelta(seconds=45), actor="system:engine", action="grant.revoke_failed",
                      object_type="grant", object_id=g.pk, before="revoking", after="revoke_failed",
                      reason="DirectoryUnavailable: no domain controller answered (demo history)")
            _audit_at(removed, actor="system:sweeper", action="grant.revoked", object_type="grant", object_id=g.pk,
                      before="revoke_failed", after="revoked", reason="removed on a later attempt (demo history)")
        return g

    # --- the estate over time ----------------------------------------------------------------
    def scans(self, targets, start) -> None:
        """Weekly scans of the servers, standing admins found at first and removed over the weeks."""
        rng = self.rng
        for t in targets:
            if t.kind != Target.Kind.SERVER:
                continue
            found = rng.randint(4, 8)
            sids = [f"S-1-5-21-1004336348-1177238915-682003330-{5000 + t.pk * 20 + i}" for i in range(found)]
            gone = {sid: start + timedelta(days=rng.uniform(3, self.days - 5)) for sid in sids[: found - rng.randint(0, 2)]}
            for sid in sids:
                StandingAdmin.objects.create(target=t, sid=sid, name=f"JITAD\\legacy-admin-{sid[-4:]}",
                                             member_class="user", first_seen_at=start, last_seen_at=gone.get(sid, start),
                                             resolved_at=gone.get(sid))
            when = start
            while when < self.now - timedelta(days=1):
                standing = sum(1 for sid in sids if gone.get(sid) is None or gone[sid] > when)
                HostScan.objects.create(target=t, started_at=when, finished_at=when + timedelta(seconds=2), ok=True,
                                        members=standing + 1, standing=standing)
                self.counts["scans"] += 1
                when += timedelta(days=7)

    def incidents(self, targets, start) -> None:
        """Out-of-band members removed by the reconciler, a held removal, and a break-glass checkout."""
        servers = [t for t in targets if t.kind == Target.Kind.SERVER] or targets
        victim = servers[-1]
        for day, who in ((start + timedelta(days=23, hours=2, minutes=14), "mallory"),
                         (start + timedelta(days=51, hours=21, minutes=3), "svc-backup")):
            member = f"CN={who},CN=Users,DC=jitad,DC=test"
            _audit_at(day, actor="system:reconciler", action="membership.removed_unbacked", object_type="group",
                      object_id=victim.group_dn[:64], before="member", after="removed",
                      reason="member of a JIT group without a grant", data={"group": victim.group_dn, "member": member})
        held = start + timedelta(days=40, hours=11)
        HeldRemoval.objects.create(group_dn=victim.group_dn, member_dn="CN=old-ops,CN=Users,DC=jitad,DC=test",
                                   member_key="cn=old-ops,cn=users,dc=jitad,dc=test", batch="00000000-0000-0000-0000-000000000015",
                                   reason="held: a large share of the group at once (demo history)",
                                   state=HeldRemoval.State.DONE, held_at=held, decided_by="dave",
                                   decided_at=held + timedelta(minutes=25), done_at=held + timedelta(minutes=26),
                                   outcome="removed")
        for t in targets:
            baseline_reading_record(group_dn=t.group_dn, members=2 if t.kind == Target.Kind.SERVER else 4,
                                    unbacked=2 if t.kind == Target.Kind.SERVER else 3, read_at=start)
        account = SealedAccount.objects.order_by("name").first()
        holder = User.objects.filter(username="carol").first() or User.objects.first()
        if account is not None and holder is not None:
            opened = start + timedelta(days=self.days - 19, hours=3, minutes=12)
            Checkout.objects.create(
                account=account, holder=holder, purpose=Checkout.Purpose.USE, mode=Checkout.Mode.EMERGENCY,
                incident_ref="INC004242", reason=f"{MARKER}DCs refused every jitad bind after a certificate rollover",
                duration_minutes=120, approvals_required=0, state=Checkout.State.CLOSED, requested_at=opened,
                decided_at=opened, opened_at=opened + timedelta(seconds=20), expires_at=opened + timedelta(hours=2),
                revealed_at=opened + timedelta(seconds=30), checkin_at=opened + timedelta(minutes=84),
                checkin_kind=Checkout.CheckinKind.HOLDER, checkin_by=holder.username,
                closed_at=opened + timedelta(minutes=86), **_mfa("webauthn", opened - timedelta(seconds=15)))

    def run(self) -> dict:
        rng, now = self.rng, self.now
        start = (now - timedelta(days=self.days)).replace(hour=0, minute=0, second=0, microsecond=0)
        targets = list(Target.objects.filter(enabled=True).order_by("name"))
        self.people()
        pairs = []  # (person, target, policy) that may be requested
        for t in targets:
            policy = Policy.objects.filter(enabled=True, targets=t).order_by("priority", "name").first()
            if policy is not None:
                pairs += [(u, t, policy) for u in self.members(policy.eligible_groups) if u.username != "gina"]
        if not pairs:
            return self.counts
        self.scans(targets, start)
        self.incidents(targets, start)
        erin = [(u, t, p) for u, t, p in pairs if u.username == "erin"]
        frank = [(u, t, p) for u, t, p in pairs if u.username == "frank"]
        for d in range(self.days - 1):  # whole days, every grant over before now
            day = start + timedelta(days=d)
            weekend = day.weekday() >= 5
            for _ in range(rng.randint(0, 1) if weekend else rng.randint(3, 7)):
                user, target, policy = rng.choice([p for p in pairs if p[0].username not in ("erin", "frank")] or pairs)
                off = weekend or rng.random() < 0.08
                hour = rng.choice([0, 1, 2, 3, 5, 6, 20, 21, 22, 23]) if off else rng.uniform(8, 17.5)
                created = day + timedelta(hours=hour, minutes=rng.uniform(0, 59))
                roll = rng.random()
                outcome = "deny" if roll < 0.06 and policy.approval_mode != "auto" else \
                    "timeout" if roll < 0.09 and policy.approval_mode != "auto" else "grant"
                self.request(user, target, policy, created, outcome=outcome, late=rng.random() < 0.05,
                             failed=rng.random() < 0.025)
            if erin and not weekend and d >= self.days - 25:  # always on: most of every working day
                user, target, policy = erin[0]
                self.request(user, target, policy, day + timedelta(hours=8, minutes=rng.uniform(0, 20)),
                             minutes=min(policy.max_duration_minutes, 240))
                self.request(user, target, policy, day + timedelta(hours=12, minutes=rng.uniform(30, 50)),
                             minutes=min(policy.max_duration_minutes, 240))
        if frank:  # a burst of refusals one evening
            user, target, policy = frank[0]
            burst = start + timedelta(days=self.days - 12, hours=19, minutes=5)
            for i in range(5):
                self.request(user, target, policy, burst + timedelta(minutes=6 * i),
                             outcome="deny" if policy.approval_mode != "auto" else "grant")
        return self.counts


def history_seed(*, days: int = 75, now: datetime | None = None, seed: int = 15) -> dict:
    """Write the demo history (once) and back-fill the daily snapshots; what was written, by kind."""
    now = now or timezone.now()
    if AccessRequest.objects.filter(justification__startswith=MARKER).exists():
        return {"already": True}
    with transaction.atomic():
        counts = _History(days=days, now=now, rng=random.Random(seed)).run()
    counts["snapshots"] = snapshots_record(today=now.astimezone(dt_timezone.utc).date())
    return counts
