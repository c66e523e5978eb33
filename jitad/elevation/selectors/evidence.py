"""Reads of session evidence: a grant's evidence window, the grants to collect for, the pulls that are due."""
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet

from ..models import EvidencePull, Grant, SessionEvent

# States in which a grant's membership was (or may still be) in AD after it went live.
COLLECTED_STATES = (Grant.State.ACTIVE, Grant.State.UNVERIFIED, Grant.State.REVOKING, Grant.State.REVOKE_FAILED,
                    Grant.State.REVOKED)


def grant_start(grant: Grant) -> datetime:
    """When the grant's right could first be used: its scheduled start, else its creation."""
    return grant.starts_at or grant.created_at


def grant_end(grant: Grant) -> datetime:
    """When the grant ended, or will: its expiry, or its revocation when that came first (an early release)."""
    return min(grant.revoked_at, grant.expires_at) if grant.revoked_at else grant.expires_at


def collect_until(grant: Grant) -> datetime:
    """The end of the grant's evidence window: JITAD_EVIDENCE_AFTER_MINUTES past its end."""
    return grant_end(grant) + timedelta(minutes=settings.JITAD_EVIDENCE_AFTER_MINUTES)


def grants_without_pull(now: datetime) -> QuerySet:
    """Grants on WinRM-managed targets that went live, whose evidence window is not over, with no pull yet."""
    after = timedelta(minutes=settings.JITAD_EVIDENCE_AFTER_MINUTES)
    return (
        Grant.objects.filter(state__in=COLLECTED_STATES, evidence_pull__isnull=True)
        .exclude(target__winrm_url="")
        .filter(Q(activated_at__isnull=False) | Q(unverified_since__isnull=False))
        .filter(Q(user_sid__gt="") | Q(account_sid__gt=""))
        .filter(Q(revoked_at__isnull=True) | Q(revoked_at__gt=now - after))
        .filter(expires_at__gt=now - after - timedelta(days=1))
    )


def pulls_due(now: datetime) -> QuerySet:
    """Pulls not finished, held by nobody, whose time has come."""
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    ready = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    return EvidencePull.objects.filter(free, ready, finished_at__isnull=True).order_by("next_attempt_at", "pk")


def grant_used(grant: Grant) -> bool:
    """Whether a logon (4624) of the grant's accounts was stored inside its window."""
    return SessionEvent.objects.filter(grant=grant, event_id=SessionEvent.Kind.LOGON, after_end=False).exists()


def other_grant_covers(grant: Grant, at: datetime) -> bool:
    """Whether the same person holds another grant of the same target at ``at`` (a logon then is theirs by right)."""
    others = Grant.objects.filter(user_id=grant.user_id, target_id=grant.target_id,
                                  state__in=(*COLLECTED_STATES, Grant.State.GRANTING)).exclude(pk=grant.pk)
    return any(grant_start(g) <= at <= grant_end(g) for g in others.filter(created_at__lte=at))
