"""A batch of notices' e-mails goes out over one SMTP session per chunk, each e-mail still its own claimed work.

Against a real SMTP server on 127.0.0.1 (aiosmtpd): what it received, over how many
connections, and what each delivery row records. Messages the batch publishes (further
chunks, apprise deliveries) go to a recorder and are run in-process through their task,
as the worker would.
"""

import pytest
from django.contrib.auth.models import User

from jitad.engine import queue
from jitad.notifications import tasks
from jitad.notifications.models import Delivery
from jitad.notifications.services import Outgoing, notifications_create
from tests.support.smtp import SmtpSink
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.django_db
DeliveryState = Delivery.State


@pytest.fixture
def smtp(settings):
    sink = SmtpSink().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield sink
    if sink.controller._thread is not None:  # a test may have stopped it
        sink.stop()


@pytest.fixture
def published(monkeypatch):
    sent = []
    monkeypatch.setattr(queue, "enqueue", lambda name, *args, **kw: sent.append((name, args)) or True)
    return sent


def _notices(n: int, *, destinations=()) -> tuple[list[int], str]:
    """``n`` people told of a revocation each (as a revocation batch records them); (delivery ids, claim)."""
    people = [User.objects.create_user(f"p{i}", email=f"p{i}@jitad.test") for i in range(n)]
    notifications_create(items=[Outgoing(event="grant.revoked", subject=f"Ended: admin on SRV{i:02d}", body="ended",
                                         people=[p], destinations=destinations if i == 0 else ())
                                for i, p in enumerate(people)])
    rows = list(Delivery.objects.order_by("id").values_list("id", "claim_token"))
    return [i for i, _ in rows], str(rows[0][1])


def _run_next(published: list) -> None:
    """Run the first message published (and only it)."""
    name, args = published.pop(0)
    {"jitad.notifications.send_batch": tasks.deliveries_send_batch,
     "jitad.notifications.send": tasks.delivery_send,
     "jitad.notifications.resume": tasks.deliveries_resume}[name](*args)


def _run(published: list) -> None:
    """Run what the batch published, as the notifications worker would."""
    while published:
        name, args = published.pop(0)
        {"jitad.notifications.send_batch": tasks.deliveries_send_batch,
         "jitad.notifications.send": tasks.delivery_send,
         "jitad.notifications.resume": tasks.deliveries_resume}[name](*args)


def test_a_batch_sends_its_emails_in_chunks_each_over_one_session(settings, smtp, published):
    """GIVEN 120 notices' e-mails in one batch message and chunks of 50 WHEN the notifications worker
    runs it THEN 120 e-mails reach the server over 3 connections (50, 50, 20), the two further chunks
    went out as messages of their own, and every delivery is recorded sent, one attempt each."""
    settings.JITAD_EMAIL_BATCH = 50
    ids, token = _notices(120)
    tasks.deliveries_send_batch(ids, token)
    assert [name for name, _ in published] == ["jitad.notifications.send_batch"] * 2
    assert [len(args[0]) for _, args in published] == [50, 20]
    assert len(smtp.messages) == 50
    _run(published)
    assert sorted(r[0][0] for r in smtp.messages) == sorted(f"p{i}@jitad.test" for i in range(120))
    sessions = {}
    for peer in smtp.peers:
        sessions[peer] = sessions.get(peer, 0) + 1
    assert sorted(sessions.values()) == [20, 50, 50]
    assert set(Delivery.objects.values_list("state", "attempts", "claim_token", "attempt_started_at")) == {
        (DeliveryState.SENT, 1, None, None)}


