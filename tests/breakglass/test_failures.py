"""Break-glass failures, recorded by the engine's one "attempt failed" routine against the Samba DC.

A failed rotation or opening is counted, waits the engine's backoff with its claim dropped (so the
sweep takes it up again), moves to the failed state or alerts as the domain says, and an execution
whose claim was taken over records nothing. Each test holds the claim of its row itself (a lease an
hour long), so the session's worker never takes it while the test runs the execution in this process.
"""
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.breakglass import services
from jitad.breakglass.models import Checkout, SealedAccount
from jitad.engine import claims
from jitad.notifications.models import Notification
from tests.breakglass.conftest import APPROVERS, RESPONDERS
from tests.breakglass.helpers import wait_account
from tests.support.waiting import wait_for

AccountState, CheckoutState = SealedAccount.State, Checkout.State
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def retry(settings):
    """This process's retry rule: steps of 20 s, 40 s, 80 s... up to 1000 s (the longest wait), a limit of 3
    attempts; and a DC that does not answer fails within seconds. The worker keeps its own (tests/settings.py)."""
    settings.JITAD_RETRY_BASE_SECONDS, settings.JITAD_RETRY_MAX_SECONDS = 20, 1000
    settings.JITAD_RETRY_MAX_ATTEMPTS = 3
    settings.JITAD_LDAP_CONNECT_TIMEOUT, settings.JITAD_LDAP_RECEIVE_TIMEOUT = 1, 2
    return settings


def _hold(model, pk: int, **fields) -> uuid.UUID:
    """Claim the row for this test (an hour's lease) and set ``fields``; returns the claim's token."""
    token = uuid.uuid4()
    model.objects.filter(pk=pk).update(claim_token=token, lease_until=timezone.now() + timedelta(hours=1), **fields)
    return token


def _audit(action: str, pk: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, object_id=str(pk)).order_by("pk"))


def _alerts(event: str, pk: int) -> int:
    return Notification.objects.filter(event=event, object_id=str(pk)).count()


def test_a_transient_failure_is_counted_scheduled_with_backoff_and_its_claim_dropped(
        live, samba_dc, sealed, retry, alert_sink):
    """GIVEN a sealed account whose rotation this execution holds WHEN the DC does not answer THEN the attempt is
    counted with the error, the next one waits the first backoff step (10 to 20 s), the claim is dropped, the account
    is shown exposed (its failed state) and alerted; once the DC answers and the attempt is due, the sweep takes it
    up again and seals it."""
    account = sealed(disable_when_sealed=False)
    token = _hold(SealedAccount, account.pk, state=AccountState.ROTATING)
    samba_dc.pause()
    try:
        started = timezone.now()
        services.account_rotate_execute(account_id=account.pk, token=token)
        ended = timezone.now()
    finally:
        samba_dc.resume()
    row = SealedAccount.objects.get(pk=account.pk)
    assert (row.attempts, row.claim_token, row.lease_until) == (1, None, None)
    assert row.last_error.startswith("DirectoryUnavailable")
    assert started + timedelta(seconds=10) <= row.next_attempt_at <= ended + timedelta(seconds=20)
    assert row.state == AccountState.EXPOSED and row.exposed_since is not None
    (failed,) = _audit("breakglass.rotation_failed", account.pk)
    assert (failed.before, failed.after) == (AccountState.ROTATING, AccountState.EXPOSED)
    assert failed.data["attempts"] == 1 and failed.data["transient"] is True
    wait_for(lambda: any("EXPOSED" in m["title"] and account.name in m["title"] for m in alert_sink.messages),
             message="the exposed alert")

    SealedAccount.objects.filter(pk=account.pk).update(next_attempt_at=timezone.now())  # due now: the sweep's turn
    resealed = wait_account(account.pk, AccountState.SEALED)
    assert resealed.seal_id != account.seal_id and resealed.attempts == 0


