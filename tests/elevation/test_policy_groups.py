"""A policy file may name only groups jitad owns: under the JIT OU, a group in AD, not protected.

Against the session's Samba DC: each refusal is a line error naming the target and the
reason, the whole file is refused, and nothing is written. The admin's side is in
tests/elevation/test_admin_targets.py.
"""
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from ldap3 import MODIFY_REPLACE

from jitad import directory
from jitad.directory.managed import TIER0_HINT as HINT
from jitad.audit.models import AuditEvent
from jitad.elevation.models import Policy, Target
from jitad.elevation.policy_file import PolicyFileError, apply_policy_text

pytestmark = pytest.mark.django_db

DEAD_URL = "ldaps://127.0.0.1:1"  # nothing listens on port 1


def policy_text(srv01_group: str, good_group: str) -> str:
    """GOOD01 (a group jitad may manage) and SRV01 (the group under test), one policy over both."""
    return f"""\
version: 1
targets:
  - name: GOOD01
    group: '{good_group}'
  - name: SRV01
    group: '{srv01_group}'
policies:
  - name: servers
    targets: [GOOD01, SRV01]
    eligible: {{groups: [Ops]}}
    approval: {{mode: auto}}
"""


def snapshot() -> tuple:
    return (list(Target.objects.values()), list(Policy.objects.values()),
            AuditEvent.objects.exclude(object_type="alert").count())  # alerts (audited) may come from the worker


@pytest.fixture
def groups(jit_ou):
    """Two fresh groups jitad may manage: SRV01's as applied, and GOOD01's."""
    tag = uuid.uuid4().hex[:6]
    with directory.connect() as d:
        return d.ensure_group(f"JIT-SRV01-{tag}", jit_ou), d.ensure_group(f"JIT-GOOD01-{tag}", jit_ou)


@pytest.fixture
def applied(groups):
    """SRV01 on its own JIT group, applied: the refused files below would change it."""
    srv01, _good = groups
    apply_policy_text(policy_text(srv01, srv01).replace("GOOD01", "SRV00"))
    return snapshot()


@pytest.fixture
def admin_ldap(ldap_admin):
    """The test's own ldap3 admin connection (not jitad's seam), to flag a group adminCount=1."""
    conn = ldap_admin()
    yield conn
    conn.unbind()


def refusal(dn: str, why: str) -> list[str]:
    return [f"line 6: targets[1].group: target 'SRV01' cannot use {dn!r} as its JIT group: {why}"]


def test_domain_admins_is_refused_and_nothing_is_written(applied, groups, samba_dc):
    """GIVEN SRV01 applied on its JIT group WHEN a file points it at Domain Admins (the outside test's
    attack: exit 0, "1 updated", then the reconciler emptied Domain Admins) THEN the file is refused
    whole: SRV01 keeps its group and GOOD01, valid on its own, is not created either."""
    dn = f"CN=Domain Admins,CN=Users,{samba_dc.base_dn}"

    with pytest.raises(PolicyFileError) as excinfo:
        apply_policy_text(policy_text(dn, groups[1]))

    assert excinfo.value.errors == refusal(dn, f"it is not under the JIT OU ({samba_dc.jit_ou})")
    assert snapshot() == applied
    assert Target.objects.get(name="SRV01").group_dn == groups[0]


def test_each_group_jitad_does_not_own_is_refused(applied, groups, jit_ou, samba_dc, admin_ldap):
    tag = uuid.uuid4().hex[:6]
    with directory.connect() as d:
        user = d.ensure_user(f"u{tag}", jit_ou)
        flagged = d.ensure_group(f"JIT-Flagged-{tag}", jit_ou)
    assert admin_ldap.modify(flagged, {"adminCount": [(MODIFY_REPLACE, [1])]}), admin_ldap.result
    cases = {
        "CN=x)(objectClass=*": f"it is not under the JIT OU ({samba_dc.jit_ou})",
        f"CN=x,,{jit_ou}": "it is not a well-formed DN",
        f"CN=x)(objectClass=*,{jit_ou}": "it does not exist in AD",
        f"CN=JIT-Nothing-{tag},{jit_ou}": "it does not exist in AD",
        samba_dc.jit_ou: f"it is not under the JIT OU ({samba_dc.jit_ou})",  # the OU itself
        jit_ou: "it is not a group in AD",  # an OU below it
        user: "it is not a group in AD",
        flagged: f"it is a protected group (adminCount=1); {HINT}",
    }
    for dn, why in cases.items():
        with pytest.raises(PolicyFileError) as excinfo:
            apply_policy_text(policy_text(dn, groups[1]))
        assert excinfo.value.errors == refusal(dn, why)
    assert snapshot() == applied


def test_a_protected_group_is_refused_even_inside_a_jit_ou(settings, applied, groups, samba_dc):
    """GIVEN CN=Users configured as a JIT OU too (a careless setting) THEN Domain Admins (RID 512 and
    adminCount=1: the RID is the reason given, as no flag could lift it) and Cert Publishers (RID 517,
    no adminCount) are still refused."""
    base = samba_dc.base_dn
    settings.JITAD_LDAP_JIT_OU = f"{samba_dc.jit_ou};CN=Users,{base}"
    for name, why in (("Domain Admins", "it is a well-known privileged group (RID 512)"),
                      ("Cert Publishers", "it is a well-known privileged group (RID 517)")):
        dn = f"CN={name},CN=Users,{base}"
        with pytest.raises(PolicyFileError) as excinfo:
            apply_policy_text(policy_text(dn, groups[1]))
        assert excinfo.value.errors == refusal(dn, why)
    assert snapshot() == applied


def run(path, *args):
    err = StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("jitad_apply_policy", str(path), *args, stdout=StringIO(), stderr=err)
    return excinfo.value, err.getvalue()


@pytest.mark.parametrize("args", [(), ("--dry-run",)])
def test_the_command_refuses_with_exit_1_and_dry_run_checks_too(applied, groups, jit_ou, tmp_path, args):
    dn = f"CN=JIT-Nothing,{jit_ou}"
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(dn, groups[1]))

    error, err = run(path, *args)

    assert error.returncode == 1
    assert str(error) == f"{path} rejected with 1 error(s); nothing was changed"
    assert err.splitlines() == [f"{path}: {line}" for line in refusal(dn, "it does not exist in AD")]
    assert snapshot() == applied


@pytest.mark.parametrize("args", [(), ("--dry-run",)])
def test_no_dc_answering_is_a_clear_error_and_nothing_is_written(settings, applied, groups, tmp_path, args):
    """GIVEN a valid file that changes SRV01 WHEN no DC answers THEN the command exits 69 (a part that did not
    answer, ops/README.md "Exit codes") saying the groups could not be checked, and writes nothing."""
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(groups[1], groups[0]))
    settings.JITAD_LDAP_URLS = [DEAD_URL]

    error, _err = run(path, *args)

    assert error.returncode == 69
    assert str(error).startswith("cannot check the targets' groups in Active Directory: no domain controller "
                                 f"answered: {DEAD_URL}")
    assert str(error).endswith("; nothing was changed")
    assert snapshot() == applied


def test_groups_jitad_owns_are_applied(applied, groups):
    summary = apply_policy_text(policy_text(groups[1], groups[0]))

    assert summary.created == ["target GOOD01"]
    assert summary.changed_fields == {"target SRV01": ["group_dn"], "policy servers": ["targets"]}
    assert Target.objects.get(name="SRV01").group_dn == groups[1]
