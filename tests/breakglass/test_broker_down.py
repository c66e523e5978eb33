"""Break-glass while the broker is down: a window that ends is checked in and its account sealed regardless."""
from django.utils import timezone

from jitad.breakglass import services
from jitad.breakglass.models import Checkout, SealedAccount
from tests.conftest import ARTIFACTS
from tests.breakglass.helpers import ad_bind, ad_enabled, stored_password, wait_account, wait_checkout
from tests.support.processes import RedisServer

AccountState, CheckoutState = SealedAccount.State, Checkout.State


def test_a_window_that_ends_while_redis_is_down_is_checked_in_and_the_account_sealed(
        nodes, samba_dc, ldap_admin, people, sealed, tmp_path):
    """GIVEN jitad (an engine worker with its scheduler) on a Redis of its own, and a break-glass account
    checked out (emergency), its password revealed WHEN Redis stops and the window ends THEN, with Redis
    still down, the watchdog's process checks the checkout in, rotates the password and disables the
    account: the revealed password no longer binds, jitad's new one does on a disabled account."""
    redis = RedisServer(tmp_path / "redis", ARTIFACTS / "engine" / "redis-breakglass.log").start()
    nodes.started.append(redis)
    worker = nodes.worker(nodes.env(CELERY_BROKER_URL=redis.url), beat=True)
    account = sealed(disable_when_sealed=True)
    checkout = services.checkout_request(account=account, requester=people.responder, incident_ref="INC-2001",
                                         reason="Redis and the DCs both misbehave", runbook_slug="dc-outage",
                                         duration_minutes=60, emergency=True)
    checkout = wait_checkout(checkout.pk, CheckoutState.OPEN, timeout=60)
    password = services.checkout_reveal(checkout=checkout, actor=people.responder)
    assert ad_bind(samba_dc, account.user_dn, password) == "ok"

    redis.stop()
    Checkout.objects.filter(pk=checkout.pk).update(expires_at=timezone.now())
    closed = wait_checkout(checkout.pk, CheckoutState.CLOSED, timeout=60)
    assert closed.checkin_kind == Checkout.CheckinKind.AUTO
    account = wait_account(account.pk, AccountState.SEALED, timeout=60)
    assert ad_bind(samba_dc, account.user_dn, password) == "52e"  # the revealed password is dead
    assert ad_bind(samba_dc, account.user_dn, stored_password(account)) == "533"  # the new one, account disabled
    assert not ad_enabled(ldap_admin, account.user_dn)
    assert not redis.running  # all of it while Redis was down
    assert "break-glass account(s) and checkout(s) done in this process" in worker.log_tail(10**7)
