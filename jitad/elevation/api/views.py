"""REST API v1 views: eligibility, requests and decisions. They check shapes and call services.

Authentication is a personal token (``Authorization: Bearer jitad_...``) or a verified
portal session; every POST carries a current OTP code in ``otp`` (jitad/accounts/api.py
checks it before a view runs). Errors are ``{"code", "detail"}``, always 4xx:

* 400 ``parse_error`` / ``invalid`` (with ``fields``) — malformed JSON, wrong types, oversized text
* 400 ``target_unknown``, ``state_invalid``, and a service's own codes for input its policy
  refuses: ``duration_too_long``, ``duration_invalid``, ``extension_too_long`` (more than the
  policy's longest grant leaves), ``justification_required``,
  ``justification_too_long``, ``ticket_required``, ``ticket_invalid``, ``comment_required``,
  ``comment_too_long``, ``target_disabled``
* 401 ``not_authenticated`` / ``authentication_failed`` — no token, or a bad, expired or revoked one
* 403 ``otp_required`` / ``otp_invalid`` — a POST without a good code
* 403 — the caller may not do this: ``self_approval``, ``not_approver``, ``delegation_not_running``, ``not_requester``,
  ``not_holder``, ``not_eligible``
* 404 ``not_found`` — no such request, or one the caller may not see (the same answer, so
  ids of other people's requests are not disclosed)
* 409 — the request or grant is not in a state that allows it: ``not_pending``,
  ``already_decided``, ``extension_pending``, ``already_revoked``, ``not_extendable``,
  ``too_many_extensions`` (also when the policy allows none), ``total_duration_reached`` (the
  grant already lasts as long as the policy allows), ``no_grant``, ``group_already_counted`` (distinct approver groups:
  the caller's group already approved), ``policy_disabled``, ``requester_blocked``, ``already_revealed`` (an
  ephemeral account's password is shown once), ``not_ready`` (no ephemeral account ready to use)

A caller sees their own requests and every request whose policy or target names one of
their groups as approvers (``selectors.requests.requests_visible_to``); an automation identity
sees its own only here (no scope lets it decide). Everyone's access history is another matter:
the ``reports.read`` scope, granted on purpose, reads it through the reports API.
"""
from django.http import JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response

from jitad.accounts.automation_api import automation_caller, automation_target_check
from jitad.accounts.mfa import mfa_step_of, no_store
from jitad.accounts.throttle import client_ip

from ..errors import RequestRefused
from ..models import AccessRequest
from ..services import grant_account_reveal, grant_release, request_approve, request_cancel, request_create, request_deny, request_extend
from ..selectors.eligibility import eligibility_search
from ..selectors.requests import (
    request_current, request_grant, request_visible, requests_listed, requests_page_complete, requests_visible_to,
)
from ..selectors.targets import target_find
from . import schema  # noqa: F401 - registers the authentication schemes
from .serializers import (
    AccountRevealSerializer,
    EligibilitySerializer,
    ErrorSerializer,
    RequestApproveSerializer,
    RequestCreateSerializer,
    RequestDenySerializer,
    RequestExtendSerializer,
    RequestOtpSerializer,
    RequestSerializer,
)

FORBIDDEN = {"self_approval", "not_approver", "delegation_not_running", "not_requester", "not_holder", "not_eligible"}
CONFLICT = {
    "not_pending", "already_decided", "extension_pending", "already_revoked", "not_extendable",
    "too_many_extensions", "total_duration_reached", "no_grant", "group_already_counted", "policy_disabled",
    "requester_blocked", "already_revealed", "not_ready",
}


class ApiError(exceptions.APIException):
    """An API refusal with a stable code and a chosen status."""

    def __init__(self, code: str, detail: str, status_code: int = status.HTTP_400_BAD_REQUEST):
        super().__init__(detail=detail, code=code)
        self.status_code = status_code


def refusal_status(code: str) -> int:
    """The HTTP status for a service's refusal code (see the module docstring)."""
    if code in FORBIDDEN:
        return status.HTTP_403_FORBIDDEN
    if code in CONFLICT:
        return status.HTTP_409_CONFLICT
    return status.HTTP_400_BAD_REQUEST


def _errors(*codes: int) -> dict:
    text = {
        400: "Bad input, or input the policy refuses",
        401: "No token, or a bad, expired or revoked one",
        403: "No valid OTP code, or the caller may not do this",
        404: "No such request visible to the caller",
        409: "The request or grant is not in a state that allows this",
    }
    return {c: OpenApiResponse(ErrorSerializer, description=text[c]) for c in codes}


ID_PARAM = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The request's id.")


class RequestPagination(LimitOffsetPagination):
    max_limit = 200