def test_a_refused_address_fails_alone_and_the_session_goes_on(settings, smtp, published):
    settings.JITAD_EMAIL_BATCH = 50
    ids, token = _notices(5)
    smtp.refuse.add("p2@jitad.test")
    tasks.deliveries_send_batch(ids, token)
    assert published == []
    assert sorted(r[0][0] for r in smtp.messages) == ["p0@jitad.test", "p1@jitad.test", "p3@jitad.test",
                                                     "p4@jitad.test"]
    assert len(set(smtp.peers)) == 1
    refused = Delivery.objects.get(address="p2@jitad.test")
    assert refused.state == DeliveryState.FAILED  # a refusal of the address is final
    assert "SMTPRecipientsRefused" in refused.last_error
    assert Delivery.objects.filter(state=DeliveryState.SENT).count() == 4


def test_a_server_that_is_down_fails_the_chunk_for_a_retry(settings, smtp, published,
                                                           django_capture_on_commit_callbacks):
    settings.JITAD_EMAIL_BATCH = 50
    ids, token = _notices(3)
    smtp.stop()
    with django_capture_on_commit_callbacks(execute=True):
        tasks.deliveries_send_batch(ids, token)
    rows = list(Delivery.objects.all())
    assert {d.state for d in rows} == {DeliveryState.PENDING}
    assert {d.attempts for d in rows} == {1}
    assert all(d.next_attempt_at and "attempt 1" in d.last_error for d in rows)
    # each retry is claimed for a message that waits until it is due
    assert sorted(name for name, _ in published) == ["jitad.notifications.send"] * 3


def test_a_duplicate_batch_message_sends_nothing_twice(settings, smtp, published):
    settings.JITAD_EMAIL_BATCH = 50
    ids, token = _notices(4)
    tasks.deliveries_send_batch(ids, token)
    tasks.deliveries_send_batch(ids, token)  # the broker delivered it again
    assert len(smtp.messages) == 4
    assert Delivery.objects.filter(state=DeliveryState.SENT, attempts=1).count() == 4


def test_apprise_deliveries_in_a_batch_still_get_a_message_each(settings, smtp, published):
    receiver = WebhookReceiver().start()
    try:
        settings.JITAD_ALERT_URLS = [receiver.url]
        ids, token = _notices(3, destinations=["JITAD_ALERT_URLS"])
        apprise_ids = list(Delivery.objects.filter(channel=Delivery.Channel.APPRISE).values_list("id", flat=True))
        assert len(apprise_ids) == 1
        tasks.deliveries_send_batch(ids, token)
        assert published == [("jitad.notifications.send", (apprise_ids[0], token))]
        assert len(smtp.messages) == 3
        _run(published)
        assert Delivery.objects.filter(state=DeliveryState.SENT).count() == 4
    finally:
        receiver.stop()


def test_a_server_that_closes_the_session_mid_chunk_fails_only_the_message_in_flight(settings, smtp, published,
                                                                                   django_capture_on_commit_callbacks):
    """GIVEN a server that takes 3 messages per connection, then closes it WHEN a chunk of 7 goes out
    THEN the 4th fails (transient, retried later) and the rest go over a new connection."""
    settings.JITAD_EMAIL_BATCH = 50
    smtp.per_session = 3
    ids, token = _notices(7)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.deliveries_send_batch(ids, token)
    sent = Delivery.objects.filter(state=DeliveryState.SENT)
    assert sent.count() == 6
    (retried,) = Delivery.objects.filter(state=DeliveryState.PENDING)
    assert retried.attempts == 1 and retried.next_attempt_at is not None
    assert retried.address == "p3@jitad.test"
    assert len(set(smtp.peers)) == 2


def test_a_deferred_recipient_is_retried_not_failed(settings, smtp, published, django_capture_on_commit_callbacks):
    settings.JITAD_EMAIL_BATCH = 50
    smtp.defer.add("p1@jitad.test")
    ids, token = _notices(3)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.deliveries_send_batch(ids, token)
    deferred = Delivery.objects.get(address="p1@jitad.test")
    assert deferred.state == DeliveryState.PENDING and deferred.attempts == 1  # a 4xx is worth another try
    assert "450" in deferred.last_error
    assert Delivery.objects.filter(state=DeliveryState.SENT).count() == 2


