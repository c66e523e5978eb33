"""Hand-built rows for the KPI tests: targets, policies, people, requests and grants at chosen times."""
import itertools
from datetime import datetime, timedelta, timezone as dt_timezone

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from jitad.elevation.models import AccessRequest, Approval, Grant, HostScan, Policy, StandingAdmin, Target

_n = itertools.count(1)
T0 = datetime(2026, 11, 2, 0, 0, tzinfo=dt_timezone.utc)  # a Monday


def at(days=0, hours=0, minutes=0, seconds=0) -> datetime:
    """A moment relative to T0 (Monday 2 November 2026, 00:00 UTC)."""
    return T0 + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def target(name=None, *, tier=1, policy=None, mode="manual", eligible_users=(), eligible_groups=(), winrm=False):
    name = name or f"SRV{next(_n):04d}"
    t = Target.objects.create(name=name, tier=tier, group_dn=f"CN=JIT-{name},OU=JIT,DC=jitad,DC=test",
                              winrm_url="https://%s:5986/wsman" % name.lower() if winrm else "")
    p = Policy.objects.filter(name=policy).first() if policy else None
    if p is None:
        p = Policy.objects.create(name=policy or f"p-{name.lower()}", approval_mode=mode,
                                  eligible_users=list(eligible_users), eligible_groups=list(eligible_groups))
    p.targets.add(t)
    return t


def person(name=None, *, groups=()):
    user = get_user_model().objects.create_user(username=name or f"user{next(_n)}", password=None)
    for g in groups:
        user.groups.add(Group.objects.get_or_create(name=g)[0])
    return user


def request(user, tgt, *, created, state=AccessRequest.State.APPROVED, decided=None, approvers=(), groups=("admins",),
            policy=None):
    """A request; ``approvers`` [(person, decided_at)] record manual decisions (none: automatic)."""
    pol = policy or tgt.policies.first()
    r = AccessRequest.objects.create(requester=user, target=tgt, policy=pol, duration_minutes=60, state=state,
                                     created_at=created, decided_at=decided)
    for who, when in approvers:
        Approval.objects.create(request=r, approver=who, decision="approve" if state != "denied" else "deny",
                                approver_groups=list(groups), at=when)
    return r


def grant(user, tgt, *, activated, expires, revoked=None, state=None, created=None, revoke_requested=None,
          host_check="", request_kw=None):
    """A grant from ``activated`` to ``expires``, removed at ``revoked`` (None: still there)."""
    created = created or activated - timedelta(seconds=5)
    r = request(user, tgt, created=created, decided=created + timedelta(seconds=1), **(request_kw or {}))
    state = state or (Grant.State.REVOKED if revoked else Grant.State.ACTIVE)
    return Grant.objects.create(request=r, user=user, target=tgt, group_dn=tgt.group_dn, state=state,
                                created_at=created, activated_at=activated, expires_at=expires, revoked_at=revoked,
                                revoke_requested_at=revoke_requested, host_revoke_check=host_check)


def scan(tgt, *, when, standing=0):
    return HostScan.objects.create(target=tgt, started_at=when, finished_at=when, ok=True, standing=standing)


def standing_admin(tgt, sid, *, first_seen, resolved=None):
    return StandingAdmin.objects.create(target=tgt, sid=sid, name=sid, first_seen_at=first_seen, last_seen_at=first_seen,
                                        resolved_at=resolved)
