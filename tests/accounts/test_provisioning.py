"""Pre-provisioning people from a real Samba DC with ``manage.py jitad_provision``."""
import json
import uuid
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from ldap3 import MODIFY_REPLACE

from jitad import directory
from jitad.accounts.models import EnrolmentCode
from jitad.audit.models import AuditEvent

pytestmark = pytest.mark.django_db
User = get_user_model()


def _ad_user(jit_ou, group=None):
    sam = f"p{uuid.uuid4().hex[:7]}"
    with directory.connect() as d:
        dn = d.ensure_user(sam, jit_ou, password="Pw-" + uuid.uuid4().hex, display_name=f"Pat {sam}")
        if group:
            d.add_member(d.ensure_group(group, jit_ou), dn)
    return sam, dn


def _provision(*args) -> tuple[int, dict]:
    out = StringIO()
    try:
        call_command("jitad_provision", *args, "--by", "desk:sam", "--format", "json", stdout=out)
        status = 0
    except CommandError as e:
        status = e.returncode
    return status, json.loads(out.getvalue())


def test_people_are_made_from_ad_with_their_groups_and_codes(jit_ou):
    """GIVEN two AD accounts jitad has never seen WHEN an operator provisions them with codes THEN each
    portal user exists, linked by objectGUID with its AD groups, audited as the operator's act, and
    holds one live enrolment code; provisioning again refreshes the same users."""
    group = f"Ops-{uuid.uuid4().hex[:6]}"
    (sam1, _), (sam2, _) = _ad_user(jit_ou, group), _ad_user(jit_ou)
    status, out = _provision(sam1, f"JITAD\\{sam2}", "--enrolment-code")
    assert status == 0, out
    assert [r["result"] for r in out["people"]] == ["created", "created"]
    first = User.objects.get(username=sam1)
    assert first.groups.filter(name=group).exists() and first.directory_account.guid
    assert first.first_name == f"Pat {sam1}"
    created = AuditEvent.objects.get(action="account.created", object_id=str(first.pk))
    assert created.actor == "desk:sam"
    for sam in (sam1, sam2):
        assert EnrolmentCode.objects.filter(user__username=sam, used_at__isnull=True, voided_at__isnull=True).count() == 1
    status, again = _provision(sam1)
    assert status == 0 and again["people"][0]["result"] == "refreshed"
    assert User.objects.filter(username=sam1).count() == 1


def test_refusals_are_named_and_the_others_still_done(jit_ou, ldap_admin, django_user_model):
    """GIVEN an unknown name, an account disabled in AD and a name a local account holds, among a good
    one WHEN provisioned together THEN each refusal says why, the good one is made, exit code 1."""
    good, _ = _ad_user(jit_ou)
    disabled, disabled_dn = _ad_user(jit_ou)
    conn = ldap_admin()
    conn.modify(disabled_dn, {"userAccountControl": [(MODIFY_REPLACE, [514])]})
    conn.unbind()
    clash, _ = _ad_user(jit_ou)
    django_user_model.objects.create_user(clash, password="local-Pw-123456")
    status, out = _provision("nobody-" + uuid.uuid4().hex[:6], disabled, clash, good)
    assert status == 1
    results = {r["name"]: r for r in out["people"]}
    assert results[good]["result"] == "created"
    assert "AD has no user" in next(r for n, r in results.items() if n.startswith("nobody-"))["error"]
    assert "disabled" in results[disabled]["error"]
    assert "local account" in results[clash]["error"]
    assert not User.objects.filter(username=disabled).exists()
    assert not hasattr(User.objects.get(username=clash), "directory_account")
