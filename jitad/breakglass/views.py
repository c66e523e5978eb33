"""The break-glass pages: the dashboard, asking for an account, the checkout (reveal once, runbook,
check-in, review), envelopes, runbooks.

MFA: the middleware demands a fresh verification for every POST; asking for an account,
asking for an envelope, revealing a password and printing an envelope also demand a code
typed into that very request. Pages that show a password are never stored by a browser or
a proxy, and are answers to POSTs: reloading or going back never shows it again.
"""
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jitad.accounts.mfa import mfa_code_in_request, mfa_step_of, no_store
from jitad.humantime import when
from jitad.notifications.selectors import deliveries_told

from . import services
from .errors import BreakglassRefused
from .forms import CheckoutForm, EnvelopeForm, ReviewForm
from .models import Checkout, Review, SealedAccount
from .runbooks import runbook_get, runbooks_for, runbooks_load
from .selectors import account_approvers, can_force_checkin, checkout_visible, dashboard_for, is_responder, review_of


def _visible_checkout(user, pk: int) -> Checkout:
    checkout = checkout_visible(user=user, pk=pk)
    if checkout is None:
        raise Http404("No such checkout, or not yours to see.")
    return checkout


# -- dashboard ------------------------------------------------------------------------------
@require_GET
def dashboard(request):
    """Every account this person may use or approve: sealed, checked out (by whom, until), exposed."""
    d = dashboard_for(user=request.user)
    return render(request, "breakglass/dashboard.html",
                  {"rows": d.rows, "reviews": d.reviews, "mine": d.mine, "counts": d.counts, "approver": d.approver,
                   "staff_view": d.staff_view})


# -- asking ------------------------------------------------------------------------------------
def _without_code(form):
    """A form shown again never carries the code back into the page (a backup code may be unused)."""
    if form.is_bound:
        form.data = form.data.copy()
        form.data["otp"] = ""
    return form


def _account_for(request, pk: int) -> SealedAccount:
    account = get_object_or_404(SealedAccount, pk=pk)
    if not (is_responder(user=request.user, account=account) or request.user.is_superuser):
        raise Http404("No such account, or you are not a responder for it.")
    return account


def _ask(request, account: SealedAccount, form, template: str, ask, told):
    """A form that asks for an account: valid fields, then a code typed into this request, then the service.

    ``ask(form)`` calls the service; ``told(checkout)`` leaves the message for the next page.
    """
    error = ""
    if request.method == "POST" and form.is_valid():
        check = mfa_code_in_request(request)
        if check.device is None:
            form.add_error("otp", check.error)
        else:
            try:
                checkout = ask(form)
            except BreakglassRefused as e:
                if not form.add_refusal(e):
                    error = e.message
            else:
                told(checkout)
                return redirect("breakglass:checkout", pk=checkout.pk)
    return render(request, template, {"account": account, "form": _without_code(form), "error": error},
                  status=400 if request.method == "POST" else 200)


@sensitive_post_parameters("otp")
@require_http_methods(["GET", "POST"])
def checkout_new(request, pk: int):
    """Ask for a sealed account: incident, reason, runbook, duration, and a code."""
    account = _account_for(request, pk)

    def told(checkout):
        if checkout.mode == Checkout.Mode.EMERGENCY:
            # What was delivered is on the page ("Who is told"), never promised here.
            messages.warning(request, f"Emergency checkout of {account.name}: jitad alerts the approvers and the "
                                      "security channel; see below what reached them. File the review after check-in.")
        else:
            messages.success(request, f"Checkout #{checkout.pk} of {account.name} waits for "
                                      f"{checkout.approvals_required} approvers.")

    return _ask(request, account, CheckoutForm(request.POST or None, account=account, runbooks=runbooks_for(account.name)),
                "breakglass/checkout_form.html",
                lambda form: services.checkout_request(account=account, requester=request.user,
                                                       mfa=mfa_step_of(request), **form.service_arguments()),
                told)


@sensitive_post_parameters("otp")
@require_http_methods(["GET", "POST"])
def envelope_new(request, pk: int):
    """Ask to print the sealed-envelope sheet of an account (two approvers, then printed once)."""
    account = _account_for(request, pk)
    return _ask(request, account, EnvelopeForm(request.POST or None), "breakglass/envelope_form.html",
                lambda form: services.envelope_request(account=account, requester=request.user,
                                                       incident_ref=form.cleaned_data["incident_ref"],
                                                       reason=form.cleaned_data["reason"],
                                                       mfa=mfa_step_of(request)),
                lambda checkout: messages.success(request, f"Envelope request #{checkout.pk} for {account.name} "
                                                           f"waits for {checkout.approvals_required} approvers."))


