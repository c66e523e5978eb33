"""The policy file's JSON schema, built from the models' field limits, and its problems in plain words."""
import difflib

from jsonschema import Draft202012Validator

from jitad import hosts

from ..models import ALLOWED_ADMIN_PATTERN, WINRM_URL_PATTERN, Policy, Target
from ..selectors.ephemeral import PASSWORD_CLASSES
from ..services.requests import JUSTIFICATION_MAX

SUPPORTED_VERSION = 1
# The range of PositiveIntegerField / PositiveSmallIntegerField on every supported database:
# a larger number would pass validation and then fail half-way through the apply.
INT_MAX = 2_147_483_647
SMALLINT_MAX = 32_767
SLUG_PATTERN = r"^[-a-zA-Z0-9_]+$"
HOSTNAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$"
PROFILE_PATTERN = r"^[A-Za-z0-9_-]*$"
# jsonschema's "does not match <regex>" tells the author nothing; say what the field wants.
PATTERN_HINTS = {
    SLUG_PATTERN: "must be a slug: letters, digits, '-' and '_' only",
    HOSTNAME_PATTERN: "must be a host name such as srv01.corp.example",
    PROFILE_PATTERN: "must be a profile name: letters, digits, '-' and '_' only",
    WINRM_URL_PATTERN: "must be a WinRM URL such as https://srv01.corp.example:5986/wsman",
    ALLOWED_ADMIN_PATTERN: "must be a SID (S-1-5-21-...) or *-RID (*-512)",
}


def _model_default(model, name: str):
    return model._meta.get_field(name).get_default()


def _max_length(model, name: str) -> int:
    return model._meta.get_field(name).max_length


def _object(properties: dict, required: tuple = ()) -> dict:
    # additionalProperties false everywhere: a misspelt key is an error, never silently ignored.
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


def _int(minimum: int, maximum: int = INT_MAX) -> dict:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


_NAME_LIST = {"type": "array", "items": {"type": "string", "minLength": 1}}
_NETWORKS = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 64}, "maxItems": 200}
# An ephemeral account per grant (docs/ephemeral.md); the OU is checked to be under the JIT OU.
EPHEMERAL_SCHEMA = _object(
    {
        "ou": {"type": "string", "minLength": 1, "maxLength": 400},
        "suffix_length": _int(3, 8),
        "password": _object(
            {
                "length": _int(16, 128),
                "classes": {"type": "array", "items": {"enum": list(PASSWORD_CLASSES)}, "minItems": 3,
                            "uniqueItems": True},
            }
        ),
    },
    required=("ou",),
)
# "4h", "90m", "1h30m" (jitad.humantime) or a number of minutes; read by _Checker.check_duration.
_DURATION = {"type": ["string", "integer"]}

TARGET_SCHEMA = _object(
    {
        "name": {"type": "string", "minLength": 1, "maxLength": _max_length(Target, "name")},
        "kind": {"enum": list(Target.Kind.values)},
        "hostname": {"type": "string", "maxLength": _max_length(Target, "hostname"), "pattern": HOSTNAME_PATTERN},
        "group": {"type": "string", "minLength": 1, "maxLength": _max_length(Target, "group_dn")},
        "description": {"type": "string"},
        "standing_members": _NAME_LIST,
        "nested_into_protected": {"type": "boolean"},
        "tier": {"enum": list(Target.Tier.values)},
        "approver_groups": _NAME_LIST,
        "winrm": _object(
            {
                "url": {"type": "string", "maxLength": _max_length(Target, "winrm_url"), "pattern": WINRM_URL_PATTERN},
                "transport": {"enum": list(hosts.TRANSPORTS)},
                "profile": {"type": "string", "maxLength": _max_length(Target, "winrm_profile"), "pattern": PROFILE_PATTERN},
                "allowed_admins": {"type": "array", "items": {"type": "string", "pattern": ALLOWED_ADMIN_PATTERN}},
            },
            required=("url",),
        ),
        "exclusive": {"enum": [v for v in Target.Exclusive.values if v]},
        "ephemeral": EPHEMERAL_SCHEMA,
        "logon_sources": _NETWORKS,
        "enabled": {"type": "boolean"},
    },
    required=("name", "group"),
)

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WINDOW_ACTIONS = ("policy", "auto", "extra_stage", "refuse")
_DAY = {"type": "string", "pattern": r"^(mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?$"}
PATTERN_HINTS[_DAY["pattern"]] = "must be a day (mon, tue, ... sun) or a range of days (mon-fri)"
HOURS_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-4]):[0-5][0-9]$"
PATTERN_HINTS[HOURS_PATTERN] = "must be hours such as 08:00-18:00 (or 22:00-06:00 across midnight)"

