"""REST API v1, deputies: my delegations (given and received), a new one, ending one early.

Like every other write, POSTs carry a current code in ``otp`` (checked before the view
runs). A caller sees only the delegations they gave or received; any other id is a 404.
Refusals are ``{"code", "detail"}``: 400 ``deputy_unknown``, ``deputy_self``,
``starts_in_past``, ``ends_before_start``, ``delegation_too_long``, ``period_invalid``,
``reason_too_long``; 403 ``not_approver`` (no approval right of one's own to delegate),
``not_party``; 404 ``not_found``; 409 ``already_revoked``, ``delegation_ended``, ``delegation_overlaps``.
"""
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from jitad.accounts.mfa import mfa_step_of

from ..errors import RequestRefused
from ..models import Delegation
from ..selectors.delegations import (
    delegation_state,
    delegation_visible,
    delegations_given,
    delegations_received,
    deputy_find,
)
from ..services.delegations import REASON_MAX, delegation_create, delegation_revoke
from .serializers import ErrorSerializer, MfaStepField, OtpField
from .views import ApiError

LIST_MAX = 200
FORBIDDEN = {"not_approver", "not_party", "not_delegator"}
CONFLICT = {"already_revoked", "delegation_ended", "delegation_overlaps"}


# -- serializers ---------------------------------------------------------------------------
class DelegationSerializer(serializers.ModelSerializer):
    """A delegation as its two people see it."""

    delegator = serializers.CharField(source="delegator.username", read_only=True)
    deputy = serializers.CharField(source="deputy.username", read_only=True)
    state = serializers.SerializerMethodField(help_text="scheduled, running, ended or revoked")

    class Meta:
        model = Delegation
        fields = ["id", "delegator", "deputy", "starts_at", "ends_at", "reason", "state", "created_at", "created_by",
                  "revoked_at", "revoked_by"]

    def get_state(self, obj) -> str:
        return delegation_state(obj, self.context.get("now"))


class DelegationListSerializer(serializers.Serializer):
    given = DelegationSerializer(many=True, help_text="Delegations of your approval right, newest first.")
    received = DelegationSerializer(many=True, help_text="Delegations that make you a deputy, newest first.")


class DelegationCreateSerializer(serializers.Serializer):
    deputy = serializers.CharField(max_length=150, help_text="The deputy's user name.")
    starts_at = serializers.DateTimeField(required=False, allow_null=True,
                                          help_text="ISO 8601; empty or absent: now. Not in the past.")
    ends_at = serializers.DateTimeField(help_text="ISO 8601; after the start, at most JITAD_DELEGATION_MAX_DAYS later.")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=REASON_MAX)
    otp = OtpField()
    mfa_step = MfaStepField()


class DelegationRevokeSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=REASON_MAX)
    otp = OtpField()
    mfa_step = MfaStepField()


# -- views ---------------------------------------------------------------------------------
def _errors(*codes: int) -> dict:
    text = {
        400: "Bad input, or a period the rules refuse",
        401: "No token, or a bad, expired or revoked one",
        403: "No valid OTP code, or the caller may not do this",
        404: "No such delegation of the caller's",
        409: "The delegation has already ended, or (creating) the same deputy already covers part of the period",
    }
    return {c: OpenApiResponse(ErrorSerializer, description=text[c]) for c in codes}


class DelegationApiView(GenericAPIView):
    """Base: a service's refusal becomes a 4xx with its code."""

    queryset = Delegation.objects.none()

    def handle_exception(self, exc):
        if isinstance(exc, RequestRefused):
            code = (status.HTTP_403_FORBIDDEN if exc.code in FORBIDDEN
                    else status.HTTP_409_CONFLICT if exc.code in CONFLICT else status.HTTP_400_BAD_REQUEST)
            exc = ApiError(exc.code, exc.message, code)
        return super().handle_exception(exc)

    def valid(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def show(self, d: Delegation, status_code=status.HTTP_200_OK) -> Response:
        return Response(DelegationSerializer(d, context={"now": timezone.now()}).data, status=status_code)


@extend_schema(tags=["delegations"])
class DelegationListView(DelegationApiView):
    serializer_class = DelegationListSerializer

    @extend_schema(
        operation_id="delegations_list", summary="My delegations, given and received",
        responses={200: DelegationListSerializer, **_errors(400, 401)},
    )
    def get(self, request):
        context = {"now": timezone.now()}
        return Response({
            "given": DelegationSerializer(delegations_given(user=request.user)[:LIST_MAX], many=True,
                                          context=context).data,
            "received": DelegationSerializer(delegations_received(user=request.user)[:LIST_MAX], many=True,
                                             context=context).data,
        })

    @extend_schema(
        operation_id="delegations_create", summary="Let a deputy decide in my place for a period",
        description="Only an approver in their own right may delegate, and only their own right. The deputy decides "
                    "exactly the requests you could decide, never their own.",
        request=DelegationCreateSerializer,
        responses={201: DelegationSerializer, **_errors(400, 401, 403, 409)},
    )
    def post(self, request):
        data = self.valid(DelegationCreateSerializer)
        d = delegation_create(delegator=request.user, deputy=deputy_find(username=data["deputy"]),
                              starts_at=data.get("starts_at"), ends_at=data["ends_at"],
                              reason=data.get("reason") or "", mfa=mfa_step_of(request))
        return self.show(d, status.HTTP_201_CREATED)


@extend_schema(tags=["delegations"],
               parameters=[OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH,
                                            description="The delegation's id.")])
class DelegationRevokeView(DelegationApiView):
    serializer_class = DelegationRevokeSerializer

    @extend_schema(
        operation_id="delegations_revoke", summary="End a delegation now",
        description="By its delegator, or by its deputy declining it.",
        request=DelegationRevokeSerializer,
        responses={200: DelegationSerializer, **_errors(400, 401, 403, 404, 409)},
    )
    def post(self, request, id):
        data = self.valid(DelegationRevokeSerializer)
        d = delegation_visible(user=request.user, delegation_id=id)
        if d is None:
            raise exceptions.NotFound("No such delegation, or not one of yours.")
        d = delegation_revoke(delegation=d, actor=request.user, reason=data.get("reason") or "",
                              mfa=mfa_step_of(request))
        return self.show(d)
