"""DN and filter text: escaping, parsing, comparing and splitting, with nothing sent to a DC.

Every filter value jitad builds goes through :func:`escape_filter` (or, for binary values
such as SIDs and GUIDs, every byte escaped), and every DN part through :func:`rdn`.
DNs are compared in the form :func:`normalize_dn` gives, because DCs spell escapes their
own way (Samba returns ``\\3D`` where jitad wrote ``\\=``).
"""
import re
from functools import lru_cache

from ldap3.utils.conv import escape_filter_chars

from .errors import DirectoryRejected

_SID_RE = re.compile(r"^S-1-[0-9]+(-[0-9]+)+$")


def sid_filter_value(sid: str) -> str:
    """A SID as an escaped binary LDAP filter value (works on every AD and on Samba)."""
    if not _SID_RE.fullmatch(sid):
        raise DirectoryRejected(f"{sid!r} is not a SID")
    parts = [int(p) for p in sid.split("-")[1:]]
    revision, authority, subs = parts[0], parts[1], parts[2:]
    if revision > 255 or authority >= 2**48 or len(subs) > 15 or any(s >= 2**32 for s in subs):
        raise DirectoryRejected(f"{sid!r} is not a SID")
    raw = bytes([revision, len(subs)]) + authority.to_bytes(6, "big") + b"".join(s.to_bytes(4, "little") for s in subs)
    return _binary_filter_value(raw)


def _usable_sid(sid: str) -> bool:
    """A SID that can be searched for; a malformed one from a server is skipped, not fatal."""
    try:
        sid_filter_value(sid)
    except DirectoryRejected:
        return False
    return True


def _binary_filter_value(raw: bytes) -> str:
    """Bytes as an LDAP filter value: every byte escaped, so nothing in it is filter syntax."""
    return "".join(f"\\{b:02x}" for b in raw)


def escape_filter(value: str) -> str:
    """Escape a value for use inside an LDAP filter (RFC 4515)."""
    return escape_filter_chars(value)


def rdn(attr: str, value: str) -> str:
    """Build one escaped RDN, e.g. ``rdn("CN", "Admins, SRV01")`` → ``CN=Admins\\, SRV01``."""
    return f"{attr}={_escape_rdn_value(value)}"


def _escape_rdn_value(value: str) -> str:
    """RFC 4514 escaping of one value (ldap3's escape_rdn mangles a lone space and NUL).

    A comma that ends the value is written as ``\\2C``: Samba cuts ``ab \\,`` (a space, then an
    escaped comma at the end) down to ``a``, and mangles a multi-byte character before it into
    invalid UTF-8; the hex form is the same value to every DC.
    """
    if not value:
        raise ValueError("an RDN value cannot be empty")
    last = len(value) - 1
    out = []
    for i, ch in enumerate(value):
        if ch == "\x00":
            out.append("\\00")
        elif ch == "," and i == last:
            out.append("\\2C")
        elif ch in '\\,+"<>;=#' or (ch == " " and i in (0, last)):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


_ATTR_TYPE = re.compile(r"\s*([A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*)\s*")
_HEX = "0123456789abcdefABCDEF"


def _dn_parts(dn: str) -> list[tuple[str, str, str, int]]:
    """(attribute type, unescaped value, separator, its index) per RDN component, per RFC 4514.

    Values are compared unescaped because DCs spell them their own way: Samba returns
    ``\\3D`` where jitad wrote ``\\=``, and ``\\ `` for a trailing space.
    """
    parts, i, n = [], 0, len(dn)
    while True:
        eq = dn.find("=", i)
        m = _ATTR_TYPE.fullmatch(dn, i, eq) if eq >= 0 else None
        if not m:
            raise ValueError("expected an attribute type and '='")
        i = eq + 1
        while i < n and dn[i] == " ":
            i += 1
        raw, keep = bytearray(), 0  # keep: length up to the last byte that is not an unescaped space
        while i < n and dn[i] not in ",+;":
            if dn[i] == "\\":
                pair = dn[i + 1 : i + 3]
                if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
                    raw += bytes.fromhex(pair)
                    i += 3
                elif i + 1 < n and dn[i + 1] in ' "#+,;<=>\\':
                    raw += dn[i + 1].encode()
                    i += 2
                else:
                    raise ValueError("bad escape")
                keep = len(raw)
            else:
                raw += dn[i].encode()
                if dn[i] != " ":
                    keep = len(raw)
                i += 1
        if not keep:
            raise ValueError("empty attribute value")
        sep = dn[i] if i < n else ""
        parts.append((m.group(1), raw[:keep].decode("utf-8"), sep, i))
        if not sep:
            return parts
        i += 1


