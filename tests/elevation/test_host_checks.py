"""Grants proven on the server and taken away for real: Samba DC, a real worker, WinRM test hosts.

The worker talks to each test host over HTTP with NTLM and message encryption (or HTTPS
with Basic), runs jitad's own scripts there, and the host answers by their contract from
a local Administrators group holding SIDs read from the Samba DC.
"""

import pytest

from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.models import Grant
from tests.support.waiting import wait_for

from .helpers import ad_is_member, ad_sid, ad_user_dn, expire_now, local_admin_entry, wait_state

pytestmark = pytest.mark.django_db(transaction=True)


def _alerted(alert_sink, text: str, timeout: float = 30) -> dict:
    return wait_for(lambda: next((m for m in alert_sink.messages if text in m.get("title", "")), None), timeout=timeout,
                    message=f"an alert titled ...{text}...")


def _jit_group_entry(ldap_admin, target) -> dict:
    name = target.group_dn.split(",", 1)[0].split("=", 1)[1]
    return local_admin_entry(ad_sid(ldap_admin, target.group_dn), f"WinNT://JITAD/{name}")


@pytest.fixture
def verified_grant(make_host, make_target, make_user, ldap_admin):
    """A server showing its JIT group, and an active grant on it: ``host, target, user, grant = verified_grant()``."""

    def make(**target_fields):
        host = make_host()
        target = make_target(winrm_url=host.url, **target_fields)
        with host.lock:
            host.admins.append(_jit_group_entry(ldap_admin, target))
        user = make_user("alice", groups=["admins"])
        req = services.request_create(requester=user, target=target, duration_minutes=30, justification="patching")
        return host, target, user, wait_state(req.grant.id, Grant.State.ACTIVE)

    return make


def _actions(grant_id: int) -> list[str]:
    return list(AuditEvent.objects.filter(object_type="grant", object_id=str(grant_id)).values_list("action", flat=True))


def test_grant_is_active_only_once_the_server_shows_the_jit_group(live, make_user, make_target, make_host, ldap_admin,
                                                                 samba_dc):
    """GIVEN a server whose local Administrators holds the JIT group's SID (as the GPO would put it)
    WHEN a grant is applied THEN the worker checks the server over WinRM and only then marks it active;
    WHEN it expires THEN the membership goes and the server confirms the user is no longer admin."""
    host = make_host()
    target = make_target(winrm_url=host.url)
    with host.lock:
        host.admins.append(_jit_group_entry(ldap_admin, target))
    alice = make_user("alice", groups=["admins"])

    req = services.request_create(requester=alice, target=target, duration_minutes=30, justification="patching")
    grant = wait_state(req.grant.id, Grant.State.ACTIVE)
    assert grant.host_verified_at is not None
    assert "is in local Administrators" in grant.host_detail
    assert [c.script for c in host.calls] == ["local_admins"]
    assert all(r.encrypted for r in host.requests)  # NTLM over HTTP: every WS-Man message sealed
    assert {"Create", "Command", "Receive", "Signal", "Delete"} <= set(host.actions())

    expire_now(grant.id)
    grant = wait_for(lambda: Grant.objects.filter(id=grant.id, host_revoke_check=Grant.HostCheck.VERIFIED).first(),
                     timeout=30, message="the revocation confirmed on the server")
    assert grant.state == Grant.State.REVOKED
    assert not ad_is_member(ldap_admin, target.group_dn, ad_user_dn(ldap_admin, samba_dc.base_dn, alice.username))
    assert "no longer a local admin" in grant.host_detail
    assert _actions(grant.id)[-3:] == ["grant.revoking", "grant.revoked", "grant.host_verified"]


