"""The requester's pages: what I may request, the request form, My access (live), a grant's page, cancel, release, extend.

Views read through ``selectors`` (eligibility, a person's own access, grants) and act through
the request and grant services. MFA (a verified device on every page, a fresh one for every POST) is enforced
by jitad.accounts.middleware before any of these run; the templates add an ``otp`` field
to each form when the session's verification is no longer fresh.
"""
from math import ceil

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from jitad import directory
from jitad.accounts.mfa import mfa_code_in_request, mfa_is_fresh, mfa_step_of, no_store
from jitad.accounts.throttle import client_ip
from jitad.humantime import minutes_text, when

from . import exports, services
from .errors import RequestRefused
from .forms import ExtendForm, RequestForm
from .models import Policy
from .selectors.access import access_overview, own_grant_get, own_request_get, revoke_detail
from .selectors.eligibility import eligibility_search, eligible_target_get, policy_for
from .selectors.grants import extension_room
from .selectors.timeline import grant_timeline

PAGE_SIZE = 50
QUERY_MAX = 100
FAST_POLL_SECONDS = 1  # while the engine applies or removes a grant
PENDING_POLL_SECONDS = 5  # while a request waits for people to decide
SLOW_POLL_SECONDS = 10


def _partial(request) -> bool:
    """True for an htmx request that swaps a fragment (not a history restore, which wants the page)."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def _page_number(value) -> int:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 1


# -- eligibility -----------------------------------------------------------------------
@require_GET
@vary_on_headers("HX-Request")
def eligible(request):
    """The targets this person may request, searchable (``q``) and paginated."""
    q = request.GET.get("q", "").replace("\x00", "").strip()[:QUERY_MAX]  # PostgreSQL refuses NUL
    page = _page_number(request.GET.get("page"))
    result = eligibility_search(user=request.user, q=q, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    pages = max(1, ceil(result.total / PAGE_SIZE))
    if page > pages:  # a stale link after the list shrank: show the last page
        page = pages
        result = eligibility_search(user=request.user, q=q, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    context = {"q": q, "items": result.items, "total": result.total, "page": page, "pages": pages}
    template = "elevation/_eligible_results.html" if _partial(request) else "elevation/eligible.html"
    return render(request, template, context)


# -- a new request ---------------------------------------------------------------------
def _approval_text(policy: Policy) -> str:
    if policy.approval_mode == Policy.ApprovalMode.AUTO:
        return "automatic"
    n = policy.approvals_required
    return f"{n} approver{'s' if n != 1 else ''}"


@require_http_methods(["GET", "POST"])
def request_new(request):
    """Ask for one target (``?target=<id>``); a person who may not request it gets a 404."""
    found = eligible_target_get(user=request.user, target_id=request.GET.get("target"))
    if found is None:
        raise Http404("No such target, or no policy lets you request it.")
    target, policy = found
    form = RequestForm(request.POST if request.method == "POST" else None, policy=policy)
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            req = services.request_create(requester=request.user, target=target, mfa=mfa_step_of(request),
                                          client_ip=client_ip(request), **form.service_arguments())
        except RequestRefused as e:
            error = e.message
            form.add_refusal(e)
        else:
            grant = getattr(req, "grant", None) if req.state == req.State.APPROVED else None
            if grant is not None and grant.state == grant.State.SCHEDULED:
                start = (f"start at {when(grant.starts_at)}" if grant.starts_at and grant.starts_at > timezone.now()
                         else "start as soon as the target is free (one admin at a time)")
                messages.success(request, f"Request #{req.pk} was approved automatically; your admin rights on "
                                          f"{target.name} {start}.")
            elif req.state == req.State.APPROVED:
                messages.success(request, f"Request #{req.pk} was approved automatically: jitad is giving you "
                                          f"admin rights on {target.name} now.")
            else:
                messages.success(request, f"Request #{req.pk} for {target.name} is waiting for "
                                          f"{_approval_text(policy)}.")
            return redirect("elevation:access")
    context = {"target": target, "policy": policy, "form": form, "error": error, "approval": _approval_text(policy)}
    return render(request, "elevation/request_form.html", context, status=400 if request.method == "POST" else 200)


# -- My access -------------------------------------------------------------------------
def _access_context(request, **extra) -> dict:
    overview = access_overview(user=request.user)
    # The forms grow a code field when MFA goes stale, so staleness must change the version.
    mfa_fresh = mfa_is_fresh(request)
    return {
        "overview": overview,
        "poll_seconds": FAST_POLL_SECONDS if overview.busy else PENDING_POLL_SECONDS if overview.pending else SLOW_POLL_SECONDS,
        # The page swaps only when something changed, so keyboard focus and screen
        # readers are not disturbed by a poll that found nothing new.
        "version": f"{overview.version}{'f' if mfa_fresh else 's'}",
        **extra,
    }


@never_cache
@require_GET
def access(request):
    """Pending requests, current grants (live) and recent history."""
    return render(request, "elevation/access.html", _access_context(request))


@never_cache
@require_GET
def access_live(request):
    """The live part of My access, for htmx polling; 204 when nothing changed since ``v``."""
    context = _access_context(request)
    if request.GET.get("v") == context["version"]:
        return HttpResponse(status=204)
    return render(request, "elevation/_access_live.html", context)


# -- one grant: its timeline and evidence -----------------------------------------------
def _own_grant(request, pk: int):
    grant = own_grant_get(user=request.user, grant_id=pk)
    if grant is None:
        raise Http404("No such grant of yours.")
    return grant


@never_cache
@require_GET
def grant_detail(request, pk: int):
    """One of my grants: what it is, and its timeline (request, decisions, AD and server steps, my sessions there)."""
    grant = _own_grant(request, pk)
    return render(request, "elevation/grant.html", {"grant": grant, "timeline": grant_timeline(grant),
                                                    "revoke_detail": revoke_detail(grant)})


@never_cache
@require_GET
def grant_evidence(request, pk: int, fmt: str):
    """My grant's evidence as a download: ``json`` or ``csv``."""
    grant = _own_grant(request, pk)
    return exports.evidence_response(exports.evidence_timeline(grant), fmt)


