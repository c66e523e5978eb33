"""What an attacker or an accident would try: a sealed account logging in to jitad, an opened envelope while the
account is busy, a pending request blocking an emergency, a blocked holder, keys rotated away."""
import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory

from jitad.accounts.models import DirectoryAccount
from jitad.breakglass import services
from jitad.breakglass.errors import BreakglassRefused
from jitad.breakglass.models import Checkout, Seal, SealedAccount
from jitad.breakglass.vault import key_generate
from tests.breakglass.helpers import ad_bind, stored_password, wait_account, wait_checkout

pytestmark = pytest.mark.django_db(transaction=True)
AccountState, CheckoutState = SealedAccount.State, Checkout.State


def _ask(account, user, **kw):
    return services.checkout_request(account=account, requester=user, incident_ref="INC-7", reason="a reason long enough",
                                     runbook_slug="dc-outage", duration_minutes=30, **kw)


def test_a_sealed_account_never_logs_in_to_jitad(live, samba_dc, people, sealed):
    """GIVEN a holder who saw the password WHEN they log in to the portal as the break-glass account THEN jitad refuses,
    creates no identity for it (which could approve, or block the rotation), and check-in still rotates."""
    account = sealed(disable_when_sealed=False)
    checkout = _ask(account, people.responder, emergency=True)
    password = services.checkout_reveal(checkout=checkout, actor=people.responder)
    request = RequestFactory().post("/account/login/")
    assert authenticate(request, username=account.name, password=password) is None
    assert request.jitad_login_error == "sealed_account"
    assert not DirectoryAccount.objects.filter(guid__iexact=account.user_guid).exists()
    services.checkout_checkin(checkout=checkout, actor=people.responder)
    wait_account(account.pk, AccountState.SEALED)
    assert ad_bind(samba_dc, account.user_dn, password) == "52e"


def test_an_envelope_opened_during_a_pending_request_rotates_now(live, samba_dc, people, sealed):
    account = sealed(disable_when_sealed=False)
    seal = account.seal_id
    pending = _ask(account, people.responder)
    out = []
    try:
        call_command("jitad_breakglass_envelope", "verify", account.name, seal, "--opened", stdout=_Collect(out))
    except SystemExit as e:
        assert e.code == 0
    assert Checkout.objects.get(pk=pending.pk).state == CheckoutState.CANCELLED
    account = wait_account(account.pk, AccountState.SEALED)
    assert account.seal_id != seal and Seal.objects.get(seal_id=seal).broken_at is not None


def test_an_envelope_opened_while_in_use_breaks_the_seal_and_rotates_at_checkin(live, people, sealed):
    account = sealed(disable_when_sealed=False)
    seal = account.seal_id
    checkout = _ask(account, people.responder, emergency=True)
    verdict = services.envelope_verify(account_name=account.name, seal_id=seal, opened=True, actor="tester")
    assert verdict.rotation is None and "rotated when that ends" in verdict.message
    assert Seal.objects.get(seal_id=seal).broken_at is not None
    services.checkout_checkin(checkout=checkout, actor=people.responder)
    assert wait_account(account.pk, AccountState.SEALED).seal_id != seal


def test_no_envelope_is_printed_of_a_broken_seal(live, people, sealed):
    account = sealed(disable_when_sealed=False)
    envelope = services.envelope_request(account=account, requester=people.responder, incident_ref="CHG-1",
                                         reason="envelope for the safe")
    services.checkout_approve(checkout=envelope, approver=people.approver1)
    services.checkout_approve(checkout=envelope, approver=people.approver2)
    Seal.objects.filter(seal_id=account.seal_id).update(broken_at="2026-01-01T00:00:00Z")
    with pytest.raises(BreakglassRefused) as refused:
        services.envelope_print(checkout=Checkout.objects.get(pk=envelope.pk), actor=people.responder)
    assert refused.value.code == "seal_changed"


def test_an_emergency_supersedes_a_pending_request(live, people, sealed, make_user):
    account = sealed(disable_when_sealed=False)
    pending = _ask(account, people.responder)
    other = make_user("resp", groups=["bg-responders"])
    emergency = _ask(account, other, emergency=True)
    assert emergency.state == CheckoutState.OPEN
    assert Checkout.objects.get(pk=pending.pk).state == CheckoutState.CANCELLED
    with pytest.raises(BreakglassRefused) as busy:
        _ask(account, people.responder)  # a dual request never displaces a live one
    assert busy.value.code == "account_busy"
    services.checkout_checkin(checkout=emergency, actor=other)
    wait_account(account.pk, AccountState.SEALED)


def test_denying_after_approving_is_a_refusal_not_an_error(live, people, sealed):
    account = sealed(disable_when_sealed=False)
    checkout = _ask(account, people.responder)
    services.checkout_approve(checkout=checkout, approver=people.approver1)
    with pytest.raises(BreakglassRefused) as refused:
        services.checkout_deny(checkout=checkout, approver=people.approver1, comment="changed my mind")
    assert refused.value.code == "already_decided"


def test_a_blocked_person_loses_their_checkout(live, samba_dc, people, sealed):
    from jitad.accounts.directory_sync import account_block_from_directory

    account = sealed(disable_when_sealed=False)
    checkout = _ask(account, people.responder, emergency=True)
    password = services.checkout_reveal(checkout=checkout, actor=people.responder)
    link = DirectoryAccount.objects.create(user=people.responder, guid="00000000-0000-0000-0000-00000000b10c",
                                           dn="CN=x,DC=jitad,DC=test")
    account_block_from_directory(link=link, why="disabled in AD")
    closed = wait_checkout(checkout.pk, CheckoutState.CLOSED)
    assert closed.checkin_kind == Checkout.CheckinKind.FORCED
    wait_account(account.pk, AccountState.SEALED)
    assert ad_bind(samba_dc, account.user_dn, password) == "52e"