def test_jit_group_missing_on_the_server_is_unverified_alerted_then_verified_when_fixed(
        live, make_user, make_target, make_host, ldap_admin, alert_sink):
    """GIVEN the GPO has not put the JIT group into local Administrators WHEN a grant is applied
    THEN it is unverified (membership in AD, reason recorded), the security channel is alerted and the
    check is retried; WHEN the group shows up THEN the grant goes active and a resolution is sent."""
    host = make_host()
    target = make_target(winrm_url=host.url)
    alice = make_user("alice", groups=["admins"])

    req = services.request_create(requester=alice, target=target, duration_minutes=30, justification="patching")
    grant = wait_state(req.grant.id, Grant.State.UNVERIFIED)
    assert "is not in local Administrators" in grant.last_error
    assert grant.retryable and grant.unverified_since is not None
    alert = _alerted(alert_sink, f"Not verified on {target.name}")
    assert "GPO" in alert["message"]

    with host.lock:
        host.admins.append(_jit_group_entry(ldap_admin, target))
    grant = wait_state(grant.id, Grant.State.ACTIVE)
    assert grant.host_verified_at is not None and grant.unverified_since is None
    _alerted(alert_sink, f"Resolved: {alice.username} is admin on {target.name}")
    actions = _actions(grant.id)
    assert actions[:3] == ["grant.created", "grant.granting", "grant.unverified"]
    assert actions[-1] == "grant.active"


def test_unverified_grant_stops_rechecking_after_its_window(live, make_user, make_target, make_host, alert_sink):
    """GIVEN the JIT group never appears WHEN the re-check window (12 s in tests) passes
    THEN the grant stays unverified, re-checks stop, and the give-up is alerted."""
    host = make_host()
    target = make_target(winrm_url=host.url)
    alice = make_user("alice", groups=["admins"])
    req = services.request_create(requester=alice, target=target, duration_minutes=30, justification="patching")
    grant = wait_for(lambda: Grant.objects.filter(id=req.grant.id, state=Grant.State.UNVERIFIED, retryable=False).first(),
                     timeout=60, message="the re-checks to give up")
    assert grant.attempts >= 2  # re-checked within the window, then stopped
    _alerted(alert_sink, f"Not verified on {target.name}")
    assert "grant.verify_gave_up" in _actions(grant.id)


@pytest.mark.parametrize("failure, expected, retried", [
    ("down", "connection refused", True),
    ("refuse_auth", "refused jitad's credentials", False),
    ("hang", "did not finish within", True),
    ("drop", "connection dropped", True),
    ("fault", "WS-Management fault", False),
    ("script_error", "exited with 2: Access is denied", False),
])
def test_server_failures_leave_a_clear_unverified_state_and_an_alert(failure, expected, retried, live, make_user,
                                                                      make_target, make_host, ldap_admin, alert_sink):
    """GIVEN the server is down, refuses jitad, hangs, drops the connection or fails the script
    WHEN a grant is applied THEN within the call's deadline it is unverified with the reason, alerted;
    transient failures are re-checked, a refusal is not."""
    host = make_host()
    target = make_target(winrm_url=host.url)
    with host.lock:
        host.admins.append(_jit_group_entry(ldap_admin, target))
    if failure == "down":
        host.stop()
    else:
        host.fail = failure
    alice = make_user("alice", groups=["admins"])
    req = services.request_create(requester=alice, target=target, duration_minutes=30, justification="patching")
    grant = wait_state(req.grant.id, Grant.State.UNVERIFIED)
    assert expected in grant.last_error
    assert grant.retryable is retried
    _alerted(alert_sink, f"Not verified on {target.name}")
    if failure != "down":
        assert host.errors == []


