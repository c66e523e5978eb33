"""The access-history question, checked once for the page and the API: a target or a person, a moment or a range."""
from datetime import datetime, time

from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from .selectors import person_lookup, target_lookup

TIME_HELP = "ISO 8601, e.g. 2026-12-01T10:00Z; without a zone, the display zone"


def parse_when(text: str) -> datetime:
    """A moment from ISO 8601 text (``2026-12-01T10:00Z``, ``2026-12-01 10:00+01:00``, ``2026-12-01``).

    Text without a zone is read in the display zone (JITAD_TIME_ZONE); a date alone is its midnight.
    Raises ValueError with a message a person can act on.
    """
    text = (text or "").strip()
    if not text or len(text) > 40 or "\x00" in text:
        raise ValueError("Give a time in ISO 8601, e.g. 2026-12-01T10:00Z.")
    try:
        value = parse_datetime(text.replace(" ", "T", 1) if len(text) > 10 else text)
        if value is None:
            day = parse_date(text)
            value = datetime.combine(day, time()) if day else None
    except (ValueError, OverflowError):
        value = None
    if value is None:
        raise ValueError(f"{text!r} is not a time: use ISO 8601, e.g. 2026-12-01T10:00Z.")
    if timezone.is_naive(value):
        try:
            value = timezone.make_aware(value)
        except (ValueError, OverflowError) as e:
            raise ValueError(f"{text!r} is not a time in the display zone.") from e
    return value


class HistoryForm(forms.Form):
    """target or person (or both); ``at`` for a moment, or ``start`` (and ``end``, default now) for a range."""

    target = forms.CharField(required=False, max_length=128, help_text="a target's name or id")
    person = forms.CharField(required=False, max_length=150, help_text="a user name")
    at = forms.CharField(required=False, max_length=40, help_text=TIME_HELP)
    start = forms.CharField(required=False, max_length=40, help_text=TIME_HELP)
    end = forms.CharField(required=False, max_length=40, help_text=TIME_HELP + "; empty: now")

    def _time(self, name):
        text = self.cleaned_data.get(name, "")
        if not text:
            return None
        try:
            return parse_when(text)
        except ValueError as e:
            raise forms.ValidationError(str(e), code="time_invalid") from None

    def clean_at(self):
        return self._time("at")

    def clean_start(self):
        return self._time("start")

    def clean_end(self):
        return self._time("end")

    def clean_target(self):
        ref = self.cleaned_data.get("target", "").strip()
        if not ref:
            return None
        found = target_lookup(ref)
        if found is None:
            raise forms.ValidationError(f"No target is named {ref!r}.", code="target_unknown")
        return found

    def clean_person(self):
        ref = self.cleaned_data.get("person", "").strip()
        if not ref:
            return None
        found = person_lookup(ref)
        if found is None:
            raise forms.ValidationError(f"No user is named {ref!r}.", code="person_unknown")
        return found

    def clean(self):
        data = super().clean()
        if not self.errors.get("target") and not self.errors.get("person") and not data.get("target") and not data.get("person"):
            raise forms.ValidationError("Name a target or a person.", code="subject_required")
        at, start, end = data.get("at"), data.get("start"), data.get("end")
        if any(self.errors.get(f) for f in ("at", "start", "end")):
            return data
        if at and (start or end):
            raise forms.ValidationError("Give a moment (at) or a range (start, end), not both.", code="time_conflict")
        if not at and not start:
            if end:
                raise forms.ValidationError("A range needs a start.", code="start_required")
            raise forms.ValidationError("Give a moment (at) or the start of a range.", code="time_required")
        if start:
            end = end or timezone.now()
            if end < start:
                self.add_error("end", forms.ValidationError("The range ends before it starts.", code="range_reversed"))
                return data
            data["start"], data["end"] = start, end
        else:
            data["start"], data["end"] = at, None
        return data

    def first_code(self) -> str:
        """The code of the first error, for the API's ``{"code", "detail"}``."""
        for errors in self.errors.as_data().values():
            for e in errors:
                for one in e.error_list:
                    return one.code or "invalid"
        return "invalid"
