"""Taking a policy's eligibility away from one person, and giving it back; both audited.

An exclusion is what a review's removal leaves behind (docs/approvals.md, "Eligibility
reviews"): every eligibility answer (``selectors.eligibility``) skips the policy for that
person from the moment it exists, whatever their AD groups say. Lifting it restores the
eligibility their groups give them. One live exclusion per (policy, person): excluding
twice is the same exclusion. The person's requests still waiting for a decision under the
policy are cancelled with it (nobody approves what they may no longer ask for); grants
already running end as they would have.
"""
from django.db import IntegrityError, transaction
from django.utils import timezone

from jitad.audit.services import audit_record

from ..models import AccessRequest, EligibilityExclusion, Policy
from .requests.closing import _close_each


def _actor(who) -> str:
    return who if isinstance(who, str) else who.get_username()


def eligibility_exclude(*, policy: Policy, user, actor, reason: str = "", source: str = "review",
                        source_id: int | None = None) -> EligibilityExclusion:
    """``user`` may no longer request under ``policy``; the live exclusion (an existing one is returned as it is)."""
    with transaction.atomic():
        live = EligibilityExclusion.objects.filter(policy=policy, user=user, lifted_at__isnull=True).first()
        if live is not None:
            return live
        try:
            with transaction.atomic():
                row = EligibilityExclusion.objects.create(policy=policy, user=user, reason=reason, source=source,
                                                          source_id=source_id, created_by=_actor(actor)[:150])
        except IntegrityError:  # excluded by another process at the same moment: theirs stands
            return EligibilityExclusion.objects.get(policy=policy, user=user, lifted_at__isnull=True)
        audit_record(actor=_actor(actor), action="eligibility.excluded", object_type="eligibility_exclusion",
                     object_id=row.pk, before="eligible", after="excluded", reason=reason,
                     data={"policy": policy.name, "user": user.get_username(), "source": source, "source_id": source_id})
        pending = list(AccessRequest.objects.filter(requester=user, policy=policy, state=AccessRequest.State.PENDING)
                       .values_list("id", flat=True))
        _close_each(pending, state=AccessRequest.State.CANCELLED, actor=_actor(actor), action="request.cancelled",
                    reason=f"no longer eligible under {policy.name}" + (f": {reason}" if reason else ""),
                    now=timezone.now(), tell_requester=False)
    return row


def eligibility_exclusion_lift(*, exclusion: EligibilityExclusion, actor, reason: str = "") -> bool:
    """Give the eligibility back: True if this call lifted it, False if it was already lifted."""
    with transaction.atomic():
        row = EligibilityExclusion.objects.select_for_update().select_related("policy", "user").get(pk=exclusion.pk)
        if row.lifted_at is not None:
            return False
        row.lifted_at, row.lifted_by = timezone.now(), _actor(actor)[:150]
        row.save(update_fields=["lifted_at", "lifted_by"])
        audit_record(actor=_actor(actor), action="eligibility.exclusion_lifted", object_type="eligibility_exclusion",
                     object_id=row.pk, before="excluded", after="eligible", reason=reason,
                     data={"policy": row.policy.name, "user": row.user.get_username()})
    exclusion.lifted_at, exclusion.lifted_by = row.lifted_at, row.lifted_by
    return True
