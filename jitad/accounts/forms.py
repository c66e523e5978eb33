"""Forms for login, MFA and API tokens."""
from django import forms


class LoginForm(forms.Form):
    username = forms.CharField(label="User name", max_length=256,
                               help_text="Your Windows logon name (jdoe, JITAD\\jdoe or jdoe@corp.example).",
                               widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True, "autocapitalize": "none"}))
    password = forms.CharField(label="Password", max_length=1024, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class CodeForm(forms.Form):
    otp = forms.CharField(label="Code", max_length=32,
                          help_text="6 digits from your authenticator app, or one of your backup codes.",
                          widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text",
                                                        "autofocus": True, "spellcheck": "false"}))


class TokenCreateForm(forms.Form):
    name = forms.CharField(label="Token name", max_length=100, help_text="What will use it, e.g. 'deploy script'.")
    days = forms.TypedChoiceField(label="Expires after", coerce=int, initial=90,
                                  choices=[(7, "7 days"), (30, "30 days"), (90, "90 days"), (365, "1 year")])


class EnrolForm(forms.Form):
    """The confirmation code for a new authenticator (not named ``otp``: that field is the step-up code)."""

    code = forms.CharField(label="Code from the app", max_length=12,
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                                         "autofocus": True}))


class EnrolmentCodeForm(forms.Form):
    """The one-time code the service desk issued for a first MFA enrolment."""

    enrolment_code = forms.CharField(label="Enrolment code", max_length=40,
                                     help_text="The code the service desk gave you: 16 letters and digits.",
                                     widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True,
                                                                   "autocapitalize": "characters", "spellcheck": "false"}))
