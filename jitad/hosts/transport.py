"""The WinRM connection to one host as jitad opens it: its logon, and the guards on every exchange.

* Kerberos from jitad's keytab (jitad.kerberos): a ticket is fetched first, so GSSAPI's reason
  for a failure is not lost, and sent only after the server's 401, bound to the TLS channel.
* TLS always validated; never a proxy or a redirect; once messages are sealed, every reply
  must be sealed too.

pywinrm's errors raised here are translated by the caller (jitad.hosts.translation).
"""
from urllib.parse import urlsplit

from winrm.exceptions import WinRMError
from winrm.protocol import Protocol

try:  # pywinrm's Kerberos (its vendored requests_kerberos over pykerberos)
    import winrm.transport as _winrm_transport
    from winrm.vendor.requests_kerberos import HTTPKerberosAuth
    from winrm.vendor.requests_kerberos.exceptions import KerberosExchangeError

    class _ChannelBoundKerberosAuth(HTTPKerberosAuth):
        """pywinrm's Kerberos auth, waiting for the server's 401 before it sends a ticket.

        pywinrm asks for the ticket to go with the first request (preemptive), before any TLS
        certificate has been seen, so over HTTPS the ticket would carry no channel binding. Sent
        after the 401, it is bound to the TLS channel it travels on (tls-server-end-point), as a
        server with Extended Protection (CbtHardeningLevel Strict) requires; a relayed ticket is
        refused. One more round trip per connection, over HTTP as well.
        """

        def __init__(self, *args, **kwargs):
            kwargs["force_preemptive"] = False
            super().__init__(*args, **kwargs)

    _winrm_transport.HTTPKerberosAuth = _ChannelBoundKerberosAuth  # pywinrm builds its auth by this name
except ImportError:  # pragma: no cover - pykerberos not installed: a kerberos target fails in pywinrm instead
    class KerberosExchangeError(Exception):
        pass

from jitad import kerberos

from .config import HostConfig
from .errors import HostAuthRefused, HostMisconfigured, HostUnreachable


def protocol_open(c: HostConfig) -> Protocol:
    """A pywinrm Protocol for ``c``'s host, its logon material ready and its transport guarded (nothing sent yet)."""
    if c.transport == "kerberos":
        try:
            kerberos.prepare()
            kerberos.get_ticket("HTTP", c.kerberos_host or urlsplit(c.url).hostname)
        except kerberos.KerberosMisconfigured as e:
            raise HostMisconfigured(f"WinRM over Kerberos to {c.url}: {e}") from e
        except kerberos.KerberosNoTicket as e:
            error = HostUnreachable if e.transient else HostAuthRefused
            raise error(f"{c.url}: Kerberos: {e}") from e
    try:
        protocol = Protocol(
            endpoint=c.url,
            transport=c.transport,
            username=c.username or None,
            password=c.password or None,
            ca_trust_path=c.ca_bundle or None,
            cert_pem=c.cert_pem or None,
            cert_key_pem=c.cert_key_pem or None,
            server_cert_validation="validate",
            # Over HTTP, NTLM/Kerberos must encrypt every message; over HTTPS, TLS does
            # (and sealing as well when the settings ask for it).
            message_encryption="auto" if c.https and c.message_encryption == "auto" else "always",
            kerberos_hostname_override=c.kerberos_host or None,
            read_timeout_sec=max(2, int(c.read_timeout)),
            operation_timeout_sec=max(1, int(c.operation_timeout)),
            proxy=None,  # never a proxy from the environment: jitad talks to its hosts directly
        )
    except (WinRMError, ValueError) as e:
        raise HostMisconfigured(f"WinRM settings for {c.url}: {e}") from e
    _no_redirects(protocol.transport)
    return protocol


def _no_redirects(transport) -> None:
    """Never follow a redirect (it would hand jitad's logon to another host) or read the environment.

    pywinrm sends every request, the encryption handshake included, through this one method.
    """
    send = transport._send_message_request

    def guarded(session, prepared_request):
        session.max_redirects = 0  # a 3xx raises TooManyRedirects instead of being followed
        session.trust_env = False
        return send(session, prepared_request)

    transport._send_message_request = guarded
    _sealed_replies_only(transport)


def _sealed_replies_only(transport) -> None:
    """Once messages are sealed, refuse a reply that is not.

    pywinrm unseals a reply only when its Content-Type names the sealing protocol and hands any
    other body back as it came: someone on the path who let the logon through to the real host
    could then answer the commands in plain text (a forged "is in Administrators", a forged "no
    longer admin"). A sealed exchange must stay sealed both ways.
    """
    read = transport._get_message_response_text

    def checked(response):
        encryption = transport.encryption
        if encryption is not None:
            kind = response.headers.get("Content-Type", "")
            if f'protocol="{encryption.protocol_string.decode()}"' not in kind:
                raise HostAuthRefused(f"a reply from {transport.endpoint} was not sealed (Content-Type {kind[:80]!r}) "
                                 "although the messages are: refused, it may not come from the host")
        return read(response)

    transport._get_message_response_text = checked
