"""Policy as code: the YAML policy file, its validation messages, its apply, and the command.

An apply asks the session's Samba DC about every target's group, so the groups these files
name exist there, in the tests' JIT OU (tests/elevation/test_policy_groups.py has the refusals).
"""
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jitad.audit.models import AuditEvent
from jitad.audit.services import audit_verify
from jitad.elevation.models import Policy, Target
from jitad.elevation.policy_file import PolicyFileError, apply_policy_file, apply_policy_text

EXAMPLE = Path(__file__).resolve().parents[2] / "ops" / "policy.example.yaml"
EXAMPLE_LABELS = [
    "target SRV01",
    "target SRV02",
    "target SQL01",
    "target APP01",
    "target Domain Admins (JIT)",
    "policy low-risk-servers",
    "policy sql-admins",
    "policy domain-admins",
    "policy app-admins",
]

# A small valid file; the mistake cases below replace one of its lines, so the line an
# error must name is the line the case replaced.
BASE = """\
version: 1
targets:
  - name: NEW01
    group: "CN=JIT-NEW01-Admins,OU=JIT,DC=jitad,DC=test"
policies:
  - name: new-policy
    targets: [NEW01]
    eligible: {groups: [Ops]}
    duration: {default_minutes: 30, max_minutes: 60}
    approval: {mode: manual, approvers_required: 1, approver_groups: [Leads]}
    ticket: {required: true, pattern: "^CHG[0-9]+$"}
"""


# Every group the example and the files below name as a target's group.
GROUPS = ["JIT-SRV01-Admins", "JIT-SRV02-Admins", "JIT-SQL01-Admins", "JIT-APP01-Admins", "JIT-Domain-Admins",
          "JIT-NEW01-Admins"]


@pytest.fixture(scope="module", autouse=True)
def jit_groups(samba_dc):
    """The files' groups, in the JIT OU of the session's DC (the example's DNs name OU=JIT,DC=jitad,DC=test)."""
    from jitad import directory

    with directory.connect() as d:
        d.ensure_ou(samba_dc.jit_ou)
        return [d.ensure_group(name, samba_dc.jit_ou) for name in GROUPS]


def replace_line(number: int, text: str, base: str = BASE) -> str:
    """``base`` with its 1-based line ``number`` replaced by ``text`` (which may span lines)."""
    lines = base.splitlines()
    lines[number - 1] = text
    return "\n".join(lines) + "\n"


def snapshot() -> dict:
    """Everything an apply may change, to prove a rejected file changed nothing."""
    return {
        "targets": list(Target.objects.values()),
        "policies": [
            {**values, "targets": sorted(Policy.objects.get(pk=values["id"]).targets.values_list("name", flat=True))}
            for values in Policy.objects.values()
        ],
        "audit": list(AuditEvent.objects.exclude(object_type="alert").values_list("hash", flat=True)),  # alerts may come from the worker
    }


@pytest.fixture
def applied(db):
    """The example file, applied."""
    apply_policy_file(EXAMPLE)


def example_with(old: str, new: str) -> str:
    """The example file's text with ``old`` (which must occur once) replaced by ``new``."""
    text = EXAMPLE.read_text()
    assert text.count(old) == 1, f"the example no longer contains {old!r} exactly once"
    return text.replace(old, new)


# --- the example and a clean apply ---------------------------------------------------------


@pytest.mark.django_db
def test_example_file_applies():
    summary = apply_policy_file(EXAMPLE)

    assert summary.created == EXAMPLE_LABELS
    assert summary.updated == summary.unchanged == summary.disabled == []
    domain_role = Target.objects.get(name="Domain Admins (JIT)")
    assert domain_role.kind == Target.Kind.DOMAIN_ROLE
    assert domain_role.group_dn == "CN=JIT-Domain-Admins,OU=JIT,DC=jitad,DC=test"
    assert domain_role.standing_members == ["CN=Break-Glass-Admins,OU=JIT,DC=jitad,DC=test"]
    # The tier-0 JIT group is nested into Domain Admins on purpose; the servers' groups are not.
    assert list(Target.objects.filter(nested_into_protected=True).values_list("name", flat=True)) == [
        "Domain Admins (JIT)"]
    assert Target.objects.get(name="SRV01").hostname == "srv01.jitad.test"

    low = Policy.objects.get(name="low-risk-servers")
    assert (low.approval_mode, low.approvals_required, low.approver_groups) == ("auto", 0, [])
    assert sorted(low.targets.values_list("name", flat=True)) == ["SRV01", "SRV02"]
    sql = Policy.objects.get(name="sql-admins")
    assert (sql.approval_mode, sql.approvals_required, sql.approver_groups) == ("manual", 1, ["DBA-Leads"])
    assert (sql.require_ticket, sql.ticket_pattern) == (True, "^(INC|CHG)[0-9]{6}$")
    assert sql.eligible_users == ["oncall-dba"]
    tier0 = Policy.objects.get(name="domain-admins")
    assert (tier0.approvals_required, tier0.max_duration_minutes, tier0.max_extensions) == (2, 60, 0)
    assert list(tier0.targets.values_list("name", flat=True)) == ["Domain Admins (JIT)"]
    for policy in Policy.objects.all():
        policy.full_clean()  # the model's own rules agree with the file's validation


