"""Notice e-mails wait while revocations run: removals come first (a mass expiry), their e-mails follow together.

A batch of e-mails that finds the engine's ``revoking`` pulse younger than a second hands
its deliveries back, unclaimed and unattempted, and starts one ``resume`` chain
(single-flight through a lease). The chain looks again every second; once no revocation
has run for a second (or the oldest notice waited JITAD_NOTICES_WAIT_SECONDS), it claims
everything waiting for one batch message, each person's notices of one kind in one e-mail
(``email_batch``). The periodic check (``delivery.deliveries_resend``) is the safety net.
"""
import logging

from django.conf import settings
from django.db.models import Min, Q
from django.utils import timezone

from jitad.engine import claims, queue
from jitad.engine.selectors import pulse_at
from jitad.engine.services import REVOKING, lease_release, lease_take

from ..models import Delivery
from .compose import RESUME, RESUME_HOLD_SECONDS, RESUME_LEASE, RESUME_SECONDS, resume_soon
from .delivery import _claim_for_message, _startable

log = logging.getLogger(__name__)

__all__ = ["deliveries_resume"]

QUIET_SECONDS = 1.0  # revocations run while the engine's revoking pulse is younger than this
RESUME_MAX = 5000  # e-mails one look sends on (as one batch message); more: it looks again at once


def _revocations_running(now) -> bool:
    at = pulse_at(name=REVOKING)
    return at is not None and (now - at).total_seconds() < QUIET_SECONDS


def _waited_enough(qs, now) -> bool:
    oldest = qs.aggregate(first=Min("notification__created_at"))["first"]
    return oldest is None or (now - oldest).total_seconds() >= settings.JITAD_NOTICES_WAIT_SECONDS


def _wait_for_revocations(emails: list[int], token) -> bool:
    """While revocations run (the engine's ``revoking`` pulse, a mass expiry), hand these e-mails back to wait.

    Removals come first: a notice e-mail waits until no revocation has run for a second, at most
    JITAD_NOTICES_WAIT_SECONDS from its notice. The deliveries are handed back unclaimed and
    unattempted (their rows say nothing happened), and one ``resume`` chain (single-flight, a lease)
    sends them all together when the revocations stop, each person's notices of one kind in one
    e-mail; the periodic check is the safety net (a message the broker refused). True if they were
    handed back.
    """
    now = timezone.now()
    if settings.JITAD_NOTICES_WAIT_SECONDS <= 0 or not _revocations_running(now):
        return False
    if _waited_enough(Delivery.objects.filter(id__in=emails), now):
        return False
    handed = claims.release(Delivery, emails, token)
    if resume_soon():
        log.info("%d notice e-mail(s) wait while revocations run", handed)
    else:
        log.warning("%d notice e-mail(s) wait for the periodic check (the broker refused the message)", handed)
    return True


def deliveries_resume(*, holder: str = "") -> int:
    """Send the notice e-mails that waited while revocations ran, once they stopped (or waited long enough).

    They go as one batch message (a chunk per SMTP session, a person's notices of one kind in one
    e-mail). While revocations still run, the chain (``holder``, its lease) looks again a moment
    later. Returns how many were sent on.
    """
    now = timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    waiting = _startable(now).filter(free, channel=Delivery.Channel.EMAIL)
    if not lease_take(name=RESUME_LEASE, holder=holder, seconds=RESUME_HOLD_SECONDS):
        return 0  # another chain took over (this message waited past the lease): it sends them
    if waiting.exists() and _revocations_running(now) and not _waited_enough(waiting, now) and \
            queue.enqueue(RESUME, holder, countdown=RESUME_SECONDS):
        return 0  # still running: look again in a moment
    sent = _claim_for_message(waiting.order_by("next_attempt_at"), limit=RESUME_MAX, due=now)
    if len(sent) == RESUME_MAX and queue.enqueue(RESUME, holder):
        return len(sent)  # more may wait: the chain goes on at once
    lease_release(name=RESUME_LEASE, holder=holder)  # e-mails that wait from now on start a chain of their own
    if waiting.exists():  # handed back while this chain was ending: a chain of their own, not the periodic check
        resume_soon()
    return len(sent)
