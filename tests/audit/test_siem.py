"""The SIEM outbox against real receivers: Debian's rsyslogd over TLS, and a local HTTPS HEC endpoint.

The sends run in this process (``outbox.siem_send``, as the worker's task calls it); the
worker's own path is in test_siem_worker.py.
"""
import json

import pytest
from django.db import transaction

from jitad.audit.models import AuditEvent, SiemCursor
from jitad.audit.selectors import siem_destinations
from jitad.audit.services import AuditEntry, audit_record_many
from jitad.audit.siem import outbox
from jitad.notifications.models import AlertCondition

from .conftest import syslog_seqs

pytestmark = pytest.mark.django_db


def destination(url, *, fmt, ca, token=""):
    return {"url": url, "transport": "syslog" if url.startswith("syslog") else "https", "format": fmt,
            "token": token, "ca_file": str(ca)}


def record(n: int, *, reason: str = "step") -> list[AuditEvent]:
    with transaction.atomic():
        return audit_record_many([AuditEntry("alice", "test.step", "thing", str(i), "a", "b", f"{reason} {i}",
                                             {"i": i}) for i in range(n)])


def chain() -> list[tuple[int, str, str]]:
    return list(AuditEvent.objects.order_by("seq").values_list("seq", "hash", "prev_hash"))


def due_now():
    """Skip the backoff a failed attempt scheduled (the test stands in for the time passing)."""
    SiemCursor.objects.update(next_attempt_at=None)


def test_syslog_cef_in_order_with_seq_and_hash(settings, rsyslog, siem_certs):
    """GIVEN rsyslogd with TLS and a CEF destination WHEN 7 events (one with characters CEF and
    RFC 5424 must escape) are sent THEN rsyslog receives them in seq order, each line carrying
    seq, hash and prev_hash as structured data, matching the chain."""
    settings.JITAD_SIEM_DESTINATIONS = {"syslog": destination(rsyslog.url, fmt="cef", ca=siem_certs.ca)}
    settings.JITAD_SIEM_BATCH = 3
    rsyslog.clear()
    record(6)
    with transaction.atomic():
        audit_record_many([AuditEntry("bob", "test.odd", "thing", "x|y", reason='a=b\\c\nnext "quoted" ]')])
    assert outbox.siem_send() == 7
    from tests.support.waiting import wait_for

    lines = wait_for(lambda: len(rsyslog.received()) >= 7 and rsyslog.received(), message="7 syslog lines")
    assert syslog_seqs(lines) == chain()
    assert all(" jitad - test." in line and "CEF:0|jitad|jitad|1|test." in line for line in lines)
    assert "msg=a\\=b\\\\c\\nnext \"quoted\" ]" in lines[-1]
    assert "CEF:0|jitad|jitad|1|test.odd|test.odd thing:x\\|y|3|" in lines[-1]
    assert SiemCursor.objects.get(name="syslog").last_seq == 7


def test_syslog_json_payload(settings, rsyslog, siem_certs):
    settings.JITAD_SIEM_DESTINATIONS = {"syslog-json": destination(rsyslog.url, fmt="json", ca=siem_certs.ca)}
    rsyslog.clear()
    record(2)
    outbox.siem_send()
    from tests.support.waiting import wait_for

    lines = wait_for(lambda: len(rsyslog.received()) >= 2 and rsyslog.received(), message="2 syslog lines")
    body = json.loads(lines[0].split("] ", 1)[1].lstrip("\ufeff"))
    first = AuditEvent.objects.get(seq=1)
    assert (body["seq"], body["hash"], body["prev_hash"], body["actor"]) == (1, first.hash, first.prev_hash, "alice")