STAGE_SCHEMA = _object(
    {
        "name": {"type": "string", "minLength": 1, "maxLength": 64},
        "approvers_required": _int(1, SMALLINT_MAX),
        "approver_groups": {**_NAME_LIST, "minItems": 1},
        "distinct_groups": {"type": "boolean"},
        "escalation": _object(
            {
                "after": _DURATION,
                "groups": _NAME_LIST,
                "notify": {**_NAME_LIST, "uniqueItems": True},
                "add_as_approvers": {"type": "boolean"},
            },
            required=("after",),
        ),
        "timeout": _object({"after": _DURATION, "action": {"enum": ["deny", "approve"]}}, required=("after", "action")),
    },
    required=("name", "approver_groups"),
)

POLICY_SCHEMA = _object(
    {
        "name": {"type": "string", "maxLength": _max_length(Policy, "name"), "pattern": SLUG_PATTERN},
        "description": {"type": "string"},
        "priority": _int(0),
        "targets": {**_NAME_LIST, "minItems": 1, "uniqueItems": True},
        "eligible": _object({"groups": _NAME_LIST, "users": _NAME_LIST}),
        "duration": _object({"default": _DURATION, "max": _DURATION, "default_minutes": _int(1), "max_minutes": _int(1)}),
        "approval": _object(
            {
                "mode": {"enum": list(Policy.ApprovalMode.values)},
                "approvers_required": _int(1, SMALLINT_MAX),
                "approver_groups": _NAME_LIST,
                "distinct_groups": {"type": "boolean"},
                "allow_bulk": {"type": "boolean"},
                "notify": {**_NAME_LIST, "uniqueItems": True},
                "pending_timeout_minutes": _int(1),
                "stages": {"type": "array", "items": STAGE_SCHEMA, "minItems": 1, "maxItems": 10},
            },
            required=("mode",),
        ),
        "time_windows": _object(
            {
                "timezone": {"type": "string", "minLength": 1, "maxLength": 64},
                "rules": {
                    "type": "array",
                    "maxItems": 50,
                    "items": _object(
                        {
                            "days": {"type": "array", "items": _DAY, "minItems": 1},
                            "hours": {"type": "string", "pattern": HOURS_PATTERN},
                            "then": {"enum": list(WINDOW_ACTIONS)},
                        },
                        required=("then",),
                    ),
                },
                "otherwise": {"enum": list(WINDOW_ACTIONS)},
                "extra_stage": STAGE_SCHEMA,
            },
            required=("timezone",),
        ),
        "schedule": _object({"max_lead": _DURATION, "clock": {"enum": list(Policy.ScheduleClock.values)}},
                            required=("max_lead",)),
        "networks": _NETWORKS,
        "review": _object(
            {
                "every": _DURATION,
                "deadline": _DURATION,
                "reviewers": {**_NAME_LIST, "minItems": 1},
                "default": {"enum": ["remove", "keep"]},
                "remind_before": {"type": "array", "items": _DURATION, "maxItems": 10},
                "managed_group": {"type": "string", "minLength": 1, "maxLength": 512},
            },
            required=("every", "deadline", "reviewers", "default"),
        ),
        "justification": _object({"required": {"type": "boolean"}, "min_length": _int(0, JUSTIFICATION_MAX)}),
        "ticket": _object(
            {
                "required": {"type": "boolean"},
                "pattern": {"type": "string", "maxLength": _max_length(Policy, "ticket_pattern")},
            }
        ),
        "max_extensions": _int(0, SMALLINT_MAX),
        "end_sessions_on_revoke": {"type": "boolean"},
        "ephemeral": EPHEMERAL_SCHEMA,
        "enabled": {"type": "boolean"},
    },
    required=("name", "targets", "eligible", "approval"),
)

FILE_SCHEMA = _object(
    {
        "version": {"const": SUPPORTED_VERSION},
        "targets": {"type": "array", "items": TARGET_SCHEMA},
        "policies": {"type": "array", "items": POLICY_SCHEMA},
    },
    required=("version",),
)

_VALIDATOR = Draft202012Validator(FILE_SCHEMA)


def _schema_problems(data: dict) -> list[tuple[tuple, str]]:
    """(path, message) for every schema violation; unknown keys are reported one by one."""
    problems = []
    for error in _VALIDATOR.iter_errors(data):
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            known = list(error.schema["properties"])
            for key in error.instance:
                if key not in known:
                    problems.append(((*path, key), _unknown_field(key, known)))
        elif error.validator == "pattern":
            problems.append((path, f"{error.instance!r} {PATTERN_HINTS[error.validator_value]}"))
        else:
            problems.append((path, error.message))
    return problems


def _unknown_field(key, known: list[str]) -> str:
    guess = difflib.get_close_matches(str(key), known, n=1)
    if guess:
        return f"unknown field (did you mean {guess[0]!r}?)"
    return f"unknown field; expected one of: {', '.join(known)}"
