"""The periodic directory sync against a real Samba DC: group changes and disabled accounts
reach jitad between logins."""
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.test import RequestFactory
from django.utils import timezone
from ldap3 import MODIFY_REPLACE

from jitad import directory
from jitad.accounts.directory_sync import accounts_refresh_from_directory
from jitad.accounts.models import ApiToken
from jitad.accounts.services import api_token_create
from jitad.audit.models import AuditEvent
from jitad.elevation.models import AccessRequest, Grant
from jitad.elevation.selectors.approvers import is_approver_anywhere
from jitad.notifications.models import Notification
from tests.elevation.builders import policy, target

pytestmark = pytest.mark.django_db


@pytest.fixture
def approver(jit_ou):
    """An AD user in an approver group who has logged in once; returns (user, dn, group dn, group name)."""
    sam, password = f"ap{uuid.uuid4().hex[:8]}", "Pw-" + uuid.uuid4().hex
    group = f"Approvers-{uuid.uuid4().hex[:6]}"
    with directory.connect() as d:
        dn = d.ensure_user(sam, jit_ou, password=password)
        group_dn = d.ensure_group(group, jit_ou)
        d.add_member(group_dn, dn)
    policy(target(f"SRV-{uuid.uuid4().hex[:6]}"), name=f"p-{uuid.uuid4().hex[:6]}", approver_groups=[group])
    user = authenticate(RequestFactory().post("/account/login/"), username=sam, password=password)
    assert user is not None and is_approver_anywhere(user=user)
    return user, dn, group_dn, group


def test_removal_from_an_approver_group_takes_the_right_away_without_a_login(approver):
    user, dn, group_dn, group = approver
    assert group in set(user.groups.values_list("name", flat=True))  # mirrored at login: there to lose
    with directory.connect() as d:
        d.remove_member(group_dn, dn)
    counts = accounts_refresh_from_directory()
    assert counts["groups_changed"] >= 1
    user.refresh_from_db()
    assert group not in set(user.groups.values_list("name", flat=True))
    assert not is_approver_anywhere(user=user)
    assert user.is_active
    assert AuditEvent.objects.filter(action="account.synced", object_id=str(user.pk)).exists()


def test_an_unchanged_account_is_not_rewritten(approver):
    user = approver[0]
    before = AuditEvent.objects.exclude(object_type="alert").count()
    accounts_refresh_from_directory()
    assert AuditEvent.objects.exclude(object_type="alert").count() == before  # nothing changed: no audit noise every interval
    user.refresh_from_db()
    assert user.is_active and user.directory_account.synced_at > timezone.now() - timedelta(minutes=1)


def test_an_account_disabled_in_ad_is_blocked_with_tokens_and_grants_revoked(approver, ldap_admin):
    user, dn, _group_dn, _group = approver
    token, _raw = api_token_create(user=user, name="ci")
    srv = target(f"SRV-{uuid.uuid4().hex[:6]}")
    pol = policy(srv, name=f"p-{uuid.uuid4().hex[:6]}")
    req = AccessRequest.objects.create(requester=user, target=srv, policy=pol, duration_minutes=60,
                                       state=AccessRequest.State.APPROVED)
    grant = Grant.objects.create(request=req, user=user, target=srv, group_dn=srv.group_dn, state=Grant.State.ACTIVE,
                                 expires_at=timezone.now() + timedelta(hours=1))
    pending = AccessRequest.objects.create(requester=user, target=srv, policy=pol, duration_minutes=60)
    conn = ldap_admin()
    conn.modify(dn, {"userAccountControl": [(MODIFY_REPLACE, [514])]})
    conn.unbind()

    counts = accounts_refresh_from_directory()

    assert counts["blocked"] == 1
    user.refresh_from_db()
    assert not user.is_active
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    pending.refresh_from_db()
    assert pending.state == AccessRequest.State.CANCELLED
    grant.refresh_from_db()
    assert grant.state == Grant.State.REVOKING and grant.revoke_requested_by == "system:directory-sync"
    event = AuditEvent.objects.get(action="account.blocked", object_id=str(user.pk))
    assert event.reason == "disabled in AD"
    assert Notification.objects.filter(event="account.blocked", object_id=str(user.pk)).exists()
    # Blocked stays blocked: the next refresh does not look at inactive people again.
    conn = ldap_admin()
    conn.modify(dn, {"userAccountControl": [(MODIFY_REPLACE, [512])]})
    conn.unbind()
    accounts_refresh_from_directory()
    user.refresh_from_db()
    assert not user.is_active


