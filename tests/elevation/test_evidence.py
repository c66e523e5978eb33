"""Session evidence end to end: Samba DC, the real worker, WinRM test hosts whose Security log the test writes.

The test runs the evidence sweep as beat would (JITAD_EVIDENCE_SWEEP_INTERVAL is 0 in tests, so no
other test's server sees these reads); the worker reads the server over WinRM and records what it
says. In tests a grant's server is read every second and for 3 s after its end, 5 events per call,
40 kept per grant.
"""
from datetime import timedelta

import pytest
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.models import EvidencePull, Grant, SessionEvent, SessionSignal, Target
from jitad.elevation.services.evidence import evidence_sweep
from jitad.notifications.models import DigestEntry
from tests.support.waiting import wait_for

from .helpers import ad_sid, expire_now, local_admin_entry, wait_state

pytestmark = pytest.mark.django_db(transaction=True)
OTHER = "S-1-5-21-7-8-9-2002"


@pytest.fixture
def grant_on_server(live, make_host, make_target, make_user, ldap_admin):
    """An active grant on a server that shows its JIT group: ``host, target, grant = grant_on_server()``."""

    def make(**target_fields):
        host = make_host()
        target = make_target(winrm_url=host.url)
        if target_fields:
            Target.objects.filter(pk=target.pk).update(**target_fields)
        name = target.group_dn.split(",", 1)[0].split("=", 1)[1]
        with host.lock:
            host.admins.append(local_admin_entry(ad_sid(ldap_admin, target.group_dn), f"WinNT://JITAD/{name}"))
        user = make_user("alice", groups=["admins"])
        req = services.request_create(requester=user, target=target, duration_minutes=30, justification="patching")
        return host, target, wait_state(req.grant.id, Grant.State.ACTIVE)

    yield make
    # No read in flight when the database is flushed under the worker.
    wait_for(lambda: not EvidencePull.objects.filter(lease_until__gt=timezone.now()).exists(), timeout=15)


def _log(host, *events: dict) -> None:
    with host.lock:
        host.security_log.extend(events)


def _logon(record: int, at, sid: str, source: str = "10.0.0.5", logon_type: str = "10") -> dict:
    return {"id": 4624, "at": at, "record": record, "SubjectUserSid": "S-1-5-18", "TargetUserSid": sid,
            "LogonType": logon_type, "IpAddress": source, "TargetLogonId": f"0x{record:x}", "SubjectLogonId": "0x3e7"}


def _swept_until(condition, message: str, timeout: float = 30):
    """Run the evidence sweep (as beat would) until ``condition()`` holds."""

    def step():
        evidence_sweep()
        return condition()

    return wait_for(step, timeout=timeout, interval=0.3, message=message)


def _reads(host) -> list:
    return [c for c in list(host.calls) if c.script == "security_events"]


def _alerted(alert_sink, text: str) -> dict:
    return wait_for(lambda: next((m for m in alert_sink.messages if text in m.get("title", "")), None), timeout=30,
                    message=f"an alert titled ...{text}...")


def test_an_active_grants_events_are_collected_as_the_log_holds_them_and_a_reread_stores_nothing_twice(
        grant_on_server):
    """GIVEN an active grant and its server's log: the user's logon, privileged logon, process and logoff,
    and another person's logon WHEN the evidence sweep runs THEN the grant's pull reads the server and
    stores exactly the user's events, field for field, each once in the audit chain (the SIEM stream);
    WHEN it is read again THEN nothing is stored twice."""
    host, target, grant = grant_on_server()
    t = grant.created_at
    sid = grant.user_sid
    _log(host,
         _logon(100, t + timedelta(milliseconds=10), sid),
         {"id": 4672, "at": t + timedelta(milliseconds=11), "record": 101, "SubjectUserSid": sid,
          "SubjectLogonId": "0x64"},
         {"id": 4688, "at": t + timedelta(milliseconds=20), "record": 102, "SubjectUserSid": sid,
          "SubjectLogonId": "0x64", "NewProcessName": "C:\\Windows\\System32\\cmd.exe", "TargetUserSid": "S-1-0-0"},
         _logon(103, t + timedelta(milliseconds=25), OTHER),
         {"id": 4634, "at": t + timedelta(milliseconds=30), "record": 104, "TargetUserSid": sid,
          "TargetLogonId": "0x64", "LogonType": "10"})

    pull = _swept_until(lambda: EvidencePull.objects.filter(grant=grant, stored=4).first(), "the events stored")
    events = list(SessionEvent.objects.filter(grant=grant).order_by("record"))
    assert [(e.record, e.event_id) for e in events] == [(100, 4624), (101, 4672), (102, 4688), (104, 4634)]
    first = events[0]
    assert (first.host, first.sid, first.logon_type, first.source, first.logon_id, first.after_end) == (
        target.name, sid, 10, "10.0.0.5", "0x64", False)
    assert first.at == t + timedelta(milliseconds=10)
    assert events[2].process == "C:\\Windows\\System32\\cmd.exe"
    assert _reads(host) and _reads(host)[0].script == "security_events"
    assert pull.finished_at is None and not pull.cut and pull.read_through > grant.created_at
    siem = AuditEvent.objects.filter(action="grant.session_event", object_id=str(grant.pk))
    assert sorted(e.data["record"] for e in siem) == [100, 101, 102, 104]
    assert siem.get(data__record=102).data["process"] == "C:\\Windows\\System32\\cmd.exe"
    assert not SessionSignal.objects.filter(grant=grant).exists()

    reads = pull.reads
    _swept_until(lambda: EvidencePull.objects.filter(grant=grant, reads__gt=reads).exists(), "a second read")
    assert SessionEvent.objects.filter(grant=grant).count() == 4
    assert AuditEvent.objects.filter(action="grant.session_event", object_id=str(grant.pk)).count() == 4
    assert EvidencePull.objects.get(grant=grant).stored == 4


