"""The review sweep (beat, every JITAD_REVIEW_SWEEP_INTERVAL): open what is due, remind, close at the
deadline, and apply removals until they are done. Single-flight, and idempotent: a second run finds
nothing left to do."""
import logging
import os
import socket
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jitad import directory
from jitad.audit.services import audit_record
from jitad.engine.services import lease_release, lease_take

from ..models import ReviewCampaign, ReviewItem
from ..selectors import campaigns_open, campaigns_to_close, items_to_apply, policies_due, reviewers_of
from .campaigns import ACTOR, campaign_close, campaign_open
from .notices import notice_campaign_reminder
from .people import eligible_people_read
from .removals import item_apply

log = logging.getLogger(__name__)
LEASE = "reviews-sweep"
APPLY_BATCH = 200


def reminders_send(*, now=None) -> int:
    """Remind reviewers of each open campaign as each ``remind_before_minutes`` passes (once each)."""
    now = now or timezone.now()
    sent = 0
    for campaign in campaigns_open().filter(deadline__gt=now):
        rules = campaign.rules or {}
        with transaction.atomic():
            row = ReviewCampaign.objects.select_for_update().get(pk=campaign.pk)
            due = [m for m in rules.get("remind_before_minutes", [])
                   if m not in row.reminders_sent and now >= row.deadline - timedelta(minutes=m)]
            if not due:
                continue
            row.reminders_sent = sorted({*row.reminders_sent, *due}, reverse=True)
            row.save(update_fields=["reminders_sent"])
            undecided = list(ReviewItem.objects.filter(campaign=campaign, decision=ReviewItem.Decision.UNDECIDED)
                             .values_list("username", flat=True))
            names = {u.lower() for u in undecided}
            # Only reviewers with something to decide: an item about themselves is not theirs.
            waiting = [r for r in reviewers_of(campaign=campaign) if names - {r.get_username().lower()}]
            if undecided and waiting:
                notice_campaign_reminder(campaign=campaign, reviewers=waiting, undecided=len(undecided))
            audit_record(actor=ACTOR, action="review.reminded", object_type="review", object_id=campaign.pk,
                         data={"before_minutes": due, "undecided": len(undecided),
                               "reviewers": [r.get_username() for r in waiting]})
            sent += 1
    return sent


def campaigns_open_due(*, now=None) -> list[ReviewCampaign]:
    """Open the next campaign of every policy whose review is due; a DC that fails leaves it to the next sweep."""
    now = now or timezone.now()
    opened = []
    for policy in policies_due(now=now):
        try:
            read = eligible_people_read(policy=policy, rules=policy.review)
        except directory.DirectoryError as e:
            log.warning("review of policy %s not opened: the directory failed: %s", policy.name, e)
            continue
        campaign = campaign_open(policy=policy, read=read, now=now)
        if campaign is not None:
            opened.append(campaign)
    return opened


def removals_apply(*, limit: int = APPLY_BATCH) -> int:
    """Apply the removals not yet done; how many were completed."""
    done = 0
    for item in items_to_apply(limit=limit):
        if item_apply(item=item):
            done += 1
    return done


def reviews_sweep(*, now=None) -> dict | None:
    """One sweep; None when another process is running one."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not lease_take(name=LEASE, holder=holder, seconds=max(300.0, 5 * settings.JITAD_REVIEW_SWEEP_INTERVAL)):
        log.info("review sweep skipped: another process is running it")
        return None
    try:
        now = now or timezone.now()
        opened = campaigns_open_due(now=now)
        reminded = reminders_send(now=now)
        closed = sum(1 for c in campaigns_to_close(now=now) if campaign_close(campaign=c, now=now))
        applied = removals_apply()
        return {"opened": len(opened), "reminded": reminded, "closed": closed, "applied": applied}
    finally:
        lease_release(name=LEASE, holder=holder)
