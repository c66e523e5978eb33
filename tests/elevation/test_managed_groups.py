"""Defence in depth at the seam: a target row naming a group outside the JIT OU changes nothing in AD.

The policy file refuses such a group, so these tests write the row directly, as someone
editing the database around the policy file would. Real Samba DC, real worker.
"""
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE

from jitad import directory
from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.models import Grant, HeldRemoval, Policy, Target
from jitad.elevation.services.grant_failures import failed_conditions_resolve
from jitad.notifications.models import AlertCondition, Notification
from tests.support.waiting import wait_for

from .helpers import ad_user_dn, expire_now, wait_state

pytestmark = pytest.mark.django_db(transaction=True)


def _ad_members(ldap_admin, group_dn: str) -> set[str]:
    conn = ldap_admin()
    try:
        conn.search(group_dn, "(objectClass=group)", BASE, attributes=["member"])
        return {directory.normalize_dn(m) for m in conn.entries[0].entry_attributes_as_dict.get("member", [])}
    finally:
        conn.unbind()


@pytest.fixture
def outside(ldap_admin, samba_dc, jit_ou):
    """A group beside the JIT OU (CN with an escaped comma) holding two people who are no grant's."""
    tag = uuid.uuid4().hex[:6]
    conn = ldap_admin()
    parent = f"OU=Standing-{tag},{samba_dc.base_dn}"
    assert conn.add(parent, "organizationalUnit"), conn.result
    group = f"CN=Server Ops\\, {tag},{parent}"
    assert conn.add(group, "group", {"sAMAccountName": f"srvops{tag}", "groupType": -2147483646}), conn.result
    with directory.connect() as d:
        people = [d.ensure_user(f"st{tag}{i}", parent) for i in range(2)]
    assert conn.modify(group, {"member": [(MODIFY_ADD, people)]}), conn.result
    conn.unbind()
    return group, people


@pytest.fixture
def tampered(outside):
    """A target whose group DN points outside the JIT OU, written straight into the database."""
    group, people = outside
    name = f"TAMP{uuid.uuid4().hex[:5].upper()}"
    target = Target.objects.create(name=name, hostname=f"{name.lower()}.jitad.test", group_dn=group)
    policy = Policy.objects.create(name=f"p-{name.lower()}", approval_mode="manual", approvals_required=1,
                                   eligible_groups=["admins"], approver_groups=["approvers"],
                                   max_duration_minutes=240, default_duration_minutes=60, require_justification=False)
    policy.targets.add(target)
    return target, group, people


def _key(group_dn: str) -> str:
    return f"group.not_managed:{group_dn}"


def test_approved_grants_on_a_group_outside_the_jit_ou_fail_without_touching_ad(live, tampered, make_user, ldap_admin,
                                                                                 alert_sink):
    """GIVEN a tampered target and three requests for it WHEN an approver approves them THEN no one is
    added to the group in AD, each grant is grant_failed at its first attempt (not retried) with an error
    naming the JIT OU and an audit entry, and one alert condition is raised for the group, not three."""
    target, group, people = tampered
    before = _ad_members(ldap_admin, group)
    approver = make_user("appr", groups=["approvers"])
    requesters = [make_user("req", groups=["admins"]) for _ in range(3)]
    alert_sink.clear()
    grants = []
    for user in requesters:
        req = services.request_create(requester=user, target=target, duration_minutes=30, justification="patching")
        services.request_approve(request=req, approver=approver, comment="ok")
        req.refresh_from_db()
        grants.append(wait_state(req.grant.id, Grant.State.GRANT_FAILED))

    assert _ad_members(ldap_admin, group) == before  # nobody added
    for g in grants:
        assert g.attempts == 1 and g.retryable is False
        assert "DirectoryNotManaged" in g.last_error and "not under the JIT OU" in g.last_error and repr(group) in g.last_error
        assert AuditEvent.objects.filter(object_type="grant", object_id=str(g.id), action="grant.grant_failed").exists()
        assert not AuditEvent.objects.filter(object_type="grant", object_id=str(g.id), action="grant.active").exists()

    condition = AlertCondition.objects.get(key=_key(group))
    assert condition.resolved_at is None and condition.occurrences == 3
    assert Notification.objects.filter(event="group.not_managed").count() == 1
    assert not AlertCondition.objects.filter(key__startswith="grant.grant_failed:").exists()  # no second alert
    title = f"jitad refused to change Server Ops, {group.split(', ', 1)[1].split(',', 1)[0]}"
    wait_for(lambda: any(m.get("title", "").startswith(title) for m in alert_sink.messages), timeout=30,
             message="one not-managed alert at the webhook, titled with the whole CN")

    services.sweep()  # a failed apply on a group jitad does not own is not picked up again
    assert all(Grant.objects.get(id=g.id).attempts == 1 for g in grants)


