"""Forms for the requester's pages: a new request, and an extension of a grant.

The forms catch what a person can fix before anything is asked of the services (a
missing justification, a duration that is not a number) and shape the inputs from the
policy. The services stay the authority: a refusal they raise is put next to the field
it is about (``add_refusal``).
"""
from django import forms
from django.conf import settings
from django.utils import timezone

from jitad.humantime import DurationError, common_choices, minutes_input, minutes_text, parse_minutes, when

from .errors import RequestRefused
from .models import Grant, Policy
from .services.requests import JUSTIFICATION_MAX, TICKET_MAX

# RequestRefused codes that are about one field of these forms.
REFUSAL_FIELDS = {
    "duration_invalid": "duration_minutes",
    "duration_too_long": "duration_minutes",
    "extension_too_long": "duration_minutes",
    "justification_required": "justification",
    "justification_too_long": "justification",
    "ticket_required": "ticket",
    "ticket_invalid": "ticket",
}
# Refusals about the scheduled start carry codes that begin with this.
START_REFUSAL_PREFIXES = ("start", "schedule")


class DurationField(forms.CharField):
    """A duration as people write it (4h, 90m, 1h30m, or minutes), cleaned to whole minutes."""

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        try:
            return parse_minutes(value)
        except DurationError as e:
            raise forms.ValidationError(str(e), code="invalid") from e


class RequestForm(forms.Form):
    """Duration, justification and (when the policy asks for one) a ticket reference."""

    duration_minutes = DurationField(
        label="Duration",
        widget=forms.TextInput(attrs={"list": "duration-choices", "autocomplete": "off", "spellcheck": "false",
                                      "maxlength": 40}),
        error_messages={"required": "Enter a duration such as 4h, 90m or 1h30m."},
    )
    justification = forms.CharField(
        label="Justification", required=False, max_length=JUSTIFICATION_MAX,
        widget=forms.Textarea(attrs={"rows": 3}), error_messages={"required": "Say why you need this access."},
    )
    ticket = forms.CharField(
        label="Ticket reference", required=False, max_length=TICKET_MAX,
        error_messages={"required": "Enter the ticket this work belongs to."},
    )

    starts_at = forms.DateTimeField(
        label="Start at", required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        error_messages={"invalid": "Enter a date and time, such as 2026-12-06 02:00."},
    )

    def __init__(self, *args, policy: Policy, **kwargs):
        super().__init__(*args, **kwargs)
        self.policy = policy
        self.set_duration(default=policy.default_duration_minutes, most=policy.max_duration_minutes)
        lead = policy.schedule_max_lead_minutes
        if lead > 0:  # read in the portal's time zone (JITAD_TIME_ZONE)
            self.fields["starts_at"].help_text = (
                f"Optional: when the access should start, in {settings.TIME_ZONE} time, at most "
                f"{minutes_text(lead)} ahead. Empty: as soon as it is approved.")
        else:
            del self.fields["starts_at"]
        justification = self.fields["justification"]
        if policy.require_justification:
            justification.required = True
            justification.widget.attrs["minlength"] = policy.min_justification_length
            justification.help_text = f"Why you need it: at least {policy.min_justification_length} characters."
        else:
            justification.help_text = "Why you need it (optional)."
        if policy.require_ticket:
            ticket = self.fields["ticket"]
            ticket.required = True
            ticket.help_text = "The change or incident this work belongs to."
        else:
            del self.fields["ticket"]

    def set_duration(self, *, default: int, most: int) -> None:
        """Offer ``default`` minutes, suggest the usual lengths up to ``most`` (the service refuses more)."""
        duration = self.fields["duration_minutes"]
        default = min(default, most)
        duration.initial = minutes_input(default)
        duration.help_text = (f"Hours and minutes, such as 4h, 90m or 1h30m. Default {minutes_text(default)}, "
                              f"at most {minutes_text(most)}.")
        self.duration_choices = [(minutes_input(m), minutes_text(m)) for m in common_choices(most)]

    def clean_justification(self):
        text = (self.cleaned_data.get("justification") or "").strip()
        minimum = self.policy.min_justification_length
        if self.policy.require_justification and len(text) < minimum:
            raise forms.ValidationError(f"Write at least {minimum} characters (you wrote {len(text)}).")
        return text

    def clean_starts_at(self):
        value = self.cleaned_data.get("starts_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError(f"That is in the past ({when(value)}); leave it empty to start at once.")
        return value

    def service_arguments(self) -> dict:
        """Keyword arguments for request_create / request_extend."""
        data = self.cleaned_data
        arguments = {
            "duration_minutes": data["duration_minutes"],
            "justification": data.get("justification", ""),
            "ticket": data.get("ticket", ""),
        }
        if data.get("starts_at"):
            arguments["starts_at"] = data["starts_at"]
        return arguments

    def add_refusal(self, refusal: RequestRefused) -> None:
        """Show a service's refusal next to the field it is about, if it is about one."""
        name = REFUSAL_FIELDS.get(refusal.code)
        if name is None and refusal.code.startswith(START_REFUSAL_PREFIXES):
            name = "starts_at"
        if name in self.fields:
            self.add_error(name, refusal.message)


class ExtendForm(RequestForm):
    """More time on a grant: the same rules, and the original ticket carries over."""

    def __init__(self, *args, policy: Policy, grant: Grant, room: int, **kwargs):
        super().__init__(*args, policy=policy, **kwargs)
        self.fields.pop("starts_at", None)  # more time starts where the grant ends
        self.fields["duration_minutes"].label = "More time"
        # Never offer more than the grant may still get (the policy caps a grant's whole length).
        self.set_duration(default=policy.default_duration_minutes, most=room)
        if "ticket" in self.fields and grant.request.ticket:
            ticket = self.fields["ticket"]
            ticket.initial = grant.request.ticket
            ticket.required = False
            ticket.help_text = f"Leave as is to keep {grant.request.ticket}."