@lru_cache(maxsize=65536)
def normalize_dn(dn: str) -> str:
    """A comparable form of a DN: types and values case-folded, escaping and spacing canonical.

    Remembered for the last 65,536 DNs: a revocation compares every member of a group with
    every grant's DN, and the same DNs come back wave after wave (an invalid DN raises
    each time; exceptions are not cached).
    """
    try:
        parts = _dn_parts(dn)
    except ValueError as e:
        raise DirectoryRejected(f"not a valid DN: {dn!r}") from e
    return "".join(f"{a.lower()}={_escape_rdn_value(v.lower())}{sep and ','}" for a, v, sep, _ in parts)


def _domain_root(dn: str) -> str:
    """The root of the domain ``dn`` sits in (its trailing DC= RDNs, escaped), or "" if it has none."""
    tail = []
    for attr, value, _sep, _end in reversed(_dn_parts(dn)):
        if attr.lower() != "dc":
            break
        tail.append(f"{attr}={_escape_rdn_value(value)}")
    return ",".join(reversed(tail))


def dn_domain(dn: str) -> str:
    """The DNS name of the domain ``dn`` sits in, from its trailing DC= RDNs (``corp.example``), or ""."""
    tail = []
    for attr, value, _sep, _end in reversed(_dn_parts(dn)):
        if attr.lower() != "dc":
            break
        tail.append(value.lower())
    return ".".join(reversed(tail))


def escaped_dn(dn: str) -> str:
    """``dn`` with every value escaped the one canonical way (RFC 4514), case kept: what jitad sends.

    ``CN=x)(objectClass=*,OU=JIT,…`` goes out as ``CN=x)(objectClass\\=*,OU=JIT,…``.
    """
    try:
        if "\x00" in dn:
            raise ValueError("NUL")
        parts = _dn_parts(dn)
    except (TypeError, ValueError) as e:
        raise DirectoryRejected(f"not a valid DN: {dn!r}") from e
    return "".join(f"{a}={_escape_rdn_value(v)}{sep and (',' if sep == ';' else sep)}" for a, v, sep, _ in parts)


def split_dn(dn: str) -> tuple[str, str]:
    """(unescaped value of the first RDN, parent DN): ``CN=a\\,b,OU=x`` → (``a,b``, ``OU=x``)."""
    try:
        parts = _dn_parts(dn)
    except ValueError as e:
        raise DirectoryRejected(f"not a valid DN: {dn!r}") from e
    _type, value, sep, end = parts[0]
    if sep == "+":
        raise DirectoryRejected(f"a multi-valued first RDN cannot be split: {dn!r}")
    return value, dn[end + 1 :].strip()


def group_label(dn: str) -> str:
    """A group's name for a title: its first RDN value unescaped (``CN=Ops\\, SRV01,OU=…`` → ``Ops, SRV01``).

    Never cuts at an escaped comma, and decodes Samba's hex escapes (``\\2C``); a string that
    is not a DN comes back as it is.
    """
    try:
        parts = _dn_parts(dn)
    except (TypeError, ValueError):
        return str(dn)
    return parts[0][1]


def member_ttl_value(member_dn: str, ttl_seconds: int) -> str:
    """The PAM-feature form of a member value: ``<TTL=seconds,DN>``."""
    if ttl_seconds < 1:
        raise ValueError("a TTL must be at least one second")
    return f"<TTL={int(ttl_seconds)},{member_dn}>"
