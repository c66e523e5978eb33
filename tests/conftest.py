"""Shared fixtures: a real Samba AD DC, a real Celery worker, an alert receiver, an SMTP server.

Engine timings are shortened (not faked) so failure paths run in seconds. The same
values go to this process's settings and to the worker's environment.
"""
import os
import socket
import ssl
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

from tests.settings import ENGINE_ENV  # noqa: E402
from tests.support.destinations import destination_env, named  # noqa: E402
from tests.support.samba import SambaDC  # noqa: E402
from tests.support.smtp import SmtpSink  # noqa: E402
from tests.support.webhook import WebhookReceiver  # noqa: E402
from tests.support.sweeper import database_url  # noqa: E402
from tests.support.worker import CeleryWorker  # noqa: E402

# A parallel run's processes (pytest-xdist) each keep their own.
ARTIFACTS = REPO / "test-artifacts" / os.environ.get("PYTEST_XDIST_WORKER", "")


def _apply_settings(values: dict[str, str]) -> None:
    """Point this process's Django settings at what the fixtures started."""
    from django.conf import settings

    lists = {"JITAD_LDAP_URLS", "JITAD_LDAP_TLS_NAMES", "JITAD_ALERT_URLS", "JITAD_APPROVAL_URLS", "JITAD_KERBEROS_KDCS"}
    for key, value in values.items():
        if key.startswith("JITAD_NOTIFY_"):
            continue
        setattr(settings, key, [v for v in value.split(",") if v] if key in lists else value)
    if any(key.startswith("JITAD_NOTIFY_") for key in values):
        settings.JITAD_NOTIFY_DESTINATIONS = named(values)


@pytest.fixture(scope="session")
def samba_dc(tmp_path_factory):
    """A freshly provisioned Samba AD DC on loopback (127.0.0.1, or this process's own address in a parallel
    run) for the whole session."""
    dc = SambaDC(tmp_path_factory.mktemp("samba"))
    dc.provision()
    dc.start()
    _apply_settings(dc.settings_env())
    yield dc
    dc.stop()
    dc.release()


@pytest.fixture(scope="session")
def ldap_admin(samba_dc):
    """An ldap3 connection of the test's own, independent of jitad's seam, for read-back."""
    from ldap3 import Connection, Server, Tls

    def connect():
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=samba_dc.ca_file, valid_names=[samba_dc.tls_name])
        server = Server(samba_dc.ldaps_url, tls=tls, connect_timeout=5)
        return Connection(server, samba_dc.admin_dn, samba_dc.admin_password, auto_bind=True, raise_exceptions=False,
                          receive_timeout=10)

    return connect


@pytest.fixture(scope="session")
def jit_ou(samba_dc):
    """An OU for this session's groups and users, so runs never see each other's objects."""
    from jitad import directory

    ou = f"OU=jit-{uuid.uuid4().hex[:8]},{samba_dc.jit_ou}"
    with directory.connect() as d:
        d.ensure_ou(samba_dc.jit_ou)
        d.ensure_ou(ou)
    return ou


# The one name the Kerberos WinRM test hosts answer to (their SPN is HTTP/<this>); a target's hostname says it.
KERBEROS_HOST = "winrm-krb.jitad.test"


@pytest.fixture(scope="session")
def kerberos_realm(samba_dc):
    """Kerberos in the test DC's realm, for this process and the worker: jitad's service principal (svc-jitad, its
    keytab under the var dir), a service account holding the Kerberos test hosts' SPN (HTTP/winrm-krb.jitad.test)
    and its keytab, and the DC's ldap/ SPN (Samba registers it through DNS updates, which are off here)."""
    from types import SimpleNamespace

    from django.conf import settings

    from tests.support.kerberos import TestRealm

    realm = TestRealm(samba_dc, Path(settings.VAR_DIR) / "kerberos")
    realm.add_spn(f"ldap/{samba_dc.tls_name.lower()}", "DC1$")
    principal = f"svc-jitad@{realm.realm}"
    env = realm.settings_env(principal, realm.service_account("svc-jitad"))
    host_keytab = realm.service_account("svc-winrm-krb", spns=(f"HTTP/{KERBEROS_HOST}",))
    _apply_settings(env)
    return SimpleNamespace(realm=realm, env=env, principal=principal, host_keytab=host_keytab, host_name=KERBEROS_HOST)