@pytest.mark.django_db
def test_apply_writes_one_audit_event_per_object():
    apply_policy_file(EXAMPLE, actor="alice")

    events = list(AuditEvent.objects.order_by("id"))
    assert [(e.action, e.data["name"]) for e in events] == [
        ("policy.target_created", "SRV01"),
        ("policy.target_created", "SRV02"),
        ("policy.target_created", "SQL01"),
        ("policy.target_created", "APP01"),
        ("policy.target_created", "Domain Admins (JIT)"),
        ("policy.created", "low-risk-servers"),
        ("policy.created", "sql-admins"),
        ("policy.created", "domain-admins"),
        ("policy.created", "app-admins"),
    ]
    sql = events[6]
    sql_pk = str(Policy.objects.get(name="sql-admins").pk)
    assert (sql.actor, sql.object_type, sql.object_id) == ("alice", "policy", sql_pk)
    assert (sql.before, sql.after) == ("", "enabled")
    assert "max_duration_minutes" in sql.data["changed"] and "targets" in sql.data["changed"]
    assert sql.data["after"]["targets"] == ["SQL01"]
    assert sql.reason.startswith(f"policy file {EXAMPLE} (sha256 ")
    assert audit_verify() == []


@pytest.mark.django_db
def test_reapplying_the_same_file_changes_nothing(applied):
    before = snapshot()

    summary = apply_policy_file(EXAMPLE)

    assert summary.unchanged == EXAMPLE_LABELS
    assert summary.created == summary.updated == summary.disabled == []
    assert snapshot() == before  # not even updated_at moved, and no audit event was added


@pytest.mark.django_db
def test_an_update_changes_only_what_changed(applied):
    events_before = AuditEvent.objects.exclude(object_type="alert").count()
    text = example_with("{default: 1h, max: 3h}", "{default: 1h, max: 2h}")
    text = text.replace("    hostname: srv02.jitad.test\n", "")  # an omitted field goes back to its default
    # The same targets in another order are the same set: no change.
    text = text.replace("targets: [SRV01, SRV02]", "targets: [SRV02, SRV01]")

    summary = apply_policy_text(text)

    assert summary.updated == ["target SRV02", "policy sql-admins"]
    assert summary.changed_fields == {"target SRV02": ["hostname"], "policy sql-admins": ["max_duration_minutes"]}
    assert len(summary.unchanged) == 7
    assert Target.objects.get(name="SRV02").hostname == ""
    assert Policy.objects.get(name="sql-admins").max_duration_minutes == 120
    events = list(AuditEvent.objects.exclude(object_type="alert").order_by("id")[events_before:])
    assert [(e.action, e.object_type, e.data["changed"]) for e in events] == [
        ("policy.target_updated", "target", ["hostname"]),
        ("policy.updated", "policy", ["max_duration_minutes"]),
    ]
    assert events[1].data["before"] == {"max_duration_minutes": 180}
    assert events[1].data["after"] == {"max_duration_minutes": 120}
    assert (events[1].before, events[1].after) == ("enabled", "enabled")


@pytest.mark.django_db
def test_an_update_sets_the_targets_exactly_as_listed(applied):
    summary = apply_policy_text(example_with("targets: [SRV01, SRV02]", "targets: [SRV01, SQL01]"))

    assert summary.changed_fields == {"policy low-risk-servers": ["targets"]}
    low = Policy.objects.get(name="low-risk-servers")
    assert sorted(low.targets.values_list("name", flat=True)) == ["SQL01", "SRV01"]
    event = AuditEvent.objects.latest("id")
    assert event.data["before"] == {"targets": ["SRV01", "SRV02"]}
    assert event.data["after"] == {"targets": ["SRV01", "SQL01"]}


