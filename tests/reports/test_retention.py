"""Retention (jitad.reports.services.retention): only old closed rows go, in an order PROTECT allows; dry runs change nothing."""
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.audit.services import AuditEntry, audit_record_many, audit_verify
from jitad.breakglass.models import Checkout, Review
from jitad.elevation.models import AccessRequest, Approval, Grant, HeldRemoval, HostScan, StandingAdmin
from jitad.notifications.models import Delivery, Notification
from jitad.reports.services.retention import retention_prune

from .history_builders import checkout, finding, grant, policy, scan, sealed, target, user

pytestmark = pytest.mark.usefixtures("db")
DAYS = 90


def ago(days: float):
    return timezone.now() - timedelta(days=days)


def _hold(group, state, *, held, done=None, left=None, n=0):
    return HeldRemoval.objects.create(group_dn=group, member_dn=f"CN=m{n},DC=jitad,DC=test", member_key=f"cn=m{n},dc=jitad,dc=test",
                                      batch="00000000-0000-0000-0000-000000000001", state=state, held_at=held,
                                      done_at=done, left_at=left)


def _notification(created, *delivery_states):
    n = Notification.objects.create(created_at=created, event="grant.active", subject="s", body="b")
    for i, state in enumerate(delivery_states):
        Delivery.objects.create(notification=n, channel="email", destination=f"u{i}", state=state,
                                next_attempt_at=timezone.now() if state == Delivery.State.PENDING else None)
    return n


@pytest.fixture
def world():
    """One of each: old closed rows that must go, and rows that must stay (recent, live or open)."""
    srv = target("SRV01")
    policy(srv)
    alice, bob = user("alice"), user("bob")
    w = {}
    w["old_grant"] = grant(srv, alice, start=ago(400), end=ago(399), approvers=[bob], extensions=["more"])
    w["recent_grant"] = grant(srv, alice, start=ago(10), end=ago(9), approvers=[bob])
    w["old_live_grant"] = grant(srv, alice, start=ago(200))  # still active (say, a long break-glass role)
    w["old_failed_revoke"] = grant(srv, bob, start=ago(300), state=Grant.State.REVOKE_FAILED)
    # A live grant's extension request, denied long ago: the request may go, the grant stays.
    w["denied_ext"] = AccessRequest.objects.create(
        kind="extension", requester=alice, target=srv, policy=srv.policies.first(), extends=w["old_live_grant"],
        duration_minutes=30, state=AccessRequest.State.DENIED, created_at=ago(199), decided_at=ago(199))
    w["old_pending"] = AccessRequest.objects.create(requester=bob, target=srv, policy=srv.policies.first(),
                                                    duration_minutes=30, created_at=ago(150))
    w["scans"] = [scan(srv, ago(d)) for d in (300, 200, 100)]  # all old; the newest stays
    w["running_scan"] = HostScan.objects.create(target=srv, started_at=ago(300))
    w["resolved"] = finding(srv, "S-1-5-21-9-1", first=ago(300), last=ago(200), resolved=ago(100))
    w["open_finding"] = finding(srv, "S-1-5-21-9-2", first=ago(300), last=ago(1))
    w["sent"] = _notification(ago(200), Delivery.State.SENT, Delivery.State.FAILED)
    w["pending_note"] = _notification(ago(200), Delivery.State.SENT, Delivery.State.PENDING)
    w["recent_note"] = _notification(ago(5), Delivery.State.SENT)
    w["hold_done"] = _hold(srv.group_dn, HeldRemoval.State.DONE, held=ago(200), done=ago(199), n=1)
    w["hold_pending"] = _hold(srv.group_dn, HeldRemoval.State.PENDING, held=ago(200), n=2)
    w["hold_discarded"] = _hold(srv.group_dn, HeldRemoval.State.DISCARDED, held=ago(200), done=ago(199), n=3)
    acct = sealed()
    w["old_checkout"] = checkout(acct, alice, opened=ago(300), closed=ago(299), approvers=[bob])
    Review.objects.create(checkout=w["old_checkout"], state=Review.State.CLOSED)
    w["unreviewed"] = checkout(acct, alice, opened=ago(250), closed=ago(249))
    Review.objects.create(checkout=w["unreviewed"], state=Review.State.AWAITING, mandatory=True)
    w["open_checkout"] = checkout(sealed("bg-da2", user_sid="S-1-5-21-1-2-3-9002"), bob, opened=ago(200))
    return w


def _snapshot():
    return {m.__name__: m.objects.count() for m in (Grant, AccessRequest, Approval, HostScan, StandingAdmin,
                                                     Notification, Delivery, HeldRemoval, Checkout, Review)}


def test_dry_run_changes_nothing_and_counts_what_a_run_deletes(world):
    before, events = _snapshot(), AuditEvent.objects.count()
    dry = retention_prune(days=DAYS, audit_days=0, dry_run=True)
    assert _snapshot() == before and AuditEvent.objects.count() == events
    real = retention_prune(days=DAYS, audit_days=0, batch=1)  # one row per batch: the order must hold every time
    assert dry.counts == {"grants": 1, "requests": 1, "host_scans": 2, "standing_findings": 1, "notifications": 1,
                          "held_removals": 1, "checkouts": 1}
    assert {k: real.counts[k] for k in dry.counts if k != "requests"} == {k: v for k, v in dry.counts.items() if k != "requests"}
    # A dry run counts requests closed without a grant; a real run also counts those deleted with their grants.
    assert real.counts["requests"] == dry.counts["requests"] + 2


