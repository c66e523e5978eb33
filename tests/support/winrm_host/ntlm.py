"""NTLM for the test host: pyspnego's acceptor, its credential file, and WinRM message sealing.

pyspnego's pure-Python NTLM acceptor checks passwords against the file named by the
process-wide env var NTLM_USER_FILE. One registry of users therefore serves every host in
the process: each running host registers its users and the file is rewritten (atomically)
on every start/stop. Entries use the smbpasswd form with the NT hash, because the
DOMAIN:USER:PASSWORD form silently drops a password containing ':'. LM_COMPAT_LEVEL=5 makes
the acceptor refuse NTLMv1 and LM responses, as a hardened Windows server does.
"""
from __future__ import annotations

import atexit
import base64
import os
import re
import shutil
import struct
import tempfile
import threading
from pathlib import Path

import spnego
from spnego._ntlm_raw.crypto import ntowfv1  # MD4 in pure Python (OpenSSL 3 has none)

_lock = threading.Lock()
_hosts: dict[int, dict[str, tuple[str, str]]] = {}  # id(host) -> {lower name: (name, password)}
_dir: Path | None = None

PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
BOUNDARY = b"--Encrypted Boundary"
CONTENT_TYPE = f'multipart/encrypted;protocol="{PROTOCOL}";boundary="Encrypted Boundary"'


def register(owner: object, users: dict[str, str]) -> None:
    """Make ``users`` (``DOMAIN\\user`` or ``user`` -> password) able to log on; conflicts raise."""
    entries = {}
    for name, password in users.items():
        if not name or re.search(r"[:\r\n]", name) or "\n" in password or "\r" in password:
            raise ValueError(f"user name or password not usable in the NTLM user file: {name!r}")
        entries[name.lower()] = (name, password)
    with _lock:
        for other, their in _hosts.items():
            if other == id(owner):
                continue
            for key, (name, password) in entries.items():
                if key in their and their[key][1] != password:
                    raise ValueError(f"{name!r} is already registered with another password by a running host")
        _hosts[id(owner)] = entries
        _write()


def unregister(owner: object) -> None:
    with _lock:
        if _hosts.pop(id(owner), None) is not None:
            _write()


def _write() -> None:
    global _dir
    if _dir is None:
        _dir = Path(tempfile.mkdtemp(prefix="winrm-test-host-"))
        atexit.register(shutil.rmtree, _dir, ignore_errors=True)
    _dir.mkdir(exist_ok=True)
    lines = {}
    for entries in _hosts.values():
        for key, (name, password) in entries.items():
            nt_hash = base64.b16encode(ntowfv1(password)).decode()
            lines[key] = f"{name}:0:{'0' * 32}:{nt_hash}:[U]:LCT-00000000"
    path = _dir / "ntlm_users"
    tmp = _dir / "ntlm_users.tmp"
    tmp.write_text("".join(line + "\n" for line in lines.values()), encoding="utf-8")
    os.replace(tmp, path)
    os.environ["NTLM_USER_FILE"] = str(path)
    os.environ["LM_COMPAT_LEVEL"] = "5"


def acceptor(channel_bindings: spnego.channel_bindings.GssChannelBindings | None = None) -> spnego.ContextProxy:
    return spnego.server(protocol="ntlm", options=spnego.NegotiateOptions.use_ntlm,
                         channel_bindings=channel_bindings)


def message_type(token: bytes) -> int | None:
    """1 (Negotiate), 3 (Authenticate)... for a raw NTLMSSP token; None for anything else."""
    if len(token) < 12 or not token.startswith(b"NTLMSSP\0"):
        return None
    return struct.unpack("<I", token[8:12])[0]


def is_encrypted(content_type: str) -> bool:
    ct = content_type.lower()
    return ct.startswith("multipart/encrypted") and PROTOCOL.lower() in ct


def unwrap(ctx: spnego.ContextProxy, body: bytes, signature_length: int | None = 16) -> bytes:
    """The SOAP text of an encrypted request; ValueError/SpnegoError when it does not verify.

    NTLM's signature is 16 bytes; Kerberos' header varies with the cipher (``signature_length=None``).
    """
    m = re.search(rb"OriginalContent:[^\r\n]*Length=(\d+)", body)
    marker = b"Content-Type: application/octet-stream\r\n"
    start = body.find(marker)
    end = BOUNDARY + b"--\r\n"
    if not m or start < 0 or not body.endswith(end):
        raise ValueError("not a multipart/encrypted body")
    payload = body[start + len(marker):-len(end)]
    if len(payload) < 4:
        raise ValueError("truncated encrypted part")
    sig_len = struct.unpack("<I", payload[:4])[0]
    if (signature_length is not None and sig_len != signature_length) or not 0 < sig_len < len(payload) - 4:
        raise ValueError("bad signature length")
    plain = ctx.unwrap_winrm(payload[4:4 + sig_len], payload[4 + sig_len:])
    if len(plain) != int(m.group(1)):
        raise ValueError("decrypted length does not match OriginalContent")
    return plain


def wrap(ctx: spnego.ContextProxy, plain: bytes) -> bytes:
    """An encrypted reply body in the same layout pywinrm sends (and Windows answers)."""
    sealed = ctx.wrap_winrm(plain)
    return (
        BOUNDARY + b"\r\n"
        b"\tContent-Type: " + PROTOCOL.encode() + b"\r\n"
        b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" + str(len(plain)).encode() + b"\r\n"
        + BOUNDARY + b"\r\n"
        b"\tContent-Type: application/octet-stream\r\n"
        + struct.pack("<I", len(sealed.header)) + sealed.header + sealed.data
        + BOUNDARY + b"--\r\n"
    )
