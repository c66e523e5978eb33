"""Encryption at rest for every secret jitad keeps, its keys, and their rotation.

Keys come from JITAD_VAULT_KEYS (the older name JITAD_BREAKGLASS_KEYS is read too): the
first key seals, every key opens. A key is a Fernet-format key (32 url-safe base64 bytes);
from it HKDF-SHA256 derives an AES-256-GCM key and a public key id (12 hex characters).

A sealed value (``jv1.<key id>.<base64url(nonce | ciphertext | tag)>``) is AES-256-GCM with
the key id and the row it belongs to (``ref``, e.g. ``mfa-totp:7:user:3``) as associated
data: a ciphertext copied to another row, or relabelled with another key id, does not open.
The key id says which key a row needs without trying them all: rotation can tell what is
left to re-encrypt, and a missing key is named in the error.

Tokens written before the key id existed (Fernet tokens of ``{"ref", "password"}``, break-glass
only) still open; ``manage.py jitad_rekey`` rewrites them in the current format.
Apps register the fields they seal (``sealed_field_register``) so one command re-encrypts
all of them; this module imports no app (it is the bottom layer).
"""
import base64
import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

PREFIX = "jv1"
_NONCE = 12


class VaultError(Exception):
    """A secret cannot be sealed or opened: no keys, a malformed or missing key, or a token not this row's."""


@dataclass(frozen=True)
class _Key:
    key_id: str
    aead: object  # AESGCM
    fernet: object  # Fernet, for the tokens written before key ids


@lru_cache(maxsize=32)
def _derive(key: str) -> _Key:
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    try:
        fernet = Fernet(key.encode())
        raw = base64.urlsafe_b64decode(key.encode())
    except (ValueError, TypeError) as e:
        raise VaultError("a key in JITAD_VAULT_KEYS is not a Fernet key (32 url-safe base64 bytes)") from e

    def hkdf(info: bytes, length: int) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(raw)

    return _Key(key_id=hkdf(b"jitad vault v1 key id", 6).hex(), aead=AESGCM(hkdf(b"jitad vault v1 aes-256-gcm", 32)),
                fernet=fernet)


def _keys() -> list[_Key]:
    keys = [k for k in getattr(settings, "JITAD_VAULT_KEYS", []) if k]
    if not keys:
        raise VaultError("JITAD_VAULT_KEYS is empty: secrets cannot be sealed or opened")
    return [_derive(k if isinstance(k, str) else k.decode()) for k in keys]


def key_generate() -> str:
    """A new vault key, for JITAD_VAULT_KEYS."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def key_id(key: str) -> str:
    """The public id of ``key`` (what tokens sealed under it carry)."""
    return _derive(key).key_id


def key_ids() -> list[str]:
    """The ids of the configured keys, the sealing key first."""
    return [k.key_id for k in _keys()]


def _aad(kid: str, ref: str) -> bytes:
    return f"jitad-vault:{PREFIX}:{kid}:{ref}".encode()


@sensitive_variables("plaintext")
def seal(*, ref: str, plaintext: bytes) -> str:
    """Encrypt ``plaintext`` for the row named ``ref`` under the first key."""
    if not ref:
        raise VaultError("a sealed value needs the row it belongs to")
    key = _keys()[0]
    nonce = os.urandom(_NONCE)
    body = key.aead.encrypt(nonce, bytes(plaintext), _aad(key.key_id, ref))
    return f"{PREFIX}.{key.key_id}.{base64.urlsafe_b64encode(nonce + body).decode().rstrip('=')}"


def token_key_id(token: str) -> str:
    """The key id a token was sealed under ("" for a token from before key ids)."""
    parts = (token or "").split(".")
    return parts[1] if len(parts) == 3 and parts[0] == PREFIX else ""


@sensitive_variables("body")
def unseal(*, ref: str, token: str) -> bytes:
    """Decrypt a value sealed for ``ref``; VaultError (naming the key id, never the secret) if it does not open."""
    if not token:
        raise VaultError(f"no secret is stored for {ref}")
    keys = _keys()
    kid = token_key_id(token)
    if not kid:
        return _unseal_fernet(ref, token, keys)
    key = next((k for k in keys if k.key_id == kid), None)
    if key is None:
        raise VaultError(f"the secret of {ref} is sealed under key {kid}, which is not in JITAD_VAULT_KEYS "
                         f"(configured: {', '.join(k.key_id for k in keys)}); was it dropped before `jitad_rekey`?")
    try:
        raw = base64.urlsafe_b64decode(token.split(".")[2] + "=" * (-len(token.split(".")[2]) % 4))
        return key.aead.decrypt(raw[:_NONCE], raw[_NONCE:], _aad(kid, ref))
    except Exception as e:  # InvalidTag, binascii.Error: both mean "not this row's secret under this key"
        raise VaultError(f"the secret stored for {ref} does not open under key {kid}: it belongs to another row "
                         "or was altered") from e


@sensitive_variables("body")
def _unseal_fernet(ref: str, token: str, keys: list[_Key]) -> bytes:
    from cryptography.fernet import InvalidToken, MultiFernet

    try:
        body = json.loads(MultiFernet([k.fernet for k in keys]).decrypt(token.encode()))
    except InvalidToken as e:
        raise VaultError(f"the secret of {ref} does not open with any key in JITAD_VAULT_KEYS "
                         "(was the key dropped before `jitad_rekey`?)") from e
    except ValueError as e:
        raise VaultError(f"the secret of {ref} is not a vault token") from e
    if not isinstance(body, dict) or body.get("ref") != ref or not isinstance(body.get("password"), str):
        raise VaultError(f"the secret stored for {ref} belongs to another row")
    return body["password"].encode()


def is_current(token: str) -> bool:
    """True if ``token`` is in the current format under the first key (nothing for rekey to do)."""
    return token_key_id(token) == _keys()[0].key_id


@sensitive_variables("plaintext")
def reseal(*, ref: str, token: str) -> str:
    """The same secret sealed under the first key (key rotation); unchanged if it already is."""
    if is_current(token):
        return token
    plaintext = unseal(ref=ref, token=token)
    return seal(ref=ref, plaintext=plaintext)


# --- slow hashes of short secrets (backup codes) -------------------------------------------

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # Django's ScryptPasswordHasher's cost: ~60 ms, 16 MiB


def hash_salt() -> bytes:
    """A fresh 16-byte salt for :func:`hash_make`."""
    return os.urandom(16)


@sensitive_variables("secret")
def hash_make(secret: str, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$digest`` of ``secret`` with ``salt`` (a fresh 16-byte one if none is given)."""
    salt = hash_salt() if salt is None else salt
    digest = hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT, maxmem=64 * 2**20, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt)}${b64(digest)}"