def test_only_old_closed_rows_go_and_protected_links_are_deleted_in_order(world):
    """GIVEN an old revoked grant with an approval and an approved extension request (which PROTECTs the grant),
    and beside it recent, live and open rows of every kind
    WHEN the prune runs with 90 days, one row per batch
    THEN the old closed rows and their children are gone and every other row is still there."""
    w = world
    result = retention_prune(days=DAYS, audit_days=0, batch=1)
    gone = lambda obj: not type(obj).objects.filter(pk=obj.pk).exists()  # noqa: E731
    g = w["old_grant"]
    assert gone(g) and not AccessRequest.objects.filter(pk=g.request_id).exists()
    assert not AccessRequest.objects.filter(extends_id=g.pk).exists()
    assert not Approval.objects.filter(request_id=g.request_id).exists()
    for kept in ("recent_grant", "old_live_grant", "old_failed_revoke", "old_pending", "running_scan", "open_finding",
                 "pending_note", "recent_note", "hold_pending", "hold_discarded", "unreviewed", "open_checkout"):
        assert not gone(w[kept]), kept
    for removed in ("denied_ext", "resolved", "sent", "hold_done", "old_checkout"):
        assert gone(w[removed]), removed
    assert [gone(s) for s in w["scans"]] == [True, True, False]  # the target's newest scan stays
    assert not Review.objects.filter(checkout_id=w["old_checkout"].pk).exists()
    assert result.counts["grants"] == 1 and result.counts["requests"] == 3  # the grant's, its extension, the denied one
    assert result.counts["deliveries"] == 2
    event = AuditEvent.objects.filter(action="retention.pruned").get()
    assert event.actor == "system:retention" and event.data["counts"]["grants"] == 1
    assert audit_verify() == []


def test_retention_off_deletes_nothing(world):
    before = _snapshot()
    result = retention_prune(days=0, audit_days=0)
    assert result.total == 0 and _snapshot() == before
    assert not AuditEvent.objects.filter(action="retention.pruned").exists()


def test_the_history_of_kept_rows_is_unchanged_after_a_prune(world):
    from jitad.reports.history.selectors import access_at

    srv = world["recent_grant"].target
    retention_prune(days=DAYS, audit_days=0)
    rows = access_at(target=srv, start=ago(11), end=ago(8))
    assert [h.record_id for h in rows if h.source == "grant"] == [
        world["old_failed_revoke"].pk, world["old_live_grant"].pk, world["recent_grant"].pk]


def test_the_command_dry_run_and_real(world):
    out = StringIO()
    call_command("jitad_prune", "--dry-run", "--days", str(DAYS), "--audit-days", "0", stdout=out)
    assert "would delete 1 grants" in out.getvalue() and "nothing changed" in out.getvalue()
    assert Grant.objects.filter(pk=world["old_grant"].pk).exists()
    out = StringIO()
    call_command("jitad_prune", "--days", str(DAYS), "--audit-days", "0", stdout=out)
    assert "deleted 1 grants" in out.getvalue()
    assert not Grant.objects.filter(pk=world["old_grant"].pk).exists()


def test_audit_events_are_pruned_and_the_chain_still_verifies():
    """GIVEN audit events from 400 days ago and from today
    WHEN the prune runs with JITAD_AUDIT_RETENTION_DAYS-like 365
    THEN the old events are gone, today's stay, and the chain verifies from the checkpoint.
    (Needs jitad.audit.services.audit_prune.)"""
    old = ago(400)
    with transaction.atomic():
        audit_record_many([AuditEntry(actor="t", action="test.old", object_type="x", object_id=str(i)) for i in range(5)])
    AuditEvent.objects.filter(action="test.old").update(at=old)
    with transaction.atomic():
        audit_record_many([AuditEntry(actor="t", action="test.new", object_type="x", object_id=str(i)) for i in range(3)])
    result = retention_prune(days=0, audit_days=365)
    assert result.counts["audit_events"] == 5
    assert not AuditEvent.objects.filter(action="test.old").exists()
    assert AuditEvent.objects.filter(action="test.new").count() == 3
    assert AuditEvent.objects.filter(action="retention.pruned").exists()
    assert audit_verify() == []


def test_the_daily_task_uses_the_settings_and_is_scheduled(world, settings):
    """GIVEN JITAD_RETENTION_DAYS=90 WHEN the beat's task body runs THEN it prunes with it; beat lists it daily."""
    from jitad.celery import app
    from jitad.reports.tasks.retention import prune

    settings.JITAD_RETENTION_DAYS, settings.JITAD_AUDIT_RETENTION_DAYS = DAYS, 0
    assert prune.name in app.tasks
    app.loader.import_default_modules()
    entry = app.conf.beat_schedule.get("retention-prune")
    assert entry and entry["task"] == "jitad.reports.prune"
    assert prune()["grants"] == 1
    assert not Grant.objects.filter(pk=world["old_grant"].pk).exists()
