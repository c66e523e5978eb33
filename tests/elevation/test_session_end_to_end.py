"""Issue 17 from end to end: an ephemeral grant on a WinRM server, what its account did there, and the proof.

A real Samba DC, the real worker and a WinRM test host whose Security log the test writes: the
grant makes its own account, the server logs that account's session, the grant ends (the
account is logged off and deleted), the account logs on again after the end, and then the
grant's page and its export show the session, and the security channel is told the
revocation did not take.
"""
import csv
import io
import json
from datetime import timedelta

import pytest
from django.urls import reverse

from jitad.elevation import services
from jitad.elevation.models import EvidencePull, Grant, SessionEvent, SessionSignal
from jitad.elevation.services.evidence import evidence_sweep
from tests.support.waiting import wait_for

from .helpers import ad_sid, expire_now, local_admin_entry, wait_state

pytestmark = pytest.mark.django_db(transaction=True)


def _event(record: int, at, sid: str, event_id: int = 4624, **fields) -> dict:
    return {"id": event_id, "at": at, "record": record, **fields,
            **({"TargetUserSid": sid, "SubjectUserSid": "S-1-5-18", "SubjectLogonId": "0x3e7"} if event_id == 4624
               else {"SubjectUserSid": sid})}


def test_an_ephemeral_grants_session_is_on_its_page_and_in_its_export_and_a_late_logon_is_alerted(
        live, make_host, make_target, make_user, ldap_admin, eph_ou, alert_sink, verified_client):
    host = make_host()
    target = make_target(winrm_url=host.url, ephemeral={"ou": eph_ou})
    group = target.group_dn.split(",", 1)[0].split("=", 1)[1]
    with host.lock:
        host.admins.append(local_admin_entry(ad_sid(ldap_admin, target.group_dn), f"WinNT://JITAD/{group}"))
    alice = make_user("alice", groups=["admins"])
    grant = wait_state(services.request_create(requester=alice, target=target, duration_minutes=30,
                                               justification="patch the server").grant.id, Grant.State.ACTIVE)
    sid, t0 = grant.account_sid, grant.activated_at
    assert sid and sid != grant.user_sid
    with host.lock:
        host.sessions[sid] = [3]
        host.security_log.extend([
            _event(500, t0 + timedelta(milliseconds=2), sid, LogonType="10", IpAddress="10.0.5.21",
                   TargetLogonId="0x5a1f0"),
            _event(501, t0 + timedelta(milliseconds=3), sid, event_id=4672, SubjectLogonId="0x5a1f0"),
            _event(502, t0 + timedelta(milliseconds=4), sid, event_id=4688, SubjectLogonId="0x5a1f0",
                   NewProcessName="C:\\Windows\\System32\\cmd.exe"),
        ])

    expire_now(grant.id)
    wait_state(grant.id, Grant.State.REVOKED)
    grant = wait_for(lambda: Grant.objects.filter(pk=grant.id, account=Grant.Account.DELETED).first(), timeout=60,
                     message="the ephemeral account logged off and deleted")
    assert sid not in host.sessions, "the account's session on the server was ended before it was deleted"
    with host.lock:  # the revocation "did not take": the account logs on again after the end
        host.security_log.append(_event(600, grant.expires_at + timedelta(milliseconds=300), sid, LogonType="3",
                                        IpAddress="10.9.9.9", TargetLogonId="0x6b002"))

    def collected():
        evidence_sweep()
        return EvidencePull.objects.filter(grant=grant, finished_at__isnull=False).exists()

    wait_for(collected, timeout=60, interval=0.3, message="the grant's evidence read to the end")
    assert list(SessionEvent.objects.filter(grant=grant).values_list("record", "event_id", "sid", "after_end")) == [
        (500, 4624, sid, False), (501, 4672, sid, False), (502, 4688, sid, False), (600, 4624, sid, True)]
    assert set(SessionSignal.objects.filter(grant=grant).values_list("kind", flat=True)) >= {
        SessionSignal.Kind.LOGON_AFTER_END}
    wait_for(lambda: any(f"after grant #{grant.pk} ended" in m.get("title", "") for m in alert_sink.messages),
             timeout=30, message="the late-logon alert at the webhook")

    client = verified_client(alice)
    page = client.get(reverse("elevation:grant", args=[grant.pk])).content.decode()
    for words in (grant.account_sam, "cmd.exe", "10.0.5.21", "10.9.9.9", "ephemeral account deleted"):
        assert words in page, words
    exported = json.loads(client.get(reverse("elevation:grant-evidence-json", args=[grant.pk])).content)
    sessions = [x["event"] for x in exported["timeline"] if x["kind"] == "session"]
    assert [e["record"] for e in sessions] == [500, 501, 502, 600] and sessions[-1]["after_end"] is True
    rows = list(csv.reader(io.StringIO(client.get(reverse("elevation:grant-evidence-csv", args=[grant.pk]))
                                       .content.decode())))
    assert any("cmd.exe" in cell for row in rows for cell in row)