class HashMatcher:
    """One secret checked against many stored hashes, hashing it once per distinct salt and cost.

    Hashes made together with one salt (a set of backup codes) cost one scrypt for the whole
    set, not one per hash; hashes with salts of their own still cost one each.
    """

    def __init__(self, secret: str):
        self.__secret = secret
        self.__hashed: dict[tuple, bytes] = {}

    @sensitive_variables("got")
    def matches(self, stored: str) -> bool:
        """True if the secret hashes to ``stored`` (constant-time comparison); False for anything malformed."""
        import hmac

        try:
            algo, n, r, p, salt, digest = stored.split("$")
            n, r, p = int(n), int(r), int(p)
            if algo != "scrypt" or n > 2**20 or r > 16 or p > 4:
                return False
            want = base64.b64decode(digest)
            key = (n, r, p, salt, len(want))
            got = self.__hashed.get(key)
            if got is None:
                got = self.__hashed[key] = hashlib.scrypt(self.__secret.encode(), salt=base64.b64decode(salt), n=n, r=r,
                                                          p=p, maxmem=256 * 2**20, dklen=len(want))
        except ValueError:
            return False
        return hmac.compare_digest(got, want)


@sensitive_variables("secret")
def hash_matches(secret: str, stored: str) -> bool:
    """True if ``secret`` hashes to ``stored`` (constant-time comparison); False for anything malformed."""
    return HashMatcher(secret).matches(stored)


# --- what is sealed where: for rotation ------------------------------------------------------


@dataclass(frozen=True)
class SealedField:
    """A model field holding sealed values: rows from ``queryset()``, each sealed for ``ref(row)``, named ``label(row)``."""

    name: str
    queryset: Callable
    field: str
    ref: Callable
    label: Callable = str


_FIELDS: dict[str, SealedField] = {}


def sealed_field_register(*, name: str, queryset: Callable, field: str, ref: Callable, label: Callable = str) -> None:
    """Tell rotation about a field of sealed values (call from an app's ``ready``)."""
    _FIELDS[name] = SealedField(name=name, queryset=queryset, field=field, ref=ref, label=label)


def sealed_fields() -> list[SealedField]:
    return list(_FIELDS.values())


def rekey_all() -> dict[str, int]:
    """Re-seal every registered value not yet under the first key; {field name: rows rewritten}.

    One short transaction per field, rows locked: a value opened by a request meanwhile is
    either the old token (still opens: the old key is still configured) or the new one.
    """
    from django.db import transaction

    counts = {}
    for f in sealed_fields():
        count = 0
        with transaction.atomic():
            for row in f.queryset().select_for_update().exclude(**{f.field: ""}):
                token = getattr(row, f.field)
                if is_current(token):
                    continue
                type(row).objects.filter(pk=row.pk).update(**{f.field: reseal(ref=f.ref(row), token=token)})
                count += 1
        counts[f.name] = count
    return counts


def rekey_check() -> list[str]:
    """What stops the old keys from being dropped: one line per field with values not under the first key."""
    problems = []
    configured = set(key_ids())
    for f in sealed_fields():
        stale, missing, names = 0, set(), []
        for row in f.queryset().exclude(**{f.field: ""}):
            token = getattr(row, f.field)
            if is_current(token):
                continue
            stale += 1
            if len(names) < 5:
                names.append(str(f.label(row)))
            kid = token_key_id(token)
            if kid and kid not in configured:
                missing.add(kid)
        if stale:
            extra = f"; sealed under keys no longer configured: {', '.join(sorted(missing))}" if missing else ""
            more = ", ..." if stale > len(names) else ""
            problems.append(f"{f.name}: {stale} value(s) not under the first key ({', '.join(names)}{more}){extra}")
    return problems


def sealed_values_open(*, limit: int | None = None) -> dict[str, dict]:
    """Open the stored sealed values with the keys on hand: {field name: {"values", "opened", "failed"}}, where
    "failed" names up to ten rows that did not open (and why, never the secret). ``limit``: at most that many
    values per field are opened (a quick check); None opens every one (a backup check)."""
    found = {}
    for f in sealed_fields():
        rows = f.queryset().exclude(**{f.field: ""}).order_by("pk")
        total, opened, failed = rows.count(), 0, []
        for row in (rows[:limit] if limit is not None else rows.iterator()):
            try:
                unseal(ref=f.ref(row), token=getattr(row, f.field))
                opened += 1
            except VaultError as e:
                if len(failed) < 10:
                    failed.append(f"{f.label(row)}: {e}")
        found[f.name] = {"values": total, "opened": opened, "failed": failed,
                         "unopened": total - opened if limit is None else min(total, limit) - opened}
    return found
