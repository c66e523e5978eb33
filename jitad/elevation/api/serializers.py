"""Serializers for API v1: shapes of input and output only; the rules live in the services.

Input serializers check types and bound sizes so nothing absurd reaches a service; policy
limits (maximum duration, justification length, ticket format) are the services' to refuse,
with their own codes. Every state-changing call declares ``otp`` and ``mfa_step`` (one of
them is needed): the permission class (jitad/accounts/api.py) checks them before the view
runs; they are declared here so the OpenAPI schema shows them.
"""
from functools import cached_property

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from ..models import AccessRequest, Approval, Grant, Policy, Target
from ..selectors.approvers import approvals_counted
from ..selectors.requests import request_grant

TEXT_MAX = 10_000  # far above any policy's limit, so the service's own message is what people see
TARGET_REF_MAX = 255


class OtpField(serializers.CharField):
    """The OTP code a state-changing call carries unless it carries ``mfa_step`` (checked by the permission class)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("required", False)
        kwargs.setdefault(
            "help_text", "A current code from your authenticator app, or one of your backup codes (single use). "
                         "Needed unless 'mfa_step' is sent.",
        )
        super().__init__(write_only=True, **kwargs)


class MfaStepField(serializers.CharField):
    """A passkey step from /api/v1/mfa/passkey/verify, in place of ``otp`` (checked by the permission class)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 128)
        kwargs.setdefault("required", False)
        kwargs.setdefault(
            "help_text", "Instead of 'otp': the step /api/v1/mfa/passkey/verify gave you (single use, this token only, "
                         "valid for the fresh-MFA window).",
        )
        super().__init__(write_only=True, **kwargs)


class ServiceCheckedTextField(serializers.CharField):
    """Required in the schema, but an absent or blank value reaches the service, which says why it is needed."""

    def __init__(self, **kwargs):
        super().__init__(required=True, allow_blank=True, max_length=TEXT_MAX, **kwargs)

    def validate_empty_values(self, data):
        if data is serializers.empty or data is None:
            return True, ""
        return super().validate_empty_values(data)


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string", "maxLength": 255}]})
class TargetRefField(serializers.Field):
    """A target's id (integer, or digits) or its exact name; resolved by the view through a service."""

    default_error_messages = {"invalid": "Give a target id or its exact name.", "max_length": "Too long."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, str)):
            self.fail("invalid")
        if isinstance(data, str):
            data = data.strip()
            if not data or "\x00" in data:  # PostgreSQL refuses NUL in text
                self.fail("invalid")
            if len(data) > TARGET_REF_MAX:
                self.fail("max_length")
        return data

    def to_representation(self, value):
        return value


# -- output ------------------------------------------------------------------------------
class TargetBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Target
        fields = ["id", "name", "hostname"]


class GrantBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Grant
        fields = ["id", "state", "starts_at", "expires_at", "activated_at", "revoke_requested_at", "revoked_at",
                  "extensions", "account", "account_name", "account_revealed_at"]

    account_name = serializers.CharField(source="account_sam", read_only=True,
                                         help_text="the ephemeral account this grant uses; empty: the person's own")


class AccountRevealSerializer(serializers.Serializer):
    """An ephemeral account and its password, shown once."""

    account = serializers.CharField(help_text="its sAMAccountName")
    dn = serializers.CharField()
    password = serializers.CharField()
    expires_at = serializers.DateTimeField(help_text="it is disabled and deleted then, or at an earlier release")


STAGE_PASSED, STAGE_OPEN, STAGE_WAITING = "passed", "open", "waiting"


class StageSerializer(serializers.Serializer):
    """One approval stage of a request, as its approvers and requester see it."""

    name = serializers.CharField()
    approvals_required = serializers.IntegerField()
    approvals = serializers.IntegerField(help_text="approvals that count towards this stage")
    state = serializers.ChoiceField(choices=[STAGE_PASSED, STAGE_OPEN, STAGE_WAITING],
                                    help_text="passed; open (waiting for decisions now); waiting (comes later)")
    escalated_at = serializers.DateTimeField(allow_null=True, help_text="when the open stage escalated; else null")


def request_stages(req: AccessRequest) -> list[dict]:
    """The stages of ``req`` with each one's approvals counted and its state (one query, none without stages)."""
    if not req.stages:
        return []
    by_stage: dict[int, list] = {}
    for approval in req.approvals.all():
        if approval.decision == Approval.Decision.APPROVE:
            by_stage.setdefault(approval.stage, []).append(approval.approver_groups or [])
    rows = []
    for index, stage in enumerate(req.stages):
        if index < req.stage:
            state = STAGE_PASSED
        elif index == req.stage and req.state == AccessRequest.State.PENDING:
            state = STAGE_OPEN
        else:
            state = STAGE_WAITING
        rows.append({
            "name": stage.get("name", ""),
            "approvals_required": int(stage.get("approvals_required", 0)),
            "approvals": approvals_counted(by_stage.get(index, []), distinct_groups=bool(stage.get("distinct_groups"))),
            "state": state,
            "escalated_at": req.escalated_at if state == STAGE_OPEN else None,
        })
    return rows


