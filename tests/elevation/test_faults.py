"""Revocation survives a dead DC, a killed worker and duplicate messages; overlaps never cancel."""
import uuid

from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.models import Grant
from jitad.elevation.tasks import grants_revoke
from jitad.notifications.models import Notification
from tests.support.waiting import wait_for
from tests.support.worker import CeleryWorker

from .helpers import ad_is_member, expire_now, wait_state


def _active_grant(make_user, make_target, target=None, user=None):
    target = target or make_target()
    user = user or make_user("ops", groups=["admins"])
    req = services.request_create(requester=user, target=target, duration_minutes=30)
    return wait_state(req.grant.id, Grant.State.ACTIVE)


def test_dc_down_during_expiry_retries_alerts_and_recovers(live, make_user, make_target, ldap_admin, samba_dc, alert_sink):
    """GIVEN active grants WHEN the DC is down as they expire THEN attempts are retried, the
    grants go revoke_failed and one alert for the wave reaches the webhook; WHEN the DC returns
    THEN every membership is gone with no manual step, and one "Resolved" follows."""
    target = make_target()
    grants = [_active_grant(make_user, make_target, target=target) for _ in range(3)]
    samba_dc.stop()
    try:
        for g in grants:
            expire_now(g.id)
        for g in grants:
            failed = wait_state(g.id, Grant.State.REVOKE_FAILED, timeout=60)
            assert failed.attempts >= 3
            assert "DirectoryUnavailable" in failed.last_error
        wait_for(lambda: any("could not remove" in m.get("title", "") for m in alert_sink.messages), timeout=30,
                 message="revoke_failed alert at the webhook")
        wait_for(lambda: Notification.objects.filter(event="grant.revoke_failed", deliveries__state="sent").exists(),
                 timeout=30, message="the revoke_failed alert recorded as sent")
    finally:
        samba_dc.start()
    for g in grants:
        done = wait_state(g.id, Grant.State.REVOKED, timeout=60)
        assert done.membership_removed is True
        assert not ad_is_member(ldap_admin, target.group_dn, done.user_dn)
    actions = list(AuditEvent.objects.filter(object_type="grant", object_id=str(grants[0].id)).values_list("action", flat=True))
    # active → revoking, two failed attempts, the third exhausts → revoke_failed, ... → revoked
    assert actions[:5] == ["grant.created", "grant.granting", "grant.active", "grant.revoking", "grant.attempt_failed"]
    assert actions.index("grant.revoke_failed") == 6
    assert actions[-1] == "grant.revoked"
    # One alert for the wave and one "Resolved" when it is over: not one per grant, nor per retry.
    wait_for(lambda: Notification.objects.filter(event="grant.revoke_recovered").exists(), timeout=15,
             message="the revoke_failed condition resolved")
    assert Notification.objects.filter(event="grant.revoke_recovered").count() == 1
    assert Notification.objects.filter(event="grant.revoke_failed").count() == 1


def test_worker_killed_mid_revocation_still_revoked(live, make_user, make_target, ldap_admin, samba_dc, worker_env, tmp_path):
    """GIVEN an expiring grant whose revocation is in flight (DC frozen, call blocked)
    WHEN the worker is SIGKILLed THEN, after the lease lapses, a new worker revokes it."""
    target = make_target()
    grant = _active_grant(make_user, make_target, target=target)
    seen = live.log_path.stat().st_size
    samba_dc.pause()
    try:
        expire_now(grant.id)
        wait_state(grant.id, Grant.State.REVOKING, timeout=15)
        # The worker has the revocation and is blocked on LDAP (the sweep's claim, or its own).
        wait_for(lambda: b"jitad.elevation.grants_revoke[" in live.log_path.read_bytes()[seen:], timeout=15,
                 message="the revocation task received")
        wait_for(lambda: Grant.objects.get(id=grant.id).claim_token is not None, timeout=5, message="a claim held")
        live.kill()
    finally:
        samba_dc.resume()
    assert Grant.objects.get(id=grant.id).state == Grant.State.REVOKING
    assert ad_is_member(ldap_admin, target.group_dn, grant.user_dn)
    replacement = CeleryWorker(worker_env, tmp_path)
    replacement.start()
    live.adopt(replacement)  # the session fixture stops whichever worker runs
    done = wait_state(grant.id, Grant.State.REVOKED, timeout=60)
    assert done.membership_removed is True
    assert not ad_is_member(ldap_admin, target.group_dn, grant.user_dn)


