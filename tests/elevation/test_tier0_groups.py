"""Tier-0 JIT groups: a target marked ``nested_into_protected`` may name a JIT group that AD's SDProp
has stamped adminCount=1 (because it is nested into Domain Admins on purpose), and nothing else.

Samba runs no SDProp, so the tests stamp adminCount=1 themselves, or nest the group into Domain
Admins, as the test admin over LDAP. Real Samba DC; the engine's tests use the real worker.
"""
import uuid

import pytest
from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE

from jitad import directory
from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.models import Grant, Policy, Target
from jitad.elevation.policy_file import PolicyFileError, apply_policy_text

from .helpers import wait_state

HINT = ("if it is a tier-0 JIT group nested into a protected group on purpose, "
        "mark the target nested_into_protected")


def policy_text(group: str, *, flag: bool | None = None) -> str:
    """One target, T0, on ``group`` (with ``nested_into_protected`` when ``flag`` is given)."""
    line = "" if flag is None else f"\n    nested_into_protected: {'true' if flag else 'false'}"
    return f"""\
version: 1
targets:
  - name: T0
    kind: domain_role
    group: '{group}'{line}
policies:
  - name: tier0
    targets: [T0]
    eligible: {{groups: [Ops]}}
    approval: {{mode: auto}}
"""


def refused(text: str) -> list[str]:
    with pytest.raises(PolicyFileError) as excinfo:
        apply_policy_text(text)
    return excinfo.value.errors


@pytest.fixture
def admin_ldap(ldap_admin):
    conn = ldap_admin()
    yield conn
    conn.unbind()


@pytest.fixture
def stamped(jit_ou, admin_ldap):
    """A fresh group under the JIT OU with adminCount=1, as SDProp leaves a tier-0 JIT group."""
    with directory.connect() as d:
        group = d.ensure_group(f"JIT-T0-{uuid.uuid4().hex[:6]}", jit_ou)
    assert admin_ldap.modify(group, {"adminCount": [(MODIFY_REPLACE, [1])]}), admin_ldap.result
    return group


@pytest.fixture
def nested(jit_ou, admin_ldap, samba_dc):
    """A fresh group under the JIT OU, nested into Domain Admins for the test's length."""
    domain_admins = f"CN=Domain Admins,CN=Users,{samba_dc.base_dn}"
    with directory.connect() as d:
        group = d.ensure_group(f"JIT-T0N-{uuid.uuid4().hex[:6]}", jit_ou)
    assert admin_ldap.modify(domain_admins, {"member": [(MODIFY_ADD, [group])]}), admin_ldap.result
    yield group
    assert admin_ldap.modify(domain_admins, {"member": [(MODIFY_DELETE, [group])]}), admin_ldap.result


@pytest.mark.django_db
def test_admin_count_is_refused_without_the_flag_and_accepted_with_it(stamped):
    """GIVEN a JIT group SDProp has stamped adminCount=1 WHEN the file names it without the flag (or with
    it false) THEN it is refused, the message saying to set the flag; with the flag it applies, audited;
    dropping the flag again is refused and leaves the target as it was."""
    why = (f"line 5: targets[0].group: target 'T0' cannot use {stamped!r} as its JIT group: "
           f"it is a protected group (adminCount=1); {HINT}")
    assert refused(policy_text(stamped)) == [why]
    assert refused(policy_text(stamped, flag=False)) == [why]
    assert not Target.objects.filter(name="T0").exists()

    summary = apply_policy_text(policy_text(stamped, flag=True))

    assert summary.created == ["target T0", "policy tier0"]
    target = Target.objects.get(name="T0")
    assert (target.group_dn, target.nested_into_protected) == (stamped, True)
    event = AuditEvent.objects.get(action="policy.target_created", object_id=str(target.pk))
    assert "nested_into_protected" in event.data["changed"]

    assert refused(policy_text(stamped)) == [why]
    assert Target.objects.get(name="T0").nested_into_protected is True


@pytest.mark.django_db
def test_turning_the_flag_on_is_audited_as_a_change(jit_ou):
    with directory.connect() as d:
        group = d.ensure_group(f"JIT-T0F-{uuid.uuid4().hex[:6]}", jit_ou)
    apply_policy_text(policy_text(group))

    summary = apply_policy_text(policy_text(group, flag=True))

    assert summary.changed_fields == {"target T0": ["nested_into_protected"]}
    event = AuditEvent.objects.filter(action="policy.target_updated").latest("id")
    assert event.data["before"] == {"nested_into_protected": False}
    assert event.data["after"] == {"nested_into_protected": True}


