"""More policy-file mistakes in stages, escalation, time windows, networks and schedules: each is reported
with its line and its field, and nothing is written. (The file's stored shapes and the first mistakes are
pinned in test_policy_workflow_fields.py; this file extends the list with the same file.)"""
import pytest
from django.test import override_settings

from jitad.elevation.models import Policy
from jitad.elevation.policy_file import PolicyFileError, apply_policy_text

from .test_policy_workflow_fields import _with


@pytest.fixture(scope="module", autouse=True)
def jit_groups(samba_dc):
    from jitad import directory

    with directory.connect() as d:
        d.ensure_ou(samba_dc.jit_ou)
        d.ensure_group("JIT-WF01-Admins", samba_dc.jit_ou)


STAGE = "          escalation: {after: 30m, groups: [IT-Managers], add_as_approvers: true}"
MORE_MISTAKES = [
    pytest.param((STAGE, "          escalation: {after: 30m}"),
                 "policies[0].approval.stages[0].escalation: names no groups and no notify destinations, so nobody "
                 "would be told", id="escalation-tells-nobody"),
    pytest.param((STAGE, "          escalation: {after: 30m, notify: [secops], add_as_approvers: true}"),
                 "policies[0].approval.stages[0].escalation.add_as_approvers: needs groups to add as approvers",
                 id="escalation-adds-nobody"),
    pytest.param((STAGE, "          escalation: {after: 30m, notify: [pagers]}"),
                 "policies[0].approval.stages[0].escalation.notify[0]: unknown notification destination 'pagers': "
                 "set JITAD_NOTIFY_PAGERS in the environment", id="escalation-unknown-destination"),
    pytest.param((STAGE, "          escalation: {after: later, groups: [IT-Managers]}"),
                 "policies[0].approval.stages[0].escalation.after: 'later' is not a duration such as 4h, 90m or 1h30m.",
                 id="escalation-after-not-a-duration"),
    pytest.param(("          timeout: {after: 2h, action: deny}", "          timeout: {after: 2h, action: shrug}"),
                 "policies[0].approval.stages[0].timeout.action: 'shrug' is not one of ['deny', 'approve']",
                 id="timeout-action"),
    pytest.param(("          approvers_required: 2\n          approver_groups: [IT-Managers, Directors]",
                  "          approvers_required: 3\n          approver_groups: [IT-Managers, Directors]"),
                 "policies[0].approval.stages[1].distinct_groups: 3 approvals from distinct groups need at least 3 "
                 "approver groups", id="stage-distinct-short"),
    pytest.param(("        - name: peer\n          approver_groups: [Server-Admins]\n", "        - name: peer\n"),
                 "policies[0].approval.stages[0]: 'approver_groups' is a required property", id="stage-no-approvers"),
    pytest.param(('        - {days: [mon-fri], hours: "08:00-18:00", then: policy}',
                  '        - {days: [mon-fri], hours: "08:00-08:00", then: policy}'),
                 "policies[0].time_windows.rules[0].hours: '08:00-08:00' is an empty window (start equals end)",
                 id="window-empty"),
    pytest.param(('        - {days: [mon-fri], hours: "08:00-18:00", then: policy}',
                  '        - {days: [mon-fri], hours: "08:00-18:00", then: maybe}'),
                 "policies[0].time_windows.rules[0].then: 'maybe' is not one of ['policy', 'auto', 'extra_stage', "
                 "'refuse']", id="window-then"),
    pytest.param(("      otherwise: extra_stage\n", "      otherwise: refuse\n"),
                 "policies[0].time_windows.extra_stage: no rule and not otherwise says extra_stage, so it is never used",
                 id="window-extra-stage-unused"),
    pytest.param(("    schedule: {max_lead: 7d, clock: approval}", "    schedule: {max_lead: whenever}"),
                 "policies[0].schedule.max_lead: 'whenever' is not a duration such as 4h, 90m or 1h30m.",
                 id="schedule-lead"),
]


@pytest.mark.django_db
@override_settings(JITAD_NOTIFY_DESTINATIONS={"secops": ["json://127.0.0.1:9/secops"]})
@pytest.mark.parametrize(("change", "error"), MORE_MISTAKES)
def test_another_workflow_mistake_names_its_line_and_field(change, error):
    text = _with(*change)
    with pytest.raises(PolicyFileError) as excinfo:
        apply_policy_text(text)
    messages = [e.split(": ", 1)[1] for e in excinfo.value.errors]
    assert error in messages, excinfo.value.errors
    line = int(excinfo.value.errors[messages.index(error)].split(":")[0].removeprefix("line "))
    changed = text.index(change[1].splitlines()[0]) if change[1] else 0
    assert 0 < line <= text.count("\n")
    assert abs(line - (text[:changed].count("\n") + 1)) <= 3, (line, error)
    assert not Policy.objects.filter(name="wf-policy").exists()
