"""What requesters and approvers are told, and when.

The elevation services call these inside the transaction that changes the state, so a
notice exists exactly when the change does and is sent (by jitad.notifications) after
commit. Messages are short: what happened, what to do, a link to the exact page. They
never carry a secret; a justification is quoted, truncated.
"""
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from jitad.humantime import minutes_text, when
from jitad.notifications.models import Notification
from jitad.notifications.services import (
    APPROVALS,
    Outgoing,
    named_destination,
    notification_create,
    notifications_create,
)

from ..models import AccessRequest, Approval, Grant
from ..selectors.approvers import approvers_to_notify

log = logging.getLogger(__name__)
QUOTE_MAX = 300
WARN_BATCH = 500


# -- wording -------------------------------------------------------------------------------
_at = when  # 2026-12-05 14:30 UTC, as on every page
_duration = minutes_text  # 1 h 30 min


def _quote(text: str) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= QUOTE_MAX else text[: QUOTE_MAX - 1] + "…"


def _absolute(path: str) -> str:
    return settings.JITAD_BASE_URL + path


def _portal(anchor: str = "") -> str:
    """The requester's "My access" page, at the row the message is about."""
    return _absolute(reverse("elevation:access")) + (f"#{anchor}" if anchor else "")


def _admin_request(req: AccessRequest) -> str:
    """The request's page in the admin, where approvers decide."""
    return _absolute(reverse("admin:elevation_accessrequest_change", args=[req.pk]))


# -- requests ------------------------------------------------------------------------------
def stage_text(req: AccessRequest) -> str:
    """"stage 2 of 2 (manager)" for the open stage of a request of several stages; "" otherwise."""
    if len(req.stages or []) < 2 or req.stage >= len(req.stages):
        return ""
    return f"stage {req.stage + 1} of {len(req.stages)} ({req.stages[req.stage].get('name', '')})"


def _asking(req: AccessRequest) -> tuple[str, list[str]]:
    """(subject, first lines) of a message asking someone to decide ``req``."""
    target = req.target
    who, length = req.requester.get_username(), _duration(req.duration_minutes)
    stage = stage_text(req)
    at_stage = f", {stage}" if stage else ""
    if req.kind == AccessRequest.Kind.EXTENSION:
        subject = f"Decide: {who} asks for {length} more on {target.name} (request #{req.pk}{at_stage})"
        ask = f"{who} asks to extend grant #{req.extends_id} (admin on {target.name}) by {length}."
    else:
        subject = f"Decide: {who} asks for admin on {target.name} for {length} (request #{req.pk}{at_stage})"
        ask = f"{who} asks for admin rights on {target.name} ({target.get_tier_display()}) for {length}."
    lines = [ask]
    if req.justification:
        lines.append(f"Justification: {_quote(req.justification)}")
    if req.ticket:
        lines.append(f"Ticket: {req.ticket}")
    if req.starts_at:
        lines.append(f"Access to start at {_at(req.starts_at)}.")
    return subject, lines


def notice_request_pending(*, request: AccessRequest) -> Notification | None:
    """A request waits for a decision: tell its (first stage's) approvers, and the policy's destinations."""
    req, policy = request, request.policy
    subject, lines = _asking(req)
    stage = stage_text(req)
    if stage:
        lines.append(f"It passes {len(req.stages)} stages, {req.approvals_required} approval(s) in all, under policy "
                     f"{policy.name}; you decide {stage}. It closes undecided at {_at(req.pending_until)}.")
    else:
        lines.append(f"It needs {req.approvals_required} approval(s) under policy {policy.name} and closes undecided "
                     f"at {_at(req.pending_until)}.")
    lines.append("Approve or deny it on its page:")
    destinations = [named_destination(n) for n in policy.notify or []]
    if not destinations and settings.JITAD_APPROVAL_URLS:
        destinations = [APPROVALS]
    note = notification_create(
        event="request.pending", subject=subject, body="\n".join(lines), link=_admin_request(req),
        object_type="request", object_id=req.pk, people=approvers_to_notify(request=req), destinations=destinations,
    )
    if note is None:
        log.warning("request #%s waits for a decision, but no approver has an e-mail address and policy %s names "
                    "no destination (nor is JITAD_APPROVAL_URLS set): nobody was told", req.pk, policy.name)
    return note


def notice_stage_opened(*, request: AccessRequest) -> Notification | None:
    """An earlier stage passed: tell the approvers of the stage now open (and their deputies)."""
    req = request
    subject, lines = _asking(req)
    lines.append(f"Earlier stages are approved; {stage_text(req) or 'the next stage'} is now open, under policy "
                 f"{req.policy.name}. It closes undecided at {_at(req.pending_until)}.")
    lines.append("Approve or deny it on its page:")
    return notification_create(
        event="request.stage_opened", subject=subject, body="\n".join(lines), link=_admin_request(req),
        object_type="request", object_id=req.pk, people=approvers_to_notify(request=req),
    )


