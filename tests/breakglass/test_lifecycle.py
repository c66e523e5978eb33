"""Break-glass end to end against the Samba DC and a real worker.

Enrol → nobody's password works → two approvers → enabled → revealed once → binds →
check-in → rotated (old dead, new works) → disabled and sealed again; emergency mode;
automatic check-in; a DC outage during rotation; broken seals.
"""
import pytest
from django.core import serializers
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.breakglass import services
from jitad.breakglass.errors import BreakglassRefused
from jitad.breakglass.models import Checkout, Review, Seal, SealedAccount
from jitad.notifications.models import Notification
from tests.breakglass.helpers import ad_bind, ad_enabled, ad_set_password, stored_password, wait_account, wait_checkout
from tests.support.waiting import wait_for

AccountState, CheckoutState = SealedAccount.State, Checkout.State
pytestmark = pytest.mark.django_db(transaction=True)


def _ask(account, user, **kw):
    args = {"incident_ref": "INC-1001", "reason": "DC01 is down and nobody can log on", "runbook_slug": "dc-outage",
            "duration_minutes": 60}
    args.update(kw)
    return services.checkout_request(account=account, requester=user, **args)


def test_enrol_dual_control_reveal_once_checkin_rotates(live, samba_dc, ldap_admin, people, sealed, caplog):
    """GIVEN an AD account its creator knows the password of WHEN jitad enrols it, two approvers let a responder
    check it out, the responder sees the password and checks in THEN the creator's password never works again, the
    revealed one works only during the window, and afterwards only jitad's new password works, on a disabled account."""
    account = sealed(disable_when_sealed=True)
    dn, creator_password = account.user_dn, account.creator_password
    assert ad_bind(samba_dc, dn, creator_password) == "52e"  # wrong password: nobody knows it now
    first = stored_password(account)
    assert ad_bind(samba_dc, dn, first) == "533"  # right password, disabled while sealed
    assert not ad_enabled(ldap_admin, dn)
    seal1 = account.seal_id
    assert Seal.objects.get(seal_id=seal1).reason == Seal.Reason.ENROLLED

    checkout = _ask(account, people.responder)
    assert checkout.state == CheckoutState.PENDING and checkout.seal_id == seal1
    with pytest.raises(BreakglassRefused) as own:
        services.checkout_approve(checkout=checkout, approver=people.responder)
    assert own.value.code in ("own_checkout",)
    with pytest.raises(BreakglassRefused):
        services.checkout_approve(checkout=checkout, approver=people.outsider)
    services.checkout_approve(checkout=checkout, approver=people.approver1, comment="seen the incident")
    with pytest.raises(BreakglassRefused) as twice:
        services.checkout_approve(checkout=checkout, approver=people.approver1)
    assert twice.value.code == "already_decided"
    with pytest.raises(BreakglassRefused) as early:
        services.checkout_reveal(checkout=checkout, actor=people.responder)
    assert early.value.code == "not_open"
    services.checkout_approve(checkout=checkout, approver=people.approver2)

    checkout = wait_checkout(checkout.pk, CheckoutState.OPEN)
    assert ad_enabled(ldap_admin, dn)
    with pytest.raises(BreakglassRefused):
        services.checkout_reveal(checkout=checkout, actor=people.approver1)  # not the holder
    password = services.checkout_reveal(checkout=checkout, actor=people.responder)
    assert password == first
    with pytest.raises(BreakglassRefused) as again:
        services.checkout_reveal(checkout=checkout, actor=people.responder)
    assert again.value.code == "already_revealed"
    assert ad_bind(samba_dc, dn, password) == "ok"

    services.checkout_checkin(checkout=checkout, actor=people.responder)
    account = wait_account(account.pk, AccountState.SEALED)
    wait_checkout(checkout.pk, CheckoutState.CLOSED)
    assert ad_bind(samba_dc, dn, password) == "52e"
    second = stored_password(account)
    assert second != password and len(second) == 32
    assert ad_bind(samba_dc, dn, second) == "533"
    assert not ad_enabled(ldap_admin, dn)
    assert account.seal_id != seal1
    assert Seal.objects.get(seal_id=seal1).broken_at is not None
    assert Seal.objects.get(seal_id=account.seal_id).reason == Seal.Reason.CHECKED_IN
    review = Review.objects.get(checkout=checkout)
    assert review.state == Review.State.AWAITING and not review.mandatory

    actions = list(AuditEvent.objects.filter(object_type__in=["checkout", "sealed_account"]).values_list("action", flat=True))
    for action in ("breakglass.account_enrolled", "breakglass.sealed", "breakglass.checkout_requested",
                   "breakglass.checkout_approval", "breakglass.checkout_approved", "breakglass.checkout_opened",
                   "breakglass.password_revealed", "breakglass.checked_in", "breakglass.checkout_closed"):
        assert action in actions, action
    # The passwords are nowhere in the database but as vault tokens, nor in any log line.
    dump = "".join(serializers.serialize("json", m.objects.all()) for m in
                   (AuditEvent, Notification, SealedAccount, Seal, Checkout, Review))
    for secret in (creator_password, first, second):
        assert secret not in dump
        assert secret not in caplog.text
        assert secret not in live.log_path.read_text(errors="replace")


