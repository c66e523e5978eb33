"""The workflow fields of the policy file (reviews, exclusive targets, schedules, networks, windows, stages):
how they are stored, and the line-and-field error each mistake gets.

The services that enforce them have their own tests; this file pins the contract between the
file and the rows (``Policy.stages``, ``time_windows``, ``review``...), and the pure rule
functions of ``jitad.elevation.selectors.workflow`` that read those rows.
"""
from datetime import datetime, timezone

import pytest

from jitad.elevation.models import Policy, Target
from jitad.elevation.policy_file import PolicyFileError, apply_policy_text
from jitad.elevation.selectors.workflow import (
    days_of,
    network_allows,
    off_hours,
    policy_stages,
    window_action,
    window_text,
)

FULL = """\
version: 1
targets:
  - name: WF01
    group: "CN=JIT-WF01-Admins,OU=JIT,DC=jitad,DC=test"
    exclusive: wait
policies:
  - name: wf-policy
    targets: [WF01]
    eligible: {groups: [Ops]}
    approval:
      mode: manual
      pending_timeout_minutes: 600
      stages:
        - name: peer
          approver_groups: [Server-Admins]
          escalation: {after: 30m, groups: [IT-Managers], add_as_approvers: true}
          timeout: {after: 2h, action: deny}
        - name: manager
          approvers_required: 2
          approver_groups: [IT-Managers, Directors]
          distinct_groups: true
    time_windows:
      timezone: Europe/Paris
      rules:
        - {days: [mon-fri], hours: "08:00-18:00", then: policy}
        - {days: [sat, sun], then: refuse}
      otherwise: extra_stage
      extra_stage: {name: night, approver_groups: [On-Call]}
    schedule: {max_lead: 7d, clock: approval}
    networks: [10.20.0.0/16, "2001:db8::/32"]
    review:
      every: 90d
      deadline: 14d
      reviewers: [IT-Managers]
      default: remove
      remind_before: [1d, 7d]
      managed_group: "CN=JIT-WF-Eligible,OU=JIT,DC=jitad,DC=test"
"""


@pytest.fixture(scope="module", autouse=True)
def jit_groups(samba_dc):
    from jitad import directory

    with directory.connect() as d:
        d.ensure_ou(samba_dc.jit_ou)
        d.ensure_group("JIT-WF01-Admins", samba_dc.jit_ou)


def _with(old: str, new: str, text: str = FULL) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.django_db
def test_every_workflow_field_is_stored_in_the_shape_the_services_read():
    """GIVEN a file using stages, windows, a schedule, networks, a review and an exclusive target
    WHEN it is applied THEN each lands on the rows in minutes and normalised names, and the policy's
    approver groups are everyone who may decide some stage (the queues' scope)."""
    apply_policy_text(FULL)
    target = Target.objects.get(name="WF01")
    policy = Policy.objects.get(name="wf-policy")
    assert target.exclusive == Target.Exclusive.WAIT
    assert policy.stages == [
        {"name": "peer", "approvals_required": 1, "approver_groups": ["Server-Admins"], "distinct_groups": False,
         "escalation": {"after_minutes": 30, "groups": ["IT-Managers"], "notify": [], "add_as_approvers": True},
         "timeout": {"after_minutes": 120, "action": "deny"}},
        {"name": "manager", "approvals_required": 2, "approver_groups": ["IT-Managers", "Directors"],
         "distinct_groups": True, "escalation": None, "timeout": None},
    ]
    assert policy.approvals_required == 3
    assert policy.approver_groups == ["Server-Admins", "IT-Managers", "Directors", "On-Call"]
    assert policy.time_windows["timezone"] == "Europe/Paris"
    assert policy.time_windows["otherwise"] == "extra_stage"
    assert policy.time_windows["extra_stage"]["approver_groups"] == ["On-Call"]
    assert (policy.schedule_max_lead_minutes, policy.schedule_clock) == (7 * 1440, "approval")
    assert policy.networks == ["10.20.0.0/16", "2001:db8::/32"]
    assert policy.review == {
        "every_minutes": 90 * 1440, "deadline_minutes": 14 * 1440, "reviewers": ["IT-Managers"], "default": "remove",
        "remind_before_minutes": [7 * 1440, 1440], "managed_group": "CN=JIT-WF-Eligible,OU=JIT,DC=jitad,DC=test",
    }
    assert policy_stages(policy) == policy.stages