@pytest.fixture
def offline_kerberos(tmp_path, settings, monkeypatch):
    """jitad's Kerberos settings with no DC: a keytab for svc-jitad@JITAD.TEST and svc-jitad@OTHER.TEST (a realm with
    no KDC configured), tickets in a MEMORY cache of their own; ``offline_kerberos(port)`` points JITAD.TEST's KDC at
    127.0.0.1:port and prepares. The process's Kerberos environment is put back afterwards."""
    from jitad import kerberos
    from tests.support.kerberos import offline_keytab

    for name in ("KRB5_CONFIG", "KRB5_CLIENT_KTNAME", "KRB5CCNAME"):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(kerberos, "_prepared", None)
    monkeypatch.setattr(kerberos, "_inflight", {})
    settings.VAR_DIR = tmp_path
    settings.JITAD_KERBEROS_REALM = "JITAD.TEST"
    settings.JITAD_KERBEROS_CONFIG = ""
    settings.JITAD_KERBEROS_PRINCIPAL = "svc-jitad@JITAD.TEST"
    settings.JITAD_KERBEROS_KEYTAB = str(offline_keytab(tmp_path / "jitad.keytab", "svc-jitad@JITAD.TEST",
                                                        "svc-jitad@OTHER.TEST"))
    settings.JITAD_KERBEROS_CCACHE = f"MEMORY:jitad-offline-{uuid.uuid4().hex}"

    def point_at(port: int) -> None:
        settings.JITAD_KERBEROS_KDCS = [f"127.0.0.1:{port}"]
        kerberos.prepare()

    return point_at


@pytest.fixture(scope="session")
def alert_sink():
    """The webhook behind every apprise destination of the session (tests/support/destinations.py)."""
    receiver = WebhookReceiver().start()
    _apply_settings(destination_env(receiver))
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def smtp_sink():
    """A real SMTP server on 127.0.0.1: the worker's JITAD_EMAIL_URL points here."""
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def winrm_ca(tmp_path_factory):
    """A throwaway CA and a certificate for 127.0.0.1, for WinRM test hosts over HTTPS."""
    from tests.support.test_ca import make_test_ca

    return make_test_ca(tmp_path_factory.mktemp("winrm-ca"))


@pytest.fixture(scope="session")
def winrm_profile(winrm_ca):
    """jitad's default WinRM credential profile: in this process's settings and the worker's environment."""
    from django.conf import settings

    from tests.support.winrm_host import DEFAULT_USER

    profile = {"username": DEFAULT_USER, "password": "Wr-" + uuid.uuid4().hex, "ca_bundle": str(winrm_ca.ca),
               "cert_pem": "", "cert_key_pem": "", "allow_ntlm": True}
    settings.JITAD_WINRM_PROFILES = {**settings.JITAD_WINRM_PROFILES, "default": profile}
    return profile


@pytest.fixture
def make_host(request, winrm_profile, winrm_ca):
    """A WinRM test host that accepts jitad's profile: ``make_host(admins=[...], tls=False)``; with
    ``auth="kerberos"``, jitad's service principal with a ticket for HTTP/winrm-krb.jitad.test (kerberos_realm)."""
    from tests.support.winrm_host import WinRMTestHost

    started = []

    def make(*, admins=(), sessions=None, logons=None, tls=False, auth="ntlm", name="SRV01"):
        users, keytab = {winrm_profile["username"]: winrm_profile["password"]}, None
        if auth == "kerberos":
            realm = request.getfixturevalue("kerberos_realm")
            users, keytab = {realm.principal: ""}, realm.host_keytab
        host = WinRMTestHost(
            users=users, auth=auth, keytab=keytab, tls=winrm_ca if tls else None,
            admins=[dict(a) for a in admins], sessions=sessions, logons=logons, computer_name=name,
        ).start()
        started.append(host)
        return host

    yield make
    for host in started:
        host.stop()


