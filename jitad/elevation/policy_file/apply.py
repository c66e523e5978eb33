"""Applying a validated policy file: diff it against the database, then write every change in one transaction.

Targets and policies are matched by name; each write is audited. Validation (and the DC)
come first, with no transaction open.
"""
import hashlib
import os
from dataclasses import dataclass, field
from functools import partial

from django.conf import settings
from django.db import transaction

from jitad.audit.services import audit_record

from jitad.humantime import parse_minutes

from ..models import Policy, Target
from ..selectors.workflow import stage_default
from .loader import PolicyFileError, _check_size
from .schema import _model_default
from .validation import _duration_minutes, load_policy_text

DEFAULT_ACTOR = "system:policy-file"


@dataclass
class ApplySummary:
    """What an apply did (or, for a dry run, would do), as ``target NAME`` / ``policy NAME`` labels."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    changed_fields: dict[str, list[str]] = field(default_factory=dict)
    dry_run: bool = False


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
        "exclusive": spec.get("exclusive", ""),
        "ephemeral": spec.get("ephemeral", {}),
        "logon_sources": spec.get("logon_sources", []),
        "enabled": spec.get("enabled", True),
    }


def _stage_value(stage: dict) -> dict:
    """A file stage in the stored shape (selectors.workflow.stage_default), durations in minutes."""
    escalation = timeout = None
    if "escalation" in stage:
        e = stage["escalation"]
        escalation = {"after_minutes": parse_minutes(e["after"]), "groups": e.get("groups", []),
                      "notify": [n.lower() for n in e.get("notify", [])], "add_as_approvers": e.get("add_as_approvers", False)}
    if "timeout" in stage:
        timeout = {"after_minutes": parse_minutes(stage["timeout"]["after"]), "action": stage["timeout"]["action"]}
    return stage_default(name=stage["name"], approvals_required=stage.get("approvers_required", 1),
                         approver_groups=stage["approver_groups"], distinct_groups=stage.get("distinct_groups", False),
                         escalation=escalation, timeout=timeout)


def _workflow_values(spec: dict) -> dict:
    """Stages, time windows, schedule, networks and review in the stored shapes.

    ``approver_groups`` becomes everyone who may decide some stage (the queues' scope), and
    ``approvals_required`` the approvals of all stages together; the stages say who decides what.
    """
    approval, auto = spec["approval"], spec["approval"]["mode"] == Policy.ApprovalMode.AUTO
    if auto:
        stages = []
    elif "stages" in approval:
        stages = [_stage_value(stage) for stage in approval["stages"]]
    else:
        stages = [stage_default(approvals_required=approval.get("approvers_required", 1),
                                approver_groups=approval.get("approver_groups", []),
                                distinct_groups=approval.get("distinct_groups", False))]
    windows = {}
    if "time_windows" in spec:
        w = spec["time_windows"]
        windows = {"timezone": w["timezone"], "rules": [dict(rule) for rule in w.get("rules", [])],
                   "otherwise": w.get("otherwise", "policy")}
        if "extra_stage" in w:
            windows["extra_stage"] = _stage_value(w["extra_stage"])
    review = {}
    if "review" in spec:
        r = spec["review"]
        review = {"every_minutes": parse_minutes(r["every"]), "deadline_minutes": parse_minutes(r["deadline"]),
                  "reviewers": r["reviewers"], "default": r["default"],
                  "remind_before_minutes": sorted({parse_minutes(v) for v in r.get("remind_before", [])}, reverse=True),
                  "managed_group": r.get("managed_group", "")}
    deciding = [*stages, *([windows["extra_stage"]] if "extra_stage" in windows else [])]
    scope, seen = [], set()
    for stage in deciding:
        escalation = stage.get("escalation") or {}
        for name in [*stage["approver_groups"], *(escalation.get("groups", []) if escalation.get("add_as_approvers") else [])]:
            if name.lower() not in seen:
                seen.add(name.lower())
                scope.append(name)
    schedule = spec.get("schedule", {})
    return {
        "stages": stages,
        "approver_groups": scope,
        "approvals_required": 0 if auto else sum(stage["approvals_required"] for stage in stages),
        "distinct_approver_groups": bool(len(stages) == 1 and stages[0]["distinct_groups"]),
        "time_windows": windows,
        "schedule_max_lead_minutes": parse_minutes(schedule["max_lead"]) if schedule else 0,
        "schedule_clock": schedule.get("clock", _model_default(Policy, "schedule_clock")),
        "networks": spec.get("networks", []),
        "review": review,
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
        "ephemeral": spec.get("ephemeral", {}),
        "enabled": spec.get("enabled", True),
        "targets": spec["targets"],
        **_workflow_values(spec),
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
