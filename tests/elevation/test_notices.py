"""What requesters and approvers are told: right people, right words, right links, once.

Database-only tests call the services and then the delivery service in-process, so the
e-mails land in Django's locmem outbox. The last test runs the whole path on the real
parts: Samba DC, worker, and an SMTP server on 127.0.0.1.
"""
import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jitad import bulk
from jitad.elevation import services
from jitad.elevation.models import AccessRequest, Grant, Policy
from jitad.elevation.services.grant_revoke import _mark_revoked
from jitad.notifications.models import Delivery, Notification
from jitad.notifications.services import delivery_send
from tests.support.waiting import wait_for

from .builders import policy, target, user
from .helpers import wait_state

BASE = "https://jitad.example.test"


@pytest.fixture(autouse=True)
def _base_url(settings):
    settings.JITAD_BASE_URL = BASE
    settings.JITAD_APPROVAL_URLS = []
    settings.JITAD_NOTIFY_DESTINATIONS = {}


def person(name: str, *groups: str, email: str | None = None, active: bool = True) -> User:
    u = user(name, *groups)
    u.email = f"{name}@example.org" if email is None else email
    u.is_active = active
    u.save()
    return u


def deliver(note: Notification) -> None:
    """Send a notification's deliveries in-process, as the worker's tasks would."""
    for d in note.deliveries.filter(state=Delivery.State.PENDING):
        delivery_send(delivery_id=d.id)


def notes(event: str, **ids) -> list[Notification]:
    return list(Notification.objects.filter(event=event, **ids).order_by("id"))


def emails(note: Notification) -> set[str]:
    return set(note.deliveries.filter(channel="email").values_list("address", flat=True))


def admin_link(req) -> str:
    return f"{BASE}/admin/elevation/accessrequest/{req.pk}/change/"


# -- new requests to decide --------------------------------------------------------------
@pytest.mark.django_db
def test_new_request_goes_to_its_approvers_and_never_the_requester():
    """GIVEN approvers named by the policy (Leads) and by the target (SRV01-Owners), with
    Django groups spelt in other cases, plus people who must not be told WHEN alice, who
    is herself in Leads, asks THEN exactly the active approvers with an address get an
    e-mail linking to the request's admin page."""
    srv = target("SRV01", approver_groups=["SRV01-Owners"])
    policy(srv, approver_groups=["Leads"])
    alice = person("alice", "Ops", "Leads")
    person("bob", "leads")                       # policy approver, other spelling
    person("carol", "srv01-owners")              # target approver
    person("dan", "Leads", email="")             # no address: no delivery
    person("erin", "Leads", active=False)        # left the company
    person("frank", "Ops")                       # a peer, not an approver
    person("gina", "Other-Leads")                # approver elsewhere
    req = services.request_create(requester=alice, target=srv, duration_minutes=90,
                                  justification="Patch  KB5030211\nbefore the window", ticket="CHG-1")
    (note,) = notes("request.pending")
    assert emails(note) == {"bob@example.org", "carol@example.org"}
    assert note.link == admin_link(req)
    assert note.subject == f"Decide: alice asks for admin on SRV01 for 1 h 30 min (request #{req.pk})"
    assert "Justification: Patch KB5030211 before the window" in note.body
    assert "Ticket: CHG-1" in note.body
    assert not note.deliveries.filter(channel="apprise").exists()  # no policy destination, no JITAD_APPROVAL_URLS

    deliver(note)
    assert sorted(m.to[0] for m in mail.outbox) == ["bob@example.org", "carol@example.org"]
    for m in mail.outbox:
        assert m.body.endswith(admin_link(req))


@pytest.mark.django_db
def test_new_request_goes_to_the_policys_destinations_or_the_default_channel(settings):
    settings.JITAD_APPROVAL_URLS = ["json://127.0.0.1:9/approvals"]
    settings.JITAD_NOTIFY_DESTINATIONS = {"dba-team": ["json://127.0.0.1:9/dba", "json://127.0.0.1:9/dba2"]}
    srv, db = target("SRV01"), target("DB01")
    policy(srv)
    policy(db, name="dba", notify=["dba-team"])
    alice = person("alice", "Ops")
    services.request_create(requester=alice, target=srv)
    services.request_create(requester=alice, target=db)
    default, named = notes("request.pending")
    assert list(default.deliveries.values_list("destination", flat=True)) == ["JITAD_APPROVAL_URLS"]
    assert list(named.deliveries.values_list("destination", "position")) == [
        ("JITAD_NOTIFY_DBA_TEAM", 0), ("JITAD_NOTIFY_DBA_TEAM", 1)]


