"""Whether each alert destination is usable, without sending anything (``manage.py jitad_check``).

A URL apprise cannot read is a problem. Where the destination's server can be named (a webhook's
host, the SMTP server behind email://), a connection to it is opened, over TLS with validation where
the destination speaks TLS, and closed: no message, no request. A hosted service whose address is the
service's own (Slack, Teams...) is reported as configured: reaching it means sending.
"""
import smtplib
import socket
import ssl
from dataclasses import dataclass

import apprise
from django.conf import settings

from .models import NAMED_PREFIX
from .services.destinations import EMAIL_SCHEME, redact

OK, WARNING, PROBLEM, UNREACHABLE = "ok", "warning", "problem", "unreachable"
# apprise plugins whose host is the server itself (webhooks, Power Automate): for the others the URL's
# "host" is often a token (slack://T.../B.../...), never to be looked up.
_SERVER_PLUGINS = {"NotifyJSON", "NotifyXML", "NotifyForm", "NotifyWorkflows"}


@dataclass(frozen=True)
class DestinationReach:
    variable: str
    shown: str  # the masked URL (never the URL itself)
    status: str
    detail: str


def _variables() -> list[tuple[str, list[str]]]:
    found = [("JITAD_ALERT_URLS", list(settings.JITAD_ALERT_URLS)),
             ("JITAD_APPROVAL_URLS", list(settings.JITAD_APPROVAL_URLS))]
    for name, urls in sorted(settings.JITAD_NOTIFY_DESTINATIONS.items()):
        found.append((NAMED_PREFIX + name.upper().replace("-", "_"), list(urls)))
    return found


def _connect(host: str, port: int, secure: bool, timeout: float) -> str:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if secure:
            with ssl.create_default_context().wrap_socket(sock, server_hostname=host):
                return f"{host}:{port} answers over TLS with a valid certificate"
    return f"{host}:{port} answers"


def _mail(timeout: float) -> tuple[str, str]:
    backend = settings.EMAIL_BACKEND
    if not backend.endswith("smtp.EmailBackend"):
        where = getattr(settings, "EMAIL_FILE_PATH", "")
        return WARNING, f"mail is not sent ({backend}{f', written under {where}' if where else ''}): set JITAD_EMAIL_URL"
    from django.core.mail import get_connection

    connection = get_connection(timeout=timeout)
    try:
        connection.open()  # connect, STARTTLS or TLS, log in: no message
    except smtplib.SMTPAuthenticationError as e:  # an OSError too: caught first, as it is ours to fix
        return PROBLEM, (f"the SMTP server {settings.EMAIL_HOST}:{settings.EMAIL_PORT} refused jitad's login "
                         f"({e.smtp_code}): check the user and password in JITAD_EMAIL_URL")
    except smtplib.SMTPNotSupportedError as e:
        return PROBLEM, f"the SMTP server {settings.EMAIL_HOST}:{settings.EMAIL_PORT} cannot do what JITAD_EMAIL_URL asks: {e}"
    except ssl.SSLCertVerificationError as e:
        return PROBLEM, (f"the SMTP server {settings.EMAIL_HOST}:{settings.EMAIL_PORT}: certificate not valid: "
                         f"{e.verify_message}")
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError) as e:
        return UNREACHABLE, f"the SMTP server {settings.EMAIL_HOST}:{settings.EMAIL_PORT} did not accept a session: {e}"
    except smtplib.SMTPException as e:  # it answered, and refused what JITAD_EMAIL_URL asks (no usable login method...)
        return PROBLEM, f"the SMTP server {settings.EMAIL_HOST}:{settings.EMAIL_PORT} refused the session: {e}"
    except (OSError, ssl.SSLError) as e:
        return UNREACHABLE, f"the SMTP server {settings.EMAIL_HOST}:{settings.EMAIL_PORT} did not accept a session: {e}"
    finally:
        connection.close()
    return OK, f"the SMTP server {settings.EMAIL_HOST}:{settings.EMAIL_PORT} accepted a session (nothing was sent)"


def destinations_reach(*, timeout: float | None = None) -> list[DestinationReach]:
    """Every URL of the security channel, the approvals channel and the named destinations, checked."""
    timeout = timeout if timeout is not None else min(5.0, settings.JITAD_DELIVERY_TIMEOUT)
    found = []
    for variable, urls in _variables():
        for i, url in enumerate(urls):
            shown = redact(url)
            label = f"{variable}[{i}]"
            if shown is None:
                found.append(DestinationReach(label, "(not shown)", PROBLEM, "not a URL jitad can send to"))
                continue
            if url.lower().startswith(EMAIL_SCHEME):
                status, detail = _mail(timeout)
                found.append(DestinationReach(label, shown, status, detail))
                continue
            plugin = apprise.Apprise.instantiate(url)
            if type(plugin).__name__ not in _SERVER_PLUGINS:
                found.append(DestinationReach(label, shown, OK, "configured; a hosted service, not reached without "
                                                                "sending"))
                continue
            host, port, secure = plugin.host, plugin.port, bool(plugin.secure)
            port = port or (443 if secure else 80)
            try:
                found.append(DestinationReach(label, shown, OK, _connect(host, int(port), secure, timeout)))
            except ssl.SSLCertVerificationError as e:
                found.append(DestinationReach(label, shown, PROBLEM, f"{host}:{port}: certificate not valid: "
                                                                     f"{e.verify_message}"))
            except (OSError, ssl.SSLError) as e:
                found.append(DestinationReach(label, shown, UNREACHABLE, f"{host}:{port}: {e.strerror or e}"))
    return found

