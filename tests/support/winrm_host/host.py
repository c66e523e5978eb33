"""The WinRM test host: an HTTP(S) server on 127.0.0.1 that pywinrm talks to unmodified.

HTTP/1.1 keep-alive with Content-Length on every reply; NTLM and Kerberos authenticate the
TCP connection (as on Windows), Basic authenticates each request (HTTPS only). WS-Man itself
is in wsman.py, the scripts' contracts in scripts.py, NTLM details in ntlm.py, Kerberos in kerberos.py.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import select
import socket
import ssl
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from spnego.channel_bindings import GssChannelBindings

from . import kerberos, ntlm, wsman
from .scripts import Call

FAIL_MODES = (None, "refuse_auth", "hang", "stall", "fault", "drop", "script_error", "bad_output", "session_survives",
              "plain_replies")
DEFAULT_USER = "JITAD\\svc-winrm"
DEFAULT_PASSWORD = "Winrm-Test-Pw1"


class WSManRequest(NamedTuple):
    """One WS-Man request that got past authentication (whatever was then answered)."""

    action: str  # Create, Command, Receive, Signal, Delete (or the action URI if unknown)
    encrypted: bool  # came as a sealed multipart/encrypted body
    user: str  # the authenticated account, as in ``users``


class WinRMTestHost:
    r"""A Windows server's WinRM listener, as far as jitad can tell.

        host = WinRMTestHost(users={"JITAD\\svc-winrm": "pw"}, admins=[...], sessions={...}).start()
        host.url    # http://127.0.0.1:<port>/wsman (https://... with tls)
        host.stop() # or use it as a context manager

    users     account -> password. NTLM: ``DOMAIN\\user`` (or ``user``), checked by pyspnego's
              acceptor; Basic: the same string as the username; Kerberos: the client's
              principal (``svc-jitad@JITAD.TEST``; the password is not used: the KDC checked it).
              Case-insensitive names.
    auth      "ntlm" (HTTP or HTTPS, message sealing when the client asks), "kerberos" (the
              same, with ``keytab``) or "basic" (HTTPS only: refused at construction without tls).
    keytab    Kerberos: a keytab holding the keys of the host's SPN (HTTP/<name>), exported
              from the test DC.
    wrong_bindings  over TLS, check logons against the bindings of another certificate: a
              client that binds its logon to the TLS channel (NTLM, Kerberos) is refused;
              one that sends no bindings is not.
    tls       test_ca.CertPaths (any (ca, cert, key) sequence): serve HTTPS with cert/key.
    admins    members of the local Administrators group: dicts with sid, path, class.
    sessions  SID -> session ids of the user's processes (0 = outside any interactive
              session: network logon, scheduled task). end_sessions logs off the ids > 0,
              counts the 0s as processes stopped, and removes the SID.
    logons    SID -> the user's logon sessions as Win32_LoggedOnUser lists them: dicts with
              id (LUID), tickets (Kerberos tickets cached), optionally session (the session id
              its processes run in) and stale (ended but still listed: no process, cannot be
              purged). end_sessions purges the live ones (tickets -> 0, counted as
              tickets_purged); see scripts.run_end_sessions.
    security_log  the Security log: event dicts (id, at, record and EventData fields; see
              scripts.run_security_events), read by security_events.
    computer_name, group_name (the localised name of S-1-5-32-544), port (0 = ephemeral;
              a restart after stop() keeps the port).

    ``admins``, ``sessions``, ``logons``, ``security_log`` and ``group_name`` are the machine's state;
    change them between calls (under ``host.lock`` if a client may be running). ``fail`` selects a failure:

    refuse_auth   every logon answers 401 (also on already-authenticated connections)
    hang          each Receive waits the request's OperationTimeout, then the WS-Man
                  TimedOut fault (pywinrm: WinRMOperationTimeoutError); the command never
                  runs while the mode is on, and completes once it is cleared
    stall         any WS-Man request is read and never answered (until the client hangs up
                  or the host stops)
    fault         Command answers the WS-Man AccessDenied fault (WSManFault Code 5)
    drop          any WS-Man request's connection is closed without a reply
    script_error  the script "runs" and exits 2 with {"error": "Access is denied."}
    bad_output    the script "runs" and exits 0 with a result in no contract's shape
                  (``bad_result`` when set, else one in no script's shape)
    session_survives  end_sessions "logs off" (logoff.exe exits 0) but the user's processes
                  keep running: they come back under "remaining" and stay in ``sessions``
    plain_replies every reply goes unsealed even to sealed requests, as someone on the path who let
                  the logon through to the real host could answer

    Records: ``calls`` (Call(script, input) per script run, input = decoded JITAD_INPUT or
    None), ``requests`` (WSManRequest(action, encrypted, user) per authenticated WS-Man
    request, ``actions()`` for the names), ``auth_failures`` (logons refused after
    credentials were presented), ``errors`` (the host's own tracebacks: should stay empty).
    """

    def __init__(
        self,
        users: dict[str, str] | None = None,
        *,
        auth: str = "ntlm",
        keytab: str | Path | None = None,
        tls: Any = None,
        admins: list[dict] | None = None,
        sessions: dict[str, list[int]] | None = None,
        logons: dict[str, list[dict]] | None = None,
        security_log: list[dict] | None = None,
        computer_name: str = "SRV01",
        group_name: str = "Administrators",
        port: int = 0,
        wrong_bindings: bool = False,
    ):
        if auth not in ("ntlm", "basic", "kerberos"):
            raise ValueError(f"auth must be 'ntlm', 'kerberos' or 'basic', not {auth!r}")
        if (auth == "kerberos") != (keytab is not None):
            raise ValueError("a keytab is given with Kerberos authentication, and only then")
        if auth == "basic" and tls is None:
            raise ValueError("Basic authentication needs tls: it would send the password in clear over HTTP")
        self.users = dict(users) if users is not None else {DEFAULT_USER: DEFAULT_PASSWORD}
        self.auth = auth
        self.kerberos_creds = kerberos.credential(str(keytab)) if keytab is not None else None
        self.tls = tls  # test_ca.CertPaths (or any (ca, cert, key) tuple)
        self.wrong_bindings = wrong_bindings
        self.computer_name = computer_name
        self.group_name = group_name  # the localised name of S-1-5-32-544
        self.lock = threading.RLock()
        self.admins: list[dict] = list(admins) if admins is not None else [{
            "sid": "S-1-5-21-1004336348-1177238915-682003330-500",
            "path": f"WinNT://WORKGROUP/{computer_name}/Administrator",
            "class": "User",
        }]
        self.sessions: dict[str, list[int]] = {k: list(v) for k, v in (sessions or {}).items()}
        self.logons: dict[str, list[dict]] = {k: [dict(e) for e in v] for k, v in (logons or {}).items()}
        self.bad_result: dict | None = None  # what bad_output answers, when set
        self.security_log: list[dict] = [dict(e) for e in (security_log or [])]
        self.calls: list[Call] = []
        self.requests: list[WSManRequest] = []
        self.auth_failures = 0  # logons refused after credentials were presented
        self.errors: list[str] = []  # tracebacks of the host's own bugs; tests can assert it stays empty
        self._fail: str | None = None
        self._port = port
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.service = wsman.ShellService(self)

    # -- state -----------------------------------------------------------------------------

    @property
    def fail(self) -> str | None:
        return self._fail

    @fail.setter
    def fail(self, mode: str | None) -> None:
        if mode not in FAIL_MODES:
            raise ValueError(f"unknown failure mode {mode!r}; one of {FAIL_MODES}")
        self._fail = mode

    def actions(self) -> list[str]:
        """The WS-Man actions seen so far, in order."""
        return [r.action for r in list(self.requests)]

    def find_user(self, name: str) -> str | None:
        """The account name as configured, for a name as a client sent it (case-insensitive)."""
        return next((u for u in self.users if u.lower() == (name or "").lower()), None)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port; still known after stop() (then nothing listens there)."""
        if self._server is not None:
            return self._server.server_address[1]
        if not self._port:
            raise RuntimeError("the host was never started: no port yet")
        return self._port

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/wsman"

    def start(self) -> "WinRMTestHost":
        if self._server is not None:
            return self
        if self.auth == "ntlm":
            ntlm.register(self, self.users)
        try:
            self._stopping.clear()
            self._server = _Server(self, ("127.0.0.1", self._port))
        except BaseException:
            ntlm.unregister(self)
            raise
        self._port = self._server.server_address[1]  # a restart keeps the port
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"winrm-test-host:{self._port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes "hang" and "stall" waits
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        ntlm.unregister(self)

    def __enter__(self) -> "WinRMTestHost":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for stalled handlers
    allow_reuse_address = True

    def __init__(self, host: WinRMTestHost, address: tuple[str, int]):
        self.host = host
        self.ssl_context: ssl.SSLContext | None = None
        self.channel_bindings: GssChannelBindings | None = None
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        if host.tls is not None:
            cert, key = Path(host.tls[1]), Path(host.tls[2])
            self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ssl_context.load_cert_chain(cert, key)
            self.channel_bindings = _tls_server_end_point(cert)
            if host.wrong_bindings:
                self.channel_bindings = GssChannelBindings(application_data=b"tls-server-end-point:" + bytes(32))
        super().__init__(address, _Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.ssl_context is not None:  # the handshake happens in the connection's own thread
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def process_request(self, request, client_address):
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for sock in connections:
            try:  # on the raw socket: wakes a thread blocked reading it, TLS or not
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], OSError):  # TLS/connection failures are the client's
            self.host.errors.append(traceback.format_exc())


def _tls_server_end_point(cert_path: Path) -> GssChannelBindings:
    """RFC 5929 tls-server-end-point bindings, as requests_ntlm computes them (CBT)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    der = cert.public_bytes(Encoding.DER)
    algorithm = cert.signature_hash_algorithm
    name = algorithm.name if algorithm and algorithm.name not in ("md5", "sha1") else "sha256"
    return GssChannelBindings(application_data=b"tls-server-end-point:" + hashlib.new(name, der).digest())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    server: _Server

    # per connection (one handler instance serves one TCP connection)
    ntlm_pending = None  # acceptor between Negotiate and Authenticate
    sec_ctx = None  # the established NTLM or Kerberos context (seals/unseals messages)
    principal: str | None = None  # set once the connection is authenticated (NTLM, Kerberos)
    reply_headers: dict[str, str] | None = None  # Kerberos: the acceptor's token, on the reply to its request

    def setup(self):
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self._send(405)

    do_PUT = do_DELETE = do_HEAD = do_GET

    def do_POST(self):
        host = self.server.host
        body = self._read_body()
        if body is None:
            return
        if self.path.split("?", 1)[0].lower() != "/wsman":
            self._send(404)
            return
        self.reply_headers = None
        authenticate = {"ntlm": self._authenticate_ntlm, "kerberos": self._authenticate_kerberos}.get(
            host.auth, self._authenticate_basic)
        user = authenticate()
        if user is None:
            return
        sealing = kerberos if host.auth == "kerberos" else ntlm
        encrypted = False
        content_type = self.headers.get("Content-Type", "")
        if ntlm.is_encrypted(content_type):
            if self.sec_ctx is None:
                self._send(400, close=True)
                return
            try:
                body = sealing.unwrap(self.sec_ctx, body)
            except Exception:  # noqa: BLE001 - RC4 cannot resync: forget the context, close
                self.sec_ctx = self.principal = None
                self._send(400, close=True)
                return
            encrypted = True
        if not encrypted and not body.strip():
            self._send(200)  # pywinrm's empty POST that sets up message encryption
            return
        try:
            req = wsman.parse_request(body)
        except wsman.BadRequest:
            self._send(400)
            return
        host.requests.append(WSManRequest(req.name, encrypted, user))

        mode = host.fail
        if mode == "drop":
            self.close_connection = True
            return
        if mode == "stall":
            self._stall()
            return
        try:
            reply = host.service.handle(req, user)
        except Exception:  # noqa: BLE001 - a bug of the host: answer a fault, keep serving
            host.errors.append(traceback.format_exc())
            reply = wsman.fault(req.message_id, host.computer_name, code="s:Receiver", subcode="w:InternalError",
                                reason="The WinRM test host failed internally. ", wsman_code=2147500037)
        if reply is None:  # the host is stopping
            self.close_connection = True
            return
        data = reply.xml
        ctype = "application/soap+xml;charset=UTF-8"
        if encrypted and host.fail != "plain_replies":
            data, ctype = sealing.wrap(self.sec_ctx, data), ntlm.CONTENT_TYPE
        self._send(reply.status, data, ctype)

    # -- authentication --------------------------------------------------------------------

    def _authenticate_ntlm(self) -> str | None:
        host = self.server.host
        scheme, _, value = (self.headers.get("Authorization") or "").strip().partition(" ")
        if not scheme:
            if self.principal is not None and host.fail != "refuse_auth":
                return self.principal  # connection-based: already authenticated
            return self._refuse()
        if scheme.lower() not in ("negotiate", "ntlm"):
            return self._refuse()
        try:
            token = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return self._refuse()
        kind = ntlm.message_type(token)
        if kind == 1:  # Negotiate: start over on this connection, answer the challenge
            self.sec_ctx = self.principal = None
            self.ntlm_pending = ntlm.acceptor(self.server.channel_bindings)
            try:
                challenge = self.ntlm_pending.step(token)
            except Exception:  # noqa: BLE001
                return self._refuse()
            self._send(401, headers={"WWW-Authenticate": f"{scheme} {base64.b64encode(challenge).decode()}"})
            return None
        ctx, self.ntlm_pending = self.ntlm_pending, None
        if kind != 3 or ctx is None:
            return self._refuse()
        if host.fail == "refuse_auth":
            return self._refuse(failure=True)
        try:
            ctx.step(token)  # raises on a wrong password, unknown user, bad bindings, NTLMv1...
        except Exception:  # noqa: BLE001
            return self._refuse(failure=True)
        user = host.find_user(ctx.client_principal or "")
        if not ctx.complete or user is None:
            return self._refuse(failure=True)
        self.sec_ctx, self.principal = ctx, user
        return user

    def _authenticate_kerberos(self) -> str | None:
        """One round: the client's AP-REQ in, the host's AP-REP out on this request's reply (mutual auth)."""
        host = self.server.host
        scheme, _, value = (self.headers.get("Authorization") or "").strip().partition(" ")
        if not scheme:
            if self.principal is not None and host.fail != "refuse_auth":
                return self.principal  # connection-based: already authenticated
            return self._refuse()
        if scheme.lower() != "negotiate":
            return self._refuse()
        try:
            token = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return self._refuse()
        self.sec_ctx = self.principal = None
        if host.fail == "refuse_auth":
            return self._refuse(failure=True)
        ctx = kerberos.acceptor(host.kerberos_creds, self.server.channel_bindings)
        try:
            answer = ctx.step(token)  # raises on a ticket for another key, a replay, bad bindings...
        except Exception:  # noqa: BLE001
            return self._refuse(failure=True)
        user = host.find_user(ctx.client_principal or "")
        if not ctx.complete or user is None:
            return self._refuse(failure=True)
        if answer:
            self.reply_headers = {"WWW-Authenticate": f"Negotiate {base64.b64encode(answer).decode()}"}
        self.sec_ctx, self.principal = ctx, user
        return user

    def _authenticate_basic(self) -> str | None:
        host = self.server.host
        scheme, _, value = (self.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "basic":
            return self._refuse()
        try:
            name, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, ValueError):
            return self._refuse(failure=True)
        user = host.find_user(name)
        if (user is None or host.fail == "refuse_auth"
                or not hmac.compare_digest(host.users[user].encode(), password.encode())):
            return self._refuse(failure=True)
        return user

    def _refuse(self, failure: bool = False) -> None:
        if failure:
            with self.server.host.lock:
                self.server.host.auth_failures += 1
        self.ntlm_pending = self.sec_ctx = self.principal = None
        offer = 'Basic realm="WSMAN"' if self.server.host.auth == "basic" else "Negotiate"
        self._send(401, headers={"WWW-Authenticate": offer})
        return None

    # -- HTTP plumbing ---------------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._send(411, close=True)
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError
        except ValueError:
            self._send(400, close=True)
            return None
        return self.rfile.read(length) if length else b""

    def _stall(self) -> None:
        """Answer nothing until the client hangs up or the host stops."""
        sock = self.connection
        while not self.server.host._stopping.is_set():
            try:
                readable, _, _ = select.select([sock], [], [], 0.2)
            except (OSError, ValueError):
                break
            if readable:  # the client sends nothing more while it waits: this is EOF
                break
        self.close_connection = True

    def _send(self, status: int, body: bytes = b"", content_type: str | None = None,
              headers: dict[str, str] | None = None, close: bool = False) -> None:
        self.send_response(status)
        for name, value in {**(self.reply_headers or {}), **(headers or {})}.items():
            self.send_header(name, value)
        if body and content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if body:
            self.wfile.write(body)