def test_a_revocation_on_a_group_outside_the_jit_ou_leaves_the_member_and_fails_loudly(live, tampered, make_user,
                                                                                       ldap_admin):
    """GIVEN an active grant row (tampered) for someone who is in the outside group WHEN it expires THEN the
    sweeper's revocation removes nobody: the grant is revoke_failed with the reason, and the group alerted."""
    target, group, people = tampered
    user = make_user("held", groups=["admins"])
    req = services.request_create(requester=user, target=target, duration_minutes=30, justification="x")
    Grant.objects.filter(request=req).delete()
    grant = Grant.objects.create(request=req, user=user, target=target, group_dn=group, user_dn=people[0],
                                 expires_at=timezone.now() + timedelta(minutes=30), state=Grant.State.ACTIVE)
    before = _ad_members(ldap_admin, group)
    expire_now(grant.id)
    grant = wait_state(grant.id, Grant.State.REVOKE_FAILED)
    assert "not under the JIT OU" in grant.last_error
    assert _ad_members(ldap_admin, group) == before
    assert AlertCondition.objects.filter(key=_key(group), resolved_at__isnull=True).exists()


def test_the_reconciler_skips_a_group_outside_the_jit_ou_and_alerts_once(live, tampered, make_target, make_user,
                                                                         ldap_admin, jit_ou):
    """GIVEN the tampered target (its group holds two people no grant backs) beside a healthy target with an
    intruder WHEN the reconciler runs twice THEN the outside group keeps both members and nothing is held for
    it, the healthy group loses its intruder, and one not-managed alert is raised (counted on the second run)."""
    target, group, people = tampered
    healthy = make_target()
    intruder = make_user("intr")
    intruder_dn = ad_user_dn(ldap_admin, jit_ou, intruder.username)
    conn = ldap_admin()
    assert conn.modify(healthy.group_dn, {"member": [(MODIFY_ADD, [intruder_dn])]}), conn.result
    conn.unbind()
    before = _ad_members(ldap_admin, group)
    assert len(before) == 2

    first = services.reconcile()
    second = services.reconcile()
    assert group not in first and group not in second
    assert first[healthy.group_dn] == [intruder_dn]
    assert _ad_members(ldap_admin, group) == before
    assert not HeldRemoval.objects.filter(group_dn=group).exists()
    condition = AlertCondition.objects.get(key=_key(group))
    assert condition.occurrences == 2 and condition.resolved_at is None
    assert Notification.objects.filter(event="group.not_managed").count() == 1
    assert not Notification.objects.filter(event="reconcile.group_unreadable").exists()

    # Put right (the target disabled): the next run resolves the condition, once.
    Target.objects.filter(pk=target.pk).update(enabled=False)
    services.reconcile()
    assert AlertCondition.objects.get(key=_key(group)).resolved_at is not None
    assert Notification.objects.filter(event="group.not_managed_resolved").count() == 1


def test_the_reconciler_owns_the_jit_group_not_the_groups_around_it(live, make_target, make_user, ldap_admin, outside,
                                                                    jit_ou):
    """GIVEN a JIT group nested into a group outside the JIT OU (which also holds two people), and a group
    someone nested *into* the JIT group WHEN the reconciler runs THEN the group nested into the JIT group is
    removed from it (nobody is admin through a JIT group without a grant), and the outer group is untouched."""
    outer, people = outside
    target = make_target()
    with directory.connect() as d:
        d.ensure_member(outer, target.group_dn)
        sneaky = d.ensure_group(f"Sneaky-{uuid.uuid4().hex[:6]}", jit_ou)
        d.ensure_member(sneaky, ad_user_dn(ldap_admin, jit_ou, make_user("sn").username))
        d.add_member(target.group_dn, sneaky)
    before = _ad_members(ldap_admin, outer)
    assert directory.normalize_dn(target.group_dn) in before

    result = services.reconcile()
    assert [directory.normalize_dn(dn) for dn in result[target.group_dn]] == [directory.normalize_dn(sneaky)]
    assert _ad_members(ldap_admin, target.group_dn) == set()
    assert _ad_members(ldap_admin, outer) == before
    assert not AlertCondition.objects.filter(key__startswith="group.not_managed:").exists()