def test_an_enrolment_refused_past_the_limit_alerts_once_and_waits_the_longest(live, samba_dc, retry):
    """GIVEN an enrolment of jitad's own bind account (the DC answers; jitad refuses to seal it) at its second
    attempt WHEN the third attempt is refused THEN the limit is reached: the account stays enrolling, the security
    channel is alerted, and the next attempt waits the longest wait (500 to 1000 s); WHEN it is refused once more
    THEN it is counted again and not alerted again."""
    account = SealedAccount.objects.create(name="Administrator", state=AccountState.ENROLLING, attempts=2,
                                           responder_groups=[RESPONDERS], approver_groups=[APPROVERS])
    try:
        token = _hold(SealedAccount, account.pk)
        started = timezone.now()
        services.account_rotate_execute(account_id=account.pk, token=token)
        row = SealedAccount.objects.get(pk=account.pk)
        assert (row.state, row.attempts, row.claim_token, row.lease_until) == (AccountState.ENROLLING, 3, None, None)
        assert "bind account" in row.last_error
        assert row.next_attempt_at >= started + timedelta(seconds=500)
        assert _alerts("breakglass.enrol_failed", account.pk) == 1
        assert _audit("breakglass.rotation_failed", account.pk)[-1].data["transient"] is False

        token = _hold(SealedAccount, account.pk)
        services.account_rotate_execute(account_id=account.pk, token=token)
        row = SealedAccount.objects.get(pk=account.pk)
        assert (row.attempts, row.claim_token) == (4, None)
        assert _alerts("breakglass.enrol_failed", account.pk) == 1
        assert len(_audit("breakglass.rotation_failed", account.pk)) == 2
    finally:
        SealedAccount.objects.filter(pk=account.pk).delete()  # no retry of it runs into later tests


def test_an_opening_that_keeps_failing_alerts_at_the_limit_and_never_gives_up(live, samba_dc, people, sealed,
                                                                              retry, alert_sink):
    """GIVEN an approved checkout of an account kept disabled while sealed, at its second attempt to enable it, and
    the account gone from AD WHEN the third attempt fails THEN it is counted, its claim dropped, the security channel
    is alerted that the holder cannot use it, and the checkout stays opening with the ordinary next step (40 to 80 s,
    not the longest wait of 500 to 1000 s): an opening is retried until its window ends."""
    account = sealed(disable_when_sealed=True)
    SealedAccount.objects.filter(pk=account.pk).update(state=AccountState.CHECKED_OUT, user_guid=str(uuid.uuid4()))
    now = timezone.now()
    checkout = Checkout.objects.create(
        account=account, holder=people.responder, seal_id=account.seal_id, purpose=Checkout.Purpose.USE,
        mode=Checkout.Mode.EMERGENCY, state=CheckoutState.OPENING, incident_ref="INC-3001", reason="the DC is gone",
        duration_minutes=30, approvals_required=0, requested_at=now, decided_at=now,
        expires_at=now + timedelta(minutes=30), attempts=2)
    token = _hold(Checkout, checkout.pk)
    started = timezone.now()
    services.checkout_open_execute(checkout_id=checkout.pk, token=token)
    ended = timezone.now()
    row = Checkout.objects.get(pk=checkout.pk)
    assert (row.state, row.attempts, row.claim_token, row.lease_until) == (CheckoutState.OPENING, 3, None, None)
    assert row.last_error.startswith("DirectoryNotFound")
    assert started + timedelta(seconds=40) <= row.next_attempt_at <= ended + timedelta(seconds=80)
    (failed,) = _audit("breakglass.open_failed", checkout.pk)
    assert failed.data["attempts"] == 3
    wait_for(lambda: any("cannot be enabled" in m["title"] and account.name in m["title"] for m in alert_sink.messages),
             message="the alert that the account cannot be enabled")


def test_an_execution_whose_claim_was_taken_over_records_no_failure(live, samba_dc, sealed, retry):
    """GIVEN a rotation running in a worker while the DC does not answer WHEN its claim lapses and a sweep claims
    the account again, and then the execution fails THEN nothing is recorded: no attempt, no error, no exposed
    state, no audit or alert; the new holder's claim stands, and the rotation it does seals the account."""
    account = sealed(disable_when_sealed=False)
    token = _hold(SealedAccount, account.pk, state=AccountState.ROTATING)
    done = threading.Event()

    def execute():
        try:
            services.account_rotate_execute(account_id=account.pk, token=token)
        finally:
            connection.close()
            done.set()

    samba_dc.pause()
    try:
        worker = threading.Thread(target=execute)
        worker.start()
        wait_for(lambda: SealedAccount.objects.get(pk=account.pk).claim_token != token,
                 message="the execution's own claim")
        newer, taken = claims.claim(SealedAccount.objects.filter(pk=account.pk), limit=1)
        assert [r.pk for r in taken] == [account.pk]
        assert done.wait(60), "the execution did not end"
        worker.join(5)
    finally:
        samba_dc.resume()
    row = SealedAccount.objects.get(pk=account.pk)
    assert (row.attempts, row.last_error, row.next_attempt_at) == (0, "", None)
    assert (row.state, row.claim_token, row.exposed_since) == (AccountState.ROTATING, newer, None)
    assert _audit("breakglass.rotation_failed", account.pk) == []
    assert _alerts("breakglass.exposed", account.pk) == 0

    claims.release(SealedAccount, [account.pk], newer)
    wait_account(account.pk, AccountState.SEALED)
