"""REST API v1: access history (``GET /api/v1/access-history``), for holders of ``reports.view_reports``.

Authentication as for the rest of the API (a personal token, or an MFA-verified portal
session); errors are ``{"code", "detail"}`` (plus ``fields`` on a 400):

* 400 ``subject_required``, ``target_unknown``, ``person_unknown``, ``time_required``,
  ``time_invalid``, ``time_conflict``, ``start_required``, ``range_reversed``, ``invalid``
* 401 ``not_authenticated`` / ``authentication_failed``
* 403 ``permission_denied`` — the caller lacks ``reports.view_reports``; ``otp_required`` — any write
  (there is none: a write with a current code gets 405)
"""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response

from jitad.accounts.api import OTPForUnsafeMethods
from jitad.elevation.api.serializers import ErrorSerializer

from ..history.forms import TIME_HELP, HistoryForm
from ..history.rows import Source
from ..history.selectors import access_at


class CanViewReports(permissions.BasePermission):
    """Authenticated, with ``reports.view_reports`` (read-only: nothing here changes state)."""

    message = "Access history needs the view_reports permission."

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.has_perm("reports.view_reports"))


class HoldingSerializer(serializers.Serializer):
    """One principal holding one right over [start, end] (end null: still held)."""

    source = serializers.ChoiceField(choices=Source.ALL)
    target = serializers.CharField(allow_null=True)
    target_id = serializers.IntegerField(allow_null=True)
    principal = serializers.CharField(help_text="who held it, as the record names them")
    person = serializers.CharField(allow_null=True, help_text="the jitad user, when known")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(allow_null=True)
    ongoing = serializers.BooleanField()
    ended = serializers.CharField(help_text="how it ended (or the state it is in)")
    record_id = serializers.IntegerField(help_text="the id of the source's record (grant, finding, event, hold, checkout)")
    evidence = serializers.DictField(help_text="the source's record: request, approvers, justification, ticket; scans; checkout")


class HistoryPagination(LimitOffsetPagination):
    default_limit = 100
    max_limit = 500


def _bad(form: HistoryForm) -> Response:
    fields = {name: [str(m) for m in msgs] for name, msgs in form.errors.items()}
    first = next(iter(fields.values()), ["Invalid input."])[0]
    return Response({"code": form.first_code(), "detail": first, "fields": fields}, status=status.HTTP_400_BAD_REQUEST)


@extend_schema(tags=["reports"])
class AccessHistoryView(GenericAPIView):
    """Who held a target's admin right, or what a person held, at a moment or over a range."""

    serializer_class = HoldingSerializer
    pagination_class = HistoryPagination
    # The API's rule first (a write without a current code is otp_required, as on every endpoint), then the reports'.
    permission_classes = [OTPForUnsafeMethods, CanViewReports]

    @extend_schema(
        operation_id="access_history",
        summary="Who was admin on a target (or what a person held), when",
        description="Every holding that overlaps the moment `at`, or the range `start`..`end` (end defaults to now; "
                    "both ends count): JIT grants with their request, approvers, justification and ticket; standing "
                    "members seen by host scans; out-of-band members the reconciler found; break-glass checkouts. "
                    "Oldest first, paginated with `limit` and `offset`.",
        parameters=[
            OpenApiParameter("target", OpenApiTypes.STR, description="A target's name or id."),
            OpenApiParameter("person", OpenApiTypes.STR, description="A user name."),
            OpenApiParameter("at", OpenApiTypes.STR, description="A moment: " + TIME_HELP + "."),
            OpenApiParameter("start", OpenApiTypes.STR, description="The start of a range: " + TIME_HELP + "."),
            OpenApiParameter("end", OpenApiTypes.STR, description="The end of a range (default now)."),
        ],
        responses={
            200: HoldingSerializer(many=True),
            400: OpenApiResponse(ErrorSerializer, description="A bad or missing target, person or time"),
            401: OpenApiResponse(ErrorSerializer, description="No token, or a bad, expired or revoked one"),
            403: OpenApiResponse(ErrorSerializer, description="The caller lacks reports.view_reports"),
        },
    )
    def get(self, request):
        form = HistoryForm({k: request.query_params.get(k, "") for k in HistoryForm.base_fields})
        if not form.is_valid():
            return _bad(form)
        data = form.cleaned_data
        rows = access_at(target=data["target"], person=data["person"], start=data["start"], end=data["end"])
        page = self.paginate_queryset([h.as_dict() for h in rows])
        return self.get_paginated_response(HoldingSerializer(page, many=True).data)
