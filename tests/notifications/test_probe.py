"""Whether a mail destination is usable, as jitad_check asks it: a real SMTP server on loopback (aiosmtpd) that
takes or refuses jitad's login. A refused login is a problem to fix here, not an outage."""
import socket

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from jitad.notifications.probe import OK, PROBLEM, UNREACHABLE, destinations_reach


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


@pytest.fixture
def smtp_with_login():
    """An SMTP server that lets in jitad / right-password only (AUTH over plain SMTP: loopback, a test)."""

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"jitad" and auth_data.password == b"right-password"
        return AuthResult(success=ok, handled=False)

    controller = Controller(_Handler(), hostname="127.0.0.1", port=_free_port(), authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    yield controller
    controller.stop()


def _mail_settings(settings, port: int, password: str) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "jitad", password
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.JITAD_ALERT_URLS = ["email://security@example.org"]
    settings.JITAD_APPROVAL_URLS = []
    settings.JITAD_NOTIFY_DESTINATIONS = {}


def test_a_refused_login_is_a_problem_and_a_good_one_ok(smtp_with_login, settings):
    """GIVEN an SMTP server that answers WHEN jitad's password is wrong THEN the mail destination is a problem that
    says the login was refused (never "unreachable", never the password); WHEN it is right THEN ok, nothing sent."""
    _mail_settings(settings, smtp_with_login.port, "wrong-password")
    [found] = destinations_reach(timeout=5)
    assert found.status == PROBLEM and "refused jitad's login" in found.detail, found
    assert "wrong-password" not in found.detail

    _mail_settings(settings, smtp_with_login.port, "right-password")
    [found] = destinations_reach(timeout=5)
    assert found.status == OK and "accepted a session" in found.detail, found


def test_a_server_that_does_not_answer_is_unreachable(settings):
    _mail_settings(settings, _free_port(), "right-password")
    [found] = destinations_reach(timeout=5)
    assert found.status == UNREACHABLE, found