def test_e_mails_not_started_in_the_tasks_time_are_handed_back_unattempted(settings, smtp, published, monkeypatch):
    from jitad.notifications.services import email_batch

    settings.JITAD_EMAIL_BATCH = 50
    monkeypatch.setattr(email_batch, "email_batch_seconds", lambda: -1.0)  # its time is already up
    ids, token = _notices(3)
    tasks.deliveries_send_batch(ids, token)
    assert smtp.messages == []
    assert set(Delivery.objects.values_list("state", "attempts", "claim_token", "attempt_started_at")) == {
        (DeliveryState.PENDING, 0, None, None)}


def test_each_e_mail_is_recorded_as_it_goes_so_a_chunk_cut_short_sends_none_twice(settings, smtp, published,
                                                                               monkeypatch):
    """GIVEN a chunk whose task hits its time limit while the 3rd e-mail is in flight THEN the first two
    are already recorded sent, the 3rd failed (transient), and the rest handed back unattempted."""
    from celery.exceptions import SoftTimeLimitExceeded

    from jitad.notifications.services import email_batch

    real = email_batch.send_emails

    def cut_short(items, **kwargs):
        for i, outcome in enumerate(real(items, **kwargs)):
            if i == 2:
                raise SoftTimeLimitExceeded()
            yield outcome

    monkeypatch.setattr(email_batch, "send_emails", cut_short)
    settings.JITAD_EMAIL_BATCH = 50
    ids, token = _notices(5)
    tasks.deliveries_send_batch(ids, token)
    rows = {d.address: d for d in Delivery.objects.all()}
    assert [rows[f"p{i}@jitad.test"].state for i in range(5)] == [DeliveryState.SENT, DeliveryState.SENT,
                                                                  DeliveryState.PENDING, DeliveryState.PENDING,
                                                                  DeliveryState.PENDING]
    assert rows["p2@jitad.test"].attempts == 1 and "took longer" in rows["p2@jitad.test"].last_error
    assert [(rows[f"p{i}@jitad.test"].attempts, rows[f"p{i}@jitad.test"].claim_token) for i in (3, 4)] == [
        (0, None), (0, None)]


# -- notices of one kind waiting for the same person: one e-mail ----------------------------
def _told(person, *, event="grant.revoked", subject="Ended: admin on SRV", body="ended") -> tuple[list[int], str]:
    """One revocation message telling ``person`` (as a group's revocation does); (delivery ids, claim)."""
    (note,) = notifications_create(items=[Outgoing(event=event, subject=subject, body=body, people=[person])])
    rows = list(Delivery.objects.filter(notification=note).values_list("id", "claim_token"))
    return [i for i, _ in rows], str(rows[0][1])


def _person(name):
    return User.objects.create_user(name, email=f"{name}@jitad.test")


def test_notices_of_one_kind_waiting_for_a_person_go_as_one_e_mail(settings, smtp, published):
    """GIVEN alice told of three grants ending, in three groups' messages, and bob of one
    WHEN the first message is sent THEN alice gets one e-mail listing the three (each delivery recorded
    sent, one attempt), and the other two messages, run after, send nothing: their claims were taken over."""
    alice, bob = _person("alice"), _person("bob")
    messages = [_told(alice, subject=f"Ended: admin on SRV{i}", body=f"grant {i} ended") for i in range(3)]
    bob_message = _told(bob)
    tasks.deliveries_send_batch(*messages[0])
    (mail,) = smtp.to("alice@jitad.test")
    assert mail["Subject"] == "[jitad] Ended: admin on SRV0 (and 2 more)"
    text = mail.get_content()
    assert all(f"Ended: admin on SRV{i}" in text and f"grant {i} ended" in text for i in range(3))
    assert set(Delivery.objects.filter(address="alice@jitad.test").values_list("state", "attempts", "claim_token")) == {
        (DeliveryState.SENT, 1, None)}
    for message in messages[1:]:
        tasks.deliveries_send_batch(*message)
    assert len(smtp.to("alice@jitad.test")) == 1
    assert smtp.to("bob@jitad.test") == []  # not alike: another person's notice waits for its own message
    tasks.deliveries_send_batch(*bob_message)
    assert len(smtp.to("bob@jitad.test")) == 1