class RequestSerializer(serializers.ModelSerializer):
    """A request as the API shows it; ``grant`` is its grant, or for an extension the grant it extends.

    ``stages`` lists the approval stages (empty for a single-stage or automatic request) and
    ``stage`` the index of the open one (``len(stages)`` once all passed). The address the
    request came from is never shown.
    """

    target = TargetBriefSerializer(read_only=True)
    requester = serializers.CharField(source="requester.get_username", read_only=True)
    policy = serializers.CharField(source="policy.name", read_only=True)
    approvals = serializers.IntegerField(source="approvals_count", read_only=True, help_text="approve decisions so far")
    grant = serializers.SerializerMethodField()
    stages = serializers.SerializerMethodField()
    stage = serializers.IntegerField(read_only=True, help_text="index of the open stage; len(stages) once all passed")
    window_action = serializers.CharField(
        read_only=True, help_text="what the policy's time window decided: policy, auto, extra_stage; empty without one",
    )

    class Meta:
        model = AccessRequest
        fields = [
            "id", "kind", "state", "target", "requester", "policy", "duration_minutes", "justification", "ticket",
            "starts_at", "created_at", "pending_until", "decided_at", "approvals_required", "approvals", "extends",
            "grant", "stages", "stage", "window_action",
        ]
        read_only_fields = fields

    # One nested serializer of each kind per page, not one per row: building a serializer's
    # fields costs more than representing a row with them.
    @cached_property
    def _stage_serializer(self) -> StageSerializer:
        return StageSerializer()

    @cached_property
    def _grant_serializer(self) -> GrantBriefSerializer:
        return GrantBriefSerializer()

    @extend_schema_field(StageSerializer(many=True))
    def get_stages(self, obj):
        return [self._stage_serializer.to_representation(stage) for stage in request_stages(obj)]

    @extend_schema_field(GrantBriefSerializer(allow_null=True))
    def get_grant(self, obj):
        grant = request_grant(obj)
        return self._grant_serializer.to_representation(grant) if grant is not None else None

    def to_representation(self, instance):
        """The fields above, written out: the same answer as DRF's walk over them
        (tests/elevation/test_api_representation.py compares the two), at a fraction of its
        cost. A list page is 50 rows of about 30 values, and the walk (a field lookup and a
        type check per value) cost more than reading the rows."""
        if api_settings.DATETIME_FORMAT.lower() != ISO_8601:
            return super().to_representation(instance)
        when = _datetime_text(timezone.get_current_timezone())
        target, grant = instance.target, request_grant(instance)
        return {
            "id": instance.pk, "kind": instance.kind, "state": instance.state,
            "target": {"id": target.pk, "name": target.name, "hostname": target.hostname},
            "requester": instance.requester.get_username(), "policy": instance.policy.name,
            "duration_minutes": instance.duration_minutes, "justification": instance.justification,
            "ticket": instance.ticket, "starts_at": when(instance.starts_at), "created_at": when(instance.created_at),
            "pending_until": when(instance.pending_until), "decided_at": when(instance.decided_at),
            "approvals_required": instance.approvals_required, "approvals": instance.approvals_count,
            "extends": instance.extends_id,
            "grant": None if grant is None else {
                "id": grant.pk, "state": grant.state, "starts_at": when(grant.starts_at),
                "expires_at": when(grant.expires_at), "activated_at": when(grant.activated_at),
                "revoke_requested_at": when(grant.revoke_requested_at), "revoked_at": when(grant.revoked_at),
                "extensions": grant.extensions, "account": grant.account, "account_name": grant.account_sam,
                "account_revealed_at": when(grant.account_revealed_at),
            },
            "stages": [{**stage, "escalated_at": when(stage["escalated_at"])} for stage in request_stages(instance)],
            "stage": instance.stage, "window_action": instance.window_action,
        }


def _datetime_text(tz):
    """DRF's DateTimeField output in ISO 8601 for aware values: in ``tz`` (the current time zone),
    with "Z" for UTC; None stays None."""
    def text(value):
        if not value:
            return None
        value = value.astimezone(tz).isoformat()
        return value[:-6] + "Z" if value.endswith("+00:00") else value
    return text