@pytest.mark.django_db
def test_a_group_nested_into_domain_admins_needs_the_flag(nested):
    """GIVEN a JIT group nested into Domain Admins (before or after SDProp stamps it adminCount=1) THEN
    the file needs the flag for it, and applies with it."""
    [error] = refused(policy_text(nested))
    assert "it is nested into the protected group(s) " in error and "Domain Admins" in error
    assert error.endswith(HINT)

    apply_policy_text(policy_text(nested, flag=True))

    assert Target.objects.get(name="T0").nested_into_protected is True


@pytest.mark.django_db
@pytest.mark.parametrize("name, number", [("Domain Admins", 512), ("Cert Publishers", 517)])
def test_a_privileged_group_is_refused_even_with_the_flag(settings, samba_dc, name, number):
    """GIVEN CN=Users counted as a JIT OU (Domain Admins "moved into the JIT OU") WHEN a target marked
    nested_into_protected names Domain Admins (RID 512, adminCount=1) or Cert Publishers (RID 517)
    THEN it is refused for its RID, with no hint: no flag lifts that."""
    settings.JITAD_LDAP_JIT_OU = f"{samba_dc.jit_ou};CN=Users,{samba_dc.base_dn}"
    dn = f"CN={name},CN=Users,{samba_dc.base_dn}"

    assert refused(policy_text(dn, flag=True)) == [
        f"line 5: targets[0].group: target 'T0' cannot use {dn!r} as its JIT group: "
        f"it is a well-known privileged group (RID {number})"]
    assert not Target.objects.exists()


@pytest.mark.django_db
def test_the_seam_adds_to_a_tier0_group_only_when_told(nested, stamped, jit_ou, settings, samba_dc):
    """The seam asks the DC before each add: a group nested into Domain Admins (or stamped adminCount=1)
    is refused unless the caller passes the target's flag; Domain Admins itself never is."""
    with directory.connect() as d:
        user = d.ensure_user(f"t0{uuid.uuid4().hex[:6]}", jit_ou)
        for group in (nested, stamped):
            with pytest.raises(directory.DirectoryNotManaged, match=HINT):
                d.add_member(group, user)
            assert not d.is_member(group, user)
            assert d.add_member(group, user, nested_into_protected=True) is True
            assert d.remove_member(group, user) is True
        settings.JITAD_LDAP_JIT_OU = f"{samba_dc.jit_ou};CN=Users,{samba_dc.base_dn}"
    with directory.connect() as d:  # a fresh connection reads the widened JIT OU
        domain_admins = f"CN=Domain Admins,CN=Users,{samba_dc.base_dn}"
        with pytest.raises(directory.DirectoryNotManaged, match=r"well-known privileged group \(RID 512\)"):
            d.add_member(domain_admins, user, nested_into_protected=True)
        assert not d.is_member(domain_admins, user)


@pytest.mark.django_db(transaction=True)
def test_a_grant_on_a_flagged_tier0_target_goes_active_and_is_revoked(live, nested, make_user):
    """GIVEN a JIT group nested into Domain Admins WHEN a grant on a target marked nested_into_protected
    is approved THEN the engine adds the person (the seam is told the flag) and takes them out at the
    end; the same group on an unmarked target fails the grant, nobody added."""
    plain = Target.objects.create(name=f"T0P{uuid.uuid4().hex[:4]}", kind="domain_role", group_dn=nested)
    tier0 = Target.objects.create(name=f"T0F{uuid.uuid4().hex[:4]}", kind="domain_role", group_dn=nested,
                                  nested_into_protected=True)
    policy = Policy.objects.create(name=f"t0-{uuid.uuid4().hex[:4]}", approval_mode="auto", approvals_required=0,
                                   eligible_groups=["admins"], require_justification=False)
    policy.targets.add(plain, tier0)
    user = make_user("t0", groups=["admins"])

    req = services.request_create(requester=user, target=plain, duration_minutes=30, justification="x")
    failed = wait_state(req.grant.id, Grant.State.GRANT_FAILED)
    assert "DirectoryNotManaged" in failed.last_error and "nested into the protected group" in failed.last_error

    req = services.request_create(requester=user, target=tier0, duration_minutes=30, justification="x")
    grant = wait_state(req.grant.id, Grant.State.ACTIVE)
    with directory.connect() as d:
        assert d.is_member(nested, grant.user_dn)
        assert d.is_member_nested(f"CN=Domain Admins,CN=Users,{d.config.base_dn}", grant.user_dn)
    services.grant_release(grant=grant, actor=user)
    wait_state(grant.id, Grant.State.REVOKED)
    with directory.connect() as d:
        assert not d.is_member(nested, grant.user_dn)