def test_deny_and_cancel_keep_the_account_sealed(live, people, sealed):
    account = sealed()
    checkout = _ask(account, people.responder)
    with pytest.raises(BreakglassRefused) as no_comment:
        services.checkout_deny(checkout=checkout, approver=people.approver1, comment="")
    assert no_comment.value.code == "comment_required"
    services.checkout_deny(checkout=checkout, approver=people.approver1, comment="use the normal JIT path")
    assert Checkout.objects.get(pk=checkout.pk).state == CheckoutState.DENIED
    account.refresh_from_db()
    assert account.state == AccountState.SEALED
    again = _ask(account, people.responder)
    with pytest.raises(BreakglassRefused):
        services.checkout_cancel(checkout=again, actor=people.approver1)
    services.checkout_cancel(checkout=again, actor=people.responder)
    account.refresh_from_db()
    assert account.state == AccountState.SEALED and Checkout.objects.get(pk=again.pk).state == CheckoutState.CANCELLED


def test_emergency_alone_alerts_everyone_and_the_review_is_mandatory(live, samba_dc, people, sealed, alert_sink,
                                                                     smtp_sink):
    """GIVEN a responder alone WHEN they check out in emergency mode THEN it opens at once, the security channel and
    every approver are told, and the review cannot be closed before the holder files it."""
    account = sealed(disable_when_sealed=False)
    checkout = _ask(account, people.responder, emergency=True)
    assert checkout.state == CheckoutState.OPEN and checkout.mode == Checkout.Mode.EMERGENCY
    wait_for(lambda: any("EMERGENCY" in m["title"] and account.name in m["title"] for m in alert_sink.messages),
             message="the emergency alert on the security channel")
    wait_for(lambda: all(any("EMERGENCY" in m["Subject"] for m in smtp_sink.to(p.email))
                         for p in (people.approver1, people.approver2)),
             message="the emergency mail to both approvers")
    password = services.checkout_reveal(checkout=checkout, actor=people.responder)
    assert ad_bind(samba_dc, account.user_dn, password) == "ok"
    services.checkout_checkin(checkout=checkout, actor=people.responder)
    wait_account(account.pk, AccountState.SEALED)
    review = Review.objects.get(checkout=checkout)
    assert review.mandatory
    with pytest.raises(BreakglassRefused) as unfiled:
        services.review_close(review=review, actor=people.approver1, comment="fine")
    assert unfiled.value.code == "review_not_filed"
    services.review_file(checkout=checkout, actor=people.responder, was_needed="yes",
                         what_was_done="Seized the PDC emulator role and restored replication on DC02.")
    with pytest.raises(BreakglassRefused):
        services.review_close(review=review, actor=people.responder)  # never the holder
    services.review_close(review=review, actor=people.approver2)
    assert Review.objects.get(pk=review.pk).state == Review.State.CLOSED
    assert ad_bind(samba_dc, account.user_dn, password) == "52e"


def test_window_end_checks_in_and_rotates_by_itself(live, samba_dc, people, sealed):
    account = sealed()
    checkout = _ask(account, people.responder, emergency=True)
    checkout = wait_checkout(checkout.pk, CheckoutState.OPEN)
    password = services.checkout_reveal(checkout=checkout, actor=people.responder)
    Checkout.objects.filter(pk=checkout.pk).update(expires_at=timezone.now())
    closed = wait_checkout(checkout.pk, CheckoutState.CLOSED)
    assert closed.checkin_kind == Checkout.CheckinKind.AUTO
    account = wait_account(account.pk, AccountState.SEALED)
    assert ad_bind(samba_dc, account.user_dn, password) == "52e"
    assert ad_bind(samba_dc, account.user_dn, stored_password(account)) == "533"


