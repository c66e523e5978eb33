"""Forms of the break-glass pages: ask for an account, ask for an envelope, file a review.

Each asking form carries a field for the current OTP code, always: asking for a
break-glass account proves possession of the second factor at that moment.
"""
from django import forms
from django.conf import settings

from .models import Review, SealedAccount
from .services.checkout_requests import INCIDENT_MAX, REASON_MAX
from .services.reviews import TEXT_MAX

REFUSAL_FIELDS = {
    "incident_required": "incident_ref",
    "incident_invalid": "incident_ref",
    "reason_required": "reason",
    "reason_too_long": "reason",
    "duration_invalid": "duration_minutes",
    "runbook_invalid": "runbook",
    "runbook_required": "runbook",
    "emergency_not_allowed": "emergency",
    "review_too_short": "what_was_done",
    "review_too_long": "what_was_done",
    "needed_required": "was_needed",
}


def _otp_field():
    return forms.CharField(
        label="Current code", max_length=32, strip=True,
        help_text="6 digits from your authenticator app, or a backup code: asked again for every break-glass step.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "spellcheck": "false"}),
        error_messages={"required": "Enter the current code from your authenticator app."},
    )


class RefusalMixin:
    def add_refusal(self, refusal) -> bool:
        """Put a service's refusal next to its field; False if it is about none of them."""
        name = REFUSAL_FIELDS.get(refusal.code)
        if name in self.fields:
            self.add_error(name, refusal.message)
            return True
        return False


class EnvelopeForm(RefusalMixin, forms.Form):
    incident_ref = forms.CharField(label="Incident or change reference", max_length=INCIDENT_MAX)
    reason = forms.CharField(label="Reason", max_length=REASON_MAX, widget=forms.Textarea(attrs={"rows": 3}))
    otp = _otp_field()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].help_text = f"At least {settings.JITAD_BREAKGLASS_REASON_MIN} characters."
        self.fields["reason"].widget.attrs["minlength"] = settings.JITAD_BREAKGLASS_REASON_MIN
        pattern = settings.JITAD_BREAKGLASS_INCIDENT_PATTERN
        if pattern:
            self.fields["incident_ref"].help_text = f"Matches {pattern}."


class CheckoutForm(EnvelopeForm):
    runbook = forms.ChoiceField(label="Runbook you will follow", required=False,
                                error_messages={"required": "Pick the runbook you will follow."})
    duration_minutes = forms.IntegerField(label="For how long (minutes)", min_value=5,
                                          error_messages={"invalid": "Enter a whole number of minutes."})
    emergency = forms.BooleanField(
        label="Emergency: check out alone, now", required=False,
        help_text="No approvals. Every approver and the security channel are alerted at once, and a post-incident "
                  "review becomes mandatory.",
    )
    field_order = ["incident_ref", "reason", "runbook", "duration_minutes", "emergency", "otp"]

    def __init__(self, *args, account: SealedAccount, runbooks, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(r.slug, f"{r.title} ({r.severity})") for r in runbooks]
        runbook = self.fields["runbook"]
        runbook.choices = ([("", "— pick one —")] + choices) if choices else [("", "no runbook applies")]
        runbook.required = bool(choices)
        duration = self.fields["duration_minutes"]
        duration.initial = min(60, account.max_checkout_minutes)
        duration.widget.attrs.update(max=account.max_checkout_minutes, min=5)
        duration.help_text = f"At most {account.max_checkout_minutes} minutes; the password is rotated at the end."
        if not account.emergency_allowed:
            del self.fields["emergency"]
        self.order_fields(self.field_order)

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        return {"incident_ref": data["incident_ref"], "reason": data["reason"], "runbook_slug": data.get("runbook", ""),
                "duration_minutes": data["duration_minutes"], "emergency": bool(data.get("emergency"))}


class ReviewForm(RefusalMixin, forms.Form):
    was_needed = forms.ChoiceField(label="Was the break-glass account needed?", choices=Review.Needed.choices,
                                   widget=forms.RadioSelect)
    what_was_done = forms.CharField(label="What was done with it", max_length=TEXT_MAX,
                                    widget=forms.Textarea(attrs={"rows": 5}))
    follow_up = forms.CharField(label="Follow-up (what should change so it is not needed next time)", required=False,
                                max_length=TEXT_MAX, widget=forms.Textarea(attrs={"rows": 3}))
