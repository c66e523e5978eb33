"""Checking a parsed policy file: the schema, the rules it cannot express, then the DC's view of each group.

:func:`load_policy_text` runs every step and raises PolicyFileError listing every
problem; it talks to the DC, so it runs with no transaction open.
"""
import ipaddress
import re

from django.conf import settings

from jitad import directory
from jitad.humantime import DurationError, parse_minutes

from ..models import Policy, Target
from ..selectors.workflow import zone
from .loader import PolicyFileError, _check_size, _format_path, _line, _parse
from .schema import SUPPORTED_VERSION, _model_default, _schema_problems


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
            self.check_ephemeral(("targets", i), target)
            self.check_cidrs(("targets", i, "logon_sources"), target.get("logon_sources", []))
        known = self.target_names()
        for i, policy in self.items("policies"):
            base = ("policies", i)
            self.check_targets(base, policy, known)
            self.check_eligible(base, policy)
            self.check_duration(base, policy)
            self.check_approval(base, policy)
            self.check_stages(base, policy)
            self.check_windows(base, policy)
            self.check_schedule(base, policy)
            self.check_networks(base, policy)
            self.check_review(base, policy)
            self.check_ticket(base, policy)
            self.check_ephemeral(base, policy)
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
        if approval["mode"] == Policy.ApprovalMode.MANUAL and not approval.get("approver_groups") and "stages" not in approval:
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
        self.check_destinations((*path, "notify"), approval.get("notify", []))

    def check_destinations(self, path: tuple, names) -> None:
        configured = settings.JITAD_NOTIFY_DESTINATIONS
        for j, name in enumerate(names):
            if name.lower() not in configured:
                variable = "JITAD_NOTIFY_" + name.upper().replace("-", "_")
                self.add((*path, j), f"unknown notification destination {name!r}: set {variable} in the environment")

    def check_minutes(self, path: tuple, value) -> int | None:
        """Minutes of a duration field ("30m", "2h", "7d" or minutes), or None after reporting the problem."""
        try:
            return parse_minutes(value)
        except DurationError as e:
            self.add(path, str(e))
            return None

    def check_stage(self, path: tuple, stage: dict) -> None:
        """One stage's own rules: distinct groups, escalation before timeout, destinations."""
        if not self.ok(path):
            return
        required = stage.get("approvers_required", 1)
        if stage.get("distinct_groups") and len({g.lower() for g in stage["approver_groups"]}) < required:
            self.add((*path, "distinct_groups"),
                     f"{required} approvals from distinct groups need at least {required} approver groups")
        escalate = timeout = None
        if "escalation" in stage:
            escalation = stage["escalation"]
            escalate = self.check_minutes((*path, "escalation", "after"), escalation["after"])
            if not escalation.get("groups") and not escalation.get("notify"):
                self.add((*path, "escalation"), "names no groups and no notify destinations, so nobody would be told")
            if escalation.get("add_as_approvers") and not escalation.get("groups"):
                self.add((*path, "escalation", "add_as_approvers"), "needs groups to add as approvers")
            self.check_destinations((*path, "escalation", "notify"), escalation.get("notify", []))
        if "timeout" in stage:
            timeout = self.check_minutes((*path, "timeout", "after"), stage["timeout"]["after"])
        if escalate is not None and timeout is not None and escalate >= timeout:
            self.add((*path, "escalation", "after"), "must be shorter than timeout.after, or the stage ends before "
                                                      "anyone is told")

    def check_stages(self, base: tuple, policy: dict) -> None:
        path = (*base, "approval")
        approval = policy.get("approval")
        if not self.ok(path) or approval is None or "stages" not in approval:
            return
        if approval["mode"] == Policy.ApprovalMode.AUTO:
            self.add((*path, "stages"), "must not be set when mode is auto (nobody approves)")
            return
        for key in ("approvers_required", "approver_groups", "distinct_groups"):
            if key in approval:
                self.add((*path, key), "set the approvers in stages, or here for a single stage, not both")
        seen = {}
        for j, stage in enumerate(approval["stages"]):
            name = stage["name"].lower()
            if name in seen:
                self.add((*path, "stages", j, "name"), f"duplicate stage name {stage['name']!r} (also stages[{seen[name]}])")
            seen.setdefault(name, j)
            self.check_stage((*path, "stages", j), stage)

    def check_windows(self, base: tuple, policy: dict) -> None:
        path = (*base, "time_windows")
        windows = policy.get("time_windows")
        if windows is None or not self.ok(path):
            return
        if zone(windows["timezone"]) is None:
            self.add((*path, "timezone"), f"unknown time zone {windows['timezone']!r}: use an IANA name such as "
                                          "Europe/Paris or UTC")
        actions = [rule["then"] for rule in windows.get("rules", [])] + [windows.get("otherwise", "policy")]
        for j, rule in enumerate(windows.get("rules", [])):
            if "hours" in rule:
                start, end = rule["hours"].split("-")
                if start == end:
                    self.add((*path, "rules", j, "hours"), f"{rule['hours']!r} is an empty window (start equals end)")
            elif "days" not in rule:
                self.add((*path, "rules", j), "names no days and no hours, so it matches all the time: use otherwise")
        if "extra_stage" in actions and "extra_stage" not in windows:
            self.add(path, "a rule says extra_stage: define extra_stage (its approvers)")
        if "extra_stage" in windows:
            if "extra_stage" not in actions:
                self.add((*path, "extra_stage"), "no rule and not otherwise says extra_stage, so it is never used")
            self.check_stage((*path, "extra_stage"), windows["extra_stage"])
        approval = policy.get("approval")
        if isinstance(approval, dict) and approval.get("mode") == Policy.ApprovalMode.AUTO and "extra_stage" in actions \
                and isinstance(windows.get("extra_stage"), dict) and not windows["extra_stage"].get("approver_groups"):
            self.add((*path, "extra_stage"), "needs approver_groups")

    def check_schedule(self, base: tuple, policy: dict) -> None:
        path = (*base, "schedule")
        if "schedule" in policy and self.ok(path):
            self.check_minutes((*path, "max_lead"), policy["schedule"]["max_lead"])

    def check_networks(self, base: tuple, policy: dict) -> None:
        self.check_cidrs((*base, "networks"), policy.get("networks", []))

    def check_cidrs(self, path: tuple, cidrs) -> None:
        if not self.ok(path):
            return
        for j, cidr in enumerate(cidrs):
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as e:
                self.add((*path, j), f"{cidr!r} is not a network such as 10.20.0.0/16 or 2001:db8::/32 ({e})")

    def check_ephemeral(self, base: tuple, entry: dict) -> None:
        """The ephemeral OU must be a DN strictly under a JIT OU (the only place jitad creates accounts)."""
        path = (*base, "ephemeral", "ou")
        if "ephemeral" not in entry or not self.ok((*base, "ephemeral")):
            return
        ou = entry["ephemeral"]["ou"]
        try:
            directory.normalize_dn(ou)
        except directory.DirectoryError:
            self.add(path, f"{ou!r} is not a DN such as OU=Ephemeral,OU=JIT,DC=corp,DC=example")
            return
        if not directory.under_jit_ou(ou):
            ous = "; ".join(directory.jit_ous()) or "(JITAD_LDAP_JIT_OU is not set)"
            self.add(path, f"{ou!r} is not under the JIT OU {ous}: jitad creates ephemeral accounts only there")

    def check_review(self, base: tuple, policy: dict) -> None:
        path = (*base, "review")
        review = policy.get("review")
        if review is None or not self.ok(path):
            return
        every = self.check_minutes((*path, "every"), review["every"])
        deadline = self.check_minutes((*path, "deadline"), review["deadline"])
        if every is not None and deadline is not None and deadline >= every:
            self.add((*path, "deadline"), "must be shorter than every, or two reviews of one policy would overlap")
        for j, value in enumerate(review.get("remind_before", [])):
            before = self.check_minutes((*path, "remind_before", j), value)
            if before is not None and deadline is not None and before >= deadline:
                self.add((*path, "remind_before", j), "must be shorter than the deadline")
        if "managed_group" in review:
            problem = directory.placement_problem(review["managed_group"])
            if problem:
                self.add((*path, "managed_group"),
                         f"a review may change only a group jitad owns: {review['managed_group']!r}: {problem}")

    def check_ticket(self, base: tuple, policy: dict) -> None:
        if not self.ok((*base, "ticket")) or "pattern" not in policy.get("ticket", {}):
            return
        path, pattern = (*base, "ticket", "pattern"), policy["ticket"]["pattern"]
        try:
            re.compile(pattern)
        except re.error as e:
            self.add(path, f"{pattern!r} is not a valid regular expression: {e}")


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