def test_a_logon_after_the_grant_ended_raises_a_critical_alert_once(grant_on_server, alert_sink):
    """GIVEN a grant that expired and was revoked WHEN its server's log shows the user logging on after
    the end THEN the event is stored as after the end, a 'revocation did not take' signal is recorded
    once, audited, and the security channel is alerted; the final read finishes the pull."""
    host, target, grant = grant_on_server()
    _log(host, _logon(100, grant.created_at + timedelta(milliseconds=5), grant.user_sid))
    expire_now(grant.id)
    grant = wait_state(grant.id, Grant.State.REVOKED)
    after = grant.expires_at + timedelta(milliseconds=300)
    _log(host, _logon(200, after, grant.user_sid, source="10.0.0.9", logon_type="3"))

    pull = _swept_until(lambda: EvidencePull.objects.filter(grant=grant, finished_at__isnull=False).first(),
                        "the final read")
    event = SessionEvent.objects.get(grant=grant, record=200)
    assert event.after_end and not SessionEvent.objects.get(grant=grant, record=100).after_end
    signal = SessionSignal.objects.get(grant=grant)
    assert (signal.kind, signal.event_id, signal.record, signal.severity) == (
        SessionSignal.Kind.LOGON_AFTER_END, event.pk, 200, "critical")
    assert "the revocation did not take" in signal.detail
    assert AuditEvent.objects.filter(action="grant.session_signal", object_id=str(grant.pk),
                                     after="logon_after_end").count() == 1
    alert = _alerted(alert_sink, "after grant #%d ended" % grant.pk)
    assert "10.0.0.9" in alert["message"]
    assert not pull.cut and not pull.gave_up
    assert AuditEvent.objects.filter(action="grant.evidence_finished", object_id=str(grant.pk)).count() == 1


def test_the_security_log_cleared_during_a_grant_raises_a_critical_alert(grant_on_server, alert_sink):
    host, target, grant = grant_on_server()
    _log(host, {"id": 1102, "at": grant.created_at + timedelta(milliseconds=50), "record": 300,
                "SubjectUserSid": "S-1-5-21-7-8-9-2003", "SubjectLogonId": "0x2d0"})
    signal = _swept_until(lambda: SessionSignal.objects.filter(grant=grant, kind=SessionSignal.Kind.LOG_CLEARED).first(),
                          "the log-cleared signal")
    assert signal.severity == "critical" and signal.record == 300 and "during the grant" in signal.detail
    assert signal.event.event_id == 1102
    _alerted(alert_sink, f"The Security log of {target.name} was cleared")


def test_a_grant_never_used_is_signalled_when_its_final_read_found_no_logon(grant_on_server):
    """GIVEN a grant whose server shows no logon of the user (only a process of someone else) WHEN it ends
    and its evidence window is over THEN the final read records the 'never used' signal, low severity,
    sent to the digest (a candidate to stop granting), not as an alert of its own."""
    host, target, grant = grant_on_server()
    _log(host, _logon(400, grant.created_at + timedelta(milliseconds=5), OTHER))
    expire_now(grant.id)
    wait_state(grant.id, Grant.State.REVOKED)
    signal = _swept_until(lambda: SessionSignal.objects.filter(grant=grant, kind=SessionSignal.Kind.UNUSED).first(),
                          "the never-used signal")
    assert signal.severity == "info" and signal.record == 0 and signal.event is None
    assert EvidencePull.objects.get(grant=grant).finished_at is not None
    assert DigestEntry.objects.filter(event="grant.session_unused", object_id=str(grant.pk)).exists()
    assert SessionEvent.objects.filter(grant=grant).count() == 0


def test_a_logon_from_outside_the_targets_networks_is_a_warning(grant_on_server, alert_sink):
    host, target, grant = grant_on_server(logon_sources=["10.1.0.0/16"])
    t = grant.created_at
    _log(host, _logon(500, t + timedelta(milliseconds=5), grant.user_sid, source="10.1.2.3"),
         _logon(501, t + timedelta(milliseconds=6), grant.user_sid, source="192.0.2.7"),
         _logon(502, t + timedelta(milliseconds=7), grant.user_sid, source="127.0.0.1", logon_type="2"))
    signal = _swept_until(
        lambda: SessionSignal.objects.filter(grant=grant, kind=SessionSignal.Kind.UNEXPECTED_SOURCE).first(),
        "the unexpected-source signal")
    assert EvidencePull.objects.get(grant=grant).stored == 3
    assert list(SessionSignal.objects.filter(grant=grant).values_list("record", flat=True)) == [501]
    assert signal.severity == "warning" and "192.0.2.7" in signal.detail
    _alerted(alert_sink, f"logged on to {target.name} from an unexpected address")