def test_notices_of_other_kinds_or_under_way_are_not_joined(settings, smtp, published):
    """GIVEN alice's "ended" notice, her "active" notice, and another "ended" one whose attempt is under way
    WHEN the first is sent THEN it goes alone: another kind keeps its own e-mail, and one being sent is left to
    its sender."""
    from django.utils import timezone

    alice = _person("alice")
    first = _told(alice)
    active = _told(alice, event="grant.active", subject="Active: admin on SRV")
    busy_ids, _ = _told(alice, subject="Ended: admin on SRV9")
    Delivery.objects.filter(id__in=busy_ids).update(attempt_started_at=timezone.now())
    tasks.deliveries_send_batch(*first)
    (mail,) = smtp.to("alice@jitad.test")
    assert mail["Subject"] == "[jitad] Ended: admin on SRV"
    assert Delivery.objects.get(id=active[0][0]).state == DeliveryState.PENDING
    assert Delivery.objects.get(id=busy_ids[0]).state == DeliveryState.PENDING
    tasks.deliveries_send_batch(*active)
    assert [m["Subject"] for m in smtp.to("alice@jitad.test")] == ["[jitad] Ended: admin on SRV",
                                                                  "[jitad] Active: admin on SRV"]


def test_joined_notices_are_capped_per_e_mail_and_share_its_outcome(settings, smtp, published,
                                                                     django_capture_on_commit_callbacks):
    """GIVEN five "ended" notices waiting for alice, JITAD_EMAIL_COMBINE_MAX=2, and a server that defers her
    second e-mail WHEN they are sent THEN three e-mails carry 2, 2 and 1 notices; the deferred one's two
    deliveries are both pending for a retry, attempt 1, and the other three sent."""
    settings.JITAD_EMAIL_COMBINE_MAX = 2
    alice = _person("alice")
    messages = [_told(alice, subject=f"Ended: admin on SRV{i}") for i in range(5)]
    real = smtp.defer
    calls = {"n": 0}

    class DeferThird(set):
        def __contains__(self, address):
            calls["n"] += 1
            return calls["n"] == 2

    smtp.defer = DeferThird()
    with django_capture_on_commit_callbacks(execute=True):
        for message in messages:  # each takes over as many as its e-mails carry; the others find theirs taken
            tasks.deliveries_send_batch(*message)
    smtp.defer = real
    assert [m["Subject"] for m in smtp.to("alice@jitad.test")] == [
        "[jitad] Ended: admin on SRV0 (and 1 more)", "[jitad] Ended: admin on SRV4"]
    rows = {d.notification.subject: d for d in Delivery.objects.select_related("notification")}
    S, P = DeliveryState.SENT, DeliveryState.PENDING
    assert [rows[f"Ended: admin on SRV{i}"].state for i in range(5)] == [S, S, P, P, S]
    for deferred in (rows["Ended: admin on SRV2"], rows["Ended: admin on SRV3"]):
        assert deferred.attempts == 1 and "450" in deferred.last_error and deferred.next_attempt_at