@pytest.mark.django_db
def test_auto_approved_request_asks_nobody_and_tells_nothing_yet():
    srv = target("SRV01")
    policy(srv, approval_mode=Policy.ApprovalMode.AUTO, approvals_required=0)
    person("bob", "Leads")
    services.request_create(requester=person("alice", "Ops"), target=srv)
    assert not Notification.objects.filter(event__startswith="request.").exists()


# -- decisions -----------------------------------------------------------------------------
@pytest.mark.django_db
def test_approval_tells_the_requester_with_a_link_to_the_grant():
    srv = target("SRV01")
    policy(srv, approvals_required=2)
    alice, bob, carol = person("alice", "Ops"), person("bob", "Leads"), person("carol", "Leads")
    req = services.request_create(requester=alice, target=srv)
    services.request_approve(request=req, approver=bob)
    assert not notes("request.approved")  # one of two: nothing to tell yet
    services.request_approve(request=req, approver=carol, comment="ok")
    (note,) = notes("request.approved")
    grant = Grant.objects.get(request=req)
    assert emails(note) == {"alice@example.org"}
    assert note.link == f"{BASE}/access/#grant-{grant.pk}"
    assert note.body.startswith(f"bob, carol approved request #{req.pk}")
    deliver(note)
    (m,) = mail.outbox
    assert m.to == ["alice@example.org"] and m.subject == f"[jitad] Approved: admin on SRV01 (request #{req.pk})"


@pytest.mark.django_db
def test_denial_tells_the_requester_the_comment():
    srv = target("SRV01")
    policy(srv)
    alice, bob = person("alice", "Ops"), person("bob", "Leads")
    req = services.request_create(requester=alice, target=srv)
    services.request_deny(request=req, approver=bob, comment="Not during the freeze; use CHG-2 next week.")
    (note,) = notes("request.denied")
    assert emails(note) == {"alice@example.org"}
    assert 'bob denied request' in note.body and '"Not during the freeze; use CHG-2 next week."' in note.body
    assert note.link == f"{BASE}/access/#h-history"


@pytest.mark.django_db
def test_pending_timeout_tells_the_requester():
    """GIVEN a request nobody decided WHEN its policy's timeout passes THEN the requester
    is told it closed undecided, and what to do."""
    srv = target("SRV01")
    policy(srv, pending_timeout_minutes=30)
    alice = person("alice", "Ops")
    req = services.request_create(requester=alice, target=srv)
    assert services.requests_expire_pending(now=timezone.now() + timedelta(minutes=31)) == 1
    (note,) = notes("request.expired_unapproved")
    assert note.subject == f"Expired undecided: admin on SRV01 (request #{req.pk})"
    assert "within 30 min" in note.body and "ask again" in note.body
    deliver(note)
    assert [m.to for m in mail.outbox] == [["alice@example.org"]]


@pytest.mark.django_db
def test_extension_request_goes_to_approvers_and_its_approval_says_the_new_end():
    srv = target("SRV01")
    policy(srv)
    alice, bob = person("alice", "Ops"), person("bob", "Leads")
    grant = _active_grant(alice, srv, minutes=60)
    ext = services.request_extend(grant=grant, requester=alice, duration_minutes=30)
    (asked,) = notes("request.pending")
    assert emails(asked) == {"bob@example.org"}
    assert asked.subject == f"Decide: alice asks for 30 min more on SRV01 (request #{ext.pk})"
    services.request_approve(request=ext, approver=bob)
    (told,) = notes("request.approved")
    grant.refresh_from_db()
    assert told.subject == f"Approved: more time on SRV01 (request #{ext.pk})"
    assert timezone.localtime(grant.expires_at).strftime("%H:%M") in told.body