def notice_request_escalated(*, request: AccessRequest, escalation: dict) -> Notification | None:
    """Nobody decided the open stage in time: tell the escalation groups' members and named destinations."""
    req = request
    subject, lines = _asking(req)
    subject = "Escalated: " + subject.removeprefix("Decide: ")
    waited = _duration(int(escalation.get("after_minutes") or 0))
    stage = stage_text(req) or "it"
    lines.append(f"Nobody decided {stage} within {waited}; it closes undecided at {_at(req.pending_until)}.")
    if escalation.get("add_as_approvers"):
        lines.append("You may now decide it yourself; approve or deny it on its page:")
    else:
        lines.append("Please chase its approvers; its page:")
    people = approvers_to_notify(request=req, names=list(escalation.get("groups") or [])) if escalation.get("groups") else []
    return notification_create(
        event="request.escalated", severity=Notification.Severity.WARNING, subject=subject, body="\n".join(lines),
        link=_admin_request(req), object_type="request", object_id=req.pk, people=people,
        destinations=[named_destination(n) for n in escalation.get("notify") or []],
    )


def notice_request_decided(*, request: AccessRequest, grant: Grant | None = None, by=None,
                           comment: str = "", by_name: str = "") -> Notification | None:
    """Tell the requester how their request ended: approved, denied (with the comment), or expired undecided."""
    req, target = request, request.target
    what = f"more time on {target.name}" if req.kind == AccessRequest.Kind.EXTENSION else f"admin on {target.name}"
    RequestState = AccessRequest.State
    if req.state == RequestState.APPROVED:
        names = list(req.approvals.filter(decision=Approval.Decision.APPROVE).order_by("at")
                     .values_list("approver__username", flat=True))
        subject = f"Approved: {what} (request #{req.pk})"
        if req.kind == AccessRequest.Kind.EXTENSION and grant is not None:
            body = (f"{', '.join(names) or 'Your approvers'} approved request #{req.pk}. Your admin rights on "
                    f"{target.name} now end at {_at(grant.expires_at)}.")
        elif grant is not None and grant.state == Grant.State.SCHEDULED:
            starts = (f"starts at {_at(grant.starts_at)}" if grant.starts_at and grant.starts_at > timezone.now()
                      else "waits until the target is free (it allows one admin at a time)")
            body = (f"{', '.join(names) or 'Your approvers'} approved request #{req.pk} for admin on {target.name} "
                    f"for {_duration(req.duration_minutes)}. The access {starts}; another message follows when it "
                    "is active.")
        else:
            body = (f"{', '.join(names) or 'Your approvers'} approved request #{req.pk} for admin on {target.name} "
                    f"for {_duration(req.duration_minutes)}. jitad is adding you now; another message follows when "
                    "the access is active.")
        link = _portal(f"grant-{grant.pk}" if grant is not None else "")
    elif req.state == RequestState.DENIED:
        by_name = by.get_username() if by is not None else (by_name or "An approver")
        subject = f"Denied: {what} (request #{req.pk})"
        body = (f"{by_name} denied request #{req.pk} for {what}: \"{_quote(comment)}\"\n"
                f"Talk to {by_name} if you still need it; a new request starts a new decision.")
        link = _portal("h-history")
    elif req.state == RequestState.EXPIRED_UNAPPROVED:
        subject = f"Expired undecided: {what} (request #{req.pk})"
        body = (f"Nobody decided request #{req.pk} for {what} within {_duration(req.policy.pending_timeout_minutes)}, "
                "so it was closed. If you still need the access, ask again and tell an approver.")
        link = _portal("h-history")
    else:
        return None
    return notification_create(event=f"request.{req.state}", subject=subject, body=body, link=link,
                               object_type="request", object_id=req.pk, people=[req.requester])


# -- grants --------------------------------------------------------------------------------
def notice_grant_active(*, grant: Grant) -> Notification | None:
    """The membership is in AD: tell the holder until when, and that a new logon picks it up."""
    g = grant
    return notification_create(
        event="grant.active",
        subject=f"Active: admin on {g.target.name} until {_at(g.expires_at)}",
        body=(f"You are now admin on {g.target.name} (grant #{g.pk}) until {_at(g.expires_at)}. Sign in again on "
              f"{g.target.name} if your session started earlier. Release it on the portal as soon as you are done."),
        link=_portal(f"grant-{g.pk}"), object_type="grant", object_id=g.pk, people=[g.user],
    )


