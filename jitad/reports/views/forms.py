"""The Reports filter form: a period (or start and end dates), a tier, a target and a policy, read from GET."""
from django import forms

from jitad.elevation.models import Target

from ..period import EXAMPLES, PeriodError, default_period, period_resolve
from ..selectors.filters import report_filter_errors


class ReportFilterForm(forms.Form):
    """What a report covers; every error is a message on the form, never a 500."""

    period = forms.CharField(required=False, max_length=12, label="Period")
    start = forms.DateField(required=False, label="From (date)", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To (date, included)", widget=forms.DateInput(attrs={"type": "date"}))
    tier = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Tier",
                                  choices=[("", "All tiers"), *Target.Tier.choices])
    target = forms.CharField(required=False, max_length=200, label="Target", help_text="A target's name.")
    policy = forms.CharField(required=False, max_length=200, label="Policy", help_text="A policy's name.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["period"].help_text = f"Ending now, {EXAMPLES} (default {default_period()}); or give dates below."

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if data.get("end") and not data.get("start"):
            self.add_error("start", "Give the start date too, or leave both dates empty.")
            return data
        try:
            data["start_at"], data["end_at"] = period_resolve(
                period=None if data.get("start") else (data.get("period") or default_period()),
                start=data.get("start"), end=data.get("end"))
        except PeriodError as e:
            self.add_error("period" if not data.get("start") else "start", str(e))
        if data.get("start") and data.get("period"):
            self.add_error("period", "Give either a period or dates, not both.")
        for field, message in report_filter_errors(target=data.get("target"), policy=data.get("policy")).items():
            self.add_error(field, message)
        return data

    def build_args(self) -> dict:
        """The keyword arguments of ``report_build`` (the form must be valid)."""
        d = self.cleaned_data
        return {"start": d["start_at"], "end": d["end_at"], "tier": d.get("tier"),
                "target": d.get("target") or None, "policy": d.get("policy") or None}
