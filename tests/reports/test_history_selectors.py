"""Access history (jitad.reports.history.selectors.access_at) over the records each source leaves behind."""
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.audit.services import AuditEntry, audit_record_many
from jitad.elevation.models import Grant, HeldRemoval, Target
from jitad.reports.history.rows import Source
from jitad.reports.history.selectors import access_at

from .history_builders import at, checkout, finding, grant, policy, scan, sealed, target, user

pytestmark = pytest.mark.usefixtures("db")


@pytest.fixture
def srv():
    t = target("SRV01")
    policy(t)
    return t


def test_a_grant_that_ended_long_ago_keeps_its_approvers_justification_and_ticket(srv):
    """GIVEN a grant on SRV01 approved by two people, extended once, revoked a year ago
    WHEN the history is asked for a moment inside it
    THEN it appears with the request, both approvers with their comments, the justification, the ticket and the end."""
    alice, bob, carol = user("alice", "Ops"), user("bob", "Leads"), user("carol", "Leads")
    g = grant(srv, alice, start=at(days=-365), end=at(days=-365, hours=2), approvers=[bob, carol],
              justification="rotate the backup agent", ticket="CHG-4711", extensions=["one more hour please"])
    rows = access_at(target=srv, start=at(days=-365, hours=1))
    assert len(rows) == 1
    h = rows[0]
    assert (h.source, h.target, h.principal, h.person) == (Source.GRANT, "SRV01", "alice", "alice")
    assert (h.start, h.end, h.ongoing) == (g.activated_at, g.revoked_at, False)
    assert "expired" in h.ended.lower()
    e = h.evidence
    assert (e["grant_id"], e["request_id"], e["requester"]) == (g.pk, g.request_id, "alice")
    assert (e["justification"], e["ticket"], e["state"]) == ("rotate the backup agent", "CHG-4711", "revoked")
    assert [(a["approver"], a["decision"], a["comment"]) for a in e["approvals"]] == [
        ("bob", "approve", "ok 0"), ("carol", "approve", "ok 1")]
    assert [x["justification"] for x in e["extensions"]] == ["one more hour please"]
    assert [a["approver"] for a in e["extensions"][0]["approvals"]] == ["bob", "carol"]


def test_boundaries_count_at_both_ends(srv):
    """GIVEN a grant held 10:00 → 12:00
    WHEN asked at exactly 10:00, exactly 12:00, a microsecond before and after
    THEN the two boundaries include it and the two outside moments do not."""
    g = grant(srv, user("alice"), start=at(0), end=at(2))
    assert [h.record_id for h in access_at(target=srv, start=at(0))] == [g.pk]
    assert [h.record_id for h in access_at(target=srv, start=at(2))] == [g.pk]
    assert access_at(target=srv, start=at(0) - timedelta(microseconds=1)) == []
    assert access_at(target=srv, start=at(2) + timedelta(microseconds=1)) == []
    # A range that only touches the end still overlaps it.
    assert [h.record_id for h in access_at(target=srv, start=at(2), end=at(5))] == [g.pk]


def test_overlapping_grants_of_several_people_all_appear_oldest_first(srv):
    alice, bob, carol = user("alice"), user("bob"), user("carol")
    g1 = grant(srv, alice, start=at(0), end=at(3))
    g2 = grant(srv, bob, start=at(1), end=at(2))
    g3 = grant(srv, alice, start=at(2.5), end=at(4))  # alice again, overlapping her first grant
    grant(srv, carol, start=at(5), end=at(6))  # after the window
    assert [h.record_id for h in access_at(target=srv, start=at(1.5))] == [g1.pk, g2.pk]
    assert [h.record_id for h in access_at(target=srv, start=at(1), end=at(3))] == [g1.pk, g2.pk, g3.pk]


def test_a_still_active_grant_is_held_until_now_and_beyond_its_expiry_until_revoked(srv):
    """GIVEN an active grant whose expiry passed (the sweeper has not removed it yet) and one revoking
    THEN both are still held now: the membership exists until revocation is recorded."""
    alice, bob = user("alice"), user("bob")
    live = grant(srv, alice, start=timezone.now() - timedelta(hours=3))
    revoking = grant(srv, bob, start=timezone.now() - timedelta(hours=2), state=Grant.State.REVOKING)
    rows = access_at(target=srv, start=timezone.now())
    assert [(h.record_id, h.ongoing) for h in rows] == [(live.pk, True), (revoking.pk, True)]
    assert rows[0].end is None and "active" in rows[0].ended


def test_an_approved_grant_not_yet_in_ad_is_not_a_holding(srv):
    grant(srv, user("alice"), start=at(0), state=Grant.State.APPROVED, activated=False)
    assert access_at(target=srv, start=at(0), end=at(5)) == []