@pytest.mark.django_db
def test_a_single_stage_file_is_stored_as_one_stage_and_auto_as_none():
    text = _with("""    approval:
      mode: manual
      pending_timeout_minutes: 600
      stages:
        - name: peer
          approver_groups: [Server-Admins]
          escalation: {after: 30m, groups: [IT-Managers], add_as_approvers: true}
          timeout: {after: 2h, action: deny}
        - name: manager
          approvers_required: 2
          approver_groups: [IT-Managers, Directors]
          distinct_groups: true
""", "    approval: {mode: manual, approvers_required: 2, approver_groups: [A, B], distinct_groups: true}\n")
    apply_policy_text(text)
    policy = Policy.objects.get(name="wf-policy")
    assert policy.stages == [{"name": "approval", "approvals_required": 2, "approver_groups": ["A", "B"],
                              "distinct_groups": True, "escalation": None, "timeout": None}]
    assert (policy.approvals_required, policy.distinct_approver_groups) == (2, True)
    assert policy.approver_groups == ["A", "B", "On-Call"]  # the window's extra stage decides too

    auto = _with("      otherwise: extra_stage\n      extra_stage: {name: night, approver_groups: [On-Call]}\n",
                 "      otherwise: auto\n", text.replace(
                     "    approval: {mode: manual, approvers_required: 2, approver_groups: [A, B], distinct_groups: true}",
                     "    approval: {mode: auto}"))
    apply_policy_text(auto)
    policy.refresh_from_db()
    assert (policy.stages, policy.approvals_required, policy.approver_groups) == ([], 0, [])
    assert policy_stages(policy) == []