@pytest.mark.django_db
def test_mail_shows_times_in_the_one_format_with_the_zone(settings):
    """GIVEN jitad set to Europe/Berlin WHEN an extension is approved THEN the holder's
    mail gives the new end as the pages do: 2026-12-05 15:30 CET."""
    from zoneinfo import ZoneInfo

    settings.TIME_ZONE = "Europe/Berlin"
    srv = target("SRV01")
    policy(srv)
    alice, bob = person("alice", "Ops"), person("bob", "Leads")
    grant = _active_grant(alice, srv, minutes=60)
    ext = services.request_extend(grant=grant, requester=alice, duration_minutes="30m")
    services.request_approve(request=ext, approver=bob)
    grant.refresh_from_db()
    local = grant.expires_at.astimezone(ZoneInfo("Europe/Berlin"))
    shown = local.strftime("%Y-%m-%d %H:%M ") + local.tzname()
    (told,) = notes("request.approved")
    deliver(told)
    (m,) = mail.outbox
    assert f"now end at {shown}." in m.body


# -- grants: expiring soon, ended ------------------------------------------------------------
def _active_grant(holder, srv, *, minutes: int, active_for: int = 0) -> Grant:
    """An active grant (no AD involved) that went active ``active_for`` minutes ago."""
    now = timezone.now()
    p = Policy.objects.filter(targets=srv).first()
    req = AccessRequest.objects.create(requester=holder, target=srv, policy=p, duration_minutes=minutes,
                                       state=AccessRequest.State.APPROVED, decided_at=now)
    return Grant.objects.create(request=req, user=holder, target=srv, group_dn=srv.group_dn, state=Grant.State.ACTIVE,
                                activated_at=now - timedelta(minutes=active_for),
                                expires_at=now + timedelta(minutes=minutes - active_for))


@pytest.mark.django_db
def test_expiring_grant_is_warned_once_and_again_after_an_extension(settings):
    """GIVEN a 60-minute grant and a 15-minute lead WHEN the check runs at 50 minutes THEN
    the holder is warned once, however often it runs; WHEN an extension moves the end THEN
    the mark is cleared and the next check warns again before the new end."""
    settings.JITAD_EXPIRY_WARNING_MINUTES = 15
    srv = target("SRV01")
    policy(srv, approval_mode=Policy.ApprovalMode.AUTO, approvals_required=0, max_extensions=1)
    alice = person("alice", "Ops")
    grant = _active_grant(alice, srv, minutes=60, active_for=50)
    assert services.grants_warn_expiring(now=timezone.now() - timedelta(minutes=10)) == 0  # 20 min left: too early
    assert services.grants_warn_expiring() == 1
    assert services.grants_warn_expiring() == 0
    (note,) = notes("grant.expiring")
    assert note.subject == "Ends in 10 min: admin on SRV01"
    assert note.link == f"{BASE}/access/#grant-{grant.pk}"
    assert "Ask for more time" in note.body
    deliver(note)
    assert [m.to for m in mail.outbox] == [["alice@example.org"]]

    services.request_extend(grant=grant, requester=alice, duration_minutes=10)  # auto-approved: ends in 20 min
    grant.refresh_from_db()
    assert grant.expiry_warned_at is None
    assert services.grants_warn_expiring() == 0
    assert services.grants_warn_expiring(now=timezone.now() + timedelta(minutes=6)) == 1
    last = notes("grant.expiring")[-1]
    assert "no more extensions" in last.body


@pytest.mark.django_db
def test_short_grants_and_a_zero_lead_are_never_warned(settings):
    settings.JITAD_EXPIRY_WARNING_MINUTES = 15
    srv = target("SRV01")
    policy(srv)
    _active_grant(person("alice", "Ops"), srv, minutes=10)  # shorter than the lead: "active" said when it ends
    assert services.grants_warn_expiring() == 0
    _active_grant(person("bob", "Ops"), srv, minutes=60, active_for=50)
    settings.JITAD_EXPIRY_WARNING_MINUTES = 0
    assert services.grants_warn_expiring() == 0
    assert not Notification.objects.exists()