def test_an_account_missing_from_ad_twice_in_a_row_is_blocked(approver):
    """One miss may be a DC's read gap: warn. The second miss in a row blocks."""
    user, dn, _group_dn, _group = approver
    with directory.connect() as d:
        d.delete(dn)
    first = accounts_refresh_from_directory()
    assert (first["missing"], first["blocked"]) == (1, 0)
    user.refresh_from_db()
    assert user.is_active and user.directory_account.missing_since is not None
    assert Notification.objects.filter(event="account.missing", object_id=str(user.pk)).exists()
    assert accounts_refresh_from_directory()["blocked"] == 1
    user.refresh_from_db()
    assert not user.is_active
    assert AuditEvent.objects.get(action="account.blocked", object_id=str(user.pk)).reason == "removed from AD"


def test_one_unreadable_account_does_not_stop_the_others(approver, ldap_admin, django_user_model):
    """GIVEN a link the DC refuses to look up (a malformed GUID) WHEN the sync runs THEN it is
    counted as an error and left alone, and a person disabled in AD is still blocked."""
    from jitad.accounts.models import DirectoryAccount

    broken = django_user_model.objects.create_user("broken-link")
    DirectoryAccount.objects.create(user=broken, guid="not-a-guid", dn="CN=broken,DC=jitad,DC=test")
    user, dn, _group_dn, _group = approver
    conn = ldap_admin()
    conn.modify(dn, {"userAccountControl": [(MODIFY_REPLACE, [514])]})
    conn.unbind()
    counts = accounts_refresh_from_directory()
    assert counts["errors"] == 1 and counts["blocked"] == 1
    broken.refresh_from_db()
    assert broken.is_active


def test_a_hand_made_group_change_is_undone(approver):
    """Approver rights follow AD, not an edit of the person's groups in the admin."""
    from django.contrib.auth.models import Group

    user = approver[0]
    user.groups.add(Group.objects.get_or_create(name="DBA-Leads")[0])
    accounts_refresh_from_directory()
    assert "DBA-Leads" not in set(user.groups.values_list("name", flat=True))
    event = AuditEvent.objects.filter(action="account.synced", object_id=str(user.pk)).latest("id")
    assert "DBA-Leads" not in event.data["groups"]


def test_a_rename_conflict_still_takes_the_approver_right_away(approver, ldap_admin, django_user_model):
    """GIVEN AD renames the approver to a name a local account holds and removes them from the
    approver group WHEN the sync runs THEN the name stays, the groups follow AD, and an alert
    asks someone to resolve the clash."""
    user, dn, group_dn, group = approver
    taken = f"local{uuid.uuid4().hex[:6]}"
    django_user_model.objects.create_user(taken)
    conn = ldap_admin()
    conn.modify(dn, {"sAMAccountName": [(MODIFY_REPLACE, [taken])]})
    conn.unbind()
    with directory.connect() as d:
        d.remove_member(group_dn, dn)
    counts = accounts_refresh_from_directory()
    assert counts["conflicts"] == 1
    user.refresh_from_db()
    assert user.username != taken and user.is_active
    assert group not in set(user.groups.values_list("name", flat=True))
    assert not is_approver_anywhere(user=user)
    assert Notification.objects.filter(event="account.conflict", object_id=str(user.pk)).exists()


def test_a_dc_that_is_down_changes_nothing(approver, settings):
    user = approver[0]
    settings.JITAD_LDAP_URLS = ["ldaps://127.0.0.1:1"]
    with pytest.raises(directory.DirectoryUnavailable):
        accounts_refresh_from_directory()
    user.refresh_from_db()
    assert user.is_active and user.groups.exists()
