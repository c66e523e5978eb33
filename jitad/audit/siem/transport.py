"""The one seam to SIEM receivers: syslog over TLS (RFC 5425 / RFC 6587 octet counting) and HTTPS (HEC).

Nothing else in jitad opens a socket to a SIEM. Library errors become ``SiemUnavailable``
(transient: the receiver is down, slow or busy; retried) or ``SiemRejected`` (permanent
until someone acts: a certificate that does not validate, a refused token, a malformed
batch; still retried, but alerted at once). TLS certificate and host name validation is
always on. The HEC token is sent only in its header and never appears in an error.
"""
import http.client
import json
import socket
import ssl
from urllib.parse import urlsplit


class SiemError(Exception):
    """A batch did not reach a SIEM destination."""


class SiemUnavailable(SiemError):
    """Transient: retrying later can succeed."""


class SiemRejected(SiemError):
    """The destination (or its certificate) refused: retrying will not help until someone fixes it."""


def tls_context(ca_file: str) -> ssl.SSLContext:
    """A client context that validates the receiver's certificate and name against ``ca_file`` (or the system's CAs)."""
    ctx = ssl.create_default_context(cafile=ca_file or None)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _address(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port or default_port


def syslog_send(url: str, frames: list[bytes], *, ca_file: str, timeout: float) -> None:
    """Write octet-counted syslog ``frames`` over one TLS connection and close it cleanly.

    The connection is half-closed after the last frame and the receiver's close is awaited,
    so a return means the receiver read everything (syslog over TCP has no
    acknowledgements; a batch cut short is sent again, and the SIEM drops repeats by seq).
    """
    host, port = _address(url, 6514)
    ctx = tls_context(ca_file)
    payload = b"".join(b"%d %s" % (len(f), f) for f in frames)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as tls:
                tls.sendall(payload)
                # Our close_notify, then the receiver's close: it has read the stream up to the
                # end (TLS records arrive in order). rsyslog answers with a bare TCP close (an
                # EOF where TLS expects close_notify), which counts; a reset or a timeout leaves
                # it unknown, so the batch counts as not sent and goes again.
                try:
                    plain = tls.unwrap()
                except ssl.SSLEOFError:
                    plain = None
                if plain is not None:
                    plain.shutdown(socket.SHUT_WR)
                    while plain.recv(4096):
                        pass
    except ssl.SSLCertVerificationError as e:
        raise SiemRejected(f"syslog {host}:{port}: certificate refused: {e.verify_message}") from e
    except ssl.SSLError as e:
        raise SiemUnavailable(f"syslog {host}:{port}: TLS error: {e.reason or e}") from e
    except (TimeoutError, socket.timeout) as e:
        raise SiemUnavailable(f"syslog {host}:{port}: timed out after {timeout:g} s") from e
    except OSError as e:
        raise SiemUnavailable(f"syslog {host}:{port}: {e.strerror or e}") from e


def https_post(url: str, body: bytes, *, token: str, ca_file: str, timeout: float) -> None:
    """POST a HEC batch to ``url``; success is HTTP 200 with HEC code 0 (or no code)."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 443
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Type": "application/json", "User-Agent": "jitad-siem"}
    if token:
        headers["Authorization"] = f"Splunk {token}"
    conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=tls_context(ca_file))
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        status, text = response.status, response.read(4096).decode("utf-8", "replace")
    except ssl.SSLCertVerificationError as e:
        raise SiemRejected(f"https {host}:{port}: certificate refused: {e.verify_message}") from e
    except ssl.SSLError as e:
        raise SiemUnavailable(f"https {host}:{port}: TLS error: {e.reason or e}") from e
    except (TimeoutError, socket.timeout) as e:
        raise SiemUnavailable(f"https {host}:{port}: timed out after {timeout:g} s") from e
    except (OSError, http.client.HTTPException) as e:
        raise SiemUnavailable(f"https {host}:{port}: {getattr(e, 'strerror', None) or e}") from e
    finally:
        conn.close()
    if token:
        text = text.replace(token, "****")
    code = None
    try:
        code = json.loads(text).get("code")
    except (ValueError, AttributeError):
        pass
    if status == 200 and code in (None, 0):
        return
    where = f"https {host}:{port}: HTTP {status}" + (f", HEC code {code}" if code is not None else "")
    # HEC: 503 (server busy, code 9), 500, 429 are worth waiting for; 400/401/403/404 need a person.
    if status >= 500 or status == 429 or status == 408:
        raise SiemUnavailable(f"{where}: {text[:200]}")
    raise SiemRejected(f"{where}: {text[:200]}")