def _refused(request, refusal: RequestRefused):
    """A bad POST from My access: the page again, with the reason, as a 400."""
    return render(request, "elevation/access.html", _access_context(request, error=refusal.message), status=400)


@require_POST
def request_cancel(request, pk: int):
    """Withdraw one of my pending requests."""
    req = own_request_get(user=request.user, request_id=pk)
    if req is None:
        raise Http404("No such request of yours.")
    try:
        services.request_cancel(request=req, actor=request.user)
    except RequestRefused as e:
        return _refused(request, e)
    messages.success(request, f"Request #{req.pk} for {req.target.name} is cancelled.")
    return redirect("elevation:access")


@require_POST
def grant_release(request, pk: int):
    """Give one of my grants back before it expires."""
    grant = own_grant_get(user=request.user, grant_id=pk)
    if grant is None:
        raise Http404("No such grant of yours.")
    try:
        services.grant_release(grant=grant, actor=request.user)
    except RequestRefused as e:
        return _refused(request, e)
    messages.success(request, f"Cancelled your scheduled admin rights on {grant.target.name}: nothing was changed."
                     if grant.state == grant.State.SCHEDULED else
                     f"Releasing your admin rights on {grant.target.name}: jitad is removing them now.")
    return redirect("elevation:access")


@require_http_methods(["GET", "POST"])
def grant_extend(request, pk: int):
    """Ask for more time on one of my grants, under the policy that covers it now.

    A grant that cannot be extended (the policy allows no more extensions, or the grant
    already lasts as long as the policy allows) gets the reason and no form, as a 409.
    """
    grant = own_grant_get(user=request.user, grant_id=pk)
    if grant is None:
        raise Http404("No such grant of yours.")
    policy = policy_for(user=request.user, target=grant.target)
    room = extension_room(grant=grant, policy=policy)
    posted = request.method == "POST"
    form, error, status = None, "", 400 if posted else 200
    if not room:
        error, status = room.message, 409
    else:
        form = ExtendForm(request.POST if posted else None, policy=policy, grant=grant, room=room.minutes)
        if posted and form.is_valid():
            try:
                req = services.request_extend(grant=grant, requester=request.user, mfa=mfa_step_of(request),
                                              client_ip=client_ip(request), **form.service_arguments())
            except RequestRefused as e:
                error = e.message
                form.add_refusal(e)
            else:
                if req.state == req.State.APPROVED:
                    messages.success(request, f"Your admin rights on {grant.target.name} now last "
                                              f"{minutes_text(req.duration_minutes)} longer.")
                else:
                    messages.success(request, f"Extension request #{req.pk} for {grant.target.name} is waiting "
                                              f"for {_approval_text(policy)}.")
                return redirect("elevation:access")
    context = {"grant": grant, "policy": policy, "form": form, "error": error, "room": room,
               "approval": _approval_text(policy) if policy else ""}
    return render(request, "elevation/extend_form.html", context, status=status)


@never_cache
@sensitive_post_parameters("otp")
@sensitive_variables("password")
@require_http_methods(["GET", "POST"])
def grant_account(request, pk: int):
    """The ephemeral account of one of my grants; its password, once, to me after a code typed here."""
    grant = own_grant_get(user=request.user, grant_id=pk)
    if grant is None or not grant.ephemeral:
        raise Http404("No such grant of yours with an ephemeral account.")
    error, status = "", 200
    if request.method == "POST":
        check = mfa_code_in_request(request)
        if check.device is None:
            error, status = check.error, 400
        else:
            try:
                password = services.grant_account_reveal(grant=grant, actor=request.user)
            except RequestRefused as e:
                error, status = e.message, 409
            else:
                grant.refresh_from_db()
                return no_store(render(request, "elevation/grant_account_password.html",
                                       {"grant": grant, "password": password, "upn": _upn(grant)}))
    grant.refresh_from_db()
    return render(request, "elevation/grant_account.html", {"grant": grant, "upn": _upn(grant), "error": error},
                  status=status)


def _upn(grant) -> str:
    """The name the holder signs in with: the ephemeral account's userPrincipalName (``alice-k7q2@corp.example``)."""
    domain = directory.dn_domain(grant.account_dn)
    return f"{grant.account_sam}@{domain}" if domain else grant.account_sam
