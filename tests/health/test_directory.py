"""A frozen DC during an expiry wave: alerted at once, one alert for the failures, retried the moment it thaws."""
from django.utils import timezone

from jitad.elevation import services
from jitad.elevation.models import Grant
from jitad.notifications.models import Notification
from tests.support.waiting import wait_for

from ..elevation.helpers import ad_is_member


def _count(event: str) -> int:
    return Notification.objects.filter(event=event).count()


def test_frozen_dc_is_alerted_once_and_revocations_resume_when_it_thaws(nodes, make_user, make_target, samba_dc,
                                                                        ldap_admin, alert_sink):
    """GIVEN 20 active grants in two groups, and a worker whose retries wait two minutes or more
    after a failure WHEN the only DC freezes (SIGSTOP: a hung DC, a black-holed network) as they
    all expire THEN the revocations fail and one alert covers the whole wave (not one per grant),
    one alert says no DC answers, and one that grants are past their end WHEN the DC thaws THEN
    the revocations are retried at once instead of at the end of their backoff: every membership
    is gone, and each condition is resolved once."""
    env = nodes.env(JITAD_RETRY_MAX_ATTEMPTS=1, JITAD_RETRY_BASE_SECONDS=120, JITAD_RETRY_MAX_SECONDS=240)
    nodes.worker(env, beat=True)
    targets = [make_target() for _ in range(2)]
    people = [make_user("frz", groups=("admins",)) for _ in range(10)]
    ids = [services.request_create(requester=u, target=t, duration_minutes=30).grant.id for u in people for t in targets]
    wait_for(lambda: Grant.objects.filter(id__in=ids, state=Grant.State.ACTIVE).count() == len(ids), timeout=120,
             message="20 active grants")

    samba_dc.pause()
    try:
        Grant.objects.filter(id__in=ids).update(expires_at=timezone.now())
        wait_for(lambda: Grant.objects.filter(id__in=ids, state=Grant.State.REVOKE_FAILED).count() == len(ids),
                 timeout=90, message="every revocation failed against the frozen DC")
        wait_for(lambda: _count("directory.unreachable") and _count("grants.revocation_late"), timeout=60,
                 message="the DC and lateness alerts")
        assert _count("grant.revoke_failed") == 1  # the wave, not twenty
        failed = Notification.objects.get(event="grant.revoke_failed")
        assert "DirectoryUnavailable" in failed.subject
        retry_at = min(Grant.objects.filter(id__in=ids).values_list("next_attempt_at", flat=True))
        assert (retry_at - timezone.now()).total_seconds() > 30  # only the recovery can bring it forward
    finally:
        samba_dc.resume()

    wait_for(lambda: Grant.objects.filter(id__in=ids, state=Grant.State.REVOKED).count() == len(ids), timeout=30,
             message="every grant revoked soon after the DC thawed, not at the end of its backoff")
    for g in Grant.objects.filter(id__in=ids):
        assert not ad_is_member(ldap_admin, g.group_dn, g.user_dn)
    wait_for(lambda: _count("directory.unreachable.resolved") and _count("grant.revoke_recovered")
             and _count("grants.revocation_late.resolved"), timeout=30, message="the three resolved")
    assert [_count(e) for e in ("directory.unreachable", "grant.revoke_failed", "grants.revocation_late")] == [1, 1, 1]
    wait_for(lambda: any(m.get("title", "").startswith("Resolved: No domain controller") for m in alert_sink.messages),
             timeout=30, message="the DC's return at the webhook")