# -- one checkout ----------------------------------------------------------------------------
def runbook_blocks(runbook, ticks: dict) -> list[tuple[str, object]]:
    """The runbook's prose and steps in order, consecutive steps grouped with their ticks."""
    blocks: list[tuple[str, object]] = []
    for kind, content in runbook.blocks if runbook else ():
        if kind == "step":
            if not blocks or blocks[-1][0] != "steps":
                blocks.append(("steps", []))
            blocks[-1][1].append((content, ticks.get(content.id)))
        else:
            blocks.append(("html", content))
    return blocks


def _told_context(checkout: Checkout) -> dict:
    """Who the emergency alert reached: each destination and approver with its delivery's state."""
    if checkout.mode != Checkout.Mode.EMERGENCY:
        return {}
    told = deliveries_told(object_type="checkout", object_id=checkout.pk, event="breakglass.emergency")
    mailed = {t.who for t in told if not t.is_channel}
    untold = [p.get_username() for p in account_approvers(account=checkout.account, exclude=checkout.holder)
              if p.get_username() not in mailed and not (p.email or "").strip()]
    channels = [t for t in told if t.is_channel]
    return {"told": told, "untold": untold, "told_pending": any(t.state == "pending" for t in told),
            "channel_reached": any(t.state in ("delivered", "pending") for t in channels),
            "channel_missing": not channels or all(t.state == "not configured" for t in channels)}


def _checkout_context(request, checkout: Checkout, **extra) -> dict:
    user = request.user
    runbook = runbook_get(checkout.runbook_slug) if checkout.runbook_slug else None
    ticks = {t.step_id: t for t in checkout.ticks.all()}
    review = review_of(checkout=checkout)
    holder = checkout.holder_id == user.pk
    return {
        "checkout": checkout,
        "account": checkout.account,
        "holder": holder,
        "runbook": runbook,
        "runbook_changed": bool(runbook and checkout.runbook_digest and runbook.digest != checkout.runbook_digest),
        "runbook_blocks": runbook_blocks(runbook, ticks),
        "can_tick": holder and (checkout.state in (Checkout.State.OPENING, Checkout.State.OPEN, Checkout.State.RETURNING)
                                or (review is not None and review.state == Review.State.AWAITING)),
        "approvals": list(checkout.approvals.select_related("approver")),
        "review": review,
        "review_form": extra.pop("review_form", None) or (ReviewForm(initial={
            "was_needed": review.was_needed, "what_was_done": review.what_was_done, "follow_up": review.follow_up,
        }) if holder and review else None),
        "can_force": not holder and checkout.state in (Checkout.State.OPENING, Checkout.State.OPEN)
        and can_force_checkin(user=user, checkout=checkout),
        **_told_context(checkout),
        **extra,
    }


@never_cache
@require_GET
def checkout_detail(request, pk: int):
    checkout = _visible_checkout(request.user, pk)
    return render(request, "breakglass/checkout.html", _checkout_context(request, checkout))


@never_cache
@require_GET
def checkout_told(request, pk: int):
    """For htmx polling: the "Who is told" panel of an emergency checkout, refreshed while deliveries are pending."""
    checkout = _visible_checkout(request.user, pk)
    if checkout.mode != Checkout.Mode.EMERGENCY:
        raise Http404("Only an emergency checkout alerts on its own.")
    return render(request, "breakglass/_told.html", {"checkout": checkout, **_told_context(checkout)})


@never_cache
@require_GET
def checkout_state(request, pk: int):
    """For htmx polling: 204 while the state is still ``s``, else a refresh of the whole page."""
    checkout = _visible_checkout(request.user, pk)
    if request.GET.get("s") == checkout.state:
        return HttpResponse(status=204)
    response = HttpResponse(status=204)
    response["HX-Refresh"] = "true"
    return response


def _refused(request, checkout: Checkout, refusal: BreakglassRefused, **extra):
    context = _checkout_context(request, checkout, error=refusal.message, **extra)
    return render(request, "breakglass/checkout.html", context, status=400)