def test_notices_another_chunk_took_over_before_their_e_mail_started_are_not_sent_twice(settings, smtp,
                                                                                        published, monkeypatch):
    """GIVEN a chunk for alice and bob WHEN, after alice's e-mail, another chunk takes bob's notice over (as a
    sender joining his notices does) THEN this chunk does not send bob's, and leaves its claim alone."""
    import uuid

    from jitad.notifications.services import email_batch

    alice, bob = _person("alice"), _person("bob")
    notifications_create(items=[Outgoing(event="grant.revoked", subject="Ended", body="x", people=[p])
                                for p in (alice, bob)])
    ids, tokens = zip(*Delivery.objects.order_by("id").values_list("id", "claim_token"))
    other = uuid.uuid4()
    real = email_batch.send_emails

    def taken_over_after_first(items, **kwargs):
        for i, outcome in enumerate(real(items, **kwargs)):
            if i == 0:
                Delivery.objects.filter(address="bob@jitad.test").update(claim_token=other)
            yield outcome

    monkeypatch.setattr(email_batch, "send_emails", taken_over_after_first)
    tasks.deliveries_send_batch(list(ids), str(tokens[0]))
    assert [r[0] for r in smtp.messages] == [["alice@jitad.test"]]
    bob_row = Delivery.objects.get(address="bob@jitad.test")
    assert (bob_row.state, bob_row.claim_token, bob_row.attempt_started_at) == (DeliveryState.PENDING, other, None)


# -- notice e-mails wait while revocations run ------------------------------------------------
def _revocations(*, seconds_ago: float) -> None:
    """The engine's revoking pulse, as a revocation message marks it, ``seconds_ago``."""
    from datetime import timedelta

    from django.utils import timezone

    from jitad.engine.models import Pulse
    from jitad.engine.services import REVOKING, pulse_mark

    pulse_mark(name=REVOKING)
    Pulse.objects.filter(name=REVOKING).update(at=timezone.now() - timedelta(seconds=seconds_ago))


def test_notice_e_mails_wait_while_revocations_run_then_go_together(settings, smtp, published,
                                                                   django_capture_on_commit_callbacks):
    """GIVEN revocations running (a revocation message marked the engine's pulse just now) WHEN three groups'
    messages telling alice come THEN nothing is sent: the deliveries are handed back unclaimed and unattempted,
    and one resume message is queued (not one per message); WHEN it runs while revocations still run THEN it
    looks again later; WHEN they have stopped THEN alice gets one e-mail with the three."""
    alice = _person("alice")
    _revocations(seconds_ago=0)
    for i in range(3):
        tasks.deliveries_send_batch(*_told(alice, subject=f"Ended: admin on SRV{i}"))
    assert smtp.messages == []
    assert set(Delivery.objects.values_list("state", "attempts", "claim_token", "attempt_started_at")) == {
        (DeliveryState.PENDING, 0, None, None)}
    assert [name for name, _ in published] == ["jitad.notifications.resume"]

    _revocations(seconds_ago=0)
    _run_next(published)  # still running: it queues itself again, sends nothing
    assert smtp.messages == [] and [name for name, _ in published] == ["jitad.notifications.resume"]

    _revocations(seconds_ago=5)
    with django_capture_on_commit_callbacks(execute=True):
        _run_next(published)  # stopped: the resume queues one batch of the waiting e-mails
    assert [name for name, _ in published] == ["jitad.notifications.send_batch"]
    _run(published)
    (mail,) = smtp.to("alice@jitad.test")
    assert mail["Subject"] == "[jitad] Ended: admin on SRV0 (and 2 more)"
    assert set(Delivery.objects.values_list("state", "attempts")) == {(DeliveryState.SENT, 1)}


