"""Policy as code: validate a YAML file of targets and policies, then apply it to the database."""
import difflib
import hashlib
import os
import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from functools import partial

import yaml
from django.conf import settings
from django.db import transaction
from jsonschema import Draft202012Validator

from jitad import directory, hosts
from jitad.audit.services import audit_record
from jitad.humantime import DurationError, parse_minutes

from .models import ALLOWED_ADMIN_PATTERN, WINRM_URL_PATTERN, Policy, Target
from .services.requests import JUSTIFICATION_MAX

SUPPORTED_VERSION = 1
DEFAULT_ACTOR = "system:policy-file"
# The schema nests five levels deep; anything much deeper is a mistake or an attack (PyYAML
# builds the tree recursively, so 50,000 levels would end in a RecursionError).
MAX_DEPTH = 20
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


class PolicyFileError(Exception):
    """The file was rejected; ``errors`` holds one ``line N: path: message`` string per problem."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


@dataclass
class ApplySummary:
    """What an apply did (or, for a dry run, would do), as ``target NAME`` / ``policy NAME`` labels."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    changed_fields: dict[str, list[str]] = field(default_factory=dict)
    dry_run: bool = False


# --- schema ---------------------------------------------------------------------------------


def _max_length(model, name: str) -> int:
    return model._meta.get_field(name).max_length


def _object(properties: dict, required: tuple = ()) -> dict:
    # additionalProperties false everywhere: a misspelt key is an error, never silently ignored.
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


def _int(minimum: int, maximum: int = INT_MAX) -> dict:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


_NAME_LIST = {"type": "array", "items": {"type": "string", "minLength": 1}}
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
        "enabled": {"type": "boolean"},
    },
    required=("name", "group"),
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
            },
            required=("mode",),
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


# --- YAML with line numbers -----------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate mapping keys, aliases and deep nesting.

    PyYAML keeps the last of two equal keys without a word, which would let a reviewer
    read one value while another is applied. Aliases are refused so every value a
    reviewer approves is written out where it applies (and no alias can recurse).
    Nesting stops at MAX_DEPTH collections, long before Python's recursion limit.
    """

    depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            problem = f"aliases (*{event.anchor}) are not allowed in a policy file; write the value out"
            raise yaml.composer.ComposerError(None, None, problem, event.start_mark)
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        if self.depth >= MAX_DEPTH:
            problem = f"nested deeper than {MAX_DEPTH} levels (a policy file needs 5)"
            raise yaml.composer.ComposerError(None, None, problem, self.peek_event().start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                break  # the base class reports the unhashable key
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key (first defined on line {seen[key] + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def _child(node, part):
    """(child node, the mark of its key or item) one step down ``node``, or (None, None)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                return value_node, key_node.start_mark
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part], node.value[part].start_mark
    return None, None


def _line(root, path: tuple) -> int:
    """The 1-based line of ``path``; a missing field points at the nearest line that exists."""
    node, line = root, root.start_mark.line
    for part in path:
        node, mark = _child(node, part)
        if node is None:
            break
        line = mark.line
    return line + 1


