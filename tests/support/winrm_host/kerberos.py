"""Kerberos for the test host: pyspnego's GSSAPI acceptor over a keytab exported from the test DC.

The host is a service account's SPN (``HTTP/<name>``) in the test DC's realm; its keys come
from ``samba-tool domain exportkeytab``. The acceptor reads that keytab only (a GSSAPI
credential store), never the process's default one, so hosts with other keytabs can run beside
it. A client gets its service ticket from the test DC's KDC, sends it as ``Negotiate <token>``
(pywinrm: Kerberos, not SPNEGO-wrapped), and the host answers with its own token on the same
reply (mutual authentication). Messages are sealed with the context's keys in the same
multipart layout as NTLM's (ntlm.wrap / ntlm.unwrap), with a header whose length depends on
the cipher.
"""
from __future__ import annotations

import gssapi
import spnego

from . import ntlm


def credential(keytab: str) -> gssapi.Credentials:
    """Accept-only credentials from ``keytab`` (any principal in it)."""
    return gssapi.Credentials(usage="accept", store={"keytab": str(keytab)})


def acceptor(creds: gssapi.Credentials, channel_bindings=None) -> spnego.ContextProxy:
    # pyspnego passes a ready credential through to its GSSAPI proxy; without one it would read
    # the process-wide default keytab (KRB5_KTNAME).
    return spnego.server(protocol="kerberos", channel_bindings=channel_bindings, _gssapi_credential=creds)


def unwrap(ctx: spnego.ContextProxy, body: bytes) -> bytes:
    return ntlm.unwrap(ctx, body, signature_length=None)


def wrap(ctx: spnego.ContextProxy, plain: bytes) -> bytes:
    return ntlm.wrap(ctx, plain)
