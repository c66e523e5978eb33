"""The login throttle with the real database and the real backends (local accounts; AD in test_throttle_http.py).

Time is never faked: where a pause has to be over, the test moves the recorded failures back
in the database, which is what the passing of time does to them.
"""
import functools
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.hashers import make_password
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import RequestFactory
from django.utils import timezone

from jitad.accounts import throttle
from jitad.accounts.backends import login_error_message
from jitad.accounts.checks import login_throttle
from jitad.accounts.models import LoginFailure, LoginPauseNotice, LoginSource
from jitad.audit.models import AuditEvent
from jitad.notifications.models import Notification

pytestmark = pytest.mark.django_db
PASSWORD = "A-long-passphrase-throttle"


def req(addr="203.0.113.7", xff=None):
    meta = {"REMOTE_ADDR": addr}
    if xff is not None:
        meta["HTTP_X_FORWARDED_FOR"] = xff
    request = RequestFactory().post("/account/login/", **meta)
    from django.contrib.sessions.backends.db import SessionStore

    request.session = SessionStore()
    return request


def login(username, password, addr="203.0.113.7"):
    """authenticate() as the login form calls it; returns (user or None, the request)."""
    request = req(addr)
    return authenticate(request, username=username, password=password), request


def error(request) -> str:
    """Why the login on ``request`` was refused ("invalid_credentials" when a backend just said no)."""
    return getattr(request, "jitad_login_error", "") or "invalid_credentials"


def age(seconds: float, **filters) -> None:
    """Let ``seconds`` pass for the recorded failures (matching ``filters``)."""
    for row in LoginFailure.objects.filter(**filters):
        LoginFailure.objects.filter(pk=row.pk).update(at=row.at - timedelta(seconds=seconds))


@pytest.fixture
def person(django_user_model):
    return django_user_model.objects.create_user(f"t{uuid.uuid4().hex[:7]}", password=PASSWORD)


@functools.cache
def _password_hash() -> str:
    """PASSWORD's hash, made once for the file (each PBKDF2 hash costs a quarter of a second)."""
    return make_password(PASSWORD)


@pytest.fixture
def names(django_user_model):
    """Local accounts to spray (their passwords are checked by Django's backend; AD is not needed here),
    each with PASSWORD."""
    return [django_user_model.objects.create(username=f"s{i}{uuid.uuid4().hex[:5]}", password=_password_hash()).username
            for i in range(12)]


# --- the client address ----------------------------------------------------------------------


def test_the_client_is_remote_addr_and_forwarded_for_is_ignored_from_anyone_else(settings):
    settings.JITAD_TRUSTED_PROXIES = []
    assert throttle.client_ip(req("203.0.113.7", xff="198.51.100.1")) == "203.0.113.7"
    settings.JITAD_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert throttle.client_ip(req("203.0.113.7", xff="198.51.100.1")) == "203.0.113.7"


def test_forwarded_for_from_a_trusted_proxy_is_read_right_to_left(settings):
    """GIVEN two trusted proxies in a row WHEN the client put its own fake address first THEN the client is the
    address the outer proxy saw (the rightmost untrusted one), never what the client typed."""
    settings.JITAD_TRUSTED_PROXIES = ["10.0.0.5", "10.1.0.0/24"]
    assert throttle.client_ip(req("10.0.0.5", xff="198.51.100.1")) == "198.51.100.1"
    assert throttle.client_ip(req("10.0.0.5", xff="1.2.3.4, 198.51.100.1, 10.1.0.9")) == "198.51.100.1"
    assert throttle.client_ip(req("10.0.0.5", xff="")) == "10.0.0.5"
    assert throttle.client_ip(req("10.0.0.5", xff="not-an-address")) == "10.0.0.5"
    assert throttle.client_ip(req("10.0.0.5", xff="1.2.3.4, garbage, 10.1.0.9")) == "10.1.0.9"


def test_ipv6_clients_are_keyed_by_their_64(settings):
    """One site holds a whole /64: changing the last bits must not buy fresh attempts."""
    a, b = req("2001:db8:1:2::10"), req("2001:db8:1:2:ffff::1")
    assert throttle.client_key(a) == throttle.client_key(b) == "2001:db8:1:2::/64"
    assert throttle.client_key(req("::ffff:203.0.113.7")) == "203.0.113.7"
    assert throttle.client_key(req("")) == "?"