def _path_to_key(node, mark, path: tuple = ()) -> tuple | None:
    """The path of the mapping key that starts at ``mark``, searching the tree under ``node``."""
    if isinstance(node, yaml.MappingNode):
        # Only scalar keys make a readable path; a complex key is reported without one.
        children = [((*path, k.value), k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
    elif isinstance(node, yaml.SequenceNode):
        children = [((*path, i), None, v) for i, v in enumerate(node.value)]
    else:
        return None
    for child_path, key_node, value_node in children:
        if key_node is not None and key_node.start_mark.index == mark.index:
            return child_path
        found = _path_to_key(value_node, mark, child_path)
        if found is not None:
            return found
    return None


def _format_path(path: tuple) -> str:
    """``policies[0].duration.max_minutes`` for ("policies", 0, "duration", "max_minutes")."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(top level)"


def _yaml_error(e: yaml.YAMLError, text: str, root=None) -> str:
    """``line N: ...`` for a parse error, with the field path when the tree is known."""
    if isinstance(e, yaml.reader.ReaderError):  # a bad character: an offset, no mark
        line = text.count("\n", 0, e.position) + 1
        return f"line {line}: YAML error: {e.reason} (character #x{e.character:04x})"
    line = e.problem_mark.line + 1
    path = _path_to_key(root, e.problem_mark) if root is not None else None
    if path is not None:
        return f"line {line}: {_format_path(path)}: {e.problem}"
    return f"line {line}: YAML error: " + (f"{e.context}, {e.problem}" if e.context else e.problem)


def _parse(text: str):
    """(root node, data) of a one-document YAML text; raises PolicyFileError if it does not parse."""
    root = loader = None
    try:
        loader = StrictLoader(text)
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as e:
        raise PolicyFileError([_yaml_error(e, text, root)]) from e
    finally:
        if loader is not None:
            loader.dispose()
    return root, data


# --- validation -----------------------------------------------------------------------------


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


class _Checker:
    """Semantic checks the schema cannot express, run only on parts the schema found well-formed."""

    def __init__(self, data: dict, broken: set[tuple], prune: bool):
        self.data = data
        self.broken = broken
        self.prune = prune
        self.problems: list[tuple[tuple, str]] = []

    def ok(self, path: tuple) -> bool:
        """True if no schema error lies at or under ``path`` (so its types can be trusted)."""
        return not any(b[: len(path)] == path for b in self.broken)

    def items(self, section: str):
        """(index, mapping) for each entry of a section that is a well-formed list of mappings."""
        entries = self.data.get(section, [])
        if not isinstance(entries, list):
            return []
        return [(i, e) for i, e in enumerate(entries) if isinstance(e, dict)]

    def add(self, path: tuple, message: str) -> None:
        self.problems.append((path, message))

    def run(self) -> list[tuple[tuple, str]]:
        self.check_unique("targets")
        self.check_unique("policies")
        for i, target in self.items("targets"):
            self.check_dns(("targets", i), target)
            self.check_winrm(("targets", i), target)
        known = self.target_names()
        for i, policy in self.items("policies"):
            base = ("policies", i)
            self.check_targets(base, policy, known)
            self.check_eligible(base, policy)
            self.check_duration(base, policy)
            self.check_approval(base, policy)
            self.check_ticket(base, policy)
        return self.problems

    def check_unique(self, section: str) -> None:
        first_index = {}
        for i, entry in self.items(section):
            name = entry.get("name")
            if not isinstance(name, str) or not self.ok((section, i, "name")):
                continue
            if name in first_index:
                self.add((section, i, "name"), f"duplicate name {name!r} (also {section}[{first_index[name]}])")
            else:
                first_index[name] = i

    def check_dns(self, base: tuple, target: dict) -> None:
        if self.ok((*base, "group")) and "group" in target:
            problem = directory.placement_problem(target["group"])
            if problem:
                self.add((*base, "group"), _group_refusal(target, problem))
        if self.ok((*base, "standing_members")):
            for j, dn in enumerate(target.get("standing_members", [])):
                self.check_dn((*base, "standing_members", j), dn)

    def check_winrm(self, base: tuple, target: dict) -> None:
        winrm = target.get("winrm")
        if not isinstance(winrm, dict) or not self.ok((*base, "winrm")):
            return
        transport = winrm.get("transport", _model_default(Target, "winrm_transport"))
        if transport in ("basic", "certificate") and str(winrm.get("url", "")).lower().startswith("http://"):
            self.add((*base, "winrm", "transport"), f"{transport} authentication is only allowed over https://")

    def check_dn(self, path: tuple, dn: str) -> None:
        try:
            directory.normalize_dn(dn)
        except directory.DirectoryRejected:
            self.add(path, f"{dn!r} is not a valid distinguished name")

    def target_names(self) -> set[str]:
        """Names a policy may refer to: the file's targets, plus the database's unless pruning."""
        names = {t["name"] for _i, t in self.items("targets") if isinstance(t.get("name"), str)}
        if not self.prune:
            names |= set(Target.objects.values_list("name", flat=True))
        return names

    def check_targets(self, base: tuple, policy: dict, known: set[str]) -> None:
        if not self.ok((*base, "targets")):
            return
        for j, name in enumerate(policy.get("targets", [])):
            if name in known:
                continue
            if self.prune and Target.objects.filter(name=name).exists():
                self.add((*base, "targets", j), f"target {name!r} is not in this file, so prune would disable it")
            else:
                self.add((*base, "targets", j), f"unknown target {name!r}: define it under targets")

    def check_eligible(self, base: tuple, policy: dict) -> None:
        path = (*base, "eligible")
        eligible = policy.get("eligible")
        if self.ok(path) and eligible is not None and not (eligible.get("groups") or eligible.get("users")):
            self.add(path, "names no groups and no users, so nobody could request this policy")

    def check_duration(self, base: tuple, policy: dict) -> None:
        path = (*base, "duration")
        if not self.ok(path):
            return
        minutes = {}
        for key in ("default", "max"):
            try:
                minutes[key] = _duration_minutes(policy.get("duration", {}), key)
            except _DurationProblem as e:
                self.add((*path, e.key), e.message)
        if len(minutes) == 2 and minutes["default"] > minutes["max"]:
            duration = policy.get("duration", {})
            default_key = "default" if "default" in duration else "default_minutes"
            max_key = "max" if "max" in duration else "max_minutes"
            shown = {k: duration.get(k, minutes[k.removesuffix("_minutes")]) for k in (default_key, max_key)}
            self.add((*path, default_key), f"{shown[default_key]} is more than {max_key} ({shown[max_key]})")

    def check_approval(self, base: tuple, policy: dict) -> None:
        path = (*base, "approval")
        approval = policy.get("approval")
        if not self.ok(path) or approval is None:
            return
        if approval["mode"] == Policy.ApprovalMode.MANUAL and not approval.get("approver_groups"):
            self.add((*path, "approver_groups"), "manual approval needs at least one approver group")
        if approval["mode"] == Policy.ApprovalMode.AUTO:
            for key in ("approvers_required", "approver_groups", "distinct_groups", "allow_bulk", "notify"):
                if key in approval:
                    self.add((*path, key), "must not be set when mode is auto (nobody approves)")
        elif approval.get("distinct_groups"):
            required = approval.get("approvers_required", _model_default(Policy, "approvals_required"))
            groups = {g.lower() for g in approval.get("approver_groups", [])}
            if len(groups) < required:
                self.add((*path, "distinct_groups"),
                         f"{required} approvals from distinct groups need at least {required} approver groups")
        configured = settings.JITAD_NOTIFY_DESTINATIONS
        for j, name in enumerate(approval.get("notify", [])):
            if name.lower() not in configured:
                variable = "JITAD_NOTIFY_" + name.upper().replace("-", "_")
                self.add((*path, "notify", j),
                         f"unknown notification destination {name!r}: set {variable} in the environment")

    def check_ticket(self, base: tuple, policy: dict) -> None:
        if not self.ok((*base, "ticket")) or "pattern" not in policy.get("ticket", {}):
            return
        path, pattern = (*base, "ticket", "pattern"), policy["ticket"]["pattern"]
        try:
            re.compile(pattern)
        except re.error as e:
            self.add(path, f"{pattern!r} is not a valid regular expression: {e}")


def _model_default(model, name: str):
    return model._meta.get_field(name).get_default()


class _DurationProblem(Exception):
    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key, self.message = key, message


def _duration_minutes(duration: dict, key: str) -> int:
    """Minutes of ``duration.<key>`` ("4h", "90m", "1h30m" or minutes) or ``<key>_minutes``; the model's default if neither."""
    if key in duration and f"{key}_minutes" in duration:
        raise _DurationProblem(key, f"set {key} or {key}_minutes, not both")
    if key in duration:
        try:
            return parse_minutes(duration[key])
        except DurationError as e:
            raise _DurationProblem(key, str(e)) from e
    if f"{key}_minutes" in duration:
        return duration[f"{key}_minutes"]
    return _model_default(Policy, f"{key}_duration_minutes")


def _group_refusal(target: dict, problem: str) -> str:
    name = target.get("name")
    who = f"target {name!r}" if isinstance(name, str) else "this target"
    return f"{who} cannot use {target['group']!r} as its JIT group: {problem}"


def _directory_problems(data: dict) -> list[tuple[tuple, str]]:
    """(path, message) for each target whose group the DC shows missing, not a group, or protected.

    A target marked ``nested_into_protected`` may name a tier-0 JIT group (nested into a
    protected group, adminCount=1), never a well-known privileged group. Asks the DC (one
    connection, one read per group); raises DirectoryUnavailable or DirectoryMisconfigured
    when it cannot.
    """
    targets = [(i, t, (t["group"], t.get("nested_into_protected", False))) for i, t in enumerate(data.get("targets", []))]
    problems = directory.group_problems({key for _i, _t, key in targets})
    return [(("targets", i, "group"), _group_refusal(t, problems[key])) for i, t, key in targets if problems[key]]


def _problems(root, data, prune: bool) -> list[str]:
    """Every problem in the parsed document, as ``line N: path: message`` sorted by line."""
    if data is None:
        return ["line 1: (top level): the document is empty; expected a mapping with version, targets and policies"]
    if not isinstance(data, dict):
        found = "sequence" if isinstance(data, list) else "scalar"
        return [f"line {_line(root, ())}: (top level): expected a mapping with version, targets and policies, "
                f"found a YAML {found}"]
    version = data.get("version", SUPPORTED_VERSION)
    if version != SUPPORTED_VERSION:
        # A newer format may mean different things by the same keys: stop before guessing.
        return [f"line {_line(root, ('version',))}: version: unsupported version {version!r}; "
                f"this jitad reads version {SUPPORTED_VERSION}"]
    found = _schema_problems(data)
    found += _Checker(data, {p for p, _m in found}, prune).run()
    if not found:  # a file that is right in itself: now ask the DC about its groups
        found = _directory_problems(data)
    located = sorted(((_line(root, p), _format_path(p), m) for p, m in found), key=lambda x: x[0])
    return [f"line {line}: {path}: {message}" for line, path, message in located]


def _check_size(size: int, *, at_least: bool = False) -> None:
    """Refuse a file larger than JITAD_POLICY_MAX_BYTES before parsing it."""
    limit = settings.JITAD_POLICY_MAX_BYTES
    if size > limit:
        what = f"more than {limit:,} bytes" if at_least else f"{size:,} bytes"
        raise PolicyFileError([f"line 1: (top level): the file is {what}; the limit is {limit:,} bytes "
                               "(JITAD_POLICY_MAX_BYTES)"])


def load_policy_text(text: str, *, prune: bool = False) -> dict:
    """Parse and validate a policy file's text, asking the DC about its groups.

    Raises PolicyFileError listing every problem, or the directory's error when no DC can
    be asked. Run it with no transaction open: it may take seconds and talks to the DC.
    """
    _check_size(len(text.encode("utf-8", "surrogatepass")))
    root, data = _parse(text)
    errors = _problems(root, data, prune)
    if errors:
        raise PolicyFileError(errors)
    return data


# --- apply ----------------------------------------------------------------------------------


def _target_values(spec: dict) -> dict:
    """The Target fields a file entry asks for; an omitted field means the model's default."""
    return {
        "kind": spec.get("kind", _model_default(Target, "kind")),
        "hostname": spec.get("hostname", ""),
        "description": spec.get("description", ""),
        "group_dn": spec["group"],
        "standing_members": spec.get("standing_members", []),
        "nested_into_protected": spec.get("nested_into_protected", False),
        "tier": spec.get("tier", _model_default(Target, "tier")),
        "approver_groups": spec.get("approver_groups", []),
        "winrm_url": spec.get("winrm", {}).get("url", ""),
        "winrm_transport": spec.get("winrm", {}).get("transport", _model_default(Target, "winrm_transport")),
        "winrm_profile": spec.get("winrm", {}).get("profile", ""),
        "allowed_admins": spec.get("winrm", {}).get("allowed_admins", []),
        "enabled": spec.get("enabled", True),
    }


def _policy_values(spec: dict) -> dict:
    """The Policy fields (and target names) a file entry asks for; omitted means the model's default."""
    d = partial(_model_default, Policy)
    eligible, approval = spec["eligible"], spec["approval"]
    duration, justification, ticket = spec.get("duration", {}), spec.get("justification", {}), spec.get("ticket", {})
    auto = approval["mode"] == Policy.ApprovalMode.AUTO
    return {
        "description": spec.get("description", ""),
        "priority": spec.get("priority", d("priority")),
        "eligible_groups": eligible.get("groups", []),
        "eligible_users": eligible.get("users", []),
        "default_duration_minutes": _duration_minutes(duration, "default"),
        "max_duration_minutes": _duration_minutes(duration, "max"),
        "approval_mode": approval["mode"],
        # Auto-approved requests need nobody: store 0 rather than a meaningless default of 1.
        "approvals_required": 0 if auto else approval.get("approvers_required", d("approvals_required")),
        "approver_groups": approval.get("approver_groups", []),
        "distinct_approver_groups": approval.get("distinct_groups", False),
        "allow_bulk_decisions": approval.get("allow_bulk", False),
        "notify": [name.lower() for name in approval.get("notify", [])],
        "pending_timeout_minutes": approval.get("pending_timeout_minutes", d("pending_timeout_minutes")),
        "require_justification": justification.get("required", d("require_justification")),
        "min_justification_length": justification.get("min_length", d("min_justification_length")),
        "require_ticket": ticket.get("required", d("require_ticket")),
        "ticket_pattern": ticket.get("pattern", ""),
        "max_extensions": spec.get("max_extensions", d("max_extensions")),
        "end_sessions_on_revoke": spec.get("end_sessions_on_revoke", False),
        "enabled": spec.get("enabled", True),
        "targets": spec["targets"],
    }


@dataclass
class _Change:
    """One object to create, update, leave alone or (pruning) disable, and the fields that differ."""

    kind: str  # "target" | "policy"
    name: str
    obj: Target | Policy | None  # None: to be created
    values: dict
    changed: list[str]
    pruned: bool = False

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def verb(self) -> str:
        if self.pruned:
            return "disabled"
        return "created" if self.obj is None else "updated"


def _stored(obj, name: str):
    """A field's current value; ``targets`` as the sorted names of the M2M (prefetched)."""
    if name == "targets":
        return sorted(t.name for t in obj.targets.all())
    return getattr(obj, name)


def _differences(obj, values: dict) -> list[str]:
    """Names of the fields whose stored value differs from ``values``."""
    wanted = dict(values)
    if "targets" in wanted:
        wanted["targets"] = sorted(wanted["targets"])  # a set: the order in the file means nothing
    return [name for name, value in wanted.items() if _stored(obj, name) != value]


def _plan(data: dict, prune: bool, *, lock: bool) -> list[_Change]:
    """Every object the file touches (and, pruning, every enabled one it omits), targets first.

    With ``lock`` (inside the write transaction) the rows are locked, so an edit in the
    admin cannot slip in between the diff and the write.
    """
    plan = []
    for kind, model, section, values_of in (
        ("target", Target, "targets", _target_values),
        ("policy", Policy, "policies", _policy_values),
    ):
        specs = {spec["name"]: values_of(spec) for spec in data.get(section, [])}
        rows = model.objects.select_for_update() if lock else model.objects.all()
        if model is Policy:
            rows = rows.prefetch_related("targets")
        existing = rows.in_bulk(list(specs), field_name="name")
        for name, values in specs.items():
            obj = existing.get(name)
            changed = list(values) if obj is None else _differences(obj, values)
            plan.append(_Change(kind, name, obj, values, changed))
        if prune:
            stale = rows.filter(enabled=True).exclude(name__in=list(specs))
            plan.extend(_Change(kind, o.name, o, {"enabled": False}, ["enabled"], pruned=True) for o in stale)
    return plan


def _targets_gone(data: dict) -> list[str]:
    """Targets the file's policies take from the database that were deleted since validation."""
    in_file = {t["name"] for t in data.get("targets", [])}
    named = {name for p in data.get("policies", []) for name in p["targets"]} - in_file
    found = set(Target.objects.select_for_update().filter(name__in=named).values_list("name", flat=True))
    return sorted(named - found)


def _state(enabled: bool) -> str:
    return "enabled" if enabled else "disabled"


def _execute(change: _Change, *, actor: str, reason: str) -> None:
    """Write one change and its audit event (the caller holds the transaction)."""
    model = Target if change.kind == "target" else Policy
    obj = change.obj or model(name=change.name)
    before = {name: _stored(obj, name) for name in change.changed} if change.obj else {}
    was = _state(change.obj.enabled) if change.obj else ""
    for name, value in change.values.items():
        if name != "targets":
            setattr(obj, name, value)
    obj.save()
    if "targets" in change.changed:
        obj.targets.set(Target.objects.filter(name__in=change.values["targets"]))
    action = f"policy.target_{change.verb}" if change.kind == "target" else f"policy.{change.verb}"
    audit_record(
        actor=actor,
        action=action,
        object_type=change.kind,
        object_id=str(obj.pk),
        before=was,
        after=_state(obj.enabled),
        reason=reason,
        data={
            "name": change.name,
            "changed": change.changed,
            "before": before,
            "after": {name: change.values[name] for name in change.changed},
        },
    )


def _summarise(summary: ApplySummary, change: _Change) -> None:
    if not change.changed:
        summary.unchanged.append(change.label)
    elif change.verb == "updated":
        summary.updated.append(change.label)
        summary.changed_fields[change.label] = change.changed
    else:
        getattr(summary, change.verb).append(change.label)


def apply_policy_text(
    text: str, *, prune: bool = False, dry_run: bool = False, actor: str = DEFAULT_ACTOR, source: str = "<text>"
) -> ApplySummary:
    """Validate ``text`` and bring the database in line with it, all or nothing.

    Targets and policies are matched by name; omitted optional fields take the model's
    default. With ``prune``, enabled objects the file does not name are disabled (never
    deleted). With ``dry_run``, nothing is written.
    """
    # Parsing, validation and the DC's answers come first, with no transaction open: on
    # SQLite a transaction holds the database's write lock, and the sweeper must keep
    # revoking while a large file is read. Only the writes run in one short transaction.
    data = load_policy_text(text, prune=prune)
    summary = ApplySummary(dry_run=dry_run)
    plan = _plan(data, prune, lock=False)
    if dry_run or not any(change.changed for change in plan):
        for change in plan:
            _summarise(summary, change)
        return summary
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    reason = f"policy file {source} (sha256 {digest})"
    with transaction.atomic():
        gone = _targets_gone(data)
        if gone:
            raise PolicyFileError([f"line 1: (top level): target {name!r} was deleted while the file was being "
                                   "checked; apply it again" for name in gone])
        for change in _plan(data, prune, lock=True):
            _summarise(summary, change)
            if change.changed:
                _execute(change, actor=actor, reason=reason)
    return summary


def apply_policy_file(path, **options) -> ApplySummary:
    """Read ``path`` (UTF-8, at most JITAD_POLICY_MAX_BYTES) and apply it.

    The size is checked before anything is read. OSError and UnicodeDecodeError mean the
    file could not be read.
    """
    limit = settings.JITAD_POLICY_MAX_BYTES
    with open(path, "rb") as f:
        _check_size(os.fstat(f.fileno()).st_size)
        raw = f.read(limit + 1)  # a pipe or a growing file has no size up front
    _check_size(len(raw), at_least=True)
    return apply_policy_text(raw.decode("utf-8"), source=str(path), **options)