def test_person_and_target_queries(srv):
    """GIVEN alice on SRV01 and SRV02, bob on SRV01
    THEN by person: alice's two; by target: SRV01's two; both: alice on SRV01 only."""
    srv2 = target("SRV02")
    policy(srv2, name="p2")
    alice, bob = user("alice"), user("bob")
    a1 = grant(srv, alice, start=at(0), end=at(2))
    a2 = grant(srv2, alice, start=at(1), end=at(3))
    b1 = grant(srv, bob, start=at(1), end=at(2))
    by_person = access_at(person=alice, start=at(0), end=at(4))
    assert [(h.target, h.record_id) for h in by_person] == [("SRV01", a1.pk), ("SRV02", a2.pk)]
    assert [h.record_id for h in access_at(target=srv, start=at(1.5))] == [a1.pk, b1.pk]
    assert [h.record_id for h in access_at(target=srv, person=alice, start=at(0), end=at(4))] == [a1.pk]


def test_standing_member_with_the_scans_that_saw_it(srv):
    """GIVEN scans at 10:00, 11:00, 12:00 and 13:00; a standing admin first seen at 11:00, last at 12:00, gone at 13:00
    WHEN asked at 12:30 and at 13:30
    THEN at 12:30 it is there with the first, last and resolving scans named; at 13:30 it is not."""
    scans = [scan(srv, at(h)) for h in (0, 1, 2, 3)]
    f = finding(srv, "S-1-5-21-1-2-3-5555", first=at(1), last=at(2), resolved=at(3))
    rows = access_at(target=srv, start=at(2.5))
    assert [(h.source, h.principal, h.record_id) for h in rows] == [(Source.STANDING, "JITAD\\svc-backup", f.pk)]
    e = rows[0].evidence
    assert (e["first_scan_id"], e["last_scan_id"], e["resolving_scan_id"]) == (scans[1].pk, scans[2].pk, scans[3].pk)
    assert (rows[0].start, rows[0].end) == (at(1), at(3))
    assert access_at(target=srv, start=at(3.5)) == []


def test_a_standing_member_still_seen_is_ongoing_and_found_by_person_sid(srv):
    alice = user("alice")
    g = grant(srv, alice, start=at(-10), end=at(-9))  # gives alice's SID to the records
    scan(srv, at(0))
    finding(srv, g.user_sid, first=at(0), last=at(0), name="JITAD\\alice")
    rows = access_at(person=alice, start=timezone.now())
    assert [(h.source, h.ongoing) for h in rows] == [(Source.STANDING, True)]


def _scan_audit(srv, action, sid, when):
    with transaction.atomic():
        audit_record_many([AuditEntry(actor="system:scan", action=action, object_type="target", object_id=str(srv.pk),
                                      reason="JITAD\\svc-old", data={"target": srv.name, "sid": sid})])
    AuditEvent.objects.filter(action=action, data__sid=sid).filter(at__gt=when).update(at=when)


def test_earlier_spells_of_a_standing_member_come_from_the_audit_trail(srv):
    """GIVEN a member found at 0h, gone at 2h, found again at 5h (its finding reopened, first seen 5h), and another
    whose finding retention deleted (found 1h, gone 3h)
    WHEN asked over 0h..6h and at 1.5h
    THEN the earlier spells appear from the audit events, the current one from the finding, none twice."""
    sid, pruned = "S-1-5-21-7-7", "S-1-5-21-7-8"
    _scan_audit(srv, "host.standing_admin_found", sid, at(0))
    _scan_audit(srv, "host.standing_admin_gone", sid, at(2))
    _scan_audit(srv, "host.standing_admin_found", pruned, at(1))
    _scan_audit(srv, "host.standing_admin_gone", pruned, at(3))
    _scan_audit(srv, "host.standing_admin_found", sid, at(5))
    f = finding(srv, sid, first=at(5), last=at(6))
    rows = access_at(target=srv, start=at(0), end=at(6))
    spells = sorted((h.evidence["sid"], h.start, h.end) for h in rows)
    assert spells == [(sid, at(0), at(2)), (sid, at(5), None), (pruned, at(1), at(3))]
    assert {h.evidence["sid"] for h in access_at(target=srv, start=at(1.5))} == {sid, pruned}
    assert [h.record_id for h in access_at(target=srv, start=at(5.5))] == [f.pk]
    assert access_at(target=srv, start=at(3.5), end=at(4)) == []  # between the spells: nobody


