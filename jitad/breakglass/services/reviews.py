"""The runbook checklist a holder ticks during a checkout, and the post-incident review after it."""
from django.db import transaction
from django.utils import timezone

from jitad.audit.services import audit_record_many
from jitad.notifications.services import notification_create

from ..errors import BreakglassRefused
from ..models import Checkout, Review, RunbookTick
from ..runbooks import runbook_get
from ..selectors import account_approvers, is_account_approver
from .common import admin_link, checkout_entry

CheckoutState = Checkout.State
TEXT_MAX = 8000


def _review_open(checkout: Checkout) -> bool:
    review = Review.objects.filter(checkout=checkout).first()
    return review is not None and review.state == Review.State.AWAITING


def runbook_tick(*, checkout: Checkout, actor, step_id: str, done: bool) -> RunbookTick:
    """The holder ticks (or unticks) one step of the checkout's runbook; every change is audited."""
    if actor.pk != checkout.holder_id:
        raise BreakglassRefused("not_holder", "Only the holder ticks the runbook of a checkout.")
    if checkout.state not in (CheckoutState.OPENING, CheckoutState.OPEN, CheckoutState.RETURNING) and not _review_open(checkout):
        raise BreakglassRefused("not_open", f"Checkout #{checkout.pk} is over; its checklist is closed.")
    runbook = runbook_get(checkout.runbook_slug) if checkout.runbook_slug else None
    step = next((s for s in runbook.steps if s.id == step_id), None) if runbook else None
    if step is None:
        raise BreakglassRefused("no_such_step", "That step is not in this checkout's runbook (was the runbook edited?).")
    with transaction.atomic():
        tick, _ = RunbookTick.objects.select_for_update().get_or_create(
            checkout=checkout, step_id=step.id,
            defaults={"step_number": step.number, "step_text": step.text[:500], "done": not done,
                      "by": actor.get_username()},
        )
        if tick.done != done:
            tick.done, tick.by, tick.at, tick.step_number = done, actor.get_username(), timezone.now(), step.number
            tick.save(update_fields=["done", "by", "at", "step_number"])
            audit_record_many([checkout_entry(checkout, actor=actor.get_username(),
                                              action="breakglass.step_ticked" if done else "breakglass.step_unticked",
                                              before=checkout.state, after=checkout.state, step=step.number,
                                              step_id=step.id, step_text=step.text[:500], runbook=runbook.slug,
                                              runbook_digest=runbook.digest)])
    return tick


def review_file(*, checkout: Checkout, actor, what_was_done: str, was_needed: str, follow_up: str = "") -> Review:
    """The holder says what was done and whether it was needed; approvers then close it."""
    what_was_done, follow_up = (what_was_done or "").strip(), (follow_up or "").strip()
    if actor.pk != checkout.holder_id:
        raise BreakglassRefused("not_holder", "Only the holder files the review of a checkout.")
    if len(what_was_done) < 20:
        raise BreakglassRefused("review_too_short", "Say what was done with the account, in at least 20 characters.")
    if len(what_was_done) > TEXT_MAX or len(follow_up) > TEXT_MAX:
        raise BreakglassRefused("review_too_long", f"Each answer has at most {TEXT_MAX} characters.")
    if was_needed not in Review.Needed.values:
        raise BreakglassRefused("needed_required", "Say whether the break-glass account was needed.")
    with transaction.atomic():
        review = Review.objects.select_for_update().filter(checkout=checkout).first()
        if review is None:
            raise BreakglassRefused("no_review", "This checkout has not been checked in yet.")
        if review.state == Review.State.CLOSED:
            raise BreakglassRefused("review_closed", "This review is closed.")
        before = review.state
        review.what_was_done, review.was_needed, review.follow_up = what_was_done, was_needed, follow_up
        review.state, review.filed_by, review.filed_at = Review.State.FILED, actor.get_username(), timezone.now()
        review.save()
        audit_record_many([checkout_entry(checkout, actor=actor.get_username(), action="breakglass.review_filed",
                                          before=before, after=review.state, was_needed=was_needed)])
        notification_create(
            event="breakglass.review_filed",
            subject=f"Review filed: checkout #{checkout.pk} of {checkout.account.name} by {actor.get_username()}",
            body=f"Was it needed: {review.get_was_needed_display()}.\nWhat was done: {what_was_done}\n"
                 f"Follow-up: {follow_up or '-'}\nClose it in jitad once read.",
            link=admin_link("review", review.pk), object_type="checkout", object_id=checkout.pk,
            people=account_approvers(account=checkout.account, exclude=checkout.holder),
        )
    return review


def review_close(*, review: Review, actor, comment: str = "") -> Review:
    """An approver (never the holder) closes a review; a mandatory one only once it is filed."""
    comment = (comment or "").strip()
    with transaction.atomic():
        row = Review.objects.select_for_update(of=("self",)).select_related("checkout__account", "checkout__holder").get(pk=review.pk)
        checkout = row.checkout
        if actor.pk == checkout.holder_id:
            raise BreakglassRefused("own_review", "Someone other than the holder closes a review.")
        if not (actor.is_superuser or is_account_approver(user=actor, account=checkout.account)):
            raise BreakglassRefused("not_approver", f"You are not an approver for {checkout.account.name}.")
        if row.state == Review.State.CLOSED:
            raise BreakglassRefused("review_closed", "This review is already closed.")
        if row.mandatory and row.state != Review.State.FILED:
            raise BreakglassRefused("review_not_filed",
                                    "This review is mandatory (an emergency checkout): the holder must file it first.")
        if row.state == Review.State.AWAITING and not comment:
            raise BreakglassRefused("comment_required", "Closing a review nobody filed needs a comment.")
        before = row.state
        row.state, row.closed_by, row.closed_at, row.close_comment = Review.State.CLOSED, actor.get_username(), timezone.now(), comment
        row.save()
        audit_record_many([checkout_entry(checkout, actor=actor.get_username(), action="breakglass.review_closed",
                                          before=before, after=row.state, reason=comment,
                                          waived=before == Review.State.AWAITING)])
    return row