def notice_grant_not_applied(*, grant: Grant) -> Notification | None:
    """Applying the grant failed for good: the holder learns why they have no access (operators are alerted)."""
    g = grant
    retrying = " jitad keeps trying; you will get a message if it succeeds." if g.retryable else ""
    return notification_create(
        event="grant.not_applied", severity=Notification.Severity.WARNING,
        subject=f"Not applied: admin on {g.target.name} (grant #{g.pk})",
        body=f"jitad could not make you admin on {g.target.name}; the operators have been alerted.{retrying}",
        link=_portal(f"grant-failed-{g.pk}"), object_type="grant", object_id=g.pk, people=[g.user],
    )


_ENDED = {
    Grant.RevokeReason.EXPIRED: ("expired", "Your admin rights on {t} (grant #{n}) expired.",
                                 "Ask again on the portal if you still need them."),
    Grant.RevokeReason.RELEASED: ("released", "You released your admin rights on {t} (grant #{n}) early.",
                                  "Thank you."),
    Grant.RevokeReason.ADMIN: ("revoked", "{by} revoked your admin rights on {t} (grant #{n}) before their end.",
                               "Ask them or your security team why."),
}


def notices_grants_revoked(*, grants: list[Grant], outcome: dict[int, bool]) -> list[Notification]:
    """Tell each holder their grant ended and why; one bulk insert for a whole revocation batch.

    ``grants`` come with ``user`` and ``target`` loaded; ``outcome[id]`` is False when
    another live grant kept the membership. No query per grant.
    """
    items, link = [], _portal("h-history")
    for g in grants:
        if g.revoke_reason not in _ENDED or not g.user.email:
            continue  # a failed grant's clean-up: its holder was told when it failed
        word, what, advice = _ENDED[g.revoke_reason]
        what = what.format(t=g.target.name, n=g.pk, by=g.revoke_requested_by or "An administrator")
        if g.revoke_reason == Grant.RevokeReason.ADMIN and g.revoke_comment:
            what += f" Their reason: \"{_quote(g.revoke_comment)}\""
            advice = "Ask them or your security team if you have questions."
        if outcome.get(g.id) is False:
            done = f"You are still admin on {g.target.name} through another grant that has not ended."
        else:
            done = "jitad removed them from the directory."
        body = f"{what} {done} {advice}"
        items.append(Outgoing(
            event="grant.revoked", subject=f"Ended: admin on {g.target.name} ({word})", body=body,
            severity=Notification.Severity.WARNING if g.revoke_reason == Grant.RevokeReason.ADMIN
            else Notification.Severity.INFO,
            link=link, object_type="grant", object_id=str(g.pk), people=[g.user],
        ))
    # Their e-mails wait while revocations run (a mass expiry), then go together.
    return notifications_create(items=items, after_revocations=True)


def _expiring(g: Grant, now) -> Outgoing:
    left = g.request.policy.max_extensions - g.extensions
    more = ("Ask for more time on the portal if you need it." if left > 0
            else "The policy allows no more extensions; ask again after it ends if you need to.")
    minutes = max(1, round((g.expires_at - now).total_seconds() / 60))
    return Outgoing(
        event="grant.expiring", subject=f"Ends in {minutes} min: admin on {g.target.name}",
        body=f"Your admin rights on {g.target.name} (grant #{g.pk}) end at {_at(g.expires_at)}. Save your work. {more}",
        link=_portal(f"grant-{g.pk}"), object_type="grant", object_id=str(g.pk), people=[g.user],
    )


def grants_warn_expiring(*, now=None) -> int:
    """Warn each holder once, JITAD_EXPIRY_WARNING_MINUTES before their grant ends (beat task).

    Grants that were shorter than the lead time when they went active are not warned
    (the "active" message said when they end); an extension clears the mark, so the
    holder is warned again before the new end.
    """
    minutes = settings.JITAD_EXPIRY_WARNING_MINUTES
    if minutes <= 0:
        return 0
    now = now or timezone.now()
    lead = timedelta(minutes=minutes)
    due = Grant.objects.filter(
        state__in=[Grant.State.ACTIVE, Grant.State.UNVERIFIED], expiry_warned_at__isnull=True,
        revoke_requested_at__isnull=True,
        expires_at__gt=now, expires_at__lte=now + lead, activated_at__lt=F("expires_at") - lead,
    )
    total = 0
    while True:
        with transaction.atomic():
            grants = list(due.select_for_update(skip_locked=True, of=("self",))
                          .select_related("user", "target", "request__policy").order_by("expires_at")[:WARN_BATCH])
            if not grants:
                break
            Grant.objects.filter(id__in=[g.id for g in grants]).update(expiry_warned_at=now)
            notifications_create(items=[_expiring(g, now) for g in grants if g.user.email])
        total += len(grants)
        if len(grants) < WARN_BATCH:
            break
    return total
