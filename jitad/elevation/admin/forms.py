"""Forms of the admin's decision and revocation steps."""
from django import forms

from ..services.requests import JUSTIFICATION_MAX


class DecisionForm(forms.Form):
    """Approve or deny, with a comment (the service requires one to deny)."""

    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("deny", "Deny")], widget=forms.HiddenInput)
    comment = forms.CharField(
        required=False, max_length=JUSTIFICATION_MAX, strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Shown to the requester. Required to deny.",
    )

    def clean(self):
        data = super().clean()
        if data.get("decision") == "deny" and not data.get("comment"):
            self.add_error("comment", "Say why you deny it: the requester sees this comment.")
        return data


class RevokeForm(forms.Form):
    """End someone's grant now, with the reason recorded in the audit trail."""

    reason = forms.CharField(
        max_length=JUSTIFICATION_MAX, strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Recorded in the audit trail and told to the holder.",
    )