def test_same_revocation_delivered_twice_removes_once(live, make_user, make_target, ldap_admin):
    """GIVEN a claimed revocation WHEN its message is delivered twice THEN one execution
    acts (one revoked event), the other finds nothing to do, and nothing fails."""
    grant = _active_grant(make_user, make_target)
    token = uuid.uuid4()
    # Claim it the way the sweeper does, then send the same message twice.
    Grant.objects.filter(id=grant.id).update(state=Grant.State.REVOKING, claim_token=token,
                                             lease_until=timezone.now() + timezone.timedelta(seconds=60),
                                             revoke_reason=Grant.RevokeReason.EXPIRED)
    deliveries = [grants_revoke.delay([grant.id], str(token)).id for _ in range(2)]
    done = wait_state(grant.id, Grant.State.REVOKED)
    assert not ad_is_member(ldap_admin, grant.group_dn, grant.user_dn)
    # Both deliveries have run to completion in the worker, not just the first.
    wait_for(lambda: all(f"grants_revoke[{i}] succeeded" in live.log_path.read_text() for i in deliveries),
             timeout=20, message="both deliveries processed")
    events = AuditEvent.objects.filter(object_type="grant", object_id=str(grant.id))
    assert events.filter(action="grant.revoked").count() == 1
    assert not events.filter(action__in=["grant.attempt_failed", "grant.revoke_failed"]).exists()
    assert done.last_error == ""


def test_overlapping_grants_membership_survives_first_expiry(live, make_user, make_target, ldap_admin):
    """GIVEN two live grants for one user on one target WHEN the first expires THEN the
    membership stays; WHEN the second expires THEN it goes."""
    target = make_target()
    user = make_user("ovl", groups=["admins"])
    first = _active_grant(make_user, make_target, target=target, user=user)
    second = _active_grant(make_user, make_target, target=target, user=user)
    expire_now(first.id)
    first = wait_state(first.id, Grant.State.REVOKED)
    assert first.membership_removed is False
    assert ad_is_member(ldap_admin, target.group_dn, second.user_dn)
    expire_now(second.id)
    second = wait_state(second.id, Grant.State.REVOKED)
    assert second.membership_removed is True
    assert not ad_is_member(ldap_admin, target.group_dn, second.user_dn)


def test_release_early_and_admin_revoke(live, make_user, make_target, ldap_admin, django_user_model):
    """Release by the holder and revoke by an admin both remove the membership now, with reasons."""
    target = make_target()
    g1 = _active_grant(make_user, make_target, target=target)
    services.grant_release(grant=g1, actor=g1.user)
    g1 = wait_state(g1.id, Grant.State.REVOKED)
    assert g1.revoke_reason == Grant.RevokeReason.RELEASED
    assert g1.expires_at > timezone.now()
    assert not ad_is_member(ldap_admin, target.group_dn, g1.user_dn)

    g2 = _active_grant(make_user, make_target, target=target)
    admin = django_user_model.objects.create_superuser("secadmin")
    services.grant_revoke(grant=g2, actor=admin, reason="suspicious logon")
    g2 = wait_state(g2.id, Grant.State.REVOKED)
    assert g2.revoke_reason == Grant.RevokeReason.ADMIN
    assert g2.revoke_requested_by == "secadmin"
    assert not ad_is_member(ldap_admin, target.group_dn, g2.user_dn)
    ev = AuditEvent.objects.get(object_type="grant", object_id=str(g2.id), action="grant.revoking")
    assert (ev.actor, ev.reason) == ("secadmin", "suspicious logon")


def test_reconciler_removes_out_of_band_member_and_alerts(live, make_user, make_target, ldap_admin, alert_sink, jit_ou):
    """GIVEN someone added by hand to a JIT group (no grant) and a user with a real grant
    WHEN the reconciler runs THEN only the hand-added one is removed, and an alert goes out."""
    from ldap3 import MODIFY_ADD

    from jitad.elevation.tasks import reconcile

    target = make_target()
    legit = _active_grant(make_user, make_target, target=target)
    intruder = make_user("intruder")
    from .helpers import ad_user_dn

    intruder_dn = ad_user_dn(ldap_admin, jit_ou, intruder.username)
    conn = ldap_admin()
    conn.modify(target.group_dn, {"member": [(MODIFY_ADD, [intruder_dn])]})
    assert conn.result["result"] == 0
    conn.unbind()
    reconcile.delay()
    wait_for(lambda: not ad_is_member(ldap_admin, target.group_dn, intruder_dn), timeout=30, message="intruder removed")
    assert ad_is_member(ldap_admin, target.group_dn, legit.user_dn)
    wait_for(lambda: any(intruder_dn in m.get("message", "") for m in alert_sink.messages), timeout=30,
             message="out-of-band alert at the webhook")
    assert AuditEvent.objects.filter(action="membership.removed_unbacked", data__member=intruder_dn).exists()


