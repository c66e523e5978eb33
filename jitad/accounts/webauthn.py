"""Passkeys (django-otp-webauthn) as a second factor, with jitad's fresh-MFA timestamp.

The library's own views mark the session verified through django-otp; these subclasses
also record *when*, so a passkey can satisfy the fresh-MFA window like a TOTP code can.
"""
import json

from django.db import transaction
from django.urls import path
from django.views.i18n import JavaScriptCatalog
from django_otp_webauthn import exceptions
from django_otp_webauthn import views as w

from jitad.audit.services import audit_record

from .mfa import mfa_mark_verified
from .services import mfa_change_alert


class PasskeyAuthenticationCompleteView(w.CompleteCredentialAuthenticationView):
    def complete_auth(self, device):
        if not self.request.user.is_authenticated:  # passwordless login is off; the AD password comes first
            raise exceptions.NotAuthenticated()
        if device.user_id != self.request.user.pk:
            raise exceptions.CredentialUserMismatch()
        mfa_mark_verified(self.request, device)


class PasskeyRegistrationCompleteView(w.CompleteCredentialRegistrationView):
    def post(self, *args, **kwargs):
        response = super().post(*args, **kwargs)
        if response.status_code == 200:
            device_id = json.loads(response.content).get("id", "")
            with transaction.atomic():
                audit_record(actor=self.request.user.get_username(), action="mfa.enrolled", object_type="otp_device",
                             object_id=f"webauthn/{device_id}", after="confirmed", data={"kind": "webauthn"})
                mfa_change_alert(self.request.user, "added a passkey", kind="added a passkey")
        return response


app_name = "otp_webauthn"
urlpatterns = [
    path("registration/begin/", w.BeginCredentialRegistrationView.as_view(), name="credential-registration-begin"),
    path("registration/complete/", PasskeyRegistrationCompleteView.as_view(), name="credential-registration-complete"),
    path("authentication/begin/", w.BeginCredentialAuthenticationView.as_view(), name="credential-authentication-begin"),
    path("authentication/complete/", PasskeyAuthenticationCompleteView.as_view(), name="credential-authentication-complete"),
    path("jsi18n/", JavaScriptCatalog.as_view(packages=["django_otp_webauthn"]), name="js-i18n-catalog"),
]
