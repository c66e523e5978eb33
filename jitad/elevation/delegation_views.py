"""The portal's Deputies page: delegations I gave and received, a new one, ending one early.

Only the two people of a delegation see it here. A fresh MFA step for every POST is
enforced by jitad.accounts.middleware before these run; the services check the rules.
"""
from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from jitad.accounts.mfa import mfa_step_of

from .errors import RequestRefused
from .selectors.delegations import (
    approver_in_own_right,
    delegation_state,
    delegation_visible,
    delegations_given,
    delegations_received,
    deputy_find,
)
from .services.delegations import REASON_MAX, delegation_create, delegation_revoke

LIST_MAX = 50
REFUSAL_FIELDS = {
    "deputy_unknown": "deputy", "deputy_self": "deputy", "starts_in_past": "starts_at", "period_invalid": "ends_at",
    "ends_before_start": "ends_at", "delegation_too_long": "ends_at", "reason_too_long": "reason",
}


class DelegationForm(forms.Form):
    """Who decides in my place, and until when (times in the configured zone)."""

    deputy = forms.CharField(label="Deputy (user name)", max_length=150,
                             widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
    starts_at = forms.DateTimeField(label="From", required=False,
                                    widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
                                    help_text="Empty: from now.")
    ends_at = forms.DateTimeField(label="Until", widget=forms.DateTimeInput(attrs={"type": "datetime-local"},
                                                                           format="%Y-%m-%dT%H:%M"))
    reason = forms.CharField(label="Reason", required=False, max_length=REASON_MAX,
                             widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        zone = settings.TIME_ZONE
        self.fields["ends_at"].help_text = (f"Times are {zone}. At most {settings.JITAD_DELEGATION_MAX_DAYS} days "
                                            "after the start.")

    def add_refusal(self, refusal: RequestRefused) -> None:
        self.add_error(REFUSAL_FIELDS.get(refusal.code), refusal.message)


def _rows(queryset, now) -> list[dict]:
    return [{"d": d, "state": delegation_state(d, now)} for d in queryset[:LIST_MAX]]


def _context(request, form, error="") -> dict:
    now = timezone.now()
    given, received = _rows(delegations_given(user=request.user), now), _rows(delegations_received(user=request.user), now)
    return {"form": form, "error": error, "given": given, "received": received,
            "may_delegate": approver_in_own_right(user=request.user),
            "deciding_for": [r for r in received if r["state"] == "running" and r["d"].delegator.is_active]}


@never_cache
@require_http_methods(["GET", "POST"])
def delegations(request):
    """My delegations, given and received; an approver may make a new one (POST)."""
    posted = request.method == "POST"
    form = DelegationForm(request.POST if posted else None)
    error = ""
    if posted and form.is_valid():
        data = form.cleaned_data
        try:
            d = delegation_create(delegator=request.user, deputy=deputy_find(username=data["deputy"]),
                                  starts_at=data.get("starts_at"), ends_at=data["ends_at"],
                                  reason=data.get("reason") or "", mfa=mfa_step_of(request))
        except RequestRefused as e:
            error = e.message
            form.add_refusal(e)
        else:
            messages.success(request, f"{d.deputy.get_username()} may decide in your place until "
                                      f"{timezone.localtime(d.ends_at):%Y-%m-%d %H:%M %Z}.")
            return redirect("elevation:delegations")
    status = 400 if posted else 200
    return render(request, "elevation/delegations.html", _context(request, form, error), status=status)


@require_POST
def delegation_end(request, pk: int):
    """End one of my delegations early (as its delegator, or as its deputy declining)."""
    d = delegation_visible(user=request.user, delegation_id=pk)
    if d is None:
        raise Http404("No such delegation of yours.")
    try:
        delegation_revoke(delegation=d, actor=request.user, reason=request.POST.get("reason", "")[:REASON_MAX],
                          mfa=mfa_step_of(request))
    except RequestRefused as e:
        return render(request, "elevation/delegations.html", _context(request, DelegationForm(), e.message), status=409)
    messages.success(request, f"Delegation #{d.pk} has ended.")
    return redirect("elevation:delegations")
