"""The reconciler's brake: a run never empties a group on its own; an operator confirms or discards.

Against the real Samba DC and a real worker: holds, one alert per burst, confirmation carried
out by the worker as claimed work (once), discard kept as a record, the group not frozen.
"""
import io
import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from ldap3 import MODIFY_ADD, MODIFY_DELETE

from jitad import directory
from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.models import Grant, GroupReading, HeldRemoval
from jitad.elevation.services.held_removals import removal_limit
from jitad.elevation.tasks import held_removals_execute
from jitad.notifications.models import Notification
from tests.support.waiting import wait_for

from .helpers import ad_is_member, expire_now, wait_state

HeldState = HeldRemoval.State


def _active_grant(make_user, target, user=None):
    user = user or make_user("ops", groups=["admins"])
    req = services.request_create(requester=user, target=target, duration_minutes=30)
    return wait_state(req.grant.id, Grant.State.ACTIVE)


def _add_by_hand(ldap_admin, jit_ou, group_dn: str, count: int, prefix: str = "oob") -> list[str]:
    """``count`` AD users put straight into the group, as someone outside jitad would."""
    with directory.connect() as d:
        dns = [d.ensure_user(f"{prefix}{uuid.uuid4().hex[:8]}", jit_ou) for _ in range(count)]
    conn = ldap_admin()
    conn.modify(group_dn, {"member": [(MODIFY_ADD, dns)]})
    assert conn.result["result"] == 0, conn.result
    conn.unbind()
    return dns


def _remove_by_hand(ldap_admin, group_dn: str, dn: str) -> None:
    conn = ldap_admin()
    conn.modify(group_dn, {"member": [(MODIFY_DELETE, [dn])]})
    assert conn.result["result"] == 0, conn.result
    conn.unbind()