@sensitive_variables("shown")
def _shown_once(request, pk: int, show, template: str, name: str):
    """What ``show`` reveals, once, to a holder who typed a current code, on a page nothing keeps."""
    checkout = _visible_checkout(request.user, pk)
    if checkout.revealed_at is not None:  # a reload of the page that showed it: say so, not "wrong code"
        return _refused(request, checkout, BreakglassRefused(
            "already_revealed", f"This was shown on {when(checkout.revealed_at)} and is never shown twice."))
    check = mfa_code_in_request(request)
    if check.device is None:
        return _refused(request, checkout, BreakglassRefused("otp", check.error))
    try:
        shown = show(checkout=checkout, actor=request.user)
    except BreakglassRefused as e:
        return _refused(request, checkout, e)
    checkout.refresh_from_db()
    return no_store(render(request, template, {"checkout": checkout, name: shown}))


@sensitive_post_parameters("otp")
@require_POST
def checkout_reveal(request, pk: int):
    """The password, once, to the holder who typed a current code."""
    return _shown_once(request, pk, services.checkout_reveal, "breakglass/reveal.html", "password")


@sensitive_post_parameters("otp")
@require_POST
def envelope_print(request, pk: int):
    """The printable sealed-envelope sheet, once, to the requester who typed a current code."""
    return _shown_once(request, pk, services.envelope_print, "breakglass/envelope_sheet.html", "sheet")


@require_POST
def checkout_tick(request, pk: int, step_id: str):
    """Tick or untick one runbook step (htmx swaps the step; a plain form comes back to the page)."""
    checkout = _visible_checkout(request.user, pk)
    try:
        tick = services.runbook_tick(checkout=checkout, actor=request.user, step_id=step_id,
                                     done=request.POST.get("done") == "1")
    except BreakglassRefused as e:
        if request.htmx:
            return HttpResponse(e.message, status=400)
        return _refused(request, checkout, e)
    if request.htmx:
        runbook = runbook_get(checkout.runbook_slug)
        step = next(s for s in runbook.steps if s.id == tick.step_id)
        return render(request, "breakglass/_step.html", {"checkout": checkout, "step": step, "tick": tick,
                                                          "can_tick": True})
    return redirect(reverse("breakglass:checkout", args=[checkout.pk]) + f"#step-{tick.step_id}")


@require_POST
def checkout_checkin(request, pk: int):
    checkout = _visible_checkout(request.user, pk)
    try:
        services.checkout_checkin(checkout=checkout, actor=request.user, reason=request.POST.get("reason", ""))
    except BreakglassRefused as e:
        return _refused(request, checkout, e)
    messages.success(request, f"{checkout.account.name} is checked in: jitad is rotating its password now.")
    return redirect("breakglass:checkout", pk=checkout.pk)


@require_POST
def checkout_cancel(request, pk: int):
    checkout = _visible_checkout(request.user, pk)
    try:
        services.checkout_cancel(checkout=checkout, actor=request.user)
    except BreakglassRefused as e:
        return _refused(request, checkout, e)
    messages.success(request, f"Checkout #{checkout.pk} is cancelled.")
    return redirect("breakglass:dashboard")


@require_POST
def checkout_review(request, pk: int):
    checkout = _visible_checkout(request.user, pk)
    form = ReviewForm(request.POST)
    if form.is_valid():
        try:
            services.review_file(checkout=checkout, actor=request.user, **form.cleaned_data)
        except BreakglassRefused as e:
            if not form.add_refusal(e):
                return _refused(request, checkout, e, review_form=form)
        else:
            messages.success(request, "Thank you: the review is filed; an approver will close it.")
            return redirect("breakglass:checkout", pk=checkout.pk)
    return render(request, "breakglass/checkout.html", _checkout_context(request, checkout, review_form=form),
                  status=400)


# -- runbooks --------------------------------------------------------------------------------
@require_GET
def runbook_list(request):
    loaded = runbooks_load()
    return render(request, "breakglass/runbooks.html",
                  {"runbooks": list(loaded.runbooks.values()), "errors": loaded.errors if request.user.is_staff else {}})


@require_GET
def runbook_detail(request, slug: str):
    runbook = runbook_get(slug)
    if runbook is None:
        raise Http404("No such runbook.")
    return render(request, "breakglass/runbook.html", {"runbook": runbook})