@pytest.fixture(scope="session")
def worker_env(django_db_setup, django_db_blocker, samba_dc, alert_sink, smtp_sink, winrm_profile, kerberos_realm):
    """The environment a real worker needs to share this test session's DB, broker and DC."""
    from django.conf import settings

    env = dict(os.environ)
    env.update(ENGINE_ENV)
    env["JITAD_VAR_DIR"] = str(settings.VAR_DIR)  # same broker folder as this process
    env.update(samba_dc.settings_env())
    with django_db_blocker.unblock():
        env["JITAD_DATABASE_URL"] = database_url()
    env.update(destination_env(alert_sink))
    env["JITAD_EMAIL_URL"] = smtp_sink.url
    env["JITAD_WINRM_USERNAME"] = winrm_profile["username"]
    env["JITAD_WINRM_PASSWORD"] = winrm_profile["password"]
    env["JITAD_WINRM_CA_BUNDLE"] = winrm_profile["ca_bundle"]
    env["JITAD_WINRM_ALLOW_NTLM"] = "true"  # the test hosts speak NTLM unless a test makes a Kerberos one
    env.update(kerberos_realm.env)
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.fixture(scope="session")
def celery_worker(worker_env):
    """A real Celery worker with embedded beat (sweeper every 0.5 s), for the whole session."""
    from jitad.celery import app

    try:
        app.control.purge()
    except Exception:  # noqa: BLE001 - an empty or fresh broker is fine
        pass
    worker = CeleryWorker(worker_env, ARTIFACTS / "workers")
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def live(transactional_db, celery_worker, alert_sink, smtp_sink):
    """Committed rows a separate worker process can see, plus that worker."""
    alert_sink.clear()
    smtp_sink.messages.clear()
    yield celery_worker
    _settle()


def _settle():
    """Let in-flight grants finish before the DB is flushed under the worker."""
    from django.utils import timezone

    from tests.support.waiting import wait_for

    from jitad.elevation.models import Grant

    # Every claimed grant: applying, verifying on a server, revoking, or checking a revocation.
    try:
        wait_for(lambda: not Grant.objects.filter(lease_until__gt=timezone.now()).exists(), timeout=15)
    except AssertionError:
        pass


@pytest.fixture
def make_user(jit_ou, django_user_model):
    """An AD user (in the session OU) and its Django twin, in the given Django groups."""
    from django.contrib.auth.models import Group

    from jitad import directory

    def make(prefix="user", groups=(), password=None):
        sam = f"{prefix}{uuid.uuid4().hex[:6]}"[:20]
        with directory.connect() as d:
            d.ensure_user(sam, jit_ou, password=password or "Pw-" + uuid.uuid4().hex)
        user = django_user_model.objects.create_user(username=sam)
        for name in groups:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
        return user

    return make


@pytest.fixture
def make_target(jit_ou):
    """An AD JIT group plus a Target and a Policy over it (auto-approve unless told)."""
    from jitad import directory
    from jitad.elevation.models import Policy, Target

    def make(name=None, *, mode="auto", approvals=1, eligible_groups=("admins",), approver_groups=("approvers",),
             max_minutes=240, winrm_url="", winrm_transport="ntlm", hostname=None, allowed_admins=(), **policy_fields):
        name = name or f"SRV{uuid.uuid4().hex[:6].upper()}"
        with directory.connect() as d:
            group_dn = d.ensure_group(f"JIT-{name}-Admins", jit_ou)
        target = Target.objects.create(name=name, hostname=hostname or f"{name.lower()}.jitad.test", group_dn=group_dn,
                                       winrm_url=winrm_url, winrm_transport=winrm_transport,
                                       allowed_admins=list(allowed_admins))
        policy = Policy.objects.create(
            name=f"p-{name.lower()}", approval_mode=mode, approvals_required=approvals,
            eligible_groups=list(eligible_groups), approver_groups=list(approver_groups),
            max_duration_minutes=max_minutes, default_duration_minutes=min(60, max_minutes),
            require_justification=False, **policy_fields,
        )
        policy.targets.add(target)
        return target

    return make


@pytest.fixture
def verified_client(client):
    """A test client logged in as ``user`` with a freshly verified TOTP device: ``verified_client(user)``."""
    from tests.support.mfa import verify_session

    def login(user, *, age_seconds: float = 0.0):
        verify_session(client, user, age_seconds=age_seconds)
        return client

    return login


@pytest.fixture(scope="session", autouse=True)
def _flush_retries_deadlocks():
    """A transactional test's teardown flush is retried when PostgreSQL aborts it in a deadlock with a worker
    (tests.support.flush)."""
    from tests.support.flush import install

    install()


# Fixtures whose test stops the session's worker (and any other running) while it runs.
STOPS_WORKERS = ("nodes", "no_background_worker")


@pytest.fixture(autouse=True)
def _background_workers_back(request):
    """Workers an earlier test stopped run again before a test that uses the session's worker starts: after
    the earlier test's database flush, which deadlocks on PostgreSQL with a worker writing while it truncates
    (tests.support.worker). A test that does not use it, or stops it anyway, leaves them stopped (a restart
    costs seconds)."""
    from tests.support.worker import restart_stopped

    names = request.fixturenames
    if "celery_worker" in names and not any(name in names for name in STOPS_WORKERS):
        restart_stopped()


