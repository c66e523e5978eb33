"""Whether a WinRM endpoint answers, without running anything on it (``manage.py jitad_check``).

A TCP connection to the URL's port and, over HTTPS, a TLS handshake that validates the host's
certificate against the profile's CA bundle and name: no WS-Man request is sent, no credential leaves.
"""
import socket
import ssl
from urllib.parse import urlsplit

from .config import HostConfig
from .errors import HostAuthRefused, HostUnreachable


def endpoint_reach(config: HostConfig) -> str:
    """A line about the endpoint if it answered; HostUnreachable if nothing did, HostAuthRefused if its certificate
    does not validate."""
    parts = urlsplit(config.url)
    port = parts.port or (5986 if config.https else 5985)
    try:
        sock = socket.create_connection((parts.hostname, port), timeout=config.connect_timeout)
    except OSError as e:
        raise HostUnreachable(f"{parts.hostname}:{port}: {e.strerror or e}") from e
    with sock:
        if not config.https:
            return f"{parts.hostname}:{port} answers (HTTP: message encryption carries the protection)"
        context = ssl.create_default_context(cafile=config.ca_bundle or None)
        try:
            with context.wrap_socket(sock, server_hostname=parts.hostname) as tls:
                cert = tls.getpeercert() or {}
        except ssl.SSLCertVerificationError as e:
            raise HostAuthRefused(f"{parts.hostname}:{port}: certificate not valid: {e.verify_message}") from e
        except (ssl.SSLError, OSError) as e:
            raise HostUnreachable(f"{parts.hostname}:{port}: TLS handshake failed: {e}") from e
    until = cert.get("notAfter", "")
    return f"{parts.hostname}:{port} answers; certificate valid for {parts.hostname} until {until}"