MISTAKES = [
    pytest.param(("    exclusive: wait", "    exclusive: sometimes"),
                 "targets[0].exclusive: 'sometimes' is not one of ['wait', 'refuse']", id="exclusive-unknown"),
    pytest.param(("      deadline: 14d", "      deadline: 100d"),
                 "policies[0].review.deadline: must be shorter than every, or two reviews of one policy would overlap",
                 id="review-deadline-after-cadence"),
    pytest.param(("      remind_before: [1d, 7d]", "      remind_before: [1d, 20d]"),
                 "policies[0].review.remind_before[1]: must be shorter than the deadline", id="review-reminder-late"),
    pytest.param(("      reviewers: [IT-Managers]", "      reviewers: []"),
                 "policies[0].review.reviewers: [] should be non-empty", id="review-no-reviewers"),
    pytest.param(("      default: remove", "      default: maybe"),
                 "policies[0].review.default: 'maybe' is not one of ['remove', 'keep']", id="review-default"),
    pytest.param(('      managed_group: "CN=JIT-WF-Eligible,OU=JIT,DC=jitad,DC=test"',
                  '      managed_group: "CN=Domain Admins,CN=Users,DC=jitad,DC=test"'),
                 "policies[0].review.managed_group: a review may change only a group jitad owns: "
                 "'CN=Domain Admins,CN=Users,DC=jitad,DC=test': it is not under the JIT OU (OU=JIT,DC=jitad,DC=test)",
                 id="review-managed-group-outside-jit-ou"),
    pytest.param(("      every: 90d", "      every: soon"),
                 "policies[0].review.every: 'soon' is not a duration such as 4h, 90m or 1h30m.", id="review-every"),
    pytest.param(("    networks: [10.20.0.0/16, \"2001:db8::/32\"]", "    networks: [10.20.0.1/16]"),
                 "policies[0].networks[0]: '10.20.0.1/16' is not a network such as 10.20.0.0/16 or 2001:db8::/32 "
                 "(10.20.0.1/16 has host bits set)", id="network-host-bits"),
    pytest.param(("    networks: [10.20.0.0/16, \"2001:db8::/32\"]", "    networks: [intranet]"),
                 "policies[0].networks[0]: 'intranet' is not a network such as 10.20.0.0/16 or 2001:db8::/32 "
                 "('intranet' does not appear to be an IPv4 or IPv6 network)", id="network-not-an-address"),
    pytest.param(("    schedule: {max_lead: 7d, clock: approval}", "    schedule: {max_lead: 7d, clock: sometime}"),
                 "policies[0].schedule.clock: 'sometime' is not one of ['scheduled_start', 'approval']",
                 id="schedule-clock"),
    pytest.param(("    schedule: {max_lead: 7d, clock: approval}", "    schedule: {max_lead: 0m}"),
                 "policies[0].schedule.max_lead: A duration must be at least one minute.", id="schedule-lead-zero"),
    pytest.param(("      timezone: Europe/Paris", "      timezone: Mars/Olympus"),
                 "policies[0].time_windows.timezone: unknown time zone 'Mars/Olympus': use an IANA name such as "
                 "Europe/Paris or UTC", id="window-zone"),
    pytest.param(('        - {days: [mon-fri], hours: "08:00-18:00", then: policy}',
                  '        - {days: [mon-fri], hours: "8-18", then: policy}'),
                 "policies[0].time_windows.rules[0].hours: '8-18' must be hours such as 08:00-18:00 "
                 "(or 22:00-06:00 across midnight)", id="window-hours"),
    pytest.param(("        - {days: [sat, sun], then: refuse}", "        - {days: [weekend], then: refuse}"),
                 "policies[0].time_windows.rules[1].days[0]: 'weekend' must be a day (mon, tue, ... sun) "
                 "or a range of days (mon-fri)", id="window-day"),
    pytest.param(("      otherwise: extra_stage\n      extra_stage: {name: night, approver_groups: [On-Call]}\n",
                  "      otherwise: extra_stage\n"),
                 "policies[0].time_windows: a rule says extra_stage: define extra_stage (its approvers)",
                 id="window-extra-stage-missing"),
    pytest.param(("          timeout: {after: 2h, action: deny}", "          timeout: {after: 20m, action: deny}"),
                 "policies[0].approval.stages[0].escalation.after: must be shorter than timeout.after, or the stage "
                 "ends before anyone is told", id="escalation-after-timeout"),
    pytest.param(("        - name: manager", "        - name: Peer"),
                 "policies[0].approval.stages[1].name: duplicate stage name 'Peer' (also stages[0])",
                 id="stage-names-repeat"),
    pytest.param(("      pending_timeout_minutes: 600\n", "      pending_timeout_minutes: 600\n      approver_groups: [X]\n"),
                 "policies[0].approval.approver_groups: set the approvers in stages, or here for a single stage, "
                 "not both", id="stages-and-flat"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("change", "error"), MISTAKES)
def test_a_workflow_mistake_names_its_field_and_changes_nothing(change, error):
    text = _with(*change)
    with pytest.raises(PolicyFileError) as excinfo:
        apply_policy_text(text)
    messages = [e.split(": ", 1)[1] for e in excinfo.value.errors]
    assert error in messages, excinfo.value.errors
    line = int(excinfo.value.errors[messages.index(error)].split(":")[0].removeprefix("line "))
    assert 0 < line <= text.count("\n")
    assert not Policy.objects.filter(name="wf-policy").exists()


# -- the rule functions ---------------------------------------------------------------------------
def _policy(**fields) -> Policy:
    return Policy(name="p", approval_mode=Policy.ApprovalMode.MANUAL, **fields)


WINDOWS = {"timezone": "Europe/Paris", "otherwise": "refuse", "rules": [
    {"days": ["mon-fri"], "hours": "08:00-18:00", "then": "policy"},
    {"days": ["fri"], "hours": "22:00-06:00", "then": "extra_stage"},
    {"days": ["sat"], "then": "auto"},
]}


@pytest.mark.parametrize(("utc", "action"), [
    ("2026-12-07T07:30", "policy"),       # Monday 08:30 in Paris (UTC+1)
    ("2026-12-07T06:59", "refuse"),       # Monday 07:59
    ("2026-12-07T17:00", "refuse"),       # Monday 18:00: the end is not inside
    ("2026-12-11T21:30", "extra_stage"),  # Friday 22:30
    ("2026-12-12T04:30", "extra_stage"),  # Saturday 05:30, still Friday night's window (first matching rule wins)
    ("2026-12-12T12:00", "auto"),         # Saturday noon
    ("2026-12-13T12:00", "refuse"),       # Sunday
    ("2026-07-06T06:30", "policy"),       # a summer Monday 08:30 (UTC+2)
])
def test_window_action_reads_the_local_time_of_the_policy(utc, action):
    at = datetime.fromisoformat(utc).replace(tzinfo=timezone.utc)
    assert window_action(_policy(time_windows=WINDOWS), at) == action


def test_without_windows_everything_is_the_policy_and_nothing_is_off_hours():
    at = datetime(2026, 12, 13, 3, 0, tzinfo=timezone.utc)
    assert window_action(_policy(), at) == "policy"
    assert not off_hours(_policy(), at)
    assert off_hours(_policy(time_windows=WINDOWS), at)
    assert window_text(_policy()) == ""
    assert window_text(_policy(time_windows=WINDOWS)) == (
        "mon-fri 08:00-18:00: policy; fri 22:00-06:00: extra stage; sat: auto; otherwise refuse (Europe/Paris)")


def test_day_ranges_wrap_the_week():
    assert days_of(["mon-fri"]) == {0, 1, 2, 3, 4}
    assert days_of(["fri-mon"]) == {4, 5, 6, 0}
    assert days_of(["sun", "wed"]) == {6, 2}


@pytest.mark.parametrize(("address", "allowed"), [
    ("10.20.3.4", True), ("10.21.0.1", False), ("2001:db8::7", True), ("::ffff:10.20.0.9", True),
    ("", False), (None, False), ("not an address", False),
])
def test_networks_admit_only_their_addresses(address, allowed):
    policy = _policy(networks=["10.20.0.0/16", "2001:db8::/32"])
    assert network_allows(policy, address) is allowed
    assert network_allows(_policy(), address) is True  # no networks: any address
