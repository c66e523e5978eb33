"""The SIEM outbox on the real path: a real Celery worker with beat, a real Samba DC, rsyslogd with TLS.

A grant and its revocation complete while the SIEM is down; the lag is alerted; once
rsyslogd is back every event reaches it, none lost, repeats only of whole seqs.
"""
import pytest

from jitad.audit.models import AuditEvent, SiemCursor
from jitad.audit.selectors import head_seq
from jitad.elevation import services
from jitad.elevation.models import Grant
from jitad.notifications.models import AlertCondition
from tests.elevation.helpers import ad_is_member, ad_user_dn, expire_now, wait_state
from tests.support.waiting import wait_for
from tests.support.worker import CeleryWorker, background_workers_stopped

from .conftest import syslog_seqs

NAME = "soc"


@pytest.fixture
def siem_down_worker(transactional_db, celery_worker, worker_env, rsyslog, siem_certs, settings):
    """rsyslogd stopped, then a worker pair (with beat) whose environment names it as SIEM destination "soc".

    rsyslogd stops before anything can send to it: syslog over TCP has no acknowledgements,
    so a receiver killed while a batch sits in its own queue loses that batch, which no
    sender can tell (RELP exists for that). The test is about jitad's side.
    """
    from tests.conftest import ARTIFACTS

    env = dict(worker_env)
    env.update({
        "JITAD_SIEM_SOC_URL": rsyslog.url, "JITAD_SIEM_SOC_FORMAT": "cef", "JITAD_SIEM_SOC_CA_FILE": str(siem_certs.ca),
        "JITAD_SIEM_SWEEP_INTERVAL": "0.5", "JITAD_SIEM_RETRY_BASE_SECONDS": "0.2",
        "JITAD_SIEM_RETRY_MAX_SECONDS": "1", "JITAD_SIEM_ALERT_LAG_SECONDS": "2",
    })
    settings.JITAD_SIEM_DESTINATIONS = {NAME: {"url": rsyslog.url, "transport": "syslog", "format": "cef",
                                               "token": "", "ca_file": str(siem_certs.ca)}}
    rsyslog.clear()
    rsyslog.stop()
    with background_workers_stopped(celery_worker):
        worker = CeleryWorker(env, ARTIFACTS / "siem")
        worker.start()
        try:
            yield worker
        finally:
            worker.stop()
            rsyslog.start()  # running again for whatever comes next, whatever happened


def test_grant_and_revocation_complete_while_the_siem_is_down(siem_down_worker, rsyslog, make_user, make_target,
                                                               ldap_admin, samba_dc):
    """GIVEN rsyslogd stopped WHEN a grant is made and revoked THEN both complete in AD regardless, the
    destination's lag is alerted; WHEN rsyslogd comes back THEN the worker sends everything: deduped
    by seq, what rsyslog received is exactly the chain, and the lag alert is resolved."""
    try:
        target = make_target(mode="auto")
        alice = make_user("alice", groups=["admins"])
        req = services.request_create(requester=alice, target=target, duration_minutes=30, justification="siem")
        grant = wait_state(req.grant.id, Grant.State.ACTIVE)
        user_dn = ad_user_dn(ldap_admin, samba_dc.base_dn, alice.username)
        assert ad_is_member(ldap_admin, target.group_dn, user_dn)
        expire_now(grant.id)
        wait_state(grant.id, Grant.State.REVOKED)
        assert not ad_is_member(ldap_admin, target.group_dn, user_dn)
        wait_for(lambda: AlertCondition.objects.filter(key=f"siem.lag:{NAME}", resolved_at__isnull=True).exists(),
                 timeout=30, message="the SIEM lag alert")
        cursor = SiemCursor.objects.get(name=NAME)
        assert cursor.last_seq < head_seq() and cursor.attempts >= 1 and "syslog 127.0.0.1" in cursor.last_error
    finally:
        rsyslog.start()

    def caught_up():
        resolved = AlertCondition.objects.filter(key=f"siem.lag:{NAME}", resolved_at__isnull=False).exists()
        return resolved and SiemCursor.objects.get(name=NAME).last_seq == head_seq()

    wait_for(caught_up, timeout=60, message="the worker sending everything after the outage")
    chain = list(AuditEvent.objects.order_by("seq").values_list("seq", "hash", "prev_hash"))

    def missing():
        return {s for s, _, _ in chain} - {s for s, _, _ in syslog_seqs(rsyslog.received())}

    try:
        wait_for(lambda: not missing(), timeout=30, message="rsyslog writing every event")
    except AssertionError:
        gone = AuditEvent.objects.filter(seq__in=missing()).values_list("seq", "at", "action")
        raise AssertionError(f"never written by rsyslog: {list(gone)}; received {len(rsyslog.received())} lines")
    assert sorted(set(syslog_seqs(rsyslog.received()))) == chain
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"grant.active", "grant.revoked", "alert.raised"} <= actions
