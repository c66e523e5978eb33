"""The vault: encryption at rest bound to the row, key rotation, and the passwords jitad generates."""
import json
import re

import pytest
from cryptography.fernet import Fernet

from jitad.breakglass.vault import (
    VaultError,
    key_generate,
    password_generate,
    seal_id_generate,
    secret_open,
    secret_rekey,
    secret_seal,
)
from jitad.vault import key_id, token_key_id


def test_a_secret_opens_only_for_its_own_row(settings):
    token = secret_seal(ref="sealed-account:1", password="Pa55-word-for-row-1")
    assert "Pa55-word" not in token
    assert secret_open(ref="sealed-account:1", token=token) == "Pa55-word-for-row-1"
    with pytest.raises(VaultError, match="another row"):
        secret_open(ref="sealed-account:2", token=token)
    with pytest.raises(VaultError):
        secret_open(ref="sealed-account:1", token="not-a-token")


def test_key_rotation_old_tokens_open_until_rekeyed(settings):
    old, new = key_generate(), key_generate()
    settings.JITAD_VAULT_KEYS = [old]
    token = secret_seal(ref="r", password="first-password-123")
    settings.JITAD_VAULT_KEYS = [new, old]  # the new key first: it encrypts, both decrypt
    assert secret_open(ref="r", token=token) == "first-password-123"
    rekeyed = secret_rekey(ref="r", token=token)
    settings.JITAD_VAULT_KEYS = [new]  # the old key dropped: only re-encrypted tokens still open
    assert secret_open(ref="r", token=rekeyed) == "first-password-123"
    with pytest.raises(VaultError, match=f"key {key_id(old)}, which is not in JITAD_VAULT_KEYS"):
        secret_open(ref="r", token=token)
    assert token_key_id(rekeyed) == key_id(new)  # really under the new key


def test_a_secret_sealed_before_key_ids_still_opens_and_rekeys(settings):
    """GIVEN a password sealed the way jitad did before key ids (a Fernet token of {ref, password}) WHEN opened
    and rekeyed THEN it opens for its row only, and rekey writes it in the current format."""
    key = key_generate()
    settings.JITAD_VAULT_KEYS = [key]
    legacy = Fernet(key.encode()).encrypt(json.dumps({"ref": "r", "password": "old-style-pw-1"}).encode()).decode()
    assert secret_open(ref="r", token=legacy) == "old-style-pw-1"
    with pytest.raises(VaultError, match="another row"):
        secret_open(ref="r2", token=legacy)
    rekeyed = secret_rekey(ref="r", token=legacy)
    assert token_key_id(rekeyed) == key_id(key) and secret_open(ref="r", token=rekeyed) == "old-style-pw-1"


def test_no_keys_or_a_bad_key_is_a_clear_error(settings):
    settings.JITAD_VAULT_KEYS = []
    with pytest.raises(VaultError, match="empty"):
        secret_seal(ref="r", password="x" * 20)
    settings.JITAD_VAULT_KEYS = ["short"]
    with pytest.raises(VaultError, match="not a Fernet key"):
        secret_seal(ref="r", password="x" * 20)


def test_generated_passwords_have_every_class_and_avoid_the_name(settings):
    seen = set()
    for _ in range(200):
        pw = password_generate(length=24, avoid="bg-da-01")
        assert len(pw) == 24 and pw not in seen
        seen.add(pw)
        assert re.search(r"[A-Z]", pw) and re.search(r"[a-z]", pw) and re.search(r"[0-9]", pw)
        assert re.search(r"[^A-Za-z0-9]", pw)
        assert not set(pw) & set("0O1lI'\"`\\ ")  # readable on paper, no quoting trouble
        assert "bg-da-01" not in pw.lower()
    assert len(password_generate()) == settings.JITAD_BREAKGLASS_PASSWORD_LENGTH
    with pytest.raises(ValueError):
        password_generate(length=8)


def test_seal_ids_read_out_over_the_phone():
    ids = {seal_id_generate() for _ in range(500)}
    assert len(ids) == 500
    assert all(re.fullmatch(r"BG-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", i) for i in ids)