def test_out_of_band_members_from_the_reconciler(srv):
    """GIVEN the reconciler removed an unbacked member from SRV01's group (an audit event) and held another
    THEN a range over both shows them, the hold until its removal, and by person through the member's DN."""
    alice = user("alice")
    g = grant(srv, alice, start=at(-10), end=at(-9))
    with transaction.atomic():
        audit_record_many([AuditEntry(actor="system:reconciler", action="membership.removed_unbacked", object_type="group",
                                      object_id=srv.group_dn[:64], before="member", after="removed", reason="no grant",
                                      data={"group": srv.group_dn, "member": g.user_dn})])
    hold = HeldRemoval.objects.create(group_dn=srv.group_dn.upper(), member_dn="CN=mallory,OU=People,DC=jitad,DC=test",
                                      member_key="cn=mallory,ou=people,dc=jitad,dc=test", batch="00000000-0000-0000-0000-000000000001",
                                      held_at=at(-1), state=HeldRemoval.State.DONE, done_at=at(1), outcome="removed")
    rows = access_at(target=srv, start=at(-2), end=timezone.now())
    assert {(h.source, h.principal) for h in rows} == {(Source.HELD, hold.member_dn), (Source.OUT_OF_BAND, g.user_dn)}
    held = next(h for h in rows if h.source == Source.HELD)
    assert (held.start, held.end, held.evidence["held_removal_id"]) == (at(-1), at(1), hold.pk)
    assert [h.source for h in access_at(person=alice, start=at(-2), end=timezone.now())] == [Source.OUT_OF_BAND]


def test_breakglass_checkouts_where_the_account_confers_the_right(srv):
    """GIVEN a tier-0 domain-role target, a server whose JIT group holds the account as a standing member,
    and a plain server; one checkout of the account approved by two people
    THEN the checkout counts for the first two (with why), not the third; by person it names every target it confers."""
    dom = Target.objects.create(name="DOMAIN-ADMINS", kind=Target.Kind.DOMAIN_ROLE, tier=Target.Tier.IDENTITY,
                                group_dn="CN=JIT-DA,OU=JIT,DC=jitad,DC=test")
    acct = sealed()
    nested = target("SRV-NESTED", standing_members=[acct.user_dn.upper()])
    resp, a1, a2 = user("responder"), user("lead1"), user("lead2")
    c = checkout(acct, resp, opened=at(0), closed=at(1), approvers=[a1, a2])
    checkout(acct, resp, opened=at(3), purpose="envelope")  # printing an envelope is not a use
    for t in (dom, nested):
        rows = access_at(target=t, start=at(0.5))
        assert [(h.source, h.principal, h.person, h.record_id) for h in rows] == [(Source.BREAKGLASS, "bg-da1", "responder", c.pk)]
        assert rows[0].evidence["why"]
        assert [a["approver"] for a in rows[0].evidence["approvals"]] == ["lead1", "lead2"]
    assert access_at(target=srv, start=at(0.5)) == []
    mine = access_at(person=resp, start=at(0), end=at(5))
    assert len(mine) == 1 and sorted(mine[0].evidence["confers"]) == ["DOMAIN-ADMINS", "SRV-NESTED"]


def test_input_is_checked():
    with pytest.raises(ValueError):
        access_at(start=at(0))
    t = target("SRV09")
    with pytest.raises(ValueError):
        access_at(target=t, start=at(1), end=at(0))


def test_query_count_is_bounded_with_many_rows(srv, django_assert_max_num_queries):
    """GIVEN 60 grants (each with two approvals and an extension), 30 standing findings with their scans,
    held removals, reconciler events and 10 checkouts
    WHEN the whole range is read for a target and for a person
    THEN the number of queries does not depend on the number of rows."""
    approvers = [user(f"lead{i}") for i in range(2)]
    people = [user(f"p{i}") for i in range(6)]
    for i in range(60):
        grant(srv, people[i % 6], start=at(i), end=at(i + 2), approvers=approvers, extensions=["more"])
    for i in range(30):
        scan(srv, at(i))
        finding(srv, f"S-1-5-21-9-{i}", first=at(i), last=at(i), resolved=at(i + 1))
    dom = Target.objects.create(name="DOM", kind=Target.Kind.DOMAIN_ROLE, group_dn="CN=JIT-D,OU=JIT,DC=jitad,DC=test")
    acct = sealed()
    for i in range(10):
        checkout(acct, people[0], opened=at(i * 3), closed=at(i * 3 + 1), approvers=approvers)
    # grants 4 (grant, approvals, extensions, their approvals), standing 3 (+2 with earlier spells), out-of-band 1,
    # held 1, break-glass 3
    with django_assert_max_num_queries(14):
        assert len(access_at(target=srv, start=at(-1), end=at(100))) == 90
    with django_assert_max_num_queries(14):
        assert len(access_at(target=dom, start=at(-1), end=at(100))) == 10
    with django_assert_max_num_queries(17):  # and the person's identities
        assert len(access_at(person=people[0], start=at(-1), end=at(100))) == 20