def test_an_extension_never_rewrites_a_ttl_on_a_group_outside_the_jit_ou(live, tampered, make_user, ldap_admin,
                                                                         monkeypatch):
    """GIVEN an active grant row on the tampered group, in a forest taken to have the PAM feature (Samba has
    not: the answer is forced, the refusal is the real seam's) WHEN its TTL is refreshed after an extension
    THEN nothing is written, the refusal is audited on the grant and the group's condition is raised."""
    target, group, people = tampered
    user = make_user("ext", groups=["admins"])
    req = services.request_create(requester=user, target=target, duration_minutes=30, justification="x")
    grant = Grant.objects.create(request=req, user=user, target=target, group_dn=group, user_dn=people[0],
                                 expires_at=timezone.now() + timedelta(minutes=30), state=Grant.State.ACTIVE)
    before = _ad_members(ldap_admin, group)
    monkeypatch.setattr(directory.Directory, "pam_ttl_supported", lambda self: True)

    services.grant_refresh_ttl_execute(grant_id=grant.id)

    assert _ad_members(ldap_admin, group) == before
    assert AuditEvent.objects.filter(object_type="grant", object_id=str(grant.id),
                                     action="grant.ttl_refresh_refused").exists()
    assert AlertCondition.objects.filter(key=_key(group), resolved_at__isnull=True).exists()
    assert Grant.objects.get(id=grant.id).state == Grant.State.ACTIVE


def test_reconciler_titles_name_a_group_with_a_comma_whole(live, make_user, ldap_admin, jit_ou):
    """GIVEN a JIT group whose CN holds a comma (escaped in its DN), an intruder in it, and a target naming
    a group with a comma that does not exist WHEN the reconciler runs THEN both alerts' titles carry the whole
    CN, unescaped, not the part before the escaped comma."""
    tag = uuid.uuid4().hex[:6]
    with directory.connect() as d:
        group = d.ensure_group(f"JIT-Ops, SRV{tag}", jit_ou)
    Target.objects.create(name=f"C{tag}", hostname=f"c{tag}.jitad.test", group_dn=group)
    Target.objects.create(name=f"G{tag}", hostname=f"g{tag}.jitad.test",
                          group_dn=f"CN=JIT-Gone\\, SRV{tag},{jit_ou}")
    intruder = ad_user_dn(ldap_admin, jit_ou, make_user("in").username)
    conn = ldap_admin()
    assert conn.modify(group, {"member": [(MODIFY_ADD, [intruder])]}), conn.result
    conn.unbind()

    services.reconcile()
    subjects = set(Notification.objects.values_list("subject", flat=True))
    assert f"Out-of-band admin membership removed from JIT-Ops, SRV{tag}" in subjects
    assert f"jitad cannot check the JIT group JIT-Gone, SRV{tag}" in subjects


@pytest.fixture
def domain_admins_under_jit_ou(ldap_admin, samba_dc, jit_ou, make_user):
    """The DC's real Domain Admins (RID 512) moved under the JIT OU, two test people added; all put back after."""
    home = f"CN=Domain Admins,CN=Users,{samba_dc.base_dn}"
    moved = f"CN=Domain Admins,{jit_ou}"
    people = [ad_user_dn(ldap_admin, jit_ou, make_user("da").username) for _ in range(2)]
    before = _ad_members(ldap_admin, home)
    conn = ldap_admin()
    assert conn.modify_dn(home, "CN=Domain Admins", new_superior=jit_ou), conn.result
    try:
        assert conn.modify(moved, {"member": [(MODIFY_ADD, people)]}), conn.result
        yield moved, people
    finally:
        missing = [dn for dn in before if dn not in _ad_members(ldap_admin, moved)]
        for dn in missing:
            conn.modify(moved, {"member": [(MODIFY_ADD, [dn])]})
        for dn in people:
            conn.modify(moved, {"member": [(MODIFY_DELETE, [dn])]})
        assert conn.modify_dn(moved, "CN=Domain Admins", new_superior=f"CN=Users,{samba_dc.base_dn}"), conn.result
        conn.unbind()
    assert _ad_members(ldap_admin, home) == before