def test_a_busy_log_is_read_in_bounded_calls_and_the_per_grant_cap_is_recorded(grant_on_server):
    """GIVEN 45 events of the user (5 per call, 40 kept per grant) WHEN the grant's server is read THEN it
    takes many bounded calls, 40 events are stored, and the pull records that it was cut and why."""
    host, target, grant = grant_on_server()
    _log(host, *[{"id": 4688, "at": grant.created_at + timedelta(milliseconds=i), "record": 1000 + i,
                  "SubjectUserSid": grant.user_sid, "NewProcessName": f"C:\\tools\\t{i}.exe"} for i in range(45)])
    pull = _swept_until(lambda: EvidencePull.objects.filter(grant=grant, cut=True).first(), "the cap to be reached")
    assert pull.stored == 40 == SessionEvent.objects.filter(grant=grant).count()
    assert sorted(SessionEvent.objects.filter(grant=grant).values_list("record", flat=True)) == list(range(1000, 1040))
    assert "past the cap of 40" in pull.cut_detail
    assert len(_reads(host)) >= 9
    assert AuditEvent.objects.filter(action="grant.evidence_cut", object_id=str(grant.pk)).exists()


def test_a_server_that_does_not_answer_is_retried_then_given_up_and_alerted_once(grant_on_server, alert_sink):
    """GIVEN a server that stops answering after the grant went active WHEN its evidence is read THEN each
    failure is recorded and retried with backoff; once the attempts ran out and the evidence window is
    over, the pull is given up and alerted once. The revocation is not held up by it."""
    host, target, grant = grant_on_server()
    host.stop()
    expire_now(grant.id)
    pull = _swept_until(lambda: EvidencePull.objects.filter(grant=grant, gave_up=True).first(), "the give-up",
                        timeout=60)
    assert pull.finished_at is not None and pull.attempts >= 3 and "refused" in pull.last_error.lower()
    assert Grant.objects.get(pk=grant.pk).state == Grant.State.REVOKED
    actions = list(AuditEvent.objects.filter(object_id=str(grant.pk), action__startswith="grant.evidence_")
                   .values_list("action", flat=True))
    assert actions.count("grant.evidence_failed") >= 2 and actions.count("grant.evidence_gave_up") == 1
    _alerted(alert_sink, f"Session evidence of grant #{grant.pk} could not be read")
    evidence_sweep()
    assert EvidencePull.objects.get(pk=pull.pk).attempts == pull.attempts  # finished: never asked again


def test_one_server_is_read_once_for_all_its_grants_and_the_ephemeral_accounts_events_are_the_grants(
        live, make_host, make_target, make_user, ldap_admin):
    """GIVEN two people's active grants on one server, one of them with an ephemeral account WHEN the
    evidence sweep runs THEN the server is asked once for the three SIDs together, and each grant keeps
    its own people's events (the ephemeral account's included) and the log clearing both windows hold."""
    host = make_host()
    target = make_target(winrm_url=host.url)
    name = target.group_dn.split(",", 1)[0].split("=", 1)[1]
    with host.lock:
        host.admins.append(local_admin_entry(ad_sid(ldap_admin, target.group_dn), f"WinNT://JITAD/{name}"))
    grants = []
    for who in ("alice", "bob"):
        user = make_user(who, groups=["admins"])
        req = services.request_create(requester=user, target=target, duration_minutes=30, justification="patching")
        grants.append(wait_state(req.grant.id, Grant.State.ACTIVE))
    alice, bob = grants
    ephemeral = "S-1-5-21-7-8-9-3001"
    Grant.objects.filter(pk=alice.pk).update(account=Grant.Account.CREATED, account_sid=ephemeral)
    t = bob.created_at
    _log(host, _logon(600, t + timedelta(milliseconds=5), alice.user_sid),
         _logon(601, t + timedelta(milliseconds=6), ephemeral),
         _logon(602, t + timedelta(milliseconds=7), bob.user_sid),
         {"id": 1102, "at": t + timedelta(milliseconds=8), "record": 603, "SubjectUserSid": OTHER})

    evidence_sweep()
    wait_for(lambda: EvidencePull.objects.filter(grant__in=grants, reads__gt=0).count() == 2, timeout=30,
             message="both grants read")
    first = _reads(host)[0]
    assert sorted(first.input["sids"]) == sorted([alice.user_sid, ephemeral, bob.user_sid])
    assert sorted(SessionEvent.objects.filter(grant=alice).values_list("record", "sid")) == [
        (600, alice.user_sid), (601, ephemeral), (603, OTHER)]
    assert sorted(SessionEvent.objects.filter(grant=bob).values_list("record", flat=True)) == [602, 603]
