"""The reviewers' portal page: open reviews and their people, with keep and remove buttons.

Login, a verified device and (for each POST) a fresh MFA step are enforced by
jitad.accounts.middleware before these run; the forms grow an ``otp`` field when the
session's verification is stale. An htmx POST gets the item's row back; a plain POST the page.
"""
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from jitad.accounts.mfa import mfa_step_of

from . import services
from .errors import ReviewRefused
from .selectors import campaigns_for_reviewer, can_decide, item_for_reviewer


@never_cache
@require_GET
def page(request):
    """Every open review the person reviews, soonest deadline first."""
    return render(request, "reviews/page.html", {"campaigns": campaigns_for_reviewer(user=request.user)})


@require_POST
def item_decide(request, pk: int):
    """Keep or remove one person (``decision``, optional ``comment``)."""
    item = item_for_reviewer(user=request.user, item_id=pk)
    if item is None:
        raise Http404("No such review item, or not one you review.")
    error = ""
    try:
        item = services.item_decide(item=item, reviewer=request.user, decision=request.POST.get("decision", ""),
                                    comment=request.POST.get("comment", ""), mfa=mfa_step_of(request))
    except ReviewRefused as e:
        error = e.message
    if request.htmx and not request.htmx.history_restore_request:
        item = item_for_reviewer(user=request.user, item_id=pk)
        context = {"item": item, "decidable": can_decide(user=request.user, item=item), "error": error}
        return render(request, "reviews/_item.html", context, status=400 if error else 200)
    if error:
        messages.error(request, error)
    else:
        verb = "kept" if item.decision == item.Decision.KEEP else "removed"
        messages.success(request, f"{item.username} {verb} (review #{item.campaign_id}).")
    return redirect("reviews:page")
