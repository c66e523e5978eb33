"""Targets edited in the admin obey the policy file's rules for their group.

Over the admin's pages as a superuser with a verified OTP device, against the session's
Samba DC: a group outside the JIT OU, missing, not a group, or protected is a form error on
the group field and nothing is saved; no DC answering is a clear form error, never a 500;
and the DC is asked before Django's transaction for the save opens, so the sweeper is never
kept waiting behind it. (The policy file's side is in tests/elevation/test_policy_groups.py.)
"""
import uuid

import pytest
from django.db import connection
from ldap3 import MODIFY_REPLACE

from jitad import directory
from jitad.directory.managed import TIER0_HINT as HINT
from jitad.audit.models import AuditEvent
from jitad.elevation.models import Target
from jitad.elevation.selectors import targets as target_selectors
from tests.support.sweeper import sweep_elsewhere

from .builders import user

ADD = "/admin/elevation/target/add/"
DEAD_URL = "ldaps://127.0.0.1:1"  # nothing listens on port 1


def change_url(target: Target) -> str:
    return f"/admin/elevation/target/{target.pk}/change/"


@pytest.fixture
def groups(jit_ou):
    """Two fresh groups jitad may manage."""
    tag = uuid.uuid4().hex[:6]
    with directory.connect() as d:
        return d.ensure_group(f"JIT-ADM1-{tag}", jit_ou), d.ensure_group(f"JIT-ADM2-{tag}", jit_ou)


@pytest.fixture
def admin_client(verified_client):
    root = user(f"root{uuid.uuid4().hex[:6]}")
    root.is_staff = root.is_superuser = True
    root.save()
    return verified_client(root)


def form_data(group_dn: str, *, name: str = "ADM01", enabled: bool = True, **fields) -> dict:
    """What the admin's target form posts."""
    data = {"name": name, "kind": "server", "tier": "1", "hostname": "", "description": "", "group_dn": group_dn,
            "standing_members": "[]", "approver_groups": "[]", "winrm_url": "", "winrm_transport": "ntlm",
            "winrm_profile": "", "allowed_admins": "[]", **fields}
    if enabled:
        data["enabled"] = "on"
    return data


def group_errors(response) -> list[str]:
    assert response.status_code == 200, response
    return list(response.context["adminform"].form.errors.get("group_dn", []))


def snapshot() -> tuple:
    return list(Target.objects.order_by("id").values()), AuditEvent.objects.exclude(object_type="alert").count()


@pytest.mark.django_db
def test_a_group_jitad_owns_is_saved_and_audited(admin_client, groups):
    response = admin_client.post(ADD, form_data(groups[0]))

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    target = Target.objects.get(name="ADM01")
    assert target.group_dn == groups[0]
    event = AuditEvent.objects.get(action="policy.target_created", object_id=str(target.pk))
    assert event.data["name"] == "ADM01"


@pytest.mark.django_db
def test_each_group_jitad_does_not_own_is_a_form_error_and_nothing_is_saved(admin_client, groups, jit_ou, samba_dc,
                                                                            ldap_admin):
    """GIVEN an existing target on a JIT group WHEN a superuser adds a target, or repoints the existing
    one, at a group outside the JIT OU, a missing one, a user, an OU or a protected group THEN the
    form shows why on the group field and nothing changes."""
    existing = Target.objects.create(name="ADM00", group_dn=groups[1])
    tag = uuid.uuid4().hex[:6]
    with directory.connect() as d:
        person = d.ensure_user(f"a{tag}", jit_ou)
        flagged = d.ensure_group(f"JIT-AdmFlagged-{tag}", jit_ou)
    conn = ldap_admin()
    assert conn.modify(flagged, {"adminCount": [(MODIFY_REPLACE, [1])]}), conn.result
    conn.unbind()
    cases = {
        f"CN=Domain Admins,CN=Users,{samba_dc.base_dn}": f"it is not under the JIT OU ({samba_dc.jit_ou})",
        f"CN=x,,{jit_ou}": "it is not a well-formed DN",
        f"CN=JIT-Nothing-{tag},{jit_ou}": "it does not exist in AD",
        jit_ou: "it is not a group in AD",
        person: "it is not a group in AD",
        flagged: f"it is a protected group (adminCount=1); {HINT}",
    }
    before = snapshot()
    for dn, why in cases.items():
        assert group_errors(admin_client.post(ADD, form_data(dn))) == [f"jitad cannot use this group: {why}."], dn
        edit = form_data(dn, name="ADM00")
        assert group_errors(admin_client.post(change_url(existing), edit)) == [f"jitad cannot use this group: {why}."]
    assert snapshot() == before


@pytest.mark.django_db
def test_no_dc_answering_is_a_form_error_but_a_target_can_still_be_turned_off(settings, admin_client, groups):
    """GIVEN no DC answering WHEN a superuser adds a target or repoints one THEN the form says the
    group could not be checked and nothing is saved (no 500); turning a target off needs no DC."""
    existing = Target.objects.create(name="ADM00", group_dn=groups[1])
    settings.JITAD_LDAP_URLS = [DEAD_URL]
    before = snapshot()

    for url, data in ((ADD, form_data(groups[0])), (change_url(existing), form_data(groups[0], name="ADM00"))):
        [error] = group_errors(admin_client.post(url, data))
        assert error.startswith(f"The group could not be checked in Active Directory (no domain controller answered: "
                                f"{DEAD_URL}")
        assert error.endswith("Nothing was saved; try again when a domain controller answers.")
    assert snapshot() == before

    response = admin_client.post(change_url(existing), form_data(groups[1], name="ADM00", enabled=False))
    assert response.status_code == 302
    existing.refresh_from_db()
    assert existing.enabled is False