class ApiView(GenericAPIView):
    """Base: RequestRefused from a service becomes a 4xx with the service's code."""

    def handle_exception(self, exc):
        if isinstance(exc, RequestRefused):
            exc = ApiError(exc.code, exc.message, refusal_status(exc.code))
        return super().handle_exception(exc)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return AccessRequest.objects.none()
        return requests_visible_to(user=self.request.user, as_approver=self.as_approver)

    @property
    def as_approver(self) -> bool:
        """Whether the caller also sees the requests its groups may decide: a person yes, an automation identity no."""
        return not automation_caller(self.request)

    def valid(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if hasattr(serializer, "duration_value"):
            data["duration_minutes"] = serializer.duration_value()
        return data

    def visible_request(self, request_id) -> AccessRequest:
        req = request_visible(user=self.request.user, request_id=request_id, as_approver=self.as_approver)
        if req is None:
            raise exceptions.NotFound("No such request, or not one you may see.")
        return req

    def respond(self, req: AccessRequest, status_code: int = status.HTTP_200_OK) -> Response:
        """The request the caller has just acted on, as it is now (re-read, so counts and the grant are current)."""
        return Response(RequestSerializer(request_current(request_id=req.pk)).data, status=status_code)


@extend_schema(tags=["eligibility"])
class EligibilityView(ApiView):
    """Targets the caller may request (the portal's eligibility search, paginated)."""

    serializer_class = EligibilitySerializer
    pagination_class = RequestPagination

    @extend_schema(
        operation_id="eligibility_list",
        summary="What I may request",
        description="The enabled targets you may request, by name, with the rules of the policy that applies. "
                    "`q` keeps targets whose name, host name or description contains every word.",
        parameters=[OpenApiParameter("q", OpenApiTypes.STR, description="Search words.")],
        responses={200: EligibilitySerializer(many=True), **_errors(400, 401)},
    )
    def get(self, request):
        paginator = self.paginator
        limit = paginator.get_limit(request)
        offset = paginator.get_offset(request)
        q = request.query_params.get("q", "").replace("\x00", "")[:100]
        page = eligibility_search(user=request.user, q=q, limit=limit, offset=offset)
        paginator.count, paginator.limit, paginator.offset, paginator.request = page.total, limit, offset, request
        rows = [{"target": t, "policy": p} for t, p in page.items]
        return paginator.get_paginated_response(EligibilitySerializer(rows, many=True).data)


@extend_schema(tags=["requests"])
class RequestListView(ApiView):
    """The caller's requests and those they may decide (newest first, paginated); or a new request."""

    serializer_class = RequestSerializer
    pagination_class = RequestPagination

    @extend_schema(
        operation_id="requests_list",
        summary="My requests, and those I may decide",
        parameters=[
            OpenApiParameter("state", OpenApiTypes.STR, enum=AccessRequest.State.values, description="Only this state.")
        ],
        responses={200: RequestSerializer(many=True), **_errors(400, 401)},
    )
    def get(self, request):
        requests = requests_listed(user=request.user, as_approver=self.as_approver)
        state = request.query_params.get("state")
        if state is not None:
            if state not in AccessRequest.State.values:
                raise ApiError("state_invalid", f"state must be one of: {', '.join(AccessRequest.State.values)}.")
            requests = requests.filter(state=state)
        page = requests_page_complete(self.paginate_queryset(requests))
        return self.get_paginated_response(RequestSerializer(page, many=True).data)

    @extend_schema(
        operation_id="requests_create",
        summary="Ask for admin rights on a target",
        description="Auto-approved policies create the grant at once; "
                    "poll the request until `grant.state` is `active`.",
        request=RequestCreateSerializer,
        responses={201: RequestSerializer, **_errors(400, 401, 403)},
    )
    def post(self, request):
        data = self.valid(RequestCreateSerializer)
        target = target_find(ref=data["target"])
        if target is None:
            raise ApiError("target_unknown", "No target has that id or name.")
        req = request_create(
            requester=request.user,
            target=target,
            duration_minutes=data.get("duration_minutes"),
            justification=data.get("justification") or "",
            ticket=data.get("ticket") or "",
            mfa=mfa_step_of(request),
            starts_at=data.get("starts_at"),
            client_ip=client_ip(request),
        )
        return self.respond(req, status.HTTP_201_CREATED)


@extend_schema(tags=["requests"], parameters=[ID_PARAM])
class RequestDetailView(ApiView):
    """One request the caller made or may decide, with its approvals count and grant."""

    serializer_class = RequestSerializer

    @extend_schema(
        operation_id="requests_retrieve", summary="One request",
        responses={200: RequestSerializer, **_errors(400, 401, 404)},
    )
    def get(self, request, id):
        return Response(RequestSerializer(self.visible_request(id)).data)


@extend_schema(tags=["requests"], parameters=[ID_PARAM])
class RequestApproveView(ApiView):
    serializer_class = RequestApproveSerializer

    @extend_schema(
        operation_id="requests_approve",
        summary="Approve a request",
        description="Records your approval; the request is approved once enough distinct approvers agree. "
                    "Nobody may approve their own request.",
        request=RequestApproveSerializer,
        responses={200: RequestSerializer, **_errors(400, 401, 403, 404, 409)},
    )
    def post(self, request, id):
        data = self.valid(RequestApproveSerializer)
        req = request_approve(request=self.visible_request(id), approver=request.user, comment=data.get("comment", ""),
                              mfa=mfa_step_of(request))
        return self.respond(req)


@extend_schema(tags=["requests"], parameters=[ID_PARAM])
class RequestDenyView(ApiView):
    serializer_class = RequestDenySerializer

    @extend_schema(
        operation_id="requests_deny",
        summary="Deny a request",
        description="One denial ends the request. A comment is required (`comment_required`).",
        request=RequestDenySerializer,
        responses={200: RequestSerializer, **_errors(400, 401, 403, 404, 409)},
    )
    def post(self, request, id):
        data = self.valid(RequestDenySerializer)
        req = request_deny(request=self.visible_request(id), approver=request.user, comment=data["comment"],
                           mfa=mfa_step_of(request))
        return self.respond(req)


@extend_schema(tags=["requests"], parameters=[ID_PARAM])
class RequestCancelView(ApiView):
    serializer_class = RequestOtpSerializer

    @extend_schema(
        operation_id="requests_cancel",
        summary="Withdraw my pending request",
        description="Only the requester, and only while the request is pending.",
        request=RequestOtpSerializer,
        responses={200: RequestSerializer, **_errors(400, 401, 403, 404, 409)},
    )
    def post(self, request, id):
        self.valid(RequestOtpSerializer)
        req = request_cancel(request=self.visible_request(id), actor=request.user)
        return self.respond(req)


def _grant_or_conflict(req: AccessRequest):
    grant = request_grant(req)
    if grant is None:
        raise ApiError("no_grant", f"Request #{req.pk} has no grant (it is {req.state}).", status.HTTP_409_CONFLICT)
    return grant


@extend_schema(tags=["requests"], parameters=[ID_PARAM])
class RequestReleaseView(ApiView):
    serializer_class = RequestOtpSerializer

    @extend_schema(
        operation_id="requests_release",
        summary="Give my access back early",
        description="Ends the request's grant (for an extension request, the grant it extends). The membership "
                    "is removed in the background: poll until `grant.state` is `revoked`.",
        request=RequestOtpSerializer,
        responses={200: RequestSerializer, **_errors(400, 401, 403, 404, 409)},
    )
    def post(self, request, id):
        self.valid(RequestOtpSerializer)
        req = self.visible_request(id)
        grant_release(grant=_grant_or_conflict(req), actor=request.user)
        return self.respond(req)


@extend_schema(tags=["requests"], parameters=[ID_PARAM])
class RequestExtendView(ApiView):
    serializer_class = RequestExtendSerializer

    @extend_schema(
        operation_id="requests_extend",
        summary="Ask for more time on my grant",
        description="Creates an extension request for the request's grant, decided under the same policy. "
                    "Returns the new request.",
        request=RequestExtendSerializer,
        responses={201: RequestSerializer, **_errors(400, 401, 403, 404, 409)},
    )
    def post(self, request, id):
        data = self.valid(RequestExtendSerializer)
        grant = _grant_or_conflict(self.visible_request(id))
        automation_target_check(request, target_name=grant.target.name)
        extension = request_extend(
            grant=grant,
            requester=request.user,
            client_ip=client_ip(request),
            duration_minutes=data.get("duration_minutes"),
            justification=data.get("justification") or "",
            ticket=data.get("ticket") or "",
            mfa=mfa_step_of(request),
        )
        return self.respond(extension, status.HTTP_201_CREATED)


@extend_schema(tags=["requests"], parameters=[ID_PARAM])
class RequestAccountView(ApiView):
    serializer_class = RequestOtpSerializer

    @extend_schema(
        operation_id="requests_account_reveal",
        summary="Show my ephemeral account's password, once",
        description="For a grant through an ephemeral account (docs/ephemeral.md): the account's name and its "
                    "password, shown once and then erased from jitad (`already_revealed` after that). The response "
                    "is not to be stored (`Cache-Control: no-store`).",
        request=RequestOtpSerializer,
        responses={200: AccountRevealSerializer, **_errors(400, 401, 403, 404, 409)},
    )
    def post(self, request, id):
        self.valid(RequestOtpSerializer)
        grant = _grant_or_conflict(self.visible_request(id))
        if grant.user_id != request.user.pk:
            raise ApiError("not_holder", "Only the person this access was granted to sees its password.",
                           status.HTTP_403_FORBIDDEN)
        if not grant.ephemeral:
            raise ApiError("not_ready", f"Grant #{grant.pk} uses your own account: there is no password to show.",
                           status.HTTP_409_CONFLICT)
        password = grant_account_reveal(grant=grant, actor=request.user)
        grant.refresh_from_db()
        data = AccountRevealSerializer({"account": grant.account_sam, "dn": grant.account_dn, "password": password,
                                        "expires_at": grant.expires_at}).data
        return no_store(Response(data))


def not_found(request, *args, **kwargs):
    """Any other path under /api/v1/: a JSON 404, like every other API error."""
    return JsonResponse({"code": "not_found", "detail": "No such API endpoint."}, status=404)
