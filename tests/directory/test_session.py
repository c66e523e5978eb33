"""The per-thread session a worker reuses across tasks, against the session's real Samba DC.

A session used moments ago is reused without a root DSE read; when its connection died in
between (the DC restarted, the connection torn down), the next task's first read binds again
and the task goes on. A change is only ever sent on a connection that answered in this session.
"""
import socket

import pytest

from jitad import directory
from jitad.directory import connection as seam_connection
from jitad.directory.client import Directory

from .helpers import ad_has_member, unique_tag


@pytest.fixture
def fresh_session():
    """No session cached in this thread before or after the test."""
    def drop():
        d, _ = getattr(seam_connection._cached, "entry", (None, 0.0))
        if d is not None:
            d.close()
        seam_connection._cached.entry = (None, 0.0)

    drop()
    yield
    drop()


@pytest.fixture
def alive_calls(monkeypatch):
    """How many root DSE checks the session made (the real check, counted)."""
    calls = []
    real = Directory.alive

    def counted(self):
        calls.append(self)
        return real(self)

    monkeypatch.setattr(Directory, "alive", counted)
    return calls


def test_a_session_used_moments_ago_is_reused_without_a_root_dse_read(samba_dc, fresh_session, alive_calls):
    with directory.session() as d:
        assert d.find_user("Administrator")
        assert d.unproven is False  # a new connection
    with directory.session() as again:
        assert again is d and again.unproven is True
        assert again.find_user("Administrator")
        assert again.unproven is False
    assert alive_calls == []


def test_a_session_idle_past_the_check_time_reads_the_root_dse_first(samba_dc, fresh_session, alive_calls, settings):
    settings.JITAD_LDAP_SESSION_CHECK_SECONDS = 0
    with directory.session() as d:
        assert d.find_user("Administrator")
    with directory.session() as again:
        assert again is d and again.unproven is False
    assert alive_calls == [d]


def test_after_a_dc_restart_the_next_sessions_read_binds_again(samba_dc, fresh_session, ou, ldap_admin, alive_calls):
    """GIVEN a session used by one task WHEN the DC restarts before the next task THEN that task's
    first read finds the connection dead, binds again and reads; its add goes through and is in AD."""
    group = None
    with directory.session() as d:
        group = d.ensure_group(f"JIT-S{unique_tag()}-Admins", ou)
        user = d.ensure_user(f"ss{unique_tag()}", ou)
        old = d._conn
    samba_dc.stop()
    samba_dc.start()
    with directory.session() as again:
        assert again is d and again.unproven is True
        assert again.add_member(group, user) is True
        assert again._conn is not old
    admin = ldap_admin()  # one opened after the restart
    try:
        assert ad_has_member(admin, group, user)
    finally:
        admin.unbind()
    assert alive_calls == []
    with directory.session() as third:  # the new connection is kept for the task after
        assert third._conn is again._conn and third.find_user("Administrator")


def test_a_connection_torn_down_between_tasks_is_replaced_on_the_first_read(samba_dc, fresh_session):
    with directory.session() as d:
        assert d.find_user("Administrator")
        d._conn.socket.shutdown(socket.SHUT_RDWR)  # the TCP connection ends under the session
    with directory.session() as again:
        assert again.find_user("Administrator").sam_account_name == "Administrator"


def test_a_change_first_on_a_reused_connection_is_sent_only_after_a_read_answered(samba_dc, fresh_session, ou):
    """GIVEN a reused session whose connection died WHEN a task's first call is a change (no read
    before it) THEN the session reads the root DSE first, binds again, and sends the change once."""
    with directory.session() as d:
        user = d.ensure_user(f"su{unique_tag()}", ou)
        old = d._conn
    samba_dc.stop()
    samba_dc.start()
    with directory.session() as again:
        assert again.unproven is True
        again.unlock(user)
        assert again._conn is not old and again.unproven is False


def test_a_dc_that_stays_down_still_fails_the_task_as_unavailable(samba_dc, fresh_session):
    """One fresh bind is tried, not more: a DC that is down fails the task as transient, at once."""
    with directory.session() as d:
        assert d.find_user("Administrator")
    samba_dc.stop()
    try:
        with pytest.raises(directory.DirectoryUnavailable) as e:
            with directory.session() as again:
                again.find_user("Administrator")
        assert e.value.transient is True
    finally:
        samba_dc.start()
    with directory.session() as back:  # the failed session was dropped: a new bind
        assert back is not d and back.find_user("Administrator")


def test_a_connection_that_answered_in_this_session_is_not_retried(samba_dc, fresh_session):
    """Once the connection answered in this task, losing it is the task's failure (the engine retries
    the task), not something the session papers over."""
    with directory.session() as d:
        assert d.find_user("Administrator")
    with directory.session() as again:
        assert again.find_user("Administrator")  # proven
        again._conn.socket.shutdown(socket.SHUT_RDWR)
        with pytest.raises(directory.DirectoryUnavailable):
            again.find_user("Administrator")


def test_a_warmed_session_is_the_first_tasks_without_a_bind(samba_dc, fresh_session, alive_calls, dir_config):
    """GIVEN a pool process that warmed its session at start WHEN its first task opens a session THEN it
    gets that connection (no bind, no root DSE read), with the configured receive timeout, not the warm-up's."""
    assert directory.session_warm(budget=1.0) is True
    d, _ = seam_connection._cached.entry
    with directory.session() as first:
        assert first is d and first.unproven is True
        assert first.find_user("Administrator")
        assert first._conn.receive_timeout == max(1, round(dir_config.receive_timeout))
    assert alive_calls == []


def test_warming_is_bounded_and_never_fails_the_process(samba_dc, fresh_session, settings):
    """GIVEN a first DC that takes the TCP connection but never answers WHEN a pool process warms its
    session THEN it gives up within about its budget (never the configured timeouts), says so, and the
    first task binds as usual (to the next DC)."""
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nothing ever answers
    dead = f"ldaps://127.0.0.1:{silent.getsockname()[1]}"
    try:
        settings.JITAD_LDAP_URLS = [dead, *settings.JITAD_LDAP_URLS]
        started = time.monotonic()
        assert directory.session_warm(budget=0.5) is False
        assert time.monotonic() - started < 2.5
        with directory.session() as d:
            assert d.find_user("Administrator") and d.url != dead
    finally:
        silent.close()
