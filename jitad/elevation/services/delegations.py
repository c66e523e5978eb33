"""Deputies: an approver hands their own approval right to a named person for a period, and ends it early.

Rules (docs/approvals.md, "Deputies"): only an approver in their own right may delegate,
and only their own right (a right received as a deputy is never passed on); the deputy is
another active person; the period starts now or later (a minute of clock skew allowed) and
lasts at most JITAD_DELEGATION_MAX_DAYS. The delegator, the deputy (declining) or a
superuser may end it early. Both people are told of every change, and each is audited
with the MFA step behind it.
"""
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from jitad.accounts.mfa import MfaStep, mfa_step_audit, mfa_step_fields
from jitad.audit.services import audit_record
from jitad.humantime import when

from ..errors import RequestRefused
from ..models import Delegation
from ..selectors.delegations import approver_in_own_right, delegation_can_revoke, delegation_state
from .notices_delegations import notice_delegation_created, notice_delegation_revoked

REASON_MAX = 2000
CLOCK_SKEW = timedelta(minutes=1)


def _audit(d: Delegation, *, actor: str, action: str, before: str, after: str, reason: str = "", **data) -> None:
    audit_record(
        actor=actor, action=action, object_type="delegation", object_id=str(d.pk), before=before, after=after,
        reason=reason,
        data={"delegator": d.delegator.get_username(), "deputy": d.deputy.get_username(),
              "starts_at": d.starts_at.isoformat(), "ends_at": d.ends_at.isoformat(), **data},
    )


def _check_period(starts_at, ends_at, now):
    if starts_at is None:
        starts_at = now
    if timezone.is_naive(starts_at) or timezone.is_naive(ends_at):
        raise RequestRefused("period_invalid", "Give the start and the end with a time zone.")
    if starts_at < now - CLOCK_SKEW:
        raise RequestRefused("starts_in_past", "A delegation cannot start in the past; leave the start empty for now.")
    if starts_at < now:
        starts_at = now  # within the allowed skew: it starts now
    if ends_at <= starts_at:
        raise RequestRefused("ends_before_start", "A delegation must end after it starts.")
    longest = settings.JITAD_DELEGATION_MAX_DAYS
    if ends_at - starts_at > timedelta(days=longest):
        raise RequestRefused("delegation_too_long", f"A delegation lasts at most {longest} days; make a new one later "
                                                    "if it must last longer.")
    return starts_at, ends_at


def delegation_create(*, delegator, deputy, ends_at, starts_at=None, reason: str = "", actor=None,
                      mfa: MfaStep | None = None) -> Delegation:
    """Let ``deputy`` decide in ``delegator``'s place from ``starts_at`` (now) until ``ends_at``.

    ``actor`` is the person acting (the delegator; only a superuser may act for someone
    else, from the admin, and the audit names them). ``mfa`` is the verified step behind it.
    """
    actor = actor or delegator
    if actor.pk != delegator.pk and not (actor.is_active and actor.is_superuser):
        raise RequestRefused("not_delegator", "You may delegate only your own approval right.")
    reason = (reason or "").strip()
    if len(reason) > REASON_MAX:
        raise RequestRefused("reason_too_long", f"A reason is limited to {REASON_MAX} characters.")
    if deputy is None or not deputy.is_active:
        raise RequestRefused("deputy_unknown", "The deputy must be an active person in jitad.")
    if deputy.pk == delegator.pk:
        raise RequestRefused("deputy_self", "Nobody can be their own deputy.")
    # Only the delegator's own right counts: a right received as a deputy is never passed on.
    if not approver_in_own_right(user=delegator):
        raise RequestRefused("not_approver", f"{delegator.get_username()} is not an approver under any policy or "
                                             "target, so has no approval right to delegate.")
    now = timezone.now()
    starts_at, ends_at = _check_period(starts_at, ends_at, now)
    with transaction.atomic():
        # The delegator's row is the lock: two creations for the same pair cannot both pass the overlap check.
        get_user_model().objects.select_for_update().filter(pk=delegator.pk).first()
        overlap = (Delegation.objects.filter(delegator=delegator, deputy=deputy, revoked_at__isnull=True,
                                             starts_at__lt=ends_at, ends_at__gt=starts_at).order_by("starts_at").first())
        if overlap is not None:
            raise RequestRefused(
                "delegation_overlaps",
                f"{deputy.get_username()} is already {delegator.get_username()}'s deputy from {when(overlap.starts_at)} "
                f"to {when(overlap.ends_at)} (delegation #{overlap.pk}): end it first, or choose another period.",
            )
        d = Delegation.objects.create(delegator=delegator, deputy=deputy, starts_at=starts_at, ends_at=ends_at,
                                      reason=reason, created_at=now, created_by=actor.get_username(),
                                      **mfa_step_fields(mfa))
        by = {} if actor.pk == delegator.pk else {"on_behalf_of": delegator.get_username()}
        _audit(d, actor=actor.get_username(), action="delegation.created", before="",
               after=delegation_state(d, now), reason=reason, **by, **mfa_step_audit(mfa))
        notice_delegation_created(delegation=d, by=actor)
    return d


def delegation_revoke(*, delegation: Delegation, actor, reason: str = "", mfa: MfaStep | None = None) -> Delegation:
    """End ``delegation`` now: by its delegator, its deputy (declining) or a superuser."""
    reason = (reason or "").strip()
    if len(reason) > REASON_MAX:
        raise RequestRefused("reason_too_long", f"A reason is limited to {REASON_MAX} characters.")
    with transaction.atomic():
        d = (Delegation.objects.select_for_update(of=("self",)).select_related("delegator", "deputy")
             .get(pk=delegation.pk))
        if not delegation_can_revoke(user=actor, delegation=d):
            raise RequestRefused("not_party", "Only the delegator, the deputy or a superuser may end a delegation.")
        now = timezone.now()
        before = delegation_state(d, now)
        if before == "revoked":
            raise RequestRefused("already_revoked", f"Delegation #{d.pk} was already ended by {d.revoked_by}.")
        if before == "ended":
            raise RequestRefused("delegation_ended", f"Delegation #{d.pk} has already run its course.")
        d.revoked_at = now
        d.revoked_by = actor.get_username()
        d.save(update_fields=["revoked_at", "revoked_by"])
        role = "delegator" if actor.pk == d.delegator_id else "deputy" if actor.pk == d.deputy_id else "superuser"
        _audit(d, actor=actor.get_username(), action="delegation.revoked", before=before, after="revoked",
               reason=reason, by_role=role, **mfa_step_audit(mfa))
        notice_delegation_revoked(delegation=d, by=actor, reason=reason)
    delegation.revoked_at, delegation.revoked_by = d.revoked_at, d.revoked_by
    return d