def test_notice_e_mails_wait_no_longer_than_the_setting_and_alerts_never_wait(settings, smtp, published):
    """GIVEN revocations running WHEN a message's notices are older than JITAD_NOTICES_WAIT_SECONDS THEN they go at
    once; with the setting at 0 nothing waits; and an apprise destination in a waiting batch is sent at once."""
    from datetime import timedelta

    from django.utils import timezone

    from jitad.notifications.models import Notification

    alice, bob = _person("alice"), _person("bob")
    _revocations(seconds_ago=0)
    ids, token = _told(alice)
    Notification.objects.update(created_at=timezone.now() - timedelta(seconds=31))
    tasks.deliveries_send_batch(ids, token)
    assert len(smtp.to("alice@jitad.test")) == 1

    settings.JITAD_NOTICES_WAIT_SECONDS = 0
    tasks.deliveries_send_batch(*_told(bob))
    assert len(smtp.to("bob@jitad.test")) == 1

    settings.JITAD_NOTICES_WAIT_SECONDS = 30
    receiver = WebhookReceiver().start()
    try:
        settings.JITAD_ALERT_URLS = [receiver.url]
        carol = _person("carol")
        (note,) = notifications_create(items=[Outgoing(event="grant.revoked", subject="Ended", body="x",
                                                       people=[carol], destinations=["JITAD_ALERT_URLS"])])
        rows = dict(Delivery.objects.filter(notification=note).values_list("channel", "id"))
        token = str(Delivery.objects.get(id=rows[Delivery.Channel.APPRISE]).claim_token)
        tasks.deliveries_send_batch(list(rows.values()), token)
        assert ("jitad.notifications.send", (rows[Delivery.Channel.APPRISE], token)) in published
        waiting = Delivery.objects.get(id=rows[Delivery.Channel.EMAIL])
        assert (waiting.state, waiting.claim_token, waiting.attempts) == (DeliveryState.PENDING, None, 0)
    finally:
        receiver.stop()


def test_a_resume_with_more_waiting_than_one_batch_goes_on_at_once(settings, smtp, published, monkeypatch,
                                                                   django_capture_on_commit_callbacks):
    """GIVEN three people's e-mails that waited, and at most two sent on per look WHEN revocations have stopped
    and the resume runs THEN it sends two on and queues itself again at once; the next look sends the third."""
    from jitad.notifications.services import waiting

    monkeypatch.setattr(waiting, "RESUME_MAX", 2)
    _revocations(seconds_ago=0)
    for name in ("alice", "bob", "carol"):
        tasks.deliveries_send_batch(*_told(_person(name)))
    assert [name for name, _ in published] == ["jitad.notifications.resume"]
    _revocations(seconds_ago=5)
    with django_capture_on_commit_callbacks(execute=True):
        _run_next(published)
    assert sorted(name for name, _ in published) == ["jitad.notifications.resume", "jitad.notifications.send_batch"]
    while published:  # the messages each run publishes once its transaction commits
        with django_capture_on_commit_callbacks(execute=True):
            _run_next(published)
    assert sorted(r[0][0] for r in smtp.messages) == ["alice@jitad.test", "bob@jitad.test", "carol@jitad.test"]


def test_a_resume_chain_that_lost_its_lease_stops_and_a_refused_one_frees_it(settings, smtp, published, monkeypatch):
    """GIVEN e-mails waiting behind a resume chain WHEN a message of another chain (its lease taken over) runs THEN
    it sends nothing and stops; WHEN the broker refuses a new chain's message THEN its lease is given back, so the
    next batch starts a chain (not left to the periodic check)."""
    from jitad.notifications.services import compose, waiting

    _revocations(seconds_ago=0)
    tasks.deliveries_send_batch(*_told(_person("alice")))
    ((_, (holder,)),) = published
    published.clear()
    _revocations(seconds_ago=5)
    assert tasks.deliveries_resume("a-chain-that-lost-its-lease") == 0
    assert published == [] and smtp.messages == []

    waiting.lease_release(name=compose.RESUME_LEASE, holder=holder)
    monkeypatch.setattr(waiting.queue, "enqueue", lambda *a, **kw: False)  # the broker refuses
    assert compose.resume_soon() is False
    monkeypatch.setattr(waiting.queue, "enqueue", lambda name, *args, **kw: published.append((name, args)) or True)
    assert compose.resume_soon() is True and [name for name, _ in published] == ["jitad.notifications.resume"]