def test_revocation_ends_sessions_when_the_policy_says_so(live, verified_grant):
    """GIVEN a policy that ends sessions on revoke and the user logged on to the server, with Kerberos
    tickets in two live logon sessions and a stale logon entry WHEN the grant is released THEN the server
    logs the user's sessions off and purges the live logon sessions' tickets, and the grant and its audit
    entry record it."""
    host, _target, alice, grant = verified_grant(end_sessions_on_revoke=True)
    with host.lock:
        host.sessions[grant.user_sid] = [2, 0]
        host.logons[grant.user_sid] = [{"id": 0x7A001, "tickets": 5, "session": 2}, {"id": 0x7A002, "tickets": 1},
                                       {"id": 0x79000, "tickets": 0, "stale": True}]

    services.grant_release(grant=grant, actor=alice)
    grant = wait_for(lambda: Grant.objects.filter(id=grant.id, host_revoke_check=Grant.HostCheck.VERIFIED).first(),
                     timeout=30, message="the revocation confirmed on the server")
    assert grant.user_sid not in host.sessions or host.sessions[grant.user_sid] == []
    assert [e["tickets"] for e in host.logons[grant.user_sid]] == [0, 0, 0]
    assert [c.script for c in host.calls][-2:] == ["local_admins", "end_sessions"]
    assert host.calls[-1].input == {"sid": grant.user_sid}
    assert "1 session(s) logged off, 1 process(es) stopped, Kerberos tickets purged in 2 logon session(s)" \
        in grant.host_detail
    entry = AuditEvent.objects.get(object_type="grant", object_id=str(grant.id), action="grant.host_verified")
    assert (entry.data["sessions"], entry.data["processes"], entry.data["tickets_purged"]) == ([2], 1, 2)


def test_a_stale_logon_entry_is_not_a_remaining_session(live, verified_grant, alert_sink):
    """GIVEN the user's only logon entry on the server is stale (the logon ended, Win32_LoggedOnUser still
    lists it) WHEN the grant ends THEN the check is verified at the first attempt, without an alert."""
    host, target, alice, grant = verified_grant(end_sessions_on_revoke=True)
    with host.lock:
        host.logons[grant.user_sid] = [{"id": 0x79000, "tickets": 0, "stale": True}]

    services.grant_release(grant=grant, actor=alice)
    grant = wait_for(lambda: Grant.objects.filter(id=grant.id, host_revoke_check=Grant.HostCheck.VERIFIED).first(),
                     timeout=30, message="the revocation confirmed on the server")
    assert grant.attempts == 0
    assert "Kerberos tickets purged in 0 logon session(s)" in grant.host_detail
    assert not [m for m in alert_sink.messages if target.name in m.get("title", "")]


def test_a_session_that_survives_logoff_is_retried_then_alerted(live, verified_grant, alert_sink):
    """GIVEN the user's session survives logoff on the server (logoff.exe answers success, the processes
    run on) WHEN the grant ends THEN the check is retried within the window, then recorded as failed with
    the logon session named, and alerted: "<user> still has a logon session on <server> after grant #N ended"."""
    host, target, alice, grant = verified_grant(end_sessions_on_revoke=True)
    with host.lock:
        host.sessions[grant.user_sid] = [2, 2]
        host.logons[grant.user_sid] = [{"id": 0x7A001, "tickets": 5, "session": 2},
                                       {"id": 0x79000, "tickets": 0, "stale": True}]
        host.fail = "session_survives"

    services.grant_release(grant=grant, actor=alice)
    grant = wait_for(lambda: Grant.objects.filter(id=grant.id, host_revoke_check=Grant.HostCheck.FAILED).first(),
                     timeout=60, message="the server check to give up")
    assert grant.state == Grant.State.REVOKED
    assert grant.attempts >= 2  # retried within the window
    assert f"{alice.username} still has a logon session on {target.name}: logon 0x7a001 (2 process(es))" \
        in grant.host_detail
    assert "0x79000" not in grant.host_detail  # the stale entry is never reported
    assert [c.script for c in host.calls].count("end_sessions") == grant.attempts
    alert = _alerted(alert_sink, f"{alice.username} still has a logon session on {target.name} after grant "
                                 f"#{grant.id} ended")
    assert "0x7a001" in alert["message"]
    actions = _actions(grant.id)
    assert "grant.host_check_failed" in actions and actions[-1] == "grant.host_check_gave_up"
    entry = AuditEvent.objects.filter(object_type="grant", object_id=str(grant.id),
                                      action="grant.host_check_gave_up").get()
    assert entry.data["tickets_purged"] == 1 and entry.data["sessions_ended"][0]["remaining"]