@pytest.mark.django_db
def test_switching_to_auto_approval_clears_the_approver_count(applied):
    text = example_with(
        "      mode: manual\n      approvers_required: 1\n      approver_groups: [DBA-Leads]\n",
        "      mode: auto\n",
    ).replace("      allow_bulk: true", "      # allow_bulk: true")

    summary = apply_policy_text(text)

    assert summary.changed_fields == {
        "policy sql-admins": ["approval_mode", "approvals_required", "approver_groups", "allow_bulk_decisions", "stages"]
    }
    sql = Policy.objects.get(name="sql-admins")
    assert (sql.approval_mode, sql.approvals_required, sql.approver_groups) == ("auto", 0, [])


@pytest.mark.django_db
def test_a_policy_may_name_a_target_already_in_the_database(applied):
    text = replace_line(7, "    targets: [NEW01, SQL01]")

    apply_policy_text(text)

    policy = Policy.objects.get(name="new-policy")
    assert sorted(policy.targets.values_list("name", flat=True)) == ["NEW01", "SQL01"]


# --- mistakes: each is rejected with its line, and nothing changes -------------------------

MISTAKES = [
    pytest.param(
        replace_line(8, "    eligible: groups: [Ops]"),
        ["line 8: YAML error: mapping values are not allowed here"],
        id="yaml-syntax",
    ),
    pytest.param(
        replace_line(3, "  - name: NEW01\tx"),
        ["line 3: YAML error: while scanning for the next token, found character '\\t' that cannot start any token"],
        id="yaml-tab",
    ),
    pytest.param(
        replace_line(9, "    duration: {default_minutes: 30, max_minutes: 60, max_minutes: 600}"),
        ["line 9: policies[0].duration.max_minutes: duplicate key (first defined on line 9)"],
        id="duplicate-key",
    ),
    pytest.param(
        replace_line(10, "    approval: {mode: manual, approvers_required: 1, approver_groups: [Leads]}\n"
                         "    approval: {mode: auto}"),
        ["line 11: policies[0].approval: duplicate key (first defined on line 10)"],
        id="duplicate-key-block",
    ),
    pytest.param(
        replace_line(9, "    duraton: {default_minutes: 30, max_minutes: 60}"),
        ["line 9: policies[0].duraton: unknown field (did you mean 'duration'?)"],
        id="unknown-field-typo",
    ),
    pytest.param(
        replace_line(4, '    group: "CN=JIT-NEW01-Admins,OU=JIT,DC=jitad,DC=test"\n    colour: blue'),
        ["line 5: targets[0].colour: unknown field; expected one of: name, kind, hostname, group, description, "
         "standing_members, nested_into_protected, tier, approver_groups, winrm, exclusive, ephemeral, logon_sources, enabled"],
        id="unknown-field",
    ),
    pytest.param(
        replace_line(9, "    duration: {default_minutes: thirty, max_minutes: 60}"),
        ["line 9: policies[0].duration.default_minutes: 'thirty' is not of type 'integer'"],
        id="wrong-type",
    ),
    pytest.param(
        replace_line(8, "    eligible: Ops"),
        ["line 8: policies[0].eligible: 'Ops' is not of type 'object'"],
        id="wrong-type-block",
    ),
    pytest.param(
        replace_line(10, "    approval: {mode: manul, approver_groups: [Leads]}"),
        ["line 10: policies[0].approval.mode: 'manul' is not one of ['auto', 'manual']"],
        id="bad-enum",
    ),
    pytest.param(
        replace_line(9, "    duration: {default_minutes: 30, max_minutes: 0}"),
        ["line 9: policies[0].duration.max_minutes: 0 is less than the minimum of 1"],
        id="minimum",
    ),
    pytest.param(
        replace_line(9, "    duration: {default_minutes: 90, max_minutes: 60}"),
        ["line 9: policies[0].duration.default_minutes: 90 is more than max_minutes (60)"],
        id="default-over-max",
    ),
    pytest.param(
        replace_line(9, "    duration: {default_minutes: 300}"),
        ["line 9: policies[0].duration.default_minutes: 300 is more than max_minutes (240)"],
        id="default-over-implicit-max",
    ),
    pytest.param(
        replace_line(10, "    approval: {mode: manual}"),
        ["line 10: policies[0].approval.approver_groups: manual approval needs at least one approver group"],
        id="manual-without-approver-groups",
    ),
    pytest.param(
        replace_line(10, "    approval: {mode: manual, approvers_required: 0, approver_groups: [Leads]}"),
        ["line 10: policies[0].approval.approvers_required: 0 is less than the minimum of 1"],
        id="manual-with-zero-approvers",
    ),
    pytest.param(
        replace_line(10, "    approval:\n      mode: auto\n"
                         "      approvers_required: 1\n      approver_groups: [Leads]"),
        ["line 12: policies[0].approval.approvers_required: must not be set when mode is auto (nobody approves)",
         "line 13: policies[0].approval.approver_groups: must not be set when mode is auto (nobody approves)"],
        id="auto-with-approvers",
    ),
    pytest.param(
        replace_line(11, '    ticket: {required: true, pattern: "^CHG[0-9+$"}'),
        ["line 11: policies[0].ticket.pattern: '^CHG[0-9+$' is not a valid regular expression: "
         "unterminated character set at position 4"],
        id="bad-regex",
    ),
    pytest.param(
        replace_line(4, "    group: JIT-NEW01-Admins"),
        ["line 4: targets[0].group: target 'NEW01' cannot use 'JIT-NEW01-Admins' as its JIT group: "
         "it is not a well-formed DN"],
        id="bad-group-dn",
    ),
    pytest.param(
        replace_line(4, '    group: "CN=JIT-NEW01-Admins,OU=JIT,DC=jitad,DC=test"\n'
                        '    standing_members: ["CN=Break-Glass,OU=JIT,DC=jitad,DC=test", "Break Glass"]'),
        ["line 5: targets[0].standing_members[1]: 'Break Glass' is not a valid distinguished name"],
        id="bad-standing-member-dn",
    ),
    pytest.param(
        replace_line(7, "    targets: [NEW01, NEW02]"),
        ["line 7: policies[0].targets[1]: unknown target 'NEW02': define it under targets"],
        id="unknown-target",
    ),
    pytest.param(
        replace_line(4, '    group: "CN=JIT-NEW01-Admins,OU=JIT,DC=jitad,DC=test"\n'
                        '  - name: NEW01\n    group: "CN=JIT-NEW01b-Admins,OU=JIT,DC=jitad,DC=test"'),
        ["line 5: targets[1].name: duplicate name 'NEW01' (also targets[0])"],
        id="duplicate-target-name",
    ),
    pytest.param(
        BASE + "  - name: new-policy\n    targets: [NEW01]\n    eligible: {users: [bob]}\n    approval: {mode: auto}\n",
        ["line 12: policies[1].name: duplicate name 'new-policy' (also policies[0])"],
        id="duplicate-policy-name",
    ),
    pytest.param(
        replace_line(6, "  - name: New Policy"),
        ["line 6: policies[0].name: 'New Policy' must be a slug: letters, digits, '-' and '_' only"],
        id="name-not-a-slug",
    ),
    pytest.param(
        replace_line(8, "    eligible: {groups: [], users: []}"),
        ["line 8: policies[0].eligible: names no groups and no users, so nobody could request this policy"],
        id="nobody-eligible",
    ),
    pytest.param(
        replace_line(8, "    description: nobody"),
        ["line 6: policies[0]: 'eligible' is a required property"],
        id="missing-required",
    ),
    pytest.param(
        replace_line(1, "version: 2"),
        ["line 1: version: unsupported version 2; this jitad reads version 1"],
        id="unsupported-version",
    ),
    pytest.param(
        BASE.replace("version: 1\n", ""),
        ["line 1: (top level): 'version' is a required property"],
        id="missing-version",
    ),
    pytest.param(
        "- version: 1\n",
        ["line 1: (top level): expected a mapping with version, targets and policies, found a YAML sequence"],
        id="top-level-list",
    ),
    pytest.param(
        "# nothing here\n",
        ["line 1: (top level): the document is empty; expected a mapping with version, targets and policies"],
        id="empty",
    ),
    pytest.param(
        replace_line(8, "    eligible: &ops {groups: [Ops]}\n    description: *ops"),
        ["line 9: YAML error: aliases (*ops) are not allowed in a policy file; write the value out"],
        id="alias",
    ),
    pytest.param(
        replace_line(9, "    duration: {default: 4x, max: 4h}"),
        ["line 9: policies[0].duration.default: '4x' is not a duration such as 4h, 90m or 1h30m."],
        id="duration-not-readable",
    ),
    pytest.param(
        replace_line(9, "    duration: {default: 0m, max: 1h}"),
        ["line 9: policies[0].duration.default: A duration must be at least one minute."],
        id="duration-zero",
    ),
    pytest.param(
        replace_line(9, "    duration: {max: 4h, max_minutes: 240}"),
        ["line 9: policies[0].duration.max: set max or max_minutes, not both"],
        id="duration-twice",
    ),
    pytest.param(
        replace_line(9, "    duration: {default: 2h, max: 1h30m}"),
        ["line 9: policies[0].duration.default: 2h is more than max (1h30m)"],
        id="duration-default-over-max-in-hours",
    ),
    pytest.param(
        replace_line(9, "    duration: {default: [1h], max: 1h}"),
        ["line 9: policies[0].duration.default: ['1h'] is not of type 'string', 'integer'"],
        id="duration-wrong-type",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("text", "errors"), MISTAKES)
def test_a_mistake_is_rejected_with_its_line_and_changes_nothing(applied, text, errors):
    before = snapshot()

    with pytest.raises(PolicyFileError) as excinfo:
        apply_policy_text(text)

    assert excinfo.value.errors == errors
    assert snapshot() == before
    assert not Target.objects.filter(name="NEW01").exists()


@pytest.mark.parametrize(("duration", "default", "maximum"), [
    ("{default: 90m, max: 4h}", 90, 240),
    ("{default: 1h30m, max: PT8H}", 90, 480),
    ("{default: 45, max: 2 hours}", 45, 120),
    ("{default_minutes: 30, max: 1h}", 30, 60),
    ("{max: 3h}", 60, 180),
])
def test_durations_read_as_people_write_them(db, duration, default, maximum):
    """GIVEN a policy whose duration says 4h, 90m, 1h30m (or minutes, as before) WHEN applied
    THEN the policy holds those lengths in minutes."""
    apply_policy_text(replace_line(9, f"    duration: {duration}"))
    p = Policy.objects.get(name="new-policy")
    assert (p.default_duration_minutes, p.max_duration_minutes) == (default, maximum)


def test_the_base_of_the_mistakes_is_itself_valid(db):
    summary = apply_policy_text(BASE)

    assert summary.created == ["target NEW01", "policy new-policy"]


@pytest.mark.django_db
def test_every_error_in_a_file_is_reported_in_line_order(applied):
    text = BASE.replace("DC=jitad,DC=test\"", "DC=jitad,,DC=test\"")  # line 4
    text = replace_line(7, "    targets: [NEW01, NOPE]", text)
    text = replace_line(9, "    duration: {default_minutes: 30, max_minutes: 0}", text)
    text = replace_line(11, '    ticket: {required: yes please, pattern: "("}', text)
    before = snapshot()

    with pytest.raises(PolicyFileError) as excinfo:
        apply_policy_text(text)

    assert excinfo.value.errors == [
        "line 4: targets[0].group: target 'NEW01' cannot use 'CN=JIT-NEW01-Admins,OU=JIT,DC=jitad,,DC=test' as its "
        "JIT group: it is not a well-formed DN",
        "line 7: policies[0].targets[1]: unknown target 'NOPE': define it under targets",
        "line 9: policies[0].duration.max_minutes: 0 is less than the minimum of 1",
        "line 11: policies[0].ticket.required: 'yes please' is not of type 'boolean'",
    ]
    assert snapshot() == before


# --- prune -----------------------------------------------------------------------------------

PRUNED = """\
version: 1
targets:
  - name: SRV01
    kind: server
    hostname: srv01.jitad.test
    description: File server, member of the low-risk tier.
    group: "CN=JIT-SRV01-Admins,OU=JIT,DC=jitad,DC=test"
    ephemeral:
      ou: "OU=Ephemeral,OU=JIT,DC=jitad,DC=test"
      password: {length: 24, classes: [upper, lower, digit, symbol]}
    logon_sources: [10.0.5.0/24]
policies:
  - name: low-risk-servers
    description: Day-to-day administration of low-risk member servers.
    priority: 100
    targets: [SRV01]
    eligible:
      groups: [Server-Operators]
    duration: {default_minutes: 60, max_minutes: 240}
    approval:
      mode: auto
    justification: {required: true, min_length: 10}
    max_extensions: 2
"""


@pytest.mark.django_db
def test_prune_disables_what_the_file_does_not_name(applied):
    events_before = AuditEvent.objects.exclude(object_type="alert").count()

    summary = apply_policy_text(PRUNED, prune=True)

    assert summary.unchanged == ["target SRV01"]
    assert summary.updated == ["policy low-risk-servers"]
    assert summary.disabled == [
        "target APP01",
        "target Domain Admins (JIT)",
        "target SQL01",
        "target SRV02",
        "policy domain-admins",
        "policy app-admins",
        "policy sql-admins",
    ]
    assert Target.objects.count() == 5 and Policy.objects.count() == 4  # disabled, never deleted
    assert set(Target.objects.filter(enabled=True).values_list("name", flat=True)) == {"SRV01"}
    assert set(Policy.objects.filter(enabled=True).values_list("name", flat=True)) == {"low-risk-servers"}
    events = AuditEvent.objects.exclude(object_type="alert").order_by("id")[events_before:]
    assert [(e.action, e.data["name"], e.before, e.after, e.data["changed"]) for e in events] == [
        ("policy.target_disabled", "APP01", "enabled", "disabled", ["enabled"]),
        ("policy.target_disabled", "Domain Admins (JIT)", "enabled", "disabled", ["enabled"]),
        ("policy.target_disabled", "SQL01", "enabled", "disabled", ["enabled"]),
        ("policy.target_disabled", "SRV02", "enabled", "disabled", ["enabled"]),
        ("policy.updated", "low-risk-servers", "enabled", "enabled", ["targets"]),
        ("policy.disabled", "domain-admins", "enabled", "disabled", ["enabled"]),
        ("policy.disabled", "app-admins", "enabled", "disabled", ["enabled"]),
        ("policy.disabled", "sql-admins", "enabled", "disabled", ["enabled"]),
    ]

    before = snapshot()
    again = apply_policy_text(PRUNED, prune=True)
    assert again.disabled == [] and again.unchanged == ["target SRV01", "policy low-risk-servers"]
    assert snapshot() == before


@pytest.mark.django_db
def test_without_prune_objects_missing_from_the_file_are_left_alone(applied):
    summary = apply_policy_text(PRUNED)

    assert summary.disabled == []
    assert Target.objects.filter(enabled=True).count() == 5
    assert Policy.objects.filter(enabled=True).count() == 4


@pytest.mark.django_db
def test_prune_refuses_a_policy_that_needs_a_target_it_would_disable(applied):
    before = snapshot()

    with pytest.raises(PolicyFileError) as excinfo:
        apply_policy_text(PRUNED.replace("targets: [SRV01]", "targets: [SRV01, SQL01]"), prune=True)

    assert excinfo.value.errors == [
        "line 16: policies[0].targets[1]: target 'SQL01' is not in this file, so prune would disable it"
    ]
    assert snapshot() == before


@pytest.mark.django_db
def test_a_file_can_enable_again_what_was_pruned(applied):
    apply_policy_text(PRUNED, prune=True)

    summary = apply_policy_file(EXAMPLE)

    assert summary.changed_fields["target SQL01"] == ["enabled"]
    assert Target.objects.filter(enabled=True).count() == 5
    assert AuditEvent.objects.latest("id").before == "disabled"


# --- the management command ------------------------------------------------------------------


def run(*args) -> tuple[str, str]:
    """(stdout, stderr) of the command; a CommandError propagates."""
    out, err = StringIO(), StringIO()
    call_command("jitad_apply_policy", *args, stdout=out, stderr=err, no_color=True)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_command_applies_and_prints_the_summary():
    out, err = run(str(EXAMPLE))

    assert "  created   target SRV01\n" in out
    assert "  created   policy domain-admins\n" in out
    assert out.endswith(f"Applied {EXAMPLE}: 9 created, 0 updated, 0 unchanged, 0 disabled.\n")
    assert err == ""
    assert Policy.objects.count() == 4

    out, _ = run(str(EXAMPLE))
    assert out == f"Applied {EXAMPLE}: 0 created, 0 updated, 9 unchanged, 0 disabled.\n"


@pytest.mark.django_db
def test_command_dry_run_shows_changes_and_writes_nothing(applied, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(PRUNED.replace("max_minutes: 240", "max_minutes: 120"))
    before = snapshot()

    out, _ = run(str(path), "--prune", "--dry-run")

    assert "  updated   policy low-risk-servers: max_duration_minutes, targets\n" in out
    assert "  disabled  target SQL01\n" in out
    counts = "0 created, 1 updated, 1 unchanged, 7 disabled"
    assert out.endswith(f"Dry run of {path}: would be {counts}. Nothing was changed.\n")
    assert snapshot() == before


@pytest.mark.django_db
def test_command_prune(applied, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(PRUNED)

    out, _ = run(str(path), "--prune")

    assert out.endswith(f"Applied {path}: 0 created, 1 updated, 1 unchanged, 7 disabled.\n")
    assert not Policy.objects.get(name="domain-admins").enabled


@pytest.mark.django_db
def test_command_reports_every_error_and_exits_1(applied, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(replace_line(9, "    duration: {default_minutes: 90, max_minutes: 60}\n    colour: red"))
    before = snapshot()
    err = StringIO()

    with pytest.raises(CommandError) as excinfo:
        call_command("jitad_apply_policy", str(path), stdout=StringIO(), stderr=err)

    assert excinfo.value.returncode == 1
    assert str(excinfo.value) == f"{path} rejected with 2 error(s); nothing was changed"
    assert err.getvalue().splitlines() == [
        f"{path}: line 9: policies[0].duration.default_minutes: 90 is more than max_minutes (60)",
        f"{path}: line 10: policies[0].colour: unknown field; expected one of: name, description, priority, "
        "targets, eligible, duration, approval, time_windows, schedule, networks, review, justification, ticket, "
            "max_extensions, end_sessions_on_revoke, ephemeral, enabled",
    ]
    assert snapshot() == before


@pytest.mark.django_db
def test_command_rejects_a_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"

    with pytest.raises(CommandError) as excinfo:
        run(str(missing))

    assert str(excinfo.value) == f"cannot read {missing}: No such file or directory"
    assert excinfo.value.returncode == 2  # bad usage (ops/README.md, "Exit codes")


@pytest.mark.django_db
def test_command_rejects_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"version: 1\ndescription: caf\xe9\n")

    with pytest.raises(CommandError) as excinfo:
        run(str(path))

    assert str(excinfo.value).startswith(f"cannot read {path}: 'utf-8' codec can't decode byte 0xe9")


# --- WinRM settings of a target (docs/hosts.md) --------------------------------------------


WINRM_BASE = BASE.replace(
    '    group: "CN=JIT-NEW01-Admins,OU=JIT,DC=jitad,DC=test"\n',
    '    group: "CN=JIT-NEW01-Admins,OU=JIT,DC=jitad,DC=test"\n'
    "    winrm: {url: \"https://new01.jitad.test:5986/wsman\", transport: basic, profile: tier1,"
    " allowed_admins: [\"*-512\", S-1-5-21-1-2-3-1105]}\n",
)


@pytest.mark.django_db
def test_a_target_carries_its_winrm_settings_and_a_policy_its_session_flag():
    apply_policy_text(WINRM_BASE.replace("    approval:", "    end_sessions_on_revoke: true\n    approval:"))
    t = Target.objects.get(name="NEW01")
    assert (t.winrm_url, t.winrm_transport, t.winrm_profile) == ("https://new01.jitad.test:5986/wsman", "basic", "tier1")
    assert t.allowed_admins == ["*-512", "S-1-5-21-1-2-3-1105"] and t.host_checked
    assert Policy.objects.get(name="new-policy").end_sessions_on_revoke is True


@pytest.mark.django_db
@pytest.mark.parametrize(("old", "new", "error"), [
    ("https://new01", "http://new01", "line 5: targets[0].winrm.transport: basic authentication is only allowed over https://"),
    ("transport: basic", "transport: credssp", "line 5: targets[0].winrm.transport:"),
    ('"*-512"', '"Domain Admins"', "line 5: targets[0].winrm.allowed_admins[0]:"),
    ('url: "https://new01.jitad.test:5986/wsman"', 'url: "srv01; calc.exe"', "line 5: targets[0].winrm.url:"),
])
def test_unsafe_winrm_settings_are_rejected(old, new, error):
    with pytest.raises(PolicyFileError) as excinfo:
        apply_policy_text(WINRM_BASE.replace(old, new))
    assert any(e.startswith(error) for e in excinfo.value.errors), excinfo.value.errors
    assert not Target.objects.filter(name="NEW01").exists()