def _revoking(n: int, srv, reason: str, token) -> list[Grant]:
    rows = []
    for i in range(n):
        g = _active_grant(person(f"u{uuid.uuid4().hex[:8]}", "Ops"), srv, minutes=60)
        g.state, g.claim_token, g.revoke_reason = Grant.State.REVOKING, token, reason
        g.save()
        rows.append(g)
    return list(Grant.objects.filter(id__in=[g.id for g in rows]).select_related("user", "target"))


@pytest.mark.django_db
def test_a_revocation_batch_tells_each_holder_without_a_query_per_grant():
    """GIVEN revocation batches of 25 and of 60 grants WHEN they are marked revoked THEN
    every holder gets one notice, in two inserts whatever the batch size (on PostgreSQL, each
    a COPY after the ids it takes from the table's sequence), and both batches take the same
    number of queries."""
    srv = target("SRV01")
    policy(srv)
    token = uuid.uuid4()
    # The audit chain's first event costs more, and so does a process's first COPY into a table (whether
    # it may take ids from the sequence is asked once): a batch of that size first.
    first = _revoking(bulk.COPY_MIN, srv, Grant.RevokeReason.EXPIRED, token)
    _mark_revoked(first, token, {g.id: True for g in first})
    counts = []
    for n in (25, 60):
        token = uuid.uuid4()
        grants = _revoking(n, srv, Grant.RevokeReason.EXPIRED, token)
        with CaptureQueriesContext(connection) as ctx:
            _mark_revoked(grants, token, {g.id: True for g in grants})
        counts.append(len(ctx.captured_queries))
        inserts = sum("notifications_" in q["sql"] for q in ctx.captured_queries)
        assert inserts == (4 if connection.vendor == "postgresql" else 2), ctx.captured_queries
    assert counts[0] == counts[1], counts
    assert Notification.objects.filter(event="grant.revoked").count() == 85 + bulk.COPY_MIN
    assert Delivery.objects.filter(notification__event="grant.revoked", channel="email").count() == 85 + bulk.COPY_MIN


@pytest.fixture
def published(monkeypatch):
    """What would be published to the broker, as (task name, args), instead of publishing it."""
    from jitad.celery import app

    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, args=None, kwargs=None, **options: sent.append((name, args)))
    return sent


@pytest.mark.django_db
def test_a_revocation_batch_is_queued_as_one_message(published, django_capture_on_commit_callbacks):
    """GIVEN a revocation batch of 20 grants WHEN it commits THEN its e-mails wait for revocations to end:
    recorded unclaimed, with no message of their own, and one ``resume`` message is queued (a second batch
    adds none); WHEN it runs and no revocation runs THEN it publishes one message carrying all of them,
    not one per delivery; the notifications worker sends their e-mails over one session, each recorded
    on its own. A single notification still queues one send per delivery."""
    from jitad.notifications.tasks import deliveries_resume, deliveries_send_batch

    srv = target("SRV01")
    policy(srv)
    token = uuid.uuid4()
    grants = _revoking(20, srv, Grant.RevokeReason.EXPIRED, token)
    with django_capture_on_commit_callbacks(execute=True):
        _mark_revoked(grants[:12], token, {g.id: True for g in grants[:12]})
    with django_capture_on_commit_callbacks(execute=True):
        _mark_revoked(grants[12:], token, {g.id: True for g in grants[12:]})
    ids = sorted(Delivery.objects.filter(notification__event="grant.revoked").values_list("id", flat=True))
    assert len(ids) == 20
    assert set(Delivery.objects.filter(id__in=ids).values_list("state", "claim_token", "attempts")) == {
        (Delivery.State.PENDING, None, 0)}
    ((name, (holder,)),) = published
    assert name == "jitad.notifications.resume"

    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_resume(holder) == 20
    ((name, args),) = published
    token = str(Delivery.objects.get(id=ids[0]).claim_token)  # the claim the message carries
    assert name == "jitad.notifications.send_batch" and sorted(args[0]) == ids and args[1] == token

    published.clear()
    mail.outbox.clear()
    deliveries_send_batch(ids, token)
    assert published == []  # the batch's e-mails go out from that task, over one session
    assert len(mail.outbox) == 20
    assert set(Delivery.objects.filter(id__in=ids).values_list("state", "attempts")) == {(Delivery.State.SENT, 1)}

    published.clear()
    bob = person("bob", "Leads")
    with django_capture_on_commit_callbacks(execute=True):
        services.request_create(requester=person("alice", "Ops"), target=srv)
    (asked,) = notes("request.pending")
    assert bob.email in emails(asked)
    assert published == [("jitad.notifications.send", (d, str(token)))
                         for d, token in asked.deliveries.values_list("id", "claim_token")]