def test_hec_batches_with_token_and_ocsf(settings, hec, siem_certs):
    """GIVEN a HEC endpoint WHEN events go to a HEC and an OCSF destination THEN each arrives once in seq
    order, with the token in the Authorization header, and the OCSF records carry class, actor and
    the chain in metadata."""
    settings.JITAD_SIEM_DESTINATIONS = {
        "splunk": destination(hec.url, fmt="hec", ca=siem_certs.ca, token=hec.token),
        "lake": destination(hec.url, fmt="ocsf", ca=siem_certs.ca, token=hec.token),
    }
    settings.JITAD_SIEM_BATCH = 2
    hec.events.clear()
    record(5)
    assert outbox.siem_send() == 10
    plain = [e["event"] for e in hec.events if e["sourcetype"] == "jitad:audit"]
    ocsf = [e["event"] for e in hec.events if e["sourcetype"] == "ocsf:jitad"]
    assert [(e["seq"], e["hash"], e["prev_hash"]) for e in plain] == chain()
    assert [(e["metadata"]["sequence"], e["metadata"]["extension"]["hash"]) for e in ocsf] == [c[:2] for c in chain()]
    assert ocsf[0]["class_uid"] == 3004 and ocsf[0]["actor"]["user"]["name"] == "alice"
    assert set(hec.auth_seen[-1:]) == {f"Splunk {hec.token}"}
    rows = {d["name"]: d for d in siem_destinations()}
    assert rows["splunk"]["lag_events"] == 0 and rows["splunk"]["endpoint"].startswith("127.0.0.1:")
    assert "token" not in json.dumps(rows, default=str).lower()


def test_receiver_down_then_back_nothing_lost(settings, tmp_path, siem_certs, rsyslog):
    """GIVEN rsyslogd stopped WHEN events are recorded and sends fail THEN the cursor stays, the failure
    is scheduled for a retry (never given up); once rsyslogd is back every event arrives, and
    dedupe by seq gives exactly the chain."""
    settings.JITAD_SIEM_DESTINATIONS = {"syslog": destination(rsyslog.url, fmt="cef", ca=siem_certs.ca)}
    settings.JITAD_SIEM_BATCH = 4
    rsyslog.clear()
    record(3)
    outbox.siem_send()
    rsyslog.stop()
    try:
        record(6)
        for _ in range(3):
            due_now()
            assert outbox.siem_send() == 0
        cursor = SiemCursor.objects.get(name="syslog")
        assert cursor.last_seq == 3 and cursor.attempts == 3 and cursor.next_attempt_at is not None
        assert "syslog 127.0.0.1" in cursor.last_error
        assert siem_destinations()[0]["lag_events"] == 6
    finally:
        rsyslog.start()
    due_now()
    assert outbox.siem_send() == 6
    from tests.support.waiting import wait_for

    wait_for(lambda: len({s for s, _, _ in syslog_seqs(rsyslog.received())}) >= 9, message="all 9 events")
    received = syslog_seqs(rsyslog.received())
    assert sorted(set(received)) == chain()
    assert [s for s, _, _ in received] == sorted(s for s, _, _ in received)  # in order, repeats adjacent
    assert SiemCursor.objects.get(name="syslog").attempts == 0


def test_bad_certificate_refused_and_alerted(settings, hec, siem_certs, other_ca):
    """GIVEN a HEC destination whose CA did not sign the receiver's certificate WHEN sending THEN nothing
    is posted, the refusal is alerted (once, in the audit chain too) and retried for ever; with the
    right CA the events go and the alert is resolved."""
    settings.JITAD_SIEM_DESTINATIONS = {"splunk": destination(hec.url, fmt="hec", ca=other_ca.ca, token=hec.token)}
    hec.events.clear()
    before = hec.requests
    record(2)
    for _ in range(2):
        due_now()
        assert outbox.siem_send() == 0
    assert hec.requests == before
    cursor = SiemCursor.objects.get(name="splunk")
    assert "certificate refused" in cursor.last_error and cursor.next_attempt_at is not None
    assert AlertCondition.objects.get(key="siem.rejected:splunk").is_open
    assert AuditEvent.objects.filter(action="alert.raised", object_id="condition:siem.rejected:splunk").count() == 1
    settings.JITAD_SIEM_DESTINATIONS = {"splunk": destination(hec.url, fmt="hec", ca=siem_certs.ca, token=hec.token)}
    due_now()
    outbox.siem_send()
    assert not AlertCondition.objects.get(key="siem.rejected:splunk").is_open
    assert [e["event"]["seq"] for e in hec.events] == [s for s, _, _ in chain()][:len(hec.events)]
    assert SiemCursor.objects.get(name="splunk").last_seq == AuditEvent.objects.count()