def test_a_secret_no_key_opens_any_more_does_not_stop_rotation(live, samba_dc, people, sealed, settings):
    """GIVEN an account whose stored secret was encrypted under a key since dropped WHEN it is rotated THEN the
    rotation still sets and seals a new password (only the check that the lost one is dead is skipped)."""
    account = sealed(disable_when_sealed=False)
    from cryptography.fernet import Fernet

    SealedAccount.objects.filter(pk=account.pk).update(secret=Fernet(key_generate().encode()).encrypt(b"{}").decode())
    services.account_rotate(account=account, actor="tester", reason="key lost")
    account = wait_account(account.pk, AccountState.SEALED)
    assert ad_bind(samba_dc, account.user_dn, stored_password(account)) == "ok"


def test_rekey_check_tells_when_old_keys_may_go(db, settings):
    from jitad.breakglass.vault import secret_seal

    old, new = key_generate(), key_generate()
    settings.JITAD_VAULT_KEYS = [old]
    row = SealedAccount.objects.create(name="bg-da-rekey", state=AccountState.SEALED)
    row.secret = secret_seal(ref=row.vault_ref, password="x" * 20)
    row.save()
    settings.JITAD_VAULT_KEYS = [new, old]
    with pytest.raises(CommandError, match="bg-da-rekey"):
        call_command("jitad_breakglass", "rekey", "--check")
    call_command("jitad_breakglass", "rekey")
    call_command("jitad_breakglass", "rekey", "--check")
    settings.JITAD_VAULT_KEYS = [new]
    row.refresh_from_db()
    from jitad.breakglass.vault import secret_open

    assert secret_open(ref=row.vault_ref, token=row.secret) == "x" * 20


class _Collect:
    def __init__(self, out):
        self.out = out

    def write(self, text):
        self.out.append(text)

    def flush(self):
        pass


def test_jitads_own_kerberos_account_is_never_sealed(db, settings):
    """GIVEN jitad binding with Kerberos as svc-jitad (no bind DN to compare) WHEN svc-jitad would be sealed THEN it is
    refused as jitad's own account, whatever its case, and any other account is not refused (an empty bind DN
    once failed every seal); a service principal (HTTP/host) names no account to protect."""
    from types import SimpleNamespace

    from jitad import directory
    from jitad.breakglass.services.sealable import account_sealable_check as _refuse_unsealable

    settings.JITAD_KERBEROS_PRINCIPAL = "svc-jitad@JITAD.TEST"
    d = SimpleNamespace(config=SimpleNamespace(bind_dn=""), own_accounts=lambda principal: [])  # the DC finds none
    account = SealedAccount.objects.create(name="svc-jitad", responder_groups=["R"], approver_groups=["A"])

    def user(sam):
        return directory.DirectoryUser(dn=f"CN={sam},CN=Users,DC=jitad,DC=test", sam_account_name=sam, upn="",
                                       display_name=sam, mail="", sid="S-1-5-21-1-2-3-1105", guid="", disabled=False)

    with pytest.raises(directory.DirectoryRejected, match="own bind account"):
        _refuse_unsealable(user("SVC-Jitad"), d, account)
    _refuse_unsealable(user("breakglass1"), d, account)  # another account: sealable
    settings.JITAD_KERBEROS_PRINCIPAL = "HTTP/jitad.jitad.test@JITAD.TEST"
    _refuse_unsealable(user("HTTP"), d, account)


def test_jitads_own_account_is_known_by_its_sid_and_upn_not_only_its_name(db, samba_dc, ad_account, ldap_admin,
                                                                          settings):
    """GIVEN jitad's Kerberos principal being an account's userPrincipalName while its sAMAccountName is another name
    WHEN that account would be sealed THEN it is refused as jitad's own (the guard compared sAMAccountNames only).
    GIVEN jitad binding as an account named by its UPN (a simple bind takes one; the DN compare could not read it
    and refused every account) THEN that account is refused, found by its objectSid, and another is sealable."""
    import dataclasses

    from ldap3 import MODIFY_REPLACE

    from jitad import directory
    from jitad.breakglass.services.sealable import account_sealable_check as _refuse_unsealable

    sam, dn, password = ad_account("bg-own-")
    upn = f"jitad-{sam[-8:]}@jitad.test"
    admin = ldap_admin()
    assert admin.modify(dn, {"userPrincipalName": [(MODIFY_REPLACE, [upn])]}), admin.result
    admin.unbind()
    other_sam = ad_account("bg-other-")[0]
    account = SealedAccount.objects.create(name=sam, responder_groups=["R"], approver_groups=["A"])

    settings.JITAD_KERBEROS_PRINCIPAL = f"jitad-{sam[-8:]}@JITAD.TEST"
    with directory.session() as d:
        with pytest.raises(directory.DirectoryRejected, match="own bind account"):
            _refuse_unsealable(d.find_user(sam), d, account)
        _refuse_unsealable(d.find_user(other_sam), d, account)

    settings.JITAD_KERBEROS_PRINCIPAL = ""
    config = dataclasses.replace(directory.DirectoryConfig.from_settings(), bind_dn=upn.upper(), bind_password=password)
    with directory.connect(config) as d:
        assert [u.sid for u in d.own_accounts()] == [d.find_user(sam).sid]
        with pytest.raises(directory.DirectoryRejected, match="own bind account"):
            _refuse_unsealable(d.find_user(sam), d, account)
        _refuse_unsealable(d.find_user(other_sam), d, account)