def test_a_session_that_ends_late_is_verified_on_a_retry(live, verified_grant, alert_sink):
    """GIVEN the user's session first survives logoff WHEN it ends before the window closes THEN a retry
    verifies the revocation, and nothing is alerted."""
    host, target, alice, grant = verified_grant(end_sessions_on_revoke=True)
    with host.lock:
        host.sessions[grant.user_sid] = [2]
        host.logons[grant.user_sid] = [{"id": 0x7A001, "tickets": 5, "session": 2}]
        host.fail = "session_survives"

    services.grant_release(grant=grant, actor=alice)
    wait_for(lambda: Grant.objects.filter(id=grant.id, attempts__gte=1).first(), timeout=30,
             message="a first failed attempt")
    host.fail = None
    grant = wait_for(lambda: Grant.objects.filter(id=grant.id, host_revoke_check=Grant.HostCheck.VERIFIED).first(),
                     timeout=30, message="the retry to verify")
    assert grant.attempts >= 1 and "1 session(s) logged off" in grant.host_detail
    assert not [m for m in alert_sink.messages if f"#{grant.id}" in m.get("title", "")]


@pytest.mark.parametrize("policy_ends_sessions", [False, True])
def test_an_ephemeral_accounts_sessions_are_always_ended(policy_ends_sessions, live, verified_grant, eph_ou):
    """GIVEN a grant held by an ephemeral account, both it and the person logged on to the server
    WHEN the grant ends THEN the ephemeral account's sessions are ended whatever the policy says, the
    person's only when the policy says so, and the grant records each."""
    host, _target, alice, grant = verified_grant(end_sessions_on_revoke=policy_ends_sessions, ephemeral={"ou": eph_ou})
    assert grant.account == Grant.Account.CREATED and grant.account_sid
    with host.lock:
        host.sessions[grant.account_sid] = [4, 0]
        host.logons[grant.account_sid] = [{"id": 0x8B001, "tickets": 3, "session": 4}]
        host.sessions[grant.user_sid] = [5]
        host.logons[grant.user_sid] = [{"id": 0x8C001, "tickets": 2, "session": 5}]

    services.grant_release(grant=grant, actor=alice)
    grant = wait_for(lambda: Grant.objects.filter(id=grant.id, host_revoke_check=Grant.HostCheck.VERIFIED).first(),
                     timeout=30, message="the revocation confirmed on the server")
    ended = [c.input["sid"] for c in host.calls if c.script == "end_sessions"]
    assert host.logons[grant.account_sid][0]["tickets"] == 0 and grant.account_sid not in host.sessions
    assert f"ephemeral account {grant.account_sam}: 1 session(s) logged off, 1 process(es) " \
           "stopped, Kerberos tickets purged in 1 logon session(s)" in grant.host_detail
    if policy_ends_sessions:
        assert sorted(ended) == sorted([grant.account_sid, grant.user_sid])
        assert host.logons[grant.user_sid][0]["tickets"] == 0
    else:
        assert ended == [grant.account_sid]
        assert host.sessions[grant.user_sid] == [5] and host.logons[grant.user_sid][0]["tickets"] == 2
    entry = AuditEvent.objects.get(object_type="grant", object_id=str(grant.id), action="grant.host_verified")
    assert entry.data["tickets_purged"] == (2 if policy_ends_sessions else 1)
    assert [e["ephemeral"] for e in entry.data["sessions_ended"]] == ([False, True] if policy_ends_sessions else [True])
    # Only once its sessions are ended on the server is the account deleted (a deleted account's
    # sessions could no longer be found by name there).
    wait_for(lambda: Grant.objects.filter(id=grant.id, account=Grant.Account.DELETED).exists(), timeout=30,
             message="the ephemeral account deleted")
    actions = _actions(grant.id)
    assert actions.index("grant.host_verified") < actions.index("grant.account_deleted")


