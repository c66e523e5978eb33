"""Encryption at rest for break-glass passwords, and generating them.

Secrets are Fernet tokens (AES-128-CBC + HMAC-SHA256) under a MultiFernet of the keys in
JITAD_BREAKGLASS_KEYS: the first key encrypts, every key decrypts, so a key is rotated
by putting a new one first, running ``manage.py jitad_breakglass rekey`` and then
dropping the old one. Each token is bound to its row (``SealedAccount.vault_ref``): a
ciphertext copied to another account's row does not open there. Plaintext exists only in
the worker's memory while a password is set, and in the one response that reveals it.
"""
import json
import secrets
import string

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

# No characters that read alike on paper (0/O, 1/l/I) or need quoting in a shell.
_UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_LOWER = "abcdefghijkmnopqrstuvwxyz"
_DIGITS = "23456789"
_SYMBOLS = "-_.,:;!?@#%+=*~^"
_CLASSES = (_UPPER, _LOWER, _DIGITS, _SYMBOLS)


class VaultError(Exception):
    """A secret cannot be opened: wrong or missing key, or a token that is not this row's."""


def _fernet() -> MultiFernet:
    keys = [k for k in settings.JITAD_BREAKGLASS_KEYS if k]
    if not keys:
        raise VaultError("JITAD_BREAKGLASS_KEYS is empty: break-glass secrets cannot be encrypted")
    try:
        return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])
    except (ValueError, TypeError) as e:
        raise VaultError("a key in JITAD_BREAKGLASS_KEYS is not a Fernet key (32 url-safe base64 bytes)") from e


def key_generate() -> str:
    """A new vault key, for JITAD_BREAKGLASS_KEYS."""
    return Fernet.generate_key().decode()


@sensitive_variables("password", "body")
def secret_seal(*, ref: str, password: str) -> str:
    """Encrypt ``password`` for the row named ``ref`` with the primary key."""
    body = json.dumps({"ref": ref, "password": password}).encode()
    return _fernet().encrypt(body).decode()


@sensitive_variables("body")
def secret_open(*, ref: str, token: str) -> str:
    """Decrypt a token sealed for ``ref``; VaultError if the keys or the row do not match."""
    try:
        body = json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken as e:
        raise VaultError("the secret does not open with JITAD_BREAKGLASS_KEYS (was the key rotated away?)") from e
    except ValueError as e:
        raise VaultError("the secret is not a vault token") from e
    if not isinstance(body, dict) or body.get("ref") != ref or not isinstance(body.get("password"), str):
        raise VaultError(f"the secret stored for {ref} belongs to another row")
    return body["password"]


def secret_rekey(token: str) -> str:
    """The same secret encrypted under the primary key (for key rotation)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as e:
        raise VaultError("a secret does not open with any key in JITAD_BREAKGLASS_KEYS") from e


@sensitive_variables("chars", "password")
def password_generate(*, length: int | None = None, avoid: str = "") -> str:
    """A random password of ``length`` (JITAD_BREAKGLASS_PASSWORD_LENGTH) with every character class.

    AD's complexity rule also refuses a password containing the account name: ``avoid``.
    """
    length = length or settings.JITAD_BREAKGLASS_PASSWORD_LENGTH
    if length < 16:
        raise ValueError("a break-glass password has at least 16 characters")
    alphabet = "".join(_CLASSES)
    while True:
        chars = [secrets.choice(c) for c in _CLASSES] + [secrets.choice(alphabet) for _ in range(length - len(_CLASSES))]
        secrets.SystemRandom().shuffle(chars)
        password = "".join(chars)
        if len(avoid) < 3 or avoid.lower() not in password.lower():
            return password


def seal_id_generate() -> str:
    """A seal id people can read out over the phone: BG-XXXX-XXXX-XXXX (60 random bits)."""
    alphabet = string.digits + "ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford-like: no I, L, O, U
    groups = ["".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(3)]
    return "BG-" + "-".join(groups)