def _run(*args) -> str:
    out = io.StringIO()
    call_command("jitad_held_removals", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_removal_limit_is_a_share_with_a_floor(settings):
    settings.JITAD_RECONCILE_MAX_REMOVE_SHARE = 0.5
    settings.JITAD_RECONCILE_MAX_REMOVE_MIN = 3
    assert [removal_limit(n) for n in (0, 2, 6, 7, 11, 100)] == [3, 3, 3, 3, 5, 50]
    settings.JITAD_RECONCILE_MAX_REMOVE_SHARE = 1.0
    assert removal_limit(11) == 11  # a share of 1: never held


def test_runaway_reconcile_is_held_alerted_once_then_confirmed(live, make_user, make_target, ldap_admin, alert_sink,
                                                                jit_ou):
    """GIVEN a JIT group jitad believes has 1 member (one grant) while AD holds 10 more
    WHEN the reconciler runs THEN it removes none of them, holds all 10, audits them and
    sends one alert; WHEN it runs again THEN no second alert and no duplicate holds; the group
    is not frozen meanwhile (a grant comes and goes, a lone new intruder is removed);
    WHEN an operator confirms THEN the worker removes them (one already gone is fine), once,
    and the alert is resolved."""
    target = make_target()
    legit = _active_grant(make_user, target)
    extra = _add_by_hand(ldap_admin, jit_ou, target.group_dn, 10)

    first = services.reconcile()
    assert first[target.group_dn] == []
    assert all(ad_is_member(ldap_admin, target.group_dn, dn) for dn in extra)
    held = list(HeldRemoval.objects.filter(group_dn=target.group_dn).order_by("id"))
    assert sorted(h.member_dn for h in held) == sorted(extra) and {h.state for h in held} == {HeldState.PENDING}
    assert AuditEvent.objects.filter(action="reconcile.removal_held", data__group=target.group_dn).count() == 10
    assert Notification.objects.filter(event="reconcile.removals_held").count() == 1
    wait_for(lambda: any(f"JIT-{target.name}-Admins" in m.get("title", "") and "held 10" in m.get("title", "")
                         for m in alert_sink.messages), timeout=30, message="the held-removals alert at the webhook")
    alert = next(m for m in alert_sink.messages if "held 10" in m.get("title", ""))
    assert "jitad_held_removals confirm --all-for-group" in alert["message"] and extra[0] in alert["message"]

    # Later runs: nothing removed, no second alert, no duplicate hold.
    assert services.reconcile()[target.group_dn] == []
    assert HeldRemoval.objects.filter(group_dn=target.group_dn).count() == 10
    assert Notification.objects.filter(event="reconcile.removals_held").count() == 1

    # Not frozen: a grant's own add and removal go on, and a lone new intruder is removed as usual.
    other = _active_grant(make_user, target)
    assert ad_is_member(ldap_admin, target.group_dn, other.user_dn)
    expire_now(other.id)
    assert wait_state(other.id, Grant.State.REVOKED).membership_removed is True
    assert not ad_is_member(ldap_admin, target.group_dn, other.user_dn)
    [intruder] = _add_by_hand(ldap_admin, jit_ou, target.group_dn, 1, prefix="lone")
    assert services.reconcile()[target.group_dn] == [intruder]
    assert not ad_is_member(ldap_admin, target.group_dn, intruder)
    assert HeldRemoval.objects.filter(group_dn=target.group_dn).count() == 10

    # One of them leaves by other means before the operator decides.
    _remove_by_hand(ldap_admin, target.group_dn, extra[0])
    out = _run("confirm", "--all-for-group", target.group_dn, "--by", "secops-ann", "--reason", "added by mistake")
    assert "confirmed 10" in out
    wait_for(lambda: not HeldRemoval.objects.filter(group_dn=target.group_dn, state=HeldState.CONFIRMED).exists(), timeout=30,
             message="the worker to carry out the confirmed removals")
    done = {h.member_dn: h for h in HeldRemoval.objects.filter(group_dn=target.group_dn)}
    assert {h.state for h in done.values()} == {HeldState.DONE} and {h.decided_by for h in done.values()} == {"secops-ann"}
    assert done[extra[0]].outcome == "already gone" and done[extra[1]].outcome == "removed"
    assert not any(ad_is_member(ldap_admin, target.group_dn, dn) for dn in extra)
    assert ad_is_member(ldap_admin, target.group_dn, legit.user_dn)
    removed = AuditEvent.objects.filter(action="membership.removed_held", data__group=target.group_dn)
    assert removed.count() == 9
    assert AuditEvent.objects.filter(action="reconcile.hold_confirmed", actor="secops-ann").count() == 10
    wait_for(lambda: any("Resolved" in m.get("title", "") and f"JIT-{target.name}-Admins" in m.get("title", "")
                         for m in alert_sink.messages), timeout=30, message="the resolved message at the webhook")

    # The same confirmation delivered again finds nothing to do: removed once.
    task = held_removals_execute.delay([h.pk for h in done.values()], str(uuid.uuid4()))
    wait_for(lambda: f"held_removals_execute[{task.id}] succeeded" in live.log_path.read_text(), timeout=20,
             message="the duplicate message processed")
    assert removed.count() == 9
    assert "no held removals waiting" in _run("list", "--group", target.group_dn)


def test_discarded_removals_stay_and_are_kept_as_a_record(live, make_user, make_target, ldap_admin, alert_sink, jit_ou):
    """GIVEN 10 removals held from a group WHEN an operator discards them THEN the members stay
    in AD, the records stay (discarded, by whom, why), the alert is resolved, and later runs
    neither remove nor hold them again; a discarded member that leaves and comes back is
    out-of-band again."""
    target = make_target()
    _active_grant(make_user, target)
    extra = _add_by_hand(ldap_admin, jit_ou, target.group_dn, 10)
    services.reconcile()
    assert HeldRemoval.objects.filter(group_dn=target.group_dn, state=HeldState.PENDING).count() == 10
    with pytest.raises(CommandError) as listed:  # exit 3: something waits
        _run("list", "--group", target.group_dn)
    assert listed.value.returncode == 3

    out = _run("discard", "--all-for-group", target.group_dn, "--by", "secops-bob", "--reason", "service accounts")
    assert "discarded 10" in out
    rows = HeldRemoval.objects.filter(group_dn=target.group_dn)
    assert rows.count() == 10 and {(h.state, h.decided_by, h.decision_reason) for h in rows} == {
        (HeldState.DISCARDED, "secops-bob", "service accounts")}
    assert AuditEvent.objects.filter(action="reconcile.hold_discarded", actor="secops-bob").count() == 10
    assert Notification.objects.filter(event="reconcile.holds_cleared").count() == 1

    assert services.reconcile()[target.group_dn] == []
    assert all(ad_is_member(ldap_admin, target.group_dn, dn) for dn in extra)
    assert HeldRemoval.objects.filter(group_dn=target.group_dn).count() == 10
    assert Notification.objects.filter(event="reconcile.removals_held").count() == 1
    # A discarded one cannot be discarded twice; a wrong number is a clear error, not a traceback.
    with pytest.raises(CommandError):
        _run("discard", str(rows.first().pk), "999999999")

    # One leaves the group and is put back by hand: that is a new out-of-band member.
    _remove_by_hand(ldap_admin, target.group_dn, extra[0])
    services.reconcile()
    assert HeldRemoval.objects.get(group_dn=target.group_dn, member_dn=extra[0]).left_at is not None
    conn = ldap_admin()
    conn.modify(target.group_dn, {"member": [(MODIFY_ADD, [extra[0]])]})
    conn.unbind()
    assert services.reconcile()[target.group_dn] == [extra[0]]
    assert not ad_is_member(ldap_admin, target.group_dn, extra[0])


def test_below_the_limit_the_reconciler_removes_as_before(live, make_user, make_target, ldap_admin, jit_ou):
    """GIVEN a group with one grant and 3 out-of-band members (the floor) WHEN the reconciler
    runs THEN all 3 are removed at once and nothing is held."""
    target = make_target()
    legit = _active_grant(make_user, target)
    extra = _add_by_hand(ldap_admin, jit_ou, target.group_dn, 3)
    assert sorted(services.reconcile()[target.group_dn]) == sorted(extra)
    assert not any(ad_is_member(ldap_admin, target.group_dn, dn) for dn in extra)
    assert ad_is_member(ldap_admin, target.group_dn, legit.user_dn)
    assert not HeldRemoval.objects.filter(group_dn=target.group_dn).exists()


def test_an_intruder_with_decoys_is_removed_with_them_never_held(live, make_user, make_target, ldap_admin, jit_ou):
    """GIVEN a JIT group the reconciler has read before (one grant) WHEN someone adds themselves and
    9 decoys by hand, far more than a run may remove of the members that were there THEN the next
    run removes all 10 at once (they joined since the last run), holds none, and alerts once
    WHEN the last reading is older than a run may take (jitad stopped, a restored database) THEN
    unbacked members count as long-standing again, and the brake holds them for an operator."""
    target = make_target()
    legit = _active_grant(make_user, target)
    assert services.reconcile()[target.group_dn] == []  # the reading the next run compares with
    intruders = _add_by_hand(ldap_admin, jit_ou, target.group_dn, 10, prefix="decoy")
    assert sorted(services.reconcile()[target.group_dn]) == sorted(intruders)
    assert not any(ad_is_member(ldap_admin, target.group_dn, dn) for dn in intruders)
    assert ad_is_member(ldap_admin, target.group_dn, legit.user_dn)
    assert not HeldRemoval.objects.filter(group_dn=target.group_dn).exists()
    assert Notification.objects.filter(event="reconcile.out_of_band", object_id=target.group_dn[:64]).count() == 1

    stale = _add_by_hand(ldap_admin, jit_ou, target.group_dn, 10, prefix="stale")
    GroupReading.objects.filter(group_dn=target.group_dn).update(read_at=timezone.now() - timedelta(days=1))
    assert services.reconcile()[target.group_dn] == []
    assert all(ad_is_member(ldap_admin, target.group_dn, dn) for dn in stale)
    assert HeldRemoval.objects.filter(group_dn=target.group_dn, state=HeldState.PENDING).count() == 10


def test_a_confirmed_removal_whose_message_was_lost_is_done_by_the_sweep(live, make_target, ldap_admin, jit_ou):
    """GIVEN a confirmed hold with no message in flight and a lapsed claim (a worker died)
    WHEN the sweep runs THEN it claims it and the worker removes the member."""
    target = make_target()
    [dn] = _add_by_hand(ldap_admin, jit_ou, target.group_dn, 1)
    h = HeldRemoval.objects.create(group_dn=target.group_dn, member_dn=dn, member_key=directory.normalize_dn(dn),
                                   batch=uuid.uuid4(), state=HeldState.CONFIRMED, decided_by="secops-cy",
                                   decided_at=timezone.now(), claim_token=uuid.uuid4(),
                                   lease_until=timezone.now() - timezone.timedelta(seconds=1))
    wait_for(lambda: HeldRemoval.objects.get(id=h.id).state == HeldState.DONE, timeout=30, message="the sweep to pick it up")
    assert not ad_is_member(ldap_admin, target.group_dn, dn)
    assert AuditEvent.objects.filter(action="membership.removed_held", object_id=str(h.id)).count() == 1


HELD = "/admin/elevation/heldremoval/"


def _pending(n: int, group_dn: str = "CN=JIT-A-Admins,OU=JIT,DC=x") -> list[HeldRemoval]:
    batch = uuid.uuid4()
    return [HeldRemoval.objects.create(group_dn=group_dn, member_dn=f"CN=m{i},OU=People,DC=x",
                                       member_key=f"cn=m{i},ou=people,dc=x", batch=batch) for i in range(n)]


@pytest.mark.django_db
def test_a_superuser_confirms_and_discards_in_the_admin_after_a_fresh_otp(verified_client, django_user_model):
    """GIVEN pending held removals WHEN a superuser whose OTP is stale confirms in the admin
    THEN the step-up page answers and nothing changes; WITH a fresh OTP THEN the rows are
    confirmed (claimed for the worker) or discarded, by that person; staff who may only view
    see the rows but get no action."""
    from tests.support.mfa import stale_age

    first, second, third = _pending(3)
    root = django_user_model.objects.create_superuser("root-ops")
    stale = verified_client(root, age_seconds=stale_age())
    page = stale.post(HELD, {"action": "confirm_selected", "_selected_action": [first.pk]})
    assert page.status_code == 403 and HeldRemoval.objects.get(pk=first.pk).state == HeldState.PENDING

    client = verified_client(root)
    client.post(HELD, {"action": "confirm_selected", "_selected_action": [first.pk]}, follow=True)
    client.post(HELD, {"action": "discard_selected", "_selected_action": [second.pk, first.pk]}, follow=True)
    rows = {h.pk: h for h in HeldRemoval.objects.all()}
    assert (rows[first.pk].state, rows[first.pk].decided_by) == (HeldState.CONFIRMED, "root-ops")
    assert rows[first.pk].claim_token is not None and rows[first.pk].lease_until is not None
    assert (rows[second.pk].state, rows[second.pk].decided_by) == (HeldState.DISCARDED, "root-ops")
    assert rows[third.pk].state == HeldState.PENDING
    assert AuditEvent.objects.filter(action="reconcile.hold_confirmed", actor="root-ops").count() == 1

    from django.contrib.auth.models import Permission

    auditor = django_user_model.objects.create_user("auditor", is_staff=True)
    auditor.user_permissions.add(Permission.objects.get(codename="view_heldremoval"))
    page = verified_client(auditor).get(HELD)
    assert page.status_code == 200 and b"CN=m2,OU=People,DC=x" in page.content
    assert b"confirm_selected" not in page.content and b"discard_selected" not in page.content


@pytest.mark.django_db
def test_a_failed_removal_is_counted_retried_and_alerted_once_it_cannot_succeed():
    """GIVEN two confirmed removals claimed by one execution WHEN the DC is down (transient) THEN each attempt is
    counted, audited and due again after a backoff with the claim dropped, and nobody is alerted; WHEN the DC then
    refuses (permanent) THEN the one alert names both and they stay confirmed for the operator."""
    from jitad.elevation.services import held_removals
    from jitad.engine import claims

    rows = _pending(2)
    HeldRemoval.objects.filter(pk__in=[h.pk for h in rows]).update(state=HeldRemoval.State.CONFIRMED)
    token, claimed = claims.claim(HeldRemoval.objects.filter(pk__in=[h.pk for h in rows]), limit=10)
    before = timezone.now()
    held_removals._attempt_failed(claimed, token, directory.DirectoryUnavailable("no DC answered"))
    for h in HeldRemoval.objects.filter(pk__in=[h.pk for h in rows]):
        assert (h.attempts, h.claim_token, h.state) == (1, None, HeldRemoval.State.CONFIRMED)
        assert h.next_attempt_at > before and "no DC answered" in h.last_error
    assert AuditEvent.objects.filter(action="reconcile.hold_attempt_failed").count() == 2
    assert not Notification.objects.filter(event="reconcile.held_failed").exists()

    token, claimed = claims.claim(HeldRemoval.objects.filter(pk__in=[h.pk for h in rows]), limit=10)
    assert len(claimed) == 2
    held_removals._attempt_failed(claimed, token, directory.DirectoryRejected("insufficient access"))
    [alert] = Notification.objects.filter(event="reconcile.held_failed")
    assert "2 confirmed removal(s)" in alert.subject and all(f"#{h.pk} " in alert.body for h in rows)
    assert set(HeldRemoval.objects.filter(pk__in=[h.pk for h in rows]).values_list("attempts", "state")) == {
        (2, HeldRemoval.State.CONFIRMED)}