def test_invalid_trusted_proxies_are_refused_by_the_system_check(settings):
    settings.JITAD_TRUSTED_PROXIES = ["10.0.0.5", "10.0.0.0/33", "proxy.corp.example"]
    errors = login_throttle(None)
    assert [e.id for e in errors] == ["jitad.accounts.E001", "jitad.accounts.E001"]
    assert "10.0.0.0/33" in errors[0].msg and "proxy.corp.example" in errors[1].msg
    with pytest.raises(SystemCheckError, match="JITAD_TRUSTED_PROXIES"):
        call_command("check")
    # A list that does not parse is never trusted, whatever is in it.
    assert throttle.client_ip(req("10.0.0.5", xff="198.51.100.1")) == "10.0.0.5"
    settings.JITAD_TRUSTED_PROXIES = ["10.0.0.5", "2001:db8::/64"]
    assert login_throttle(None) == []


def test_behind_a_tls_proxy_the_proxy_must_be_trusted(settings):
    """GIVEN jitad behind a TLS proxy (JITAD_BEHIND_TLS_PROXY) and no JITAD_TRUSTED_PROXIES THEN the system check
    says every client would have the proxy's address: an error in production (manage.py check, migrate refuse to
    go on), a warning elsewhere; naming the proxy, or not being behind one, is fine."""
    settings.JITAD_BEHIND_TLS_PROXY = True
    settings.JITAD_TRUSTED_PROXIES = []
    settings.PRODUCTION = True
    errors = login_throttle(None)
    assert [(e.id, e.level) for e in errors] == [("jitad.accounts.E003", checks.ERROR)]
    assert "JITAD_TRUSTED_PROXIES is empty" in errors[0].msg and "proxy's address" in errors[0].msg
    with pytest.raises(SystemCheckError, match="jitad.accounts.E003"):
        call_command("check")
    settings.PRODUCTION = False
    assert [(e.id, e.level) for e in login_throttle(None)] == [("jitad.accounts.W003", checks.WARNING)]
    settings.JITAD_TRUSTED_PROXIES = ["10.0.0.5"]
    assert login_throttle(None) == []
    settings.PRODUCTION = True
    assert login_throttle(None) == []
    settings.JITAD_TRUSTED_PROXIES = []
    settings.JITAD_BEHIND_TLS_PROXY = False
    assert login_throttle(None) == []


def test_a_per_account_limit_that_would_use_up_ads_lockout_is_refused(settings):
    settings.JITAD_LOGIN_AD_LOCKOUT_THRESHOLD = 5
    settings.JITAD_LOGIN_MAX_FAILURES = 4
    assert [e.id for e in login_throttle(None)] == ["jitad.accounts.E002"]
    settings.JITAD_LOGIN_MAX_FAILURES = 3
    assert login_throttle(None) == []
    settings.JITAD_LOGIN_AD_LOCKOUT_THRESHOLD = 0  # AD locks nobody out
    settings.JITAD_LOGIN_MAX_FAILURES = 50
    assert login_throttle(None) == []


# --- per client: a progressive delay -------------------------------------------------------------


def test_spraying_from_one_address_is_slowed_progressively_and_never_checks_a_password(person, names):
    """GIVEN one address trying many names with one password WHEN it passes the free failures THEN each next
    attempt is refused unchecked (even the right password of a real account), with a wait that doubles per
    further failure; the wait over, one more attempt is checked."""
    for name in names[:5]:
        assert login(name, "Summer2026!")[0] is None
    user, request = login(person.username, PASSWORD)
    assert user is None and error(request) == "throttled_client" and request.jitad_login_wait == 1
    assert login_error_message(request) == "Too many failed logins from your address. Try again in 1 second."
    assert LoginFailure.objects.filter(client="203.0.113.7").count() == 5  # the refused attempt was not counted
    waits = []
    for name in names[5:9]:
        age(request.jitad_login_wait + 0.1, client="203.0.113.7")  # the wait is over
        assert error(login(name, "Summer2026!")[1]) == "invalid_credentials"
        request = login(names[-1], "Summer2026!")[1]
        assert error(request) == "throttled_client"
        waits.append(request.jitad_login_wait)
    assert waits == [2, 4, 8, 16]
    # Another address is not slowed by this one.
    assert login(person.username, PASSWORD, addr="198.51.100.20")[0] == person