def test_the_reconciler_never_empties_domain_admins_moved_under_the_jit_ou(live, domain_admins_under_jit_ou,
                                                                          ldap_admin):
    """GIVEN the real Domain Admins moved under the JIT OU with three members (Administrator and two people,
    few enough for the held-removal limit to let all go) and a target row edited to name it WHEN the
    reconciler runs twice THEN nobody is removed or held, and one group.not_managed condition names RID 512
    and stays open (the sweep's resolve does not close it although the group is under the JIT OU); the seam's
    remove_members refuses it too, with or without the caller's read."""
    group, people = domain_admins_under_jit_ou
    name = f"TAMP{uuid.uuid4().hex[:5].upper()}"
    Target.objects.create(name=name, hostname=f"{name.lower()}.jitad.test", group_dn=group)
    before = _ad_members(ldap_admin, group)
    assert len(before) == 3

    first = services.reconcile()
    failed_conditions_resolve()  # what the watchdog runs between reconciles
    second = services.reconcile()

    assert group not in first and group not in second
    assert _ad_members(ldap_admin, group) == before
    assert not HeldRemoval.objects.filter(group_dn=group).exists()
    condition = AlertCondition.objects.get(key=_key(group))
    assert condition.occurrences == 2 and condition.resolved_at is None
    notes = Notification.objects.filter(event="group.not_managed_privileged")
    assert notes.count() == 1 and "RID 512" in notes.get().body
    assert not AuditEvent.objects.filter(action="membership.removed_unbacked").exists()

    with directory.connect() as d:
        with pytest.raises(directory.DirectoryNotManaged, match="RID 512"):
            d.remove_members(group, people)
        with pytest.raises(directory.DirectoryNotManaged, match="RID 512"):
            d.remove_members(group, people, read=d.group_members(group))
    assert _ad_members(ldap_admin, group) == before


def test_the_reconciler_leaves_an_unflagged_admin_count_group_alone(live, make_target, make_user, ldap_admin,
                                                                     jit_ou):
    """GIVEN a JIT group stamped adminCount=1 (as SDProp leaves one nested into Domain Admins) holding an
    intruder, its target not marked nested_into_protected WHEN the reconciler runs THEN the intruder stays and
    the group's condition is raised; once the target is marked, the next run removes the intruder."""
    target = make_target()
    intruder = ad_user_dn(ldap_admin, jit_ou, make_user("ac").username)
    conn = ldap_admin()
    assert conn.modify(target.group_dn, {"adminCount": [(MODIFY_REPLACE, [1])],
                                         "member": [(MODIFY_ADD, [intruder])]}), conn.result
    conn.unbind()

    assert target.group_dn not in services.reconcile()
    assert _ad_members(ldap_admin, target.group_dn) == {directory.normalize_dn(intruder)}
    assert AlertCondition.objects.filter(key=_key(target.group_dn), resolved_at__isnull=True).exists()

    Target.objects.filter(pk=target.pk).update(nested_into_protected=True)
    assert services.reconcile()[target.group_dn] == [intruder]
    assert _ad_members(ldap_admin, target.group_dn) == set()


def test_a_reconcile_with_no_dc_answering_raises_one_condition_not_a_traceback(live, make_target, settings):
    """GIVEN a managed group and every DC URL dead WHEN the reconcile task runs twice THEN nothing escapes and
    the one directory.unreachable condition is open, counted twice, alerted once."""
    from jitad.elevation import tasks

    make_target()
    settings.JITAD_LDAP_URLS = ["ldaps://127.0.0.1:1"]  # nothing listens on port 1

    # The session's worker runs the watchdog against the real DC, which answers: a probe landing between
    # the two runs resolves the condition, and the second run opens it afresh. Such a pair proves nothing
    # either way, so it is run again from a clean slate.
    for _attempt in range(5):
        AlertCondition.objects.filter(key="directory.unreachable").delete()
        Notification.objects.filter(event__startswith="directory.unreachable").delete()
        tasks.reconcile()
        tasks.reconcile()
        if not Notification.objects.filter(event="directory.unreachable.resolved").exists():
            break

    condition = AlertCondition.objects.get(key="directory.unreachable")
    assert condition.occurrences == 2 and condition.resolved_at is None
    assert Notification.objects.filter(event="directory.unreachable").count() == 1


def test_a_reconcile_whose_bind_is_refused_raises_one_critical_condition_resolved_when_it_binds(live, make_target,
                                                                                                 settings):
    """GIVEN a managed group and a bind password the DC refuses (expired, changed) WHEN the reconcile task runs twice
    THEN nothing escapes, and one critical reconcile.cannot_run condition is open, counted twice, alerted once
    WHEN the password is right again THEN the next run resolves it."""
    from jitad.elevation import tasks

    make_target()
    right = settings.JITAD_LDAP_BIND_PASSWORD
    settings.JITAD_LDAP_BIND_PASSWORD = "not-the-password"

    tasks.reconcile()
    tasks.reconcile()

    condition = AlertCondition.objects.get(key="reconcile.cannot_run")
    assert condition.occurrences == 2 and condition.resolved_at is None
    [note] = Notification.objects.filter(event="reconcile.cannot_run")
    assert note.severity == Notification.Severity.CRITICAL and "not-the-password" not in note.body

    settings.JITAD_LDAP_BIND_PASSWORD = right
    tasks.reconcile()
    assert AlertCondition.objects.get(key="reconcile.cannot_run").resolved_at is not None
    assert Notification.objects.filter(event="reconcile.cannot_run.resolved").count() == 1
