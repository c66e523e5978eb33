"""A passkey step for the REST API: people with no code to type (passkey only) can still write.

``POST /api/v1/mfa/passkey/options`` answers WebAuthn assertion options for the caller's
passkeys (the challenge stays on the server, in an ApiMfaStep row); ``POST
/api/v1/mfa/passkey/verify`` takes the assertion and answers ``{"mfa_step", "expires_at"}``.
A write then carries ``mfa_step`` where it would carry ``otp`` (jitad/accounts/api.py):
accepted once, from the same person and the same API token (or the portal session when
none), within JITAD_MFA_FRESH_SECONDS of the verification, and recorded as ``webauthn``.
The rules live in jitad/accounts/passkey_steps.py.
"""
from django.urls import re_path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import ApiToken
from .passkey_steps import passkey_step_begin, passkey_step_verify


class MfaErrorSerializer(serializers.Serializer):
    """An error: a stable ``code`` for programs and a ``detail`` for people."""

    code = serializers.CharField()
    detail = serializers.CharField()
    fields = serializers.DictField(required=False, help_text="per-field messages, for code 'invalid'")


ERRORS = {
    400: OpenApiResponse(MfaErrorSerializer, description="Bad input (not an assertion's shape)"),
    401: OpenApiResponse(MfaErrorSerializer, description="No token, or a bad, expired or revoked one"),
    403: OpenApiResponse(MfaErrorSerializer, description=(
        "no_passkey, mfa_challenge_missing (ask for options first), mfa_step_refused (the assertion is not valid)")),
}


def _token_of(auth) -> ApiToken | None:
    return auth if isinstance(auth, ApiToken) else None


class PasskeyAssertionSerializer(serializers.Serializer):
    """The assertion as ``PublicKeyCredential.toJSON()`` gives it (base64url fields)."""

    id = serializers.CharField(max_length=1024)
    rawId = serializers.CharField(max_length=1024)
    type = serializers.CharField(max_length=32)
    response = serializers.DictField(help_text="clientDataJSON, authenticatorData, signature, userHandle")
    clientExtensionResults = serializers.DictField(required=False)
    authenticatorAttachment = serializers.CharField(required=False, allow_null=True, max_length=32)


class MfaStepSerializer(serializers.Serializer):
    mfa_step = serializers.CharField(help_text="Send as 'mfa_step' on one write instead of 'otp'; single use.")
    expires_at = serializers.DateTimeField()


class _StepView(APIView):
    permission_classes = [permissions.IsAuthenticated]


class PasskeyOptionsView(_StepView):
    @extend_schema(request=None, responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description=(
        "WebAuthn PublicKeyCredentialRequestOptions (JSON) for navigator.credentials.get or a security-key client")),
        **ERRORS},
        tags=["mfa"], operation_id="mfa_passkey_options")
    def post(self, request):
        """Start a passkey step: assertion options for your registered passkeys."""
        return Response(passkey_step_begin(request=request._request, user=request.user, api_token=_token_of(request.auth)))


class PasskeyVerifyView(_StepView):
    @extend_schema(request=PasskeyAssertionSerializer, responses={200: MfaStepSerializer, **ERRORS}, tags=["mfa"],
                   operation_id="mfa_passkey_verify")
    def post(self, request):
        """Finish a passkey step: the assertion in, a single-use ``mfa_step`` out."""
        shape = PasskeyAssertionSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        raw, row = passkey_step_verify(request=request._request, user=request.user,
                                       api_token=_token_of(request.auth), data=dict(request.data))
        return Response(MfaStepSerializer({"mfa_step": raw, "expires_at": row.expires_at}).data)


app_name = "mfa_api"
urlpatterns = [
    re_path(r"^passkey/options(?:/)?$", PasskeyOptionsView.as_view(), name="passkey-options"),
    re_path(r"^passkey/verify(?:/)?$", PasskeyVerifyView.as_view(), name="passkey-verify"),
]
