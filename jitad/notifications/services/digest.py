"""Digests: routine security events that waited (JITAD_ALERT_DIGEST_MINUTES) go out as one message per destination.

``alert_raise(..., digest_kind=...)`` queues a routine event as a ``DigestEntry`` in the
caller's transaction. Beat runs ``digests_send`` every JITAD_DELIVERY_CHECK_INTERVAL: a
destination whose oldest waiting entry is a whole period old gets one notification that
counts the entries by kind and names the people, and that notification is delivered
like any other (a delivery per URL, claimed, retried, recorded). So a destination hears
of routine events at most once per period, and never later than a period plus a check.
"""
import logging
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.urls import reverse
from django.utils import timezone

from jitad.humantime import when

from ..models import DigestEntry, Notification
from .compose import notification_create

log = logging.getLogger(__name__)
# Entries one digest takes at most; more wait for the next check (they are due already).
DIGEST_MAX = 5000
# People named per kind; the rest are counted (every entry is in the admin and the audit trail).
NAMES_MAX = 300


class _Taken(Exception):
    """Another run recorded a digest for some of these entries first."""


def _body(entries: list[DigestEntry], minutes: float) -> str:
    by_kind: dict[str, list[str]] = defaultdict(list)
    for e in entries:
        by_kind[e.kind].append(e.person or "?")
    lines = [
        f"{len(entries)} routine security event(s) since {when(entries[0].created_at)}, "
        f"sent together (JITAD_ALERT_DIGEST_MINUTES={minutes:g}); each is in the audit trail.",
        "",
    ]
    for kind, people in sorted(by_kind.items(), key=lambda item: (-len(item[1]), item[0])):
        names = list(dict.fromkeys(people))
        shown = ", ".join(names[:NAMES_MAX])
        more = f" and {len(names) - NAMES_MAX} more" if len(names) > NAMES_MAX else ""
        lines += [f"{kind}: {len(people)}", f"  {shown}{more}"]
    lines += ["", "If one of these was not done by the person named, treat it as an alert of its own: "
                  "look it up in the audit trail and act on that account now."]
    return "\n".join(lines)


def _digest_one(*, destination: str, now) -> Notification | None:
    with transaction.atomic():
        ids = list(
            DigestEntry.objects.select_for_update(skip_locked=True)
            .filter(digest__isnull=True, destination=destination, created_at__lte=now)
            .order_by("id").values_list("id", flat=True)[:DIGEST_MAX]
        )
        if not ids:
            return None
        entries = list(DigestEntry.objects.filter(id__in=ids).order_by("created_at", "id"))
        minutes = settings.JITAD_ALERT_DIGEST_MINUTES
        note = notification_create(
            event="alert.digest", severity=Notification.Severity.INFO,
            subject=f"Digest: {len(entries)} routine security event(s)",
            body=_body(entries, minutes), destinations=[destination], object_type="digest",
            link=settings.JITAD_BASE_URL + reverse("admin:notifications_digestentry_changelist"),
        )
        # The note holds one delivery per URL of the destination (or a failed one saying it has none).
        if DigestEntry.objects.filter(id__in=ids, digest__isnull=True).update(digest=note) != len(ids):
            raise _Taken
        Notification.objects.filter(pk=note.pk).update(object_id=str(note.pk))
    log.info("digest %s to %s: %d routine event(s)", note.pk, destination, len(ids))
    return note


def digests_send(*, now=None) -> list[Notification]:
    """Record one digest per destination whose oldest waiting entry is a period old; delivered after commit.

    With JITAD_ALERT_DIGEST_MINUTES at 0 (digests turned off) whatever still waits goes now.
    Safe to run twice at once: an entry belongs to one digest only.
    """
    now = now or timezone.now()
    period = timedelta(minutes=settings.JITAD_ALERT_DIGEST_MINUTES)
    due = (DigestEntry.objects.filter(digest__isnull=True).values("destination")
           .annotate(first=Min("created_at")).filter(first__lte=now - period).order_by("destination"))
    sent = []
    for row in due:
        try:
            note = _digest_one(destination=row["destination"], now=now)
        except _Taken:
            log.info("digest to %s recorded by another run", row["destination"])
            continue
        if note is not None:
            sent.append(note)
    return sent