def test_claim_is_taken_once(db, django_user_model):
    """GIVEN a claimed grant WHEN two executions present the same claim THEN only the first
    gets the grant: the duplicate of a message can never act on it."""
    from jitad.elevation.models import AccessRequest, Policy, Target
    from jitad.elevation.services.grant_work import _taken

    user = django_user_model.objects.create_user("claimer")
    target = Target.objects.create(name="C1", group_dn="CN=g,DC=x")
    policy = Policy.objects.create(name="c1", approval_mode="auto", eligible_users=["claimer"])
    req = AccessRequest.objects.create(requester=user, target=target, policy=policy, duration_minutes=5)
    token = uuid.uuid4()
    grant = Grant.objects.create(request=req, user=user, target=target, group_dn=target.group_dn,
                                 expires_at=timezone.now(), state=Grant.State.REVOKING, claim_token=token)
    with _taken([grant.id], str(token)) as (first, mine):
        with _taken([grant.id], str(token)) as (second, _):
            assert [g.id for g in first] == [grant.id]
            assert second == []
            assert Grant.objects.get(id=grant.id).claim_token == mine


def test_failed_verification_is_recorded_on_a_held_claim_until_its_window_ends(db, django_user_model, settings):
    """GIVEN a claimed grant whose server does not confirm the right WHEN its verification fails twice
    within the re-check window and once after it THEN the attempts are counted and the claim dropped each
    time: ``grant.unverified``, then ``grant.verify_failed`` (retried, never later than the window's end),
    then ``grant.verify_gave_up`` (no retry); a failure reported under a claim that lapsed records nothing."""
    from datetime import timedelta

    from jitad.elevation.models import AccessRequest, Policy, Target
    from jitad.elevation.services.grant_apply import _verification_failed
    from jitad.elevation.services.host_checks import Verdict

    user = django_user_model.objects.create_user("verifier")
    target = Target.objects.create(name="V1", group_dn="CN=g,DC=x")
    policy = Policy.objects.create(name="v1", approval_mode="auto", eligible_users=["verifier"])
    req = AccessRequest.objects.create(requester=user, target=target, policy=policy, duration_minutes=30)
    grant = Grant.objects.create(request=req, user=user, target=target, group_dn=target.group_dn,
                                 expires_at=timezone.now() + timedelta(minutes=30), state=Grant.State.GRANTING)
    verdict = Verdict(False, "the JIT group is not in local Administrators")

    def fail_once(**changes):
        token = uuid.uuid4()
        Grant.objects.filter(id=grant.id).update(claim_token=token, **changes)
        _verification_failed(grant, token, verdict)
        return Grant.objects.get(id=grant.id)

    first = fail_once()
    window_end = first.unverified_since + timedelta(minutes=settings.JITAD_HOST_VERIFY_WINDOW_MINUTES)
    assert (first.state, first.attempts, first.retryable, first.claim_token) == (Grant.State.UNVERIFIED, 1, True, None)
    assert first.last_error == first.host_detail == verdict.detail
    second = fail_once()
    assert (second.attempts, second.retryable) == (2, True) and second.next_attempt_at <= window_end
    late = fail_once(unverified_since=timezone.now() - timedelta(minutes=settings.JITAD_HOST_VERIFY_WINDOW_MINUTES + 1))
    assert (late.state, late.attempts, late.retryable, late.next_attempt_at) == (Grant.State.UNVERIFIED, 3, False, None)

    Grant.objects.filter(id=grant.id).update(claim_token=uuid.uuid4())  # another execution holds it now
    _verification_failed(grant, uuid.uuid4(), verdict)
    assert Grant.objects.get(id=grant.id).attempts == 3
    actions = list(AuditEvent.objects.filter(object_type="grant", object_id=str(grant.id)).values_list("action", flat=True))
    assert actions == ["grant.unverified", "grant.verify_failed", "grant.verify_gave_up"]
    assert Notification.objects.filter(event__in=["grant.unverified", "grant.verify_gave_up"]).count() == 2


def test_reconciler_alerts_once_about_a_group_it_cannot_read(live, make_target, alert_sink, jit_ou):
    """GIVEN a target whose group DN does not exist WHEN the reconciler runs twice THEN one
    critical alert says the group cannot be checked (not one a minute), and nothing crashes."""
    from jitad.elevation.models import Target

    make_target()  # a healthy group beside it is still reconciled
    Target.objects.create(name="GHOST01", group_dn=f"CN=JIT-GHOST01-Admins,{jit_ou}")
    first = services.reconcile()
    second = services.reconcile()
    assert "CN=JIT-GHOST01-Admins" not in str(first) and len(first) == 1 and len(second) == 1
    wait_for(lambda: any("JIT-GHOST01-Admins" in m.get("title", "") for m in alert_sink.messages), timeout=30,
             message="unreadable-group alert at the webhook")
    assert Notification.objects.filter(event="reconcile.group_unreadable").count() == 1