@pytest.mark.django_db(transaction=True)
def test_the_dc_is_asked_before_the_save_s_transaction_opens(no_background_worker, tmp_path, monkeypatch, admin_client,
                                                            groups):
    """GIVEN a due revocation WHEN a superuser saves a target and jitad is asking the DC about its
    group THEN no transaction is open, and jitad's sweeper in another process claims the revocation
    and commits within its 2-second lock wait (Django's admin saves inside transaction.atomic(): on
    SQLite that holds the write lock, so the DC's answer must come before it)."""
    from datetime import timedelta

    from django.utils import timezone

    from jitad.elevation.models import AccessRequest, Grant, Policy

    tgt = Target.objects.create(name="ADM00", group_dn=groups[1])
    policy = Policy.objects.create(name="adm", approval_mode="auto", approvals_required=0, eligible_groups=["Ops"])
    policy.targets.add(tgt)
    alice = user(f"alice{uuid.uuid4().hex[:6]}", "Ops")
    now = timezone.now()
    req = AccessRequest.objects.create(requester=alice, target=tgt, policy=policy, duration_minutes=60,
                                       state=AccessRequest.State.APPROVED)
    grant = Grant.objects.create(request=req, user=alice, target=tgt, group_dn=tgt.group_dn, state=Grant.State.ACTIVE,
                                 activated_at=now - timedelta(hours=1), expires_at=now - timedelta(seconds=5))
    real = directory.group_problems
    seen = {}

    def asking(dns):
        seen["in_transaction"] = connection.in_atomic_block
        seen["sweep"] = sweep_elsewhere(tmp_path / "sweeper")
        return real(dns)

    monkeypatch.setattr(target_selectors.directory, "group_problems", asking)

    response = admin_client.post(ADD, form_data(groups[0]))

    assert response.status_code == 302
    assert seen["sweep"].ok, seen["sweep"].stderr[-3000:]
    assert seen["in_transaction"] is False
    grant.refresh_from_db()
    assert grant.state == Grant.State.REVOKING
    assert Target.objects.get(name="ADM01").group_dn == groups[0]


@pytest.mark.django_db
def test_a_tier0_group_needs_the_flag_and_a_privileged_group_is_refused_with_it(settings, admin_client, jit_ou,
                                                                                samba_dc, ldap_admin):
    """GIVEN a JIT group SDProp stamped adminCount=1 WHEN a superuser saves a target on it without
    "nested into a protected group on purpose" THEN the form says so and nothing is saved; ticked, it is
    saved and the flag audited; unticking it later is refused. Domain Admins (with CN=Users counted as
    a JIT OU) is refused for its RID, ticked or not."""
    with directory.connect() as d:
        stamped = d.ensure_group(f"JIT-AdmT0-{uuid.uuid4().hex[:6]}", jit_ou)
    conn = ldap_admin()
    assert conn.modify(stamped, {"adminCount": [(MODIFY_REPLACE, [1])]}), conn.result
    conn.unbind()
    hint = ("if it is a tier-0 JIT group nested into a protected group on purpose, "
            "mark the target nested_into_protected")
    before = snapshot()

    assert group_errors(admin_client.post(ADD, form_data(stamped))) == [
        f"jitad cannot use this group: it is a protected group (adminCount=1); {hint}."]
    assert snapshot() == before

    response = admin_client.post(ADD, form_data(stamped, nested_into_protected="on"))

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    target = Target.objects.get(name="ADM01")
    assert target.nested_into_protected is True
    event = AuditEvent.objects.get(action="policy.target_created", object_id=str(target.pk))
    assert "nested_into_protected" in event.data["changed"]

    assert group_errors(admin_client.post(change_url(target), form_data(stamped))) == [
        f"jitad cannot use this group: it is a protected group (adminCount=1); {hint}."]
    target.refresh_from_db()
    assert target.nested_into_protected is True

    settings.JITAD_LDAP_JIT_OU = f"{samba_dc.jit_ou};CN=Users,{samba_dc.base_dn}"
    domain_admins = f"CN=Domain Admins,CN=Users,{samba_dc.base_dn}"
    for extra in ({}, {"nested_into_protected": "on"}):
        assert group_errors(admin_client.post(ADD, form_data(domain_admins, name="ADM02", **extra))) == [
            "jitad cannot use this group: it is a well-known privileged group (RID 512)."]
    assert not Target.objects.filter(name="ADM02").exists()


@pytest.mark.django_db
def test_ticking_the_flag_on_a_plain_group_is_saved_and_audited(admin_client, groups):
    """Turning the flag on for a plain group is allowed (it only widens what is accepted) and audited
    as a change of that field."""
    target = Target.objects.create(name="ADM00", group_dn=groups[0])

    response = admin_client.post(change_url(target), form_data(groups[0], name="ADM00", nested_into_protected="on"))

    assert response.status_code == 302
    target.refresh_from_db()
    assert target.nested_into_protected is True
    event = AuditEvent.objects.filter(action="policy.target_updated", object_id=str(target.pk)).latest("id")
    assert "nested_into_protected" in event.data["changed"]