def test_wrong_token_refused(settings, hec, siem_certs):
    settings.JITAD_SIEM_DESTINATIONS = {"splunk": destination(hec.url, fmt="hec", ca=siem_certs.ca, token="wrong")}
    record(1)
    outbox.siem_send()
    cursor = SiemCursor.objects.get(name="splunk")
    assert "HTTP 401" in cursor.last_error and "wrong" not in cursor.last_error
    assert AlertCondition.objects.get(key="siem.rejected:splunk").is_open


def test_lag_alerted_then_resolved(settings, hec, siem_certs):
    """GIVEN the HEC endpoint busy (503) WHEN the oldest unsent event is older than the limit THEN a lag
    alert is raised (once); once caught up it is resolved."""
    settings.JITAD_SIEM_DESTINATIONS = {"splunk": destination(hec.url, fmt="hec", ca=siem_certs.ca, token=hec.token)}
    settings.JITAD_SIEM_ALERT_LAG_SECONDS = 0
    hec.busy = True
    try:
        record(2)
        outbox.siem_send()
        assert "HTTP 503" in SiemCursor.objects.get(name="splunk").last_error
        assert outbox.siem_lag_check() == ["splunk"]
        assert outbox.siem_lag_check() == ["splunk"]
        condition = AlertCondition.objects.get(key="siem.lag:splunk")
        assert condition.is_open and condition.occurrences == 2
        assert not AlertCondition.objects.filter(key="siem.rejected:splunk").exists()  # busy is not a refusal
    finally:
        hec.busy = False
    due_now()
    outbox.siem_send()
    assert outbox.siem_lag_check() == []
    assert not AlertCondition.objects.get(key="siem.lag:splunk").is_open
    assert AuditEvent.objects.filter(action="alert.raised", reason__startswith="Resolved: SIEM").count() == 1


def test_one_wake_up_per_transaction(settings, hec, siem_certs, django_capture_on_commit_callbacks):
    """GIVEN a destination WHEN one transaction appends events in three calls THEN one wake-up is queued
    for its commit (not one per event); without destinations, none."""
    from jitad.audit.services import _wake_siem

    settings.JITAD_SIEM_DESTINATIONS = {"splunk": destination(hec.url, fmt="hec", ca=siem_certs.ca, token=hec.token)}
    with django_capture_on_commit_callbacks() as callbacks:
        for _ in range(3):
            record(2)
    assert [c for c in callbacks if c is _wake_siem] == [_wake_siem]
    settings.JITAD_SIEM_DESTINATIONS = {}
    with django_capture_on_commit_callbacks() as callbacks:
        record(2)
    assert _wake_siem not in callbacks


def test_a_claimed_cursor_is_left_to_its_holder(settings, hec, siem_certs):
    """GIVEN another process holds the destination's cursor WHEN a second send runs THEN it sends nothing
    (never the same batch from two places at once); once released it goes."""
    from jitad.engine import claims

    settings.JITAD_SIEM_DESTINATIONS = {"splunk": destination(hec.url, fmt="hec", ca=siem_certs.ca, token=hec.token)}
    hec.events.clear()
    record(3)
    outbox.cursors_ensure()
    token, rows = claims.claim(SiemCursor.objects.filter(name="splunk"), limit=1)
    assert rows and outbox.siem_send() == 0 and hec.events == []
    claims.release(SiemCursor, [rows[0].pk], token)
    assert outbox.siem_send() == 3