class EligibilitySerializer(serializers.Serializer):
    """A target the caller may request, and the rules of the policy that applies (``{"target", "policy"}``)."""

    id = serializers.IntegerField(source="target.id")
    name = serializers.CharField(source="target.name")
    kind = serializers.ChoiceField(source="target.kind", choices=Target.Kind.choices)
    hostname = serializers.CharField(source="target.hostname")
    description = serializers.CharField(source="target.description")
    policy = serializers.CharField(source="policy.name")
    default_duration_minutes = serializers.IntegerField(source="policy.default_duration_minutes")
    max_duration_minutes = serializers.IntegerField(source="policy.max_duration_minutes")
    approval_mode = serializers.ChoiceField(source="policy.approval_mode", choices=Policy.ApprovalMode.choices)
    approvals_required = serializers.SerializerMethodField()
    require_justification = serializers.BooleanField(source="policy.require_justification")
    min_justification_length = serializers.IntegerField(source="policy.min_justification_length")
    require_ticket = serializers.BooleanField(source="policy.require_ticket")
    ticket_pattern = serializers.CharField(source="policy.ticket_pattern")
    max_extensions = serializers.IntegerField(source="policy.max_extensions")

    @extend_schema_field(OpenApiTypes.INT)
    def get_approvals_required(self, obj) -> int:
        """0 under automatic approval, as the request itself will record."""
        policy = obj["policy"]
        return 0 if policy.approval_mode == Policy.ApprovalMode.AUTO else policy.approvals_required

    def to_representation(self, instance):
        """The fields above, written out (as ``RequestSerializer.to_representation``; compared with DRF's
        walk in tests/elevation/test_api_representation.py): a page is 50 rows of 15 values."""
        target, policy = instance["target"], instance["policy"]
        return {
            "id": target.pk, "name": target.name, "kind": target.kind, "hostname": target.hostname,
            "description": target.description, "policy": policy.name,
            "default_duration_minutes": policy.default_duration_minutes,
            "max_duration_minutes": policy.max_duration_minutes, "approval_mode": policy.approval_mode,
            "approvals_required": self.get_approvals_required(instance),
            "require_justification": policy.require_justification,
            "min_justification_length": policy.min_justification_length, "require_ticket": policy.require_ticket,
            "ticket_pattern": policy.ticket_pattern, "max_extensions": policy.max_extensions,
        }


class ErrorSerializer(serializers.Serializer):
    """Every error: a stable ``code`` for programs and a ``detail`` for people."""

    code = serializers.CharField()
    detail = serializers.CharField()
    fields = serializers.DictField(required=False, help_text="per-field messages, for code 'invalid'")


# -- input -------------------------------------------------------------------------------
DURATION_HELP = ("How long, as people write it: \"4h\", \"90m\", \"1h30m\", ISO 8601 \"PT1H30M\", or a number of "
                 "minutes. Give this or duration_minutes, not both; the policy's default if neither.")


class DurationInputMixin(serializers.Serializer):
    """``duration`` ("1h30m") or ``duration_minutes`` (90): one of them, or neither (the policy's default)."""

    duration = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=40,
                                     help_text=DURATION_HELP)

    def validate(self, attrs):
        if attrs.get("duration") not in (None, "") and attrs.get("duration_minutes") is not None:
            raise serializers.ValidationError({"duration": "Give duration or duration_minutes, not both."})
        return attrs

    def duration_value(self):
        """What the service reads: the text as given, or the minutes, or None for the default."""
        data = self.validated_data
        text = data.get("duration")
        return text if text not in (None, "") else data.get("duration_minutes")


class OffsetDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date and time with its offset ("2026-12-06T02:00:00Z", "...+01:00"): a time without one is
    refused rather than guessed in some zone."""

    default_error_messages = {"naive": "Give the offset too, such as 2026-12-06T02:00:00Z or 2026-12-06T03:00:00+01:00."}

    def to_internal_value(self, value):
        if isinstance(value, str) and parse_datetime(value.strip()) is not None \
                and timezone.is_naive(parse_datetime(value.strip())):
            self.fail("naive")
        return super().to_internal_value(value)


class RequestCreateSerializer(DurationInputMixin):
    target = TargetRefField(help_text="The target's id or exact name.")
    duration_minutes = serializers.IntegerField(
        required=False, allow_null=True, help_text="Minutes of access; the policy's default if omitted."
    )
    justification = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=TEXT_MAX)
    ticket = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=TEXT_MAX)
    starts_at = OffsetDateTimeField(
        required=False, allow_null=True,
        help_text="A scheduled start, ISO 8601 with its offset; at once if omitted. Only where the policy allows "
                  "scheduled requests, and at most its lead ahead.",
    )
    otp = OtpField()
    mfa_step = MfaStepField()


class RequestApproveSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=TEXT_MAX)
    otp = OtpField()
    mfa_step = MfaStepField()


class RequestDenySerializer(serializers.Serializer):
    comment = ServiceCheckedTextField(help_text="Why the request is denied; shown to the requester.")
    otp = OtpField()
    mfa_step = MfaStepField()


class RequestOtpSerializer(serializers.Serializer):
    """For calls that need nothing but a fresh code (cancel, release)."""

    otp = OtpField()
    mfa_step = MfaStepField()


class RequestExtendSerializer(DurationInputMixin):
    duration_minutes = serializers.IntegerField(
        required=False, allow_null=True,
        help_text="Further minutes; the policy's default (at most what the grant may still get) if omitted.",
    )
    justification = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=TEXT_MAX)
    ticket = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, max_length=TEXT_MAX,
        help_text="Defaults to the original request's ticket.",
    )
    otp = OtpField()
    mfa_step = MfaStepField()
