"""A grant's timeline (selectors/timeline.py): what it merges, in what order, how it caps, what it costs.

Database only: the grant comes from the request services (its on_commit never fires, so
nothing reaches AD); the engine's later steps are audit events dated here, and the Security
log events are rows made as the collection makes them.
"""
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jitad.elevation import services
from jitad.elevation.models import Grant
from jitad.elevation.selectors.timeline import grant_timeline, session_words

from .builders import policy, target, user
from .timeline_world import Kind, audit_step, decided_grant, session_event

pytestmark = pytest.mark.usefixtures("db")


@pytest.fixture
def world():
    srv = target("SRV01", hostname="srv01.jitad.test")
    policy(srv, max_extensions=2)
    return {"srv": srv, "alice": user("alice", "Ops"), "lead": user("lead", "Leads")}


@pytest.fixture
def grant(world):
    g = decided_grant(world["alice"], world["srv"], world["lead"])
    Grant.objects.filter(pk=g.pk).update(user_sid="S-1-5-21-1-2-3-1104")
    g.refresh_from_db()
    return g


def test_the_timeline_merges_request_decision_audit_steps_and_session_events_in_time_order(grant):
    """GIVEN a request, its approval, the engine's steps (audited) and the account's Security log events
    WHEN the timeline is read THEN each appears once, oldest first, in words people read."""
    audit_step(grant, "grant.active", minutes=1, host_check="the JIT group is in Administrators")
    session_event(grant, Kind.LOGON, minutes=2, record=10, logon_type=10, source="10.0.0.5", logon_id="0x3e7")
    session_event(grant, Kind.PROCESS, minutes=3, record=11, process="C:\\Windows\\System32\\cmd.exe")
    audit_step(grant, "grant.revoked", minutes=60, reason="expired", membership_removed=True)
    audit_step(grant, "grant.host_verified", minutes=61, reason="S-1-5-21-1-2-3-1104 is no longer an admin")

    t = grant_timeline(grant)
    whats = [(x.kind, x.what) for x in t.entries]
    assert whats[:2] == [("request", f"access requested (#{grant.request_id}, 1 h)"), ("approval", "approved")]
    assert ("audit", "AD membership added, verified on the server") in whats
    assert ("session", "logon (RemoteInteractive, from 10.0.0.5)") in whats
    assert ("session", "process C:\\Windows\\System32\\cmd.exe") in whats
    assert whats[-2:] == [("audit", "AD membership removed"), ("audit", "server confirmed the right gone")]
    assert [x.at for x in t.entries] == sorted(x.at for x in t.entries)
    request, approval = t.entries[0], t.entries[1]
    assert request.who == "alice" and request.detail == "ticket CHG-1: patching KB5031"
    assert approval.who == "lead" and approval.detail == "ok, go"
    logon = next(x for x in t.entries if x.kind == "session" and x.what.startswith("logon"))
    assert logon.who == "alice" and "on SRV01" in logon.detail and "0x3e7" in logon.detail and not logon.flagged
    # The services' own audit steps are there too, and the request's creation is not told twice.
    refs = [x.ref for x in t.entries]
    assert "grant.created" in refs and "grant.granting" in refs and "request.created" not in refs
    assert (t.counts.events, t.counts.logons, t.counts.processes, t.more) == (2, 1, 1, 0)


def test_any_grant_action_appears_with_its_reason_without_a_code_change(grant):
    audit_step(grant, "grant.account_created", minutes=1, reason="created in OU=JIT", account="jit-alice-7")
    audit_step(grant, "grant.something_new", minutes=2, reason="a step written after this page")
    entries = {x.ref: x for x in grant_timeline(grant).entries}
    assert entries["grant.account_created"].what == "ephemeral account created"
    assert entries["grant.account_created"].detail == "created in OU=JIT; account jit-alice-7"
    assert entries["grant.something_new"].what == "something new"
    assert entries["grant.something_new"].detail == "a step written after this page"


def test_flagged_events_after_the_end_and_a_cleared_log(grant):
    audit_step(grant, "grant.host_still_admin", minutes=61, reason="member of Domain Admins")
    session_event(grant, Kind.LOGON, minutes=90, record=20, logon_type=3, after_end=True)
    session_event(grant, Kind.LOG_CLEARED, minutes=91, record=21, sid="")
    t = grant_timeline(grant)
    flagged = [(x.kind, x.what) for x in t.entries if x.flagged]
    assert flagged == [("audit", "still admin on the server by another path"), ("session", "logon (Network)"),
                       ("session", "Security log cleared")]
    late = next(x for x in t.entries if x.ref == f"{Kind.LOGON}#20")
    assert "after the grant ended" in late.detail
    assert (t.counts.after_end, t.counts.cleared) == (1, 1)