@pytest.mark.django_db
def test_a_revocation_batch_that_may_not_wait_is_sent_at_once(settings, published, django_capture_on_commit_callbacks):
    """GIVEN notices never waiting (JITAD_NOTICES_WAIT_SECONDS 0) WHEN a revocation batch commits THEN its e-mails
    are claimed for one batch message of their own, as any other batch's, and no resume chain starts."""
    settings.JITAD_NOTICES_WAIT_SECONDS = 0
    srv = target("SRV01")
    policy(srv)
    token = uuid.uuid4()
    grants = _revoking(3, srv, Grant.RevokeReason.EXPIRED, token)
    with django_capture_on_commit_callbacks(execute=True):
        _mark_revoked(grants, token, {g.id: True for g in grants})
    ids = sorted(Delivery.objects.filter(notification__event="grant.revoked").values_list("id", flat=True))
    ((name, args),) = published
    claim = Delivery.objects.get(id=ids[0]).claim_token
    assert name == "jitad.notifications.send_batch" and sorted(args[0]) == ids and args[1] == str(claim)
    assert set(Delivery.objects.filter(id__in=ids).values_list("claim_token", flat=True)) == {claim}


@pytest.mark.django_db
def test_revocation_notices_say_why():
    srv = target("SRV01")
    policy(srv)
    token = uuid.uuid4()
    released, by_admin, expired = _revoking(3, srv, Grant.RevokeReason.EXPIRED, token)
    Grant.objects.filter(id=released.id).update(revoke_reason=Grant.RevokeReason.RELEASED)
    Grant.objects.filter(id=by_admin.id).update(revoke_reason=Grant.RevokeReason.ADMIN, revoke_requested_by="secadmin")
    no_mail = _revoking(1, srv, Grant.RevokeReason.EXPIRED, token)[0]
    User.objects.filter(id=no_mail.user_id).update(email="")
    grants = list(Grant.objects.filter(claim_token=token).select_related("user", "target"))
    _mark_revoked(grants, token, {released.id: True, by_admin.id: True, expired.id: False, no_mail.id: True})
    subjects = dict(Notification.objects.filter(event="grant.revoked").values_list("object_id", "subject"))
    bodies = dict(Notification.objects.filter(event="grant.revoked").values_list("object_id", "body"))
    assert subjects == {str(released.id): "Ended: admin on SRV01 (released)",
                        str(by_admin.id): "Ended: admin on SRV01 (revoked)",
                        str(expired.id): "Ended: admin on SRV01 (expired)"}  # no address: no notice
    assert bodies[str(by_admin.id)].startswith("secadmin revoked your admin rights on SRV01")
    assert "still admin on SRV01 through another grant" in bodies[str(expired.id)]


# -- the web request only records --------------------------------------------------------------
@pytest.mark.django_db
def test_submitting_a_request_records_the_notices_and_sends_nothing_itself(settings, verified_client,
                                                                          django_capture_on_commit_callbacks):
    """GIVEN a policy whose chat destination never answers WHEN alice submits a request in
    the portal THEN the page answers with the request pending and the approvers' and the
    chat's deliveries recorded, not attempted: sending is queued for after commit."""
    settings.JITAD_NOTIFY_DESTINATIONS = {"chat": ["json://127.0.0.1:9/never-answers"]}
    srv = target("SRV01")
    policy(srv, notify=["chat"])
    alice, _ = person("alice", "Ops"), person("bob", "Leads")
    client = verified_client(alice)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(f"/request/new/?target={srv.pk}", {"duration_minutes": "60", "justification": "x"})
    assert response.status_code == 302
    req = AccessRequest.objects.get(requester=alice)
    assert req.state == AccessRequest.State.PENDING
    (note,) = notes("request.pending")
    assert list(note.deliveries.values_list("channel", "state", "attempts")) == [
        ("email", "pending", 0), ("apprise", "pending", 0)]
    assert queued  # the deliveries' tasks wait for the commit