def test_still_admin_through_another_group_is_alerted(live, make_user, make_target, make_host, ldap_admin, jit_ou,
                                                      alert_sink):
    """GIVEN the user is also in a domain group that sits in the server's local Administrators
    WHEN the grant ends THEN the AD membership goes, and the server check says the user is still
    admin through that group, alerted as standing access."""
    from jitad import directory

    host = make_host()
    target = make_target(winrm_url=host.url)
    alice = make_user("alice", groups=["admins"])
    with directory.connect() as d:
        ops = d.ensure_group(f"Server-Ops-{target.name}", jit_ou)
        alice_dn = d.find_user(alice.username).dn
        d.add_member(ops, alice_dn)
    with host.lock:
        host.admins.append(_jit_group_entry(ldap_admin, target))
        host.admins.append(local_admin_entry(ad_sid(ldap_admin, ops), f"WinNT://JITAD/Server-Ops-{target.name}"))
    req = services.request_create(requester=alice, target=target, duration_minutes=30, justification="patching")
    grant = wait_state(req.grant.id, Grant.State.ACTIVE)

    expire_now(grant.id)
    grant = wait_for(lambda: Grant.objects.filter(id=grant.id, host_revoke_check=Grant.HostCheck.STILL_ADMIN).first(),
                     timeout=30, message="the server check to find the other path")
    assert f"Server-Ops-{target.name}" in grant.host_detail
    assert not ad_is_member(ldap_admin, target.group_dn, alice_dn)
    _alerted(alert_sink, f"is still admin on {target.name}")


def test_revocation_with_the_server_down_still_removes_in_ad_and_alerts(live, verified_grant, ldap_admin, alert_sink):
    """GIVEN the server goes down while a grant is active WHEN it expires THEN AD removal is not held
    up (revoked, membership gone), the server check is retried, then recorded as failed and alerted."""
    host, target, _alice, grant = verified_grant()
    host.stop()

    expire_now(grant.id)
    grant = wait_state(grant.id, Grant.State.REVOKED)
    assert not ad_is_member(ldap_admin, target.group_dn, grant.user_dn)
    grant = wait_for(lambda: Grant.objects.filter(id=grant.id, host_revoke_check=Grant.HostCheck.FAILED).first(),
                     timeout=60, message="the server check to give up")
    assert grant.attempts >= 2 and "connection refused" in grant.host_detail
    _alerted(alert_sink, f"Could not confirm on {target.name}")


def test_https_with_basic_against_the_test_ca(live, make_user, make_target, make_host, ldap_admin):
    """GIVEN a server on HTTPS with Basic (validated against the configured CA bundle) THEN grants verify."""
    host = make_host(tls=True, auth="basic")
    target = make_target(winrm_url=host.url, winrm_transport="basic")
    with host.lock:
        host.admins.append(_jit_group_entry(ldap_admin, target))
    alice = make_user("alice", groups=["admins"])
    req = services.request_create(requester=alice, target=target, duration_minutes=30, justification="patching")
    assert wait_state(req.grant.id, Grant.State.ACTIVE).host_verified_at is not None
    assert host.url.startswith("https://") and host.requests


def test_an_ephemeral_accounts_remaining_session_is_retried_then_alerted(live, verified_grant, alert_sink, eph_ou):
    """GIVEN a grant held by an ephemeral account whose session survives logoff (the policy ends no sessions)
    WHEN the grant ends THEN the check retries, gives up and alerts, naming the ephemeral account; the
    person's own session is left alone."""
    host, target, alice, grant = verified_grant(ephemeral={"ou": eph_ou})
    with host.lock:
        host.sessions[grant.account_sid] = [4]
        host.logons[grant.account_sid] = [{"id": 0x8B001, "tickets": 3, "session": 4}]
        host.sessions[grant.user_sid] = [5]
        host.fail = "session_survives"

    services.grant_release(grant=grant, actor=alice)
    grant = wait_for(lambda: Grant.objects.filter(id=grant.id, host_revoke_check=Grant.HostCheck.FAILED).first(),
                     timeout=60, message="the server check to give up")
    assert f"{alice.username}'s ephemeral account {grant.account_sam} still has a logon session on {target.name}: " \
           "logon 0x8b001 (1 process(es))" in grant.host_detail
    assert {c.input["sid"] for c in host.calls if c.script == "end_sessions"} == {grant.account_sid}
    alert = _alerted(alert_sink, f"{alice.username} still has a logon session on {target.name} after grant "
                                 f"#{grant.id} ended")
    assert f"ephemeral account {grant.account_sam}" in alert["message"]