def _transactional(item) -> bool:
    """Whether pytest-django runs ``item`` among the transactional tests (its own rule, in short)."""
    marker = item.get_closest_marker("django_db")
    if marker is not None and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])):
        return True
    names = getattr(item, "fixturenames", ())
    return "transactional_db" in names or "live_server" in names


# Files whose tests leave the DC in a state that breaks later tests on it: they run after every other test
# of their process (in one process: at the end; in a parallel run, their file is the last one handed out).
DC_LAST = frozenset({
    "tests/directory/test_hostile_input.py",  # names Samba cannot casefold break its full searches after
})


def pytest_xdist_make_scheduler(config, log):
    """xdist's file-at-a-time scheduling (largest files first), with the DC_LAST files handed out last."""
    if config.getoption("dist", None) != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class LastFilesLast(LoadFileScheduling):
        def _assign_work_unit(self, node):
            for scope in [scope for scope in self.workqueue if scope in DC_LAST]:
                if len(self.workqueue) > 1:
                    self.workqueue.move_to_end(scope)
            super()._assign_work_unit(node)

    return LastFilesLast(config, log)


def pytest_addoption(parser):
    parser.addoption(
        "--part", choices=("all", "db", "live"), default="all",
        help="run only the tests that need no committed rows (db) or only the transactional ones, which share "
             "committed rows with the session's worker (live). `make test` runs the two parts one after the "
             "other, each in parallel: the session's worker, once started, runs until the end of the session, "
             "and tests that expect none (leases, sweeps) must all have run before it starts, as they do in "
             "one process, where pytest-django puts the transactional tests last.")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Keep the part asked for (--part); tests that stop the session's worker run after every other
    transactional test (pytest-django has put those together), so it is stopped once, not once per such
    test and started again after each."""
    part = config.getoption("--part")
    if part != "all":
        keep = [item for item in items if _transactional(item) == (part == "live")]
        dropped = [item for item in items if _transactional(item) != (part == "live")]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    last = [item for item in items if item.nodeid.split("::", 1)[0] in DC_LAST]
    if last:
        chosen = set(last)
        items[:] = [item for item in items if item not in chosen] + last
    stoppers = [item for item in items if any(name in getattr(item, "fixturenames", ()) for name in STOPS_WORKERS)]
    if not stoppers:
        return
    chosen = set(stoppers)
    rest = [item for item in items if item not in chosen]
    last = max((n for n, item in enumerate(rest) if _transactional(item)), default=len(rest) - 1)
    items[:] = rest[:last + 1] + stoppers + rest[last + 1:]


@pytest.fixture
def no_background_worker():
    """Stop the workers earlier tests left running (the session's, with its beat) for this test (they run
    again from the next test on): for a test whose own sweeper, in a process of its own, must be the one
    that finds the due work. Starts no worker when none runs."""
    from tests.support.worker import background_workers_stopped

    with background_workers_stopped():
        yield


@pytest.fixture
def nodes(transactional_db, celery_worker, worker_env, alert_sink, smtp_sink):
    """Engine workers, elected schedulers and web servers of the test's own, killable one by one.

    The session's worker is stopped while the test runs, so only the processes the test
    started act on the shared database, DC and broker; it runs again from the next test on.
    """
    from tests.support.processes import Nodes

    from jitad.engine.models import Heartbeat, Lease, Pulse
    from jitad.notifications.models import AlertCondition, Notification

    from tests.support.worker import background_workers_stopped

    with background_workers_stopped(celery_worker):
        # A machine of their own: nothing left from the session worker's leases, heartbeats and alerts.
        for model in (Lease, Heartbeat, Pulse, AlertCondition, Notification):
            model.objects.all().delete()
        alert_sink.clear()
        smtp_sink.messages.clear()
        started = Nodes(worker_env, ARTIFACTS / "engine")
        try:
            yield started
            _settle()
        finally:
            started.kill_all()


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, read, closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dead_redis(monkeypatch):
    """The current Celery app, pointed at a Redis that is not there (a port nothing listens on).

    Celery prefers the ``CELERY_BROKER_URL`` environment variable to the app's own ``broker``
    (CI sets it to the real Redis), so it is cleared while the dead app is current."""
    from celery import Celery, current_app

    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    app = Celery("dead-broker", broker=url, set_as_current=False)
    assert app.conf.broker_url == url
    app.conf.broker_connection_timeout = 1
    app.conf.broker_connection_retry = False
    app.conf.task_publish_retry_policy = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1}
    previous = current_app._get_current_object()
    app.set_current()
    yield app
    previous.set_current()
    app.close()