# -- the whole path, on the real parts ---------------------------------------------------------
def _mail(smtp_sink, address: str, subject_part: str):
    return wait_for(lambda: [m for m in smtp_sink.to(address) if subject_part in m["Subject"]], timeout=30,
                    message=f"a mail to {address} about {subject_part!r}")[0]


def test_request_to_release_tells_approver_and_requester_by_real_mail(live, smtp_sink, make_user, make_target):
    """GIVEN a manual-approval target in AD, an approver and a requester with addresses
    WHEN the request is made, approved, applied and released THEN real mail arrives at the
    SMTP server: the approver's with the admin link, then the requester's approval,
    active and released notices, each linking to the portal."""
    target_ = make_target(mode="manual", approver_groups=("approvers",))
    requester = make_user("req", groups=("admins",))
    approver = make_user("apr", groups=("approvers",))
    tag = uuid.uuid4().hex[:6]
    User.objects.filter(id=requester.id).update(email=f"req-{tag}@example.org")
    User.objects.filter(id=approver.id).update(email=f"apr-{tag}@example.org")
    requester.refresh_from_db()
    approver.refresh_from_db()

    req = services.request_create(requester=requester, target=target_, duration_minutes=30)
    asked = _mail(smtp_sink, f"apr-{tag}@example.org", f"request #{req.pk}")
    assert asked["Subject"].startswith(f"[jitad] Decide: {requester.username} asks for admin on {target_.name}")
    assert re.search(rf"/admin/elevation/accessrequest/{req.pk}/change/\s*$", asked.get_content())
    assert not smtp_sink.to(f"req-{tag}@example.org")

    services.request_approve(request=req, approver=approver)
    grant = wait_state(Grant.objects.get(request=req).id, Grant.State.ACTIVE)
    _mail(smtp_sink, f"req-{tag}@example.org", "Approved")
    active = _mail(smtp_sink, f"req-{tag}@example.org", "Active")
    assert f"/access/#grant-{grant.pk}" in active.get_content()

    with transaction.atomic():
        services.grant_release(grant=grant, actor=requester)
    wait_state(grant.id, Grant.State.REVOKED)
    ended = _mail(smtp_sink, f"req-{tag}@example.org", "(released)")
    assert "/access/#h-history" in ended.get_content()
    assert len(smtp_sink.to(f"apr-{tag}@example.org")) == 1


def test_a_revocation_batch_reaches_every_holder_through_one_batch_message(live, smtp_sink, make_user, make_target):
    """GIVEN three active grants on one AD group WHEN they expire at the same moment THEN
    one revocation revokes them, its notices go to the notifications worker as a batch
    message, and each holder's "(expired)" mail reaches the SMTP server."""
    target_ = make_target()
    tag = uuid.uuid4().hex[:6]
    grants = []
    for i in range(3):
        holder = make_user("bat", groups=("admins",))
        User.objects.filter(id=holder.id).update(email=f"bat{i}-{tag}@example.org")
        holder.refresh_from_db()
        req = services.request_create(requester=holder, target=target_, duration_minutes=30)
        grants.append(wait_state(req.grant.id, Grant.State.ACTIVE))
    batches = live.log_path.read_text().count("jitad.notifications.send_batch[")
    Grant.objects.filter(id__in=[g.id for g in grants]).update(expires_at=timezone.now())
    for g in grants:
        wait_state(g.id, Grant.State.REVOKED)
    for i in range(3):
        _mail(smtp_sink, f"bat{i}-{tag}@example.org", "(expired)")
    assert live.log_path.read_text().count("jitad.notifications.send_batch[") > batches


@pytest.mark.django_db
def test_a_request_nobody_can_be_told_of_leaves_no_row_and_a_warning(caplog):
    srv = target("SRV01")
    policy(srv)
    person("bob", "Leads", email="")
    req = services.request_create(requester=person("alice", "Ops"), target=srv)
    assert not Notification.objects.exists()
    assert f"request #{req.pk} waits for a decision" in caplog.text and "nobody was told" in caplog.text