def test_ephemeral_account_fields_show_when_no_audit_event_tells_of_them(grant):
    now = timezone.now()
    Grant.objects.filter(pk=grant.pk).update(account=Grant.Account.DELETED, account_sam="jit-a1b2",
                                             account_revealed_at=now + timedelta(minutes=1),
                                             account_deleted_at=now + timedelta(minutes=70))
    grant.refresh_from_db()
    audit_step(grant, "grant.account_revealed", minutes=1, actor="alice")
    entries = grant_timeline(grant).entries
    accounts = [(x.kind, x.what, x.detail) for x in entries if "ephemeral" in x.what]
    # The reveal is audited (shown once, from the audit); the deletion is known only from the field.
    assert accounts == [("audit", "ephemeral account's password shown", ""),
                        ("account", "ephemeral account deleted", "jit-a1b2")]


def test_an_extension_request_and_its_decision_are_on_the_grant_timeline(world, grant):
    Grant.objects.filter(pk=grant.pk).update(state=Grant.State.ACTIVE, claim_token=None, lease_until=None)
    grant.refresh_from_db()
    ext = services.request_extend(grant=grant, requester=world["alice"], duration_minutes=30, justification="not done")
    services.request_approve(request=ext, approver=world["lead"], comment="fine")
    whats = [(x.kind, x.what, x.detail) for x in grant_timeline(grant).entries]
    assert ("request", f"extension requested (#{ext.pk}, 30 min more)", "ticket CHG-1: not done") in whats
    assert ("approval", "approved", "fine") in whats
    assert any(k == "audit" and w == "extended" for k, w, _ in whats)


def test_session_events_are_capped_flagged_first_then_the_oldest(grant):
    for i in range(30):
        session_event(grant, Kind.PROCESS, minutes=i, record=100 + i, process=f"C:\\p{i}.exe")
    for i in range(3):
        session_event(grant, Kind.LOGON, minutes=100 + i, record=200 + i, logon_type=10, after_end=True)
    t = grant_timeline(grant, limit=10)
    shown = [x.event.record for x in t.entries if x.kind == "session"]
    assert sorted(shown) == [100, 101, 102, 103, 104, 105, 106, 200, 201, 202]
    assert (t.sessions_shown, t.counts.events, t.more) == (10, 33, 23)
    everything = grant_timeline(grant, limit=None)
    assert everything.sessions_shown == 33 and everything.more == 0


def _queries(grant, limit) -> int:
    fresh = Grant.objects.select_related("target", "request", "user").get(pk=grant.pk)
    with CaptureQueriesContext(connection) as q:
        grant_timeline(fresh, limit=limit)
    return len(q)


def test_the_timeline_costs_the_same_queries_for_three_events_or_three_hundred(grant):
    """GIVEN a grant with few records, then many more (audit steps, approvals' stages, session events past the cap)
    WHEN the timeline is read THEN the number of queries does not change."""
    for i in range(3):
        session_event(grant, Kind.LOGON, minutes=i, record=i, logon_type=2)
    few, few_all = _queries(grant, 50), _queries(grant, None)
    for i in range(300):
        session_event(grant, Kind.PROCESS, minutes=10 + i, record=1000 + i, process="x.exe", after_end=i % 7 == 0)
    for i in range(20):
        audit_step(grant, "grant.host_check_failed", minutes=i, reason="timeout")
    assert _queries(grant, 50) == few + 1  # past the cap: flagged ones, then the rest (one more query)
    assert _queries(grant, 50) <= 7
    assert _queries(grant, None) == few_all


def test_session_words_for_every_kind():
    from jitad.elevation.models import SessionEvent

    def words(event_id, **fields):
        return session_words(SessionEvent(event_id=event_id, **fields))

    assert words(Kind.LOGON, logon_type=10, source="10.0.0.5") == "logon (RemoteInteractive, from 10.0.0.5)"
    assert words(Kind.LOGON, logon_type=99, source="-") == "logon (type 99)"
    assert words(Kind.LOGOFF, logon_type=3) == "logoff (Network)"
    assert words(Kind.PROCESS, process="C:\\Windows\\System32\\cmd.exe") == "process C:\\Windows\\System32\\cmd.exe"
    assert words(Kind.LOG_CLEARED) == "Security log cleared"
    assert words(Kind.GROUP_MEMBER_ADDED, member="S-1-5-21-9", target_sid="S-1-5-32-544") == \
        "S-1-5-21-9 added to local group S-1-5-32-544"
    assert words(Kind.ACCOUNT_CREATED, target_sid="S-1-5-21-7-1001") == "local account created S-1-5-21-7-1001"
    assert words(Kind.SPECIAL_PRIVILEGES) == "admin privileges given to the logon"


def test_times_in_an_audit_event_read_as_times(grant):
    created = next(x for x in grant_timeline(grant).entries if x.ref == "grant.created")
    assert re.fullmatch(r"until \d{4}-\d\d-\d\d \d\d:\d\d [A-Z]+", created.detail), created.detail