def test_the_client_delay_is_capped_at_the_window(settings):
    settings.JITAD_LOGIN_FAILURE_WINDOW_SECONDS = 60
    for i in range(12):
        LoginFailure.objects.create(account=f"n{i}", client="203.0.113.7")
    request = login("someone", "x")[1]
    assert error(request) == "throttled_client" and 55 <= request.jitad_login_wait <= 60


# --- per account: strangers together, the person's own addresses apart ---------------------------


def test_wrong_passwords_from_many_strangers_pause_the_account_for_strangers_only(person):
    """GIVEN a person who logged in (password and MFA) from 192.0.2.10 WHEN five other addresses each try one
    wrong password for their name THEN a sixth stranger is refused unchecked, with the wait; the person logs in
    from their own address with the right password."""
    throttle.login_source_remember(request=req("192.0.2.10"), user=person)
    for i in range(5):
        assert login(person.username, f"guess-{i}", addr=f"198.51.100.{i + 1}")[0] is None
    user, request = login(person.username, PASSWORD, addr="198.51.100.99")
    assert user is None and error(request) == "throttled_account"
    assert 890 <= request.jitad_login_wait <= 900
    assert error(login(person.username.upper(), PASSWORD, addr="198.51.100.98")[1]) == "throttled_account"
    assert login(person.username, PASSWORD, addr="192.0.2.10")[0] == person


def test_the_persons_own_address_has_its_own_limit(person):
    throttle.login_source_remember(request=req("192.0.2.10"), user=person)
    for i in range(5):
        assert login(person.username, f"typo-{i}", addr="192.0.2.10")[0] is None
    assert error(login(person.username, PASSWORD, addr="192.0.2.10")[1]) == "throttled_account"
    # Strangers' pool is separate: a new address of the person (travelling) is not paused by their typos.
    assert login(person.username, PASSWORD, addr="198.51.100.50")[0] == person


def test_a_right_password_clears_the_accounts_count_but_not_the_clients(person):
    for i in range(4):
        login(person.username, f"guess-{i}", addr=f"198.51.100.{i + 1}")
    assert login(person.username, PASSWORD, addr="198.51.100.60")[0] == person
    assert LoginFailure.objects.filter(account=person.username, account_cleared=False).count() == 0
    for i in range(4):
        login(person.username, f"again-{i}", addr="198.51.100.61")
    assert login(person.username, PASSWORD, addr="198.51.100.62")[0] == person  # 4 < 5 since the clear
    assert LoginFailure.objects.filter(client="198.51.100.1").count() == 1  # the client keeps its record


def test_ads_lockout_is_never_reached_whoever_asks(person, settings):
    """GIVEN AD locks at 6 wrong passwords WHEN strangers use up their 3 and the person mistypes at their own
    address THEN jitad stops before the 6th failed bind, for every address: never pushing AD into lockout."""
    settings.JITAD_LOGIN_AD_LOCKOUT_THRESHOLD = 6
    settings.JITAD_LOGIN_MAX_FAILURES = 3
    throttle.login_source_remember(request=req("192.0.2.10"), user=person)
    for i in range(3):
        login(person.username, f"guess-{i}", addr=f"198.51.100.{i + 1}")
    assert error(login(person.username, "g", addr="198.51.100.9")[1]) == "throttled_account"
    for i in range(2):
        assert error(login(person.username, f"typo-{i}", addr="192.0.2.10")[1]) == "invalid_credentials"
    request = login(person.username, PASSWORD, addr="192.0.2.10")[1]
    assert error(request) == "throttled_account"
    assert LoginFailure.objects.filter(account=person.username).count() == 5  # = threshold - 1 failed checks
    age(900, account=person.username)
    assert login(person.username, PASSWORD, addr="192.0.2.10")[0] == person


def test_known_addresses_are_forgotten(person, settings):
    throttle.login_source_remember(request=req("192.0.2.10"), user=person)
    LoginSource.objects.update(last_login_at=timezone.now() - timedelta(days=31))
    for i in range(5):
        login(person.username, f"guess-{i}", addr=f"198.51.100.{i + 1}")
    assert error(login(person.username, PASSWORD, addr="192.0.2.10")[1]) == "throttled_account"