def test_forced_checkin_by_an_approver(live, people, sealed):
    account = sealed(disable_when_sealed=False)
    checkout = _ask(account, people.responder, emergency=True)
    with pytest.raises(BreakglassRefused) as outsider:
        services.checkout_checkin(checkout=checkout, actor=people.outsider, reason="mine now")
    assert outsider.value.code == "not_allowed"
    with pytest.raises(BreakglassRefused):
        services.checkout_checkin(checkout=checkout, actor=people.approver1, reason="")
    services.checkout_checkin(checkout=checkout, actor=people.approver1, reason="incident closed an hour ago")
    closed = wait_checkout(checkout.pk, CheckoutState.CLOSED)
    assert closed.checkin_kind == Checkout.CheckinKind.FORCED and closed.checkin_by == people.approver1.username
    wait_account(account.pk, AccountState.SEALED)


def test_rotation_with_the_dc_down_is_exposed_alerted_and_fixed_when_it_returns(live, samba_dc, people, sealed,
                                                                                   alert_sink):
    """GIVEN a revealed password WHEN the check-in's rotation runs while the DC is frozen THEN the account is shown
    exposed with the error and alerted, retried, and sealed with a "Resolved" alert once the DC answers again."""
    account = sealed(disable_when_sealed=False)
    checkout = _ask(account, people.responder, emergency=True)
    password = services.checkout_reveal(checkout=checkout, actor=people.responder)
    samba_dc.pause()
    try:
        services.checkout_checkin(checkout=checkout, actor=people.responder)
        exposed = wait_account(account.pk, AccountState.EXPOSED, timeout=60)
        assert exposed.exposed_since and "DirectoryUnavailable" in exposed.last_error
        wait_for(lambda: any("EXPOSED" in m["title"] and account.name in m["title"] for m in alert_sink.messages),
                 message="the exposed alert")
        wait_for(lambda: SealedAccount.objects.get(pk=account.pk).attempts >= 2, timeout=60,
                 message="a second attempt while the DC is down")
        assert Checkout.objects.get(pk=checkout.pk).state == CheckoutState.RETURNING
    finally:
        samba_dc.resume()
    account = wait_account(account.pk, AccountState.SEALED, timeout=90)
    assert account.exposed_since is None
    wait_checkout(checkout.pk, CheckoutState.CLOSED)
    wait_for(lambda: any(m["title"].startswith("Resolved") and account.name in m["title"] for m in alert_sink.messages),
             message="the resolved alert")
    assert ad_bind(samba_dc, account.user_dn, password) == "52e"
    assert ad_bind(samba_dc, account.user_dn, stored_password(account)) == "ok"


def test_a_password_set_outside_jitad_breaks_the_seal_and_is_rotated(live, samba_dc, ldap_admin, people, sealed,
                                                                        alert_sink):
    account = sealed()
    assert services.seals_check()["broken"] == 0
    ad_set_password(ldap_admin, account.user_dn, "Out-of-band-12345!")
    counts = services.seals_check()
    assert counts["broken"] == 1
    wait_for(lambda: any("Seal broken" in m["title"] and account.name in m["title"] for m in alert_sink.messages),
             message="the seal-broken alert")
    resealed = wait_account(account.pk, AccountState.SEALED)
    assert resealed.seal_id != account.seal_id
    assert Seal.objects.get(seal_id=resealed.seal_id).reason == Seal.Reason.SEAL_BROKEN
    assert ad_bind(samba_dc, account.user_dn, "Out-of-band-12345!") == "52e"


def test_an_account_enabled_outside_jitad_breaks_the_seal(live, ldap_admin, sealed):
    from ldap3 import MODIFY_REPLACE

    account = sealed(disable_when_sealed=True)
    conn = ldap_admin()
    conn.modify(account.user_dn, {"userAccountControl": [(MODIFY_REPLACE, [512])]})
    conn.unbind()
    assert services.seals_check()["broken"] == 1
    wait_account(account.pk, AccountState.SEALED)
    assert not ad_enabled(ldap_admin, account.user_dn)


def test_jitad_never_seals_its_own_bind_account(live, samba_dc):
    """The bind account (Administrator here) must never be locked away from jitad itself."""
    account = services.account_enrol(account=SealedAccount(name="Administrator"), actor="tester")
    stuck = wait_for(lambda: SealedAccount.objects.filter(pk=account.pk, attempts__gte=1).first(),
                     message="the refused enrolment")
    assert stuck.state == AccountState.ENROLLING and "bind account" in stuck.last_error
    SealedAccount.objects.filter(pk=account.pk).delete()  # stop the retries before other tests
