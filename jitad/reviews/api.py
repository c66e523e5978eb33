"""REST API v1 for reviewers: the open reviews they review, and deciding one person.

Authentication and the ``otp`` rule for writes are the API's own (jitad/accounts/api.py);
errors are ``{"code", "detail"}``: 400 ``decision_invalid`` / ``comment_too_long`` /
``invalid``; 403 ``not_reviewer``, ``self_review`` (nobody decides about themselves),
``otp_required`` / ``otp_invalid``; 404 ``not_found`` (no such item, or not one you
review); 409 ``already_decided``, ``campaign_closed``.
"""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from jitad.accounts.mfa import mfa_step_of
from jitad.elevation.api.serializers import ErrorSerializer, MfaStepField, OtpField

from . import services
from .errors import CONFLICT, FORBIDDEN, ReviewRefused
from .models import ReviewItem
from .selectors import campaigns_for_reviewer, can_decide, item_for_reviewer

COMMENT_MAX = 10_000  # above the service's limit, so its own message is what people see


class ReviewItemSerializer(serializers.ModelSerializer):
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    can_decide = serializers.SerializerMethodField(help_text="true if you may keep or remove this person now")

    class Meta:
        model = ReviewItem
        fields = ["id", "username", "via", "decision", "by_default", "decided_by", "decided_at", "comment",
                  "applied_at", "can_decide"]

    def get_can_decide(self, item) -> bool:
        return item.pk in self.context.get("decidable", set())


class ReviewCampaignSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="campaign.pk")
    policy = serializers.CharField(source="campaign.policy.name")
    opened_at = serializers.DateTimeField(source="campaign.opened_at")
    deadline = serializers.DateTimeField(source="campaign.deadline")
    default = serializers.CharField(source="campaign.rules.default", help_text="what an undecided item becomes at the deadline")
    waiting = serializers.IntegerField(help_text="items you may still decide")
    items = serializers.SerializerMethodField()

    @extend_schema_field(ReviewItemSerializer(many=True))
    def get_items(self, entry) -> list[dict]:
        return ReviewItemSerializer(entry.items, many=True, context={"decidable": entry.decidable}).data


class ReviewDecideSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["keep", "remove"])
    comment = serializers.CharField(required=False, allow_blank=True, max_length=COMMENT_MAX, default="")
    otp = OtpField()
    mfa_step = MfaStepField()


def _errors(*codes: int) -> dict:
    text = {400: "Bad input", 401: "No token, or a bad one", 403: "No valid OTP code, or not yours to decide",
            404: "No such item you review", 409: "Already decided, or the review is closed"}
    return {c: OpenApiResponse(ErrorSerializer, description=text[c]) for c in codes}


class ReviewApiError(exceptions.APIException):
    def __init__(self, code: str, detail: str, status_code: int):
        super().__init__(detail=detail, code=code)
        self.status_code = status_code


class ReviewApiView(GenericAPIView):
    """Base: a ReviewRefused from the service becomes a 4xx with its code."""

    def handle_exception(self, exc):
        if isinstance(exc, ReviewRefused):
            code = (status.HTTP_403_FORBIDDEN if exc.code in FORBIDDEN else
                    status.HTTP_409_CONFLICT if exc.code in CONFLICT else status.HTTP_400_BAD_REQUEST)
            exc = ReviewApiError(exc.code, exc.message, code)
        return super().handle_exception(exc)


@extend_schema(tags=["reviews"])
class ReviewListView(ReviewApiView):
    serializer_class = ReviewCampaignSerializer
    pagination_class = None

    @extend_schema(operation_id="reviews_list", summary="Open reviews you review",
                   description="Every open eligibility review whose reviewer groups include you, soonest deadline "
                               "first, with its items; `can_decide` marks those you may keep or remove (never "
                               "an item about yourself).",
                   responses={200: ReviewCampaignSerializer(many=True), **_errors(400, 401)})
    def get(self, request):
        return Response(ReviewCampaignSerializer(campaigns_for_reviewer(user=request.user), many=True).data)


@extend_schema(tags=["reviews"], parameters=[OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH,
                                                              description="The review item's id.")])
class ReviewItemDecideView(ReviewApiView):
    serializer_class = ReviewDecideSerializer

    @extend_schema(operation_id="reviews_items_decide", summary="Keep or remove one person",
                   description="Records your decision (the first one stands). A removal takes the person's "
                               "eligibility under the policy away at once.",
                   request=ReviewDecideSerializer, responses={200: ReviewItemSerializer, **_errors(400, 401, 403, 404, 409)})
    def post(self, request, id):
        serializer = ReviewDecideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        item = item_for_reviewer(user=request.user, item_id=id)
        if item is None:
            raise exceptions.NotFound("No such review item, or not one you review.")
        data = serializer.validated_data
        item = services.item_decide(item=item, reviewer=request.user, decision=data["decision"],
                                    comment=data.get("comment", ""), mfa=mfa_step_of(request))
        item = item_for_reviewer(user=request.user, item_id=item.pk)
        decidable = {item.pk} if can_decide(user=request.user, item=item) else set()
        return Response(ReviewItemSerializer(item, context={"decidable": decidable}).data)