# --- audit and alerts ---------------------------------------------------------------------------


def test_a_pause_is_audited_once_and_alerted_once_per_kind(person, names):
    """GIVEN a spraying address WHEN it keeps trying during its pause, and a second address sprays too THEN each
    pause is one audit event (its refusals counted on the notice, not audited one by one), the failures are
    audited one by one, and the security channel hears of client pauses once."""
    for addr in ("203.0.113.7", "203.0.113.8"):
        for name in names[:5]:
            login(name, "Summer2026!", addr=addr)
        for _ in range(20):
            assert error(login(person.username, PASSWORD, addr=addr)[1]) == "throttled_client"
    paused = AuditEvent.objects.filter(action="account.login_paused", object_type="login_client")
    assert sorted(paused.values_list("object_id", flat=True)) == ["203.0.113.7", "203.0.113.8"]
    assert AuditEvent.objects.filter(action="account.login_failed").count() == 10
    assert LoginPauseNotice.objects.get(scope="client", key="203.0.113.7").refused == 20
    assert Notification.objects.filter(event="login.paused").count() == 1
    assert "203.0.113.7" in Notification.objects.get(event="login.paused").subject
    assert not AuditEvent.objects.filter(action="account.login_failed", reason__startswith="throttled").exists()


# --- operators ------------------------------------------------------------------------------------


def test_an_operator_ends_a_pause_with_the_command_and_it_is_audited(person, names, capsys):
    """GIVEN an account paused for strangers, and a paused client WHEN an operator clears each with
    `jitad_login_throttle` THEN the next attempt is checked again, and each clear is in the audit trail."""
    for i in range(5):
        login(person.username, f"guess-{i}", addr=f"198.51.100.{i + 1}")
    assert error(login(person.username, PASSWORD, addr="198.51.100.9")[1]) == "throttled_account"
    call_command("jitad_login_throttle", "status")
    out = capsys.readouterr().out
    assert f"account  {person.username}" in out and "5 wrong" in out
    call_command("jitad_login_throttle", "clear", person.username.upper(), "--reason", "it was them", "--by", "op")
    assert login(person.username, PASSWORD, addr="198.51.100.9")[0] == person
    event = AuditEvent.objects.get(action="account.login_pause_cleared", object_type="login_account")
    assert (event.actor, event.object_id, event.reason, event.data) == ("op", person.username, "it was them",
                                                                        {"failures": 5})

    for name in names[:5]:
        login(name, "x", addr="2001:db8:5:6::1")
    assert error(login(person.username, PASSWORD, addr="2001:db8:5:6::2")[1]) == "throttled_client"
    call_command("jitad_login_throttle", "clear", "--client", "2001:db8:5:6::99")
    assert login(person.username, PASSWORD, addr="2001:db8:5:6::2")[0] == person
    assert AuditEvent.objects.filter(action="account.login_pause_cleared", object_id="2001:db8:5:6::/64").exists()
    from django.core.management.base import CommandError

    for bad in ([], ["someone", "--client", "192.0.2.1"], ["--client", "not-an-address"]):
        with pytest.raises(CommandError):
            call_command("jitad_login_throttle", "clear", *bad)


@pytest.mark.django_db(transaction=True)
def test_parallel_attempts_never_get_past_a_limit_together(django_user_model, settings):
    """GIVEN AD locks at 4 and strangers may make 2 wrong passwords WHEN 8 strangers try the same account at the
    same moment (8 threads, each its own database connection) THEN at most 2 passwords are checked: each attempt
    reserved its place before checking, so racing attempts see each other."""
    import threading

    from django.db import connection

    settings.JITAD_LOGIN_AD_LOCKOUT_THRESHOLD = 4
    settings.JITAD_LOGIN_MAX_FAILURES = 2
    person = django_user_model.objects.create_user(f"r{uuid.uuid4().hex[:7]}", password=PASSWORD)
    start = threading.Barrier(8)
    outcomes = []

    def attempt(i):
        try:
            start.wait()
            outcomes.append(error(login(person.username, f"guess-{i}", addr=f"198.51.100.{i + 1}")[1]))
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 8
    assert outcomes.count("invalid_credentials") <= 2
    assert set(outcomes) <= {"invalid_credentials", "throttled_account"}
    assert LoginFailure.objects.filter(account=person.username).count() <= 2
