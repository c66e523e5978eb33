"""The approver's page in the portal: the requests waiting for my decision, kept live by htmx.

Deciding happens on each request's page in the admin (approvers who are not staff may
open it), where the decision asks for a fresh MFA step; this page only lists and links.
"""
import hashlib

from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .selectors.approvers import requests_decidable_by

POLL_SECONDS = 10
LIST_MAX = 200


def _rows(user) -> list[dict]:
    queue = (
        requests_decidable_by(user=user)
        .select_related("requester", "target", "policy")
        .order_by("created_at", "pk")[:LIST_MAX]
    )
    rows = []
    for req in queue:
        stage_name = ""
        if req.stages and req.stage < len(req.stages):
            stage_name = req.stages[req.stage].get("name", "") or f"stage {req.stage + 1}"
        rows.append({
            "request": req,
            "stage_name": stage_name,
            "stage_number": req.stage + 1,
            "stage_count": len(req.stages or []),
            "waiting_since": req.stage_opened_at or req.created_at,
            "decide_url": reverse("admin:elevation_accessrequest_change", args=[req.pk]),
        })
    return rows


def _context(request) -> dict:
    rows = _rows(request.user)
    # The list swaps only when it changed, so a poll that found nothing new disturbs no one.
    key = ";".join(f"{r['request'].pk}:{r['request'].stage}:{r['request'].escalated_at}" for r in rows)
    return {
        "rows": rows,
        "total": requests_decidable_by(user=request.user).count() if len(rows) >= LIST_MAX else len(rows),
        "poll_seconds": POLL_SECONDS,
        "version": hashlib.sha256(key.encode()).hexdigest()[:16],
    }


@never_cache
@require_GET
def approvals(request):
    """Requests waiting for my decision, oldest first."""
    return render(request, "elevation/approvals.html", _context(request))


@never_cache
@require_GET
def approvals_live(request):
    """The list part of the page, for htmx polling; 204 when nothing changed since ``v``."""
    context = _context(request)
    if request.GET.get("v") == context["version"]:
        return HttpResponse(status=204)
    return render(request, "elevation/approvals_live.html", context)


@never_cache
@require_GET
def approvals_nav(request):
    """The nav's "N waiting for you" link, for htmx polling (its count comes from the context processor)."""
    return render(request, "elevation/approvals_nav.html")
