"""MFA secrets at rest: someone who reads the database cannot pass MFA; the owner still can.

The attacker's view is the raw rows (SQL through ``connection.cursor``), every MFA table
included (django-otp's old ones too). Everything in them that could be a secret is tried
the way an attacker would: as a TOTP key (base32, hex, raw bytes) and as a backup code, at
the real portal over HTTP.
"""
import base64
import json
import re

import pyotp
import pytest
import requests
from django.core.management import CommandError, call_command
from django.db import connection
from django_otp.oath import totp

from jitad import vault
from jitad.accounts.devices import AuthenticatorDevice, BackupCode, BackupCodeDevice
from jitad.accounts.mfa import BACKUP_CODE_COUNT
from tests.support.mfa import backup_codes, totp_code, totp_device

PASSWORD = "A-long-passphrase-at-rest"
MFA_TABLES = ("accounts_authenticatordevice", "accounts_backupcodedevice", "accounts_backupcode",
              "otp_totp_totpdevice", "otp_static_staticdevice", "otp_static_statictoken")


@pytest.fixture
def person(django_user_model):
    import uuid

    return django_user_model.objects.create_user(f"r{uuid.uuid4().hex[:6]}", password=PASSWORD)


def raw_values() -> list[str]:
    """Every text value in every MFA table, read with SQL as a database reader would."""
    values = []
    existing = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        for table in [t for t in MFA_TABLES if t in existing]:
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 (fixed table names)
            values += [str(v) for row in cursor.fetchall() for v in row if isinstance(v, (str, bytes, memoryview))]
    return values


def candidate_codes(values: list[str]) -> set[str]:
    """What a reader of ``values`` could type: the TOTP code of every key-like value, and every code-like piece."""
    codes = set()
    for value in values:
        keys = [value.encode()]
        if re.fullmatch(r"[0-9a-fA-F]{20,80}", value):
            keys.append(bytes.fromhex(value))
        for piece in re.split(r"[.$:]", value):
            keys.append(piece.encode())
            try:
                keys.append(base64.urlsafe_b64decode(piece + "=" * (-len(piece) % 4)))
            except ValueError:
                pass
            if re.fullmatch(r"[a-z0-9]{6,16}", piece.lower()):
                codes.add(piece.lower())  # shaped like a backup code
        for key in keys:
            if key:
                codes.add(f"{totp(key):06d}")  # what django-otp would compute from that key
    return codes


def portal_session(base_url: str, user) -> tuple[requests.Session, str]:
    """A password-only session at the real portal (live HTTP server), and the MFA page it was sent to."""
    s = requests.Session()
    s.get(f"{base_url}/account/login/")
    r = s.post(f"{base_url}/account/login/", data={"username": user.username, "password": PASSWORD, "next": "/access/",
                                                   "csrfmiddlewaretoken": s.cookies["csrftoken"]}, allow_redirects=False)
    assert r.status_code == 302 and "/account/mfa/verify/" in r.headers["Location"], r.status_code
    return s, base_url + r.headers["Location"]


def try_code(s: requests.Session, step: str, code: str) -> int:
    r = s.post(step, data={"otp": code, "next": "/access/", "csrfmiddlewaretoken": s.cookies["csrftoken"]},
               allow_redirects=False)
    assert r.status_code != 500
    return r.status_code


def test_a_database_reader_cannot_pass_mfa_over_http(live_server, person):
    """GIVEN a person with an authenticator app and backup codes WHEN someone reads every MFA row with SQL and
    types everything in them that could be a code (TOTP codes of every key-like value, every code-like piece)
    into the real portal THEN every one is refused; the person's real TOTP code and backup code are accepted."""
    device = totp_device(person)
    codes = backup_codes(person, BACKUP_CODE_COUNT)  # the set a person really holds
    key = device.bin_key
    values = raw_values()
    sealed = [v for v in values if v.startswith("jv1.")]
    assert len(sealed) == 1 + BACKUP_CODE_COUNT  # the rows were read: the key and every code's hash
    assert not any(key.hex() in v.lower() or base64.b32encode(key).decode().rstrip("=") in v for v in values)
    assert not any(c in v for c in codes for v in values)
    candidates = candidate_codes(values) - {totp_code(device)}  # a 1-in-a-million collision is not a leak
    # Each sealed value is tried at least three ways (the whole token, its ciphertext, the ciphertext decoded).
    assert len(candidates) >= 3 * len(sealed)
    s, step = portal_session(live_server.url, person)
    for code in sorted(candidates):
        assert try_code(s, step, code) == 400, code
        # The refusal must be the value's, not the lock-out's: clear the throttle before the next try.
        AuthenticatorDevice.objects.filter(user=person).update(throttling_failure_count=0, throttling_failure_timestamp=None)
        BackupCodeDevice.objects.filter(user=person).update(throttling_failure_count=0, throttling_failure_timestamp=None)
    assert try_code(s, step, totp_code(device)) == 302
    s2, step2 = portal_session(live_server.url, person)
    assert try_code(s2, step2, codes[0]) == 302
    assert try_code(s2, step2, codes[0]) in (302, 400)  # already verified or refused, never a 500
    assert BackupCode.objects.filter(device__user=person).count() == BACKUP_CODE_COUNT - 1  # used once, gone


def session_rows() -> list[tuple[str, str]]:
    """(session_key, session_data) of every session row, read with SQL as a database reader would."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT session_key, session_data FROM django_session")
        return [(str(k), str(d)) for k, d in cursor.fetchall()]


def session_texts() -> list[str]:
    """Every session row, raw and decoded (its data is only signed, not encrypted)."""
    from importlib import import_module

    from django.conf import settings

    store = import_module(settings.SESSION_ENGINE).SessionStore()
    decoded = [store.decode(data) for _key, data in session_rows()]
    assert all(decoded), "a session row did not decode"  # decode() answers {} for what it cannot read
    return [text for (_key, data), d in zip(session_rows(), decoded) for text in (data, json.dumps(d))]


def test_a_database_reader_cannot_ride_a_verified_session(live_server, person):
    """GIVEN a person logged in over HTTP with password and TOTP WHEN someone reads the session table and sends
    each row's key as the session cookie THEN none is logged in (the table holds no cookie value); the person's
    own cookie works, logging out ends it, and so does blocking the person."""
    device = totp_device(person)
    s, step = portal_session(live_server.url, person)
    assert try_code(s, step, totp_code(device)) == 302
    cookie = s.cookies["sessionid"]
    assert s.get(f"{live_server.url}/access/", allow_redirects=False).status_code == 200
    rows = session_rows()
    assert rows and cookie not in {key for key, _data in rows}
    assert not any(cookie in key or cookie in data for key, data in rows)
    for key, _data in rows:
        thief = requests.Session()
        thief.cookies.set("sessionid", key)
        r = thief.get(f"{live_server.url}/access/", allow_redirects=False)
        assert r.status_code == 302 and "/account/login/" in r.headers["Location"], key

    # Logging out deletes the row; the old cookie is logged out too.
    before = len(session_rows())
    assert s.post(f"{live_server.url}/account/logout/", data={"csrfmiddlewaretoken": s.cookies["csrftoken"]},
                  allow_redirects=False).status_code == 302
    assert len(session_rows()) < before
    old = requests.Session()
    old.cookies.set("sessionid", cookie)
    assert "/account/login/" in old.get(f"{live_server.url}/access/", allow_redirects=False).headers["Location"]

    # Blocking the person ends a session they still hold.
    s2, step2 = portal_session(live_server.url, person)
    assert try_code(s2, step2, backup_codes(person, 1)[0]) == 302
    assert s2.get(f"{live_server.url}/access/", allow_redirects=False).status_code == 200
    type(person).objects.filter(pk=person.pk).update(is_active=False)
    r = s2.get(f"{live_server.url}/access/", allow_redirects=False)
    assert r.status_code == 302 and "/account/login/" in r.headers["Location"]


def test_secrets_shown_once_never_reach_the_session_table(client, person):
    """GIVEN a first login WHEN the person enrols (backup codes are made) and creates an API token THEN between
    each POST and the page that shows the secret, no session row holds it, raw or decoded; the pages still
    show each once."""
    client.post("/account/login/", {"username": person.username, "password": PASSWORD, "next": "/access/"})
    page = client.get("/account/mfa/enrol/").content.decode()
    secret = re.search(r'data-secret="([A-Z2-7]+)"', page).group(1)
    done = client.post("/account/mfa/enrol/", {"code": pyotp.TOTP(secret).now(), "next": "/access/"})
    assert done.status_code == 302 and done.url.startswith("/account/mfa/backup-codes/")
    waiting = session_texts()  # what a reader sees while the codes wait for their page
    codes = re.findall(r"<li><code>([0-9a-f]+)</code></li>", client.get(done.url).content.decode())
    assert len(codes) == BACKUP_CODE_COUNT
    assert waiting and not any(c in text for c in codes for text in waiting)
    assert not any(c in text for c in codes for text in session_texts())

    assert client.post("/account/security/tokens/", {"name": "bot", "days": "7"}).status_code == 302
    waiting = session_texts()
    page = client.get("/account/security/")
    raw = re.search(r'id="new-token">(jitad_[A-Za-z0-9_-]+)<', page.content.decode()).group(1)
    body = raw.split("_", 2)[2]
    assert not any(body in text for text in waiting + session_texts())
    assert raw not in client.get("/account/security/").content.decode()  # once


def test_without_a_vault_a_new_api_token_is_shown_in_the_answer_itself(client, person, settings):
    """GIVEN no vault key (nothing can be sealed for the next page) WHEN a token is created THEN the answer to the
    POST shows it, uncacheable, and the session table never holds it."""
    from tests.support.mfa import verify_session

    verify_session(client, person)
    settings.JITAD_VAULT_KEYS = []
    r = client.post("/account/security/tokens/", {"name": "bot", "days": "7"})
    assert r.status_code == 200 and "no-store" in r["Cache-Control"]
    raw = re.search(r'id="new-token">(jitad_[A-Za-z0-9_-]+)<', r.content.decode()).group(1)
    assert not any(raw.split("_", 2)[2] in text for text in session_texts())
    assert raw not in client.get("/account/security/").content.decode()


def test_a_shown_once_secret_sealed_for_someone_else_is_not_shown(client, person, django_user_model):
    """GIVEN a session holding another person's sealed token (copied by someone who can write the session table)
    THEN the security page shows no token and does not fail."""
    from jitad.accounts.views import _ONCE_TOKEN
    from tests.support.mfa import verify_session

    other = django_user_model.objects.create_user("other-at-rest", password=PASSWORD)
    verify_session(client, person)
    session = client.session
    session[_ONCE_TOKEN] = vault.seal(ref=f"session-once:{_ONCE_TOKEN}:user:{other.pk}", plaintext=b'"jitad_x_secret"')
    session.save()
    page = client.get("/account/security/")
    assert page.status_code == 200 and b"jitad_x_secret" not in page.content and b'id="new-token"' not in page.content


def test_a_sealed_key_moved_to_another_row_does_not_open(client, person, django_user_model):
    """GIVEN an attacker who can write to the database WHEN they copy their own device's sealed key (or a backup
    code hash) into the victim's row THEN the victim's device refuses the attacker's codes, with a clear error."""
    attacker = django_user_model.objects.create_user("attacker-at-rest", password=PASSWORD)
    theirs, mine = totp_device(attacker), totp_device(person)
    AuthenticatorDevice.objects.filter(pk=mine.pk).update(sealed_key=theirs.sealed_key)
    mine.refresh_from_db()
    assert not mine.verify_token(totp_code(theirs))
    assert "another row" in mine.vault_error
    [code] = backup_codes(attacker, 1)
    victim_backup = BackupCodeDevice.objects.create(user=person, name="backup", confirmed=True)
    BackupCode.objects.filter(device__user=attacker).update(device=victim_backup)
    assert not victim_backup.verify_token(code)
    client.post("/account/login/", {"username": person.username, "password": PASSWORD})
    refused = client.post("/account/mfa/verify/", {"otp": totp_code(theirs)})
    assert refused.status_code == 400 and b"cannot open the stored MFA secret" in refused.content


def test_a_missing_vault_key_is_a_clear_refusal_never_a_pass_or_500(client, person, settings):
    """GIVEN devices sealed under a key WHEN jitad runs without that key THEN verification refuses with a message
    naming the cause (the wrong guess is not held against the person), enrolment answers 503, and the startup
    check names the missing key id."""
    device = totp_device(person)
    [code] = backup_codes(person, 1)
    old, right_now = settings.JITAD_VAULT_KEYS[0], totp_code(device)
    settings.JITAD_VAULT_KEYS = [vault.key_generate()]
    client.post("/account/login/", {"username": person.username, "password": PASSWORD})
    for typed in (right_now, code):
        r = client.post("/account/mfa/verify/", {"otp": typed})
        assert r.status_code == 400 and b"cannot open the stored MFA secret" in r.content
    device.refresh_from_db()
    assert device.throttling_failure_count == 0
    from jitad.vault.checks import sealed_values_have_their_keys

    warnings = sealed_values_have_their_keys(databases=["default"])
    assert any(vault.key_id(old) in w.msg for w in warnings)
    settings.JITAD_VAULT_KEYS = []
    assert client.get("/account/mfa/enrol/").status_code in (302, 503)  # enrolled: sent to verify; never a 500
    person2 = type(person).objects.create_user("no-device-yet", password=PASSWORD)
    client.post("/account/logout/")
    client.post("/account/login/", {"username": person2.username, "password": PASSWORD})
    r = client.get("/account/mfa/enrol/")
    assert r.status_code == 503 and b"JITAD_VAULT_KEYS" in r.content
    assert not AuthenticatorDevice.objects.filter(user=person2).exists()


def test_key_rotation_rekey_then_the_old_key_can_go(person, settings):
    """GIVEN MFA secrets sealed under an old key WHEN a new key is put first THEN they still verify, `jitad_rekey
    --check` says the old key is still needed, `jitad_rekey` re-seals them, and without the old key they verify."""
    old, new = vault.key_generate(), vault.key_generate()
    settings.JITAD_VAULT_KEYS = [old]
    device = totp_device(person)
    codes = backup_codes(person, 2)
    settings.JITAD_VAULT_KEYS = [new, old]
    assert BackupCodeDevice.objects.get(user=person).verify_token(codes[0])
    with pytest.raises(CommandError, match="MFA authenticator keys: 1 value"):
        call_command("jitad_rekey", "--check")
    call_command("jitad_rekey")
    call_command("jitad_rekey", "--check")
    assert {vault.token_key_id(v) for v in raw_values() if v.startswith("jv1.")} == {vault.key_id(new)}
    settings.JITAD_VAULT_KEYS = [new]
    device = AuthenticatorDevice.objects.get(pk=device.pk)
    assert device.verify_token(totp_code(device))
    assert not device.verify_token(totp_code(device))  # django-otp's replay guard (last_t) still holds
    assert BackupCodeDevice.objects.get(user=person).verify_token(codes[1])


def test_the_admin_never_shows_a_key_and_cannot_add_one(verified_client, person, django_user_model):
    admin_client = verified_client(django_user_model.objects.create_superuser("root-at-rest", password=PASSWORD))
    device = totp_device(person)
    backup_codes(person, 1)
    key = device.bin_key
    secrets_shown = (key.hex(), base64.b32encode(key).decode().rstrip("="), device.sealed_key[:24])
    for url in ("/admin/accounts/authenticatordevice/", f"/admin/accounts/authenticatordevice/{device.pk}/change/",
                "/admin/accounts/backupcodedevice/"):
        page = admin_client.get(url)
        assert page.status_code == 200, url
        assert not any(s.encode() in page.content for s in secrets_shown), url
    assert admin_client.get("/admin/accounts/authenticatordevice/add/").status_code == 403
    assert admin_client.get("/admin/otp_totp/totpdevice/").status_code == 404  # django-otp's (plaintext) admin is gone
    assert admin_client.get("/admin/otp_static/staticdevice/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_migration_seals_existing_rows_and_leaves_no_plaintext(django_user_model):
    """GIVEN the database as it was before (django-otp's TOTP device with a hex key, backup codes in plaintext)
    WHEN migrated forward THEN the same authenticator app and codes still verify, every secret is sealed, and
    django-otp's tables are empty; the raw-row attack that works on the old rows finds nothing on the new ones."""
    import os

    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("accounts")
    before = [("accounts", "0002_directory_missing")]
    executor.migrate(before)
    old = executor.loader.project_state(before + [("otp_totp", "0003_add_timestamps"),
                                                  ("otp_static", "0003_add_timestamps")]).apps
    user = old.get_model("auth", "User").objects.create(username="legacy-mfa", password="!")
    key = os.urandom(20)
    old.get_model("otp_totp", "TOTPDevice").objects.create(user_id=user.pk, name="phone", key=key.hex(), confirmed=True,
                                                           last_t=-1, drift=0)
    static = old.get_model("otp_static", "StaticDevice").objects.create(user_id=user.pk, name="backup codes")
    tokens = ["a1b2c3d4e5", "ZX9Y8W7V6U"]
    for t in tokens:
        old.get_model("otp_static", "StaticToken").objects.create(device_id=static.pk, token=t)
    right_now = pyotp.TOTP(base64.b32encode(key).decode()).now()
    exposed = candidate_codes(raw_values())
    assert right_now in exposed and "a1b2c3d4e5" in exposed  # the attack works on plaintext rows

    executor = MigrationExecutor(connection)
    executor.migrate(latest)

    values = raw_values()
    assert not any(key.hex() in v.lower() or t.lower() in v.lower() for v in values for t in tokens)
    assert not candidate_codes(values) & {right_now, *[t.lower() for t in tokens]}
    with connection.cursor() as cursor:
        for table in ("otp_totp_totpdevice", "otp_static_statictoken", "otp_static_staticdevice"):
            cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608
            assert cursor.fetchone()[0] == 0, table
    device = AuthenticatorDevice.objects.get(user_id=user.pk)
    assert device.bin_key == key and device.name == "phone" and device.confirmed
    assert device.verify_token(right_now)
    backup = BackupCodeDevice.objects.get(user_id=user.pk)
    assert backup.verify_token("zx9y8w7v6u") and backup.verify_token("a1b2c3d4e5")
    assert not backup.verify_token("a1b2c3d4e5")


@pytest.fixture
def scrypt_calls(monkeypatch):
    """How many scrypt hashes were computed (the real hashlib.scrypt, counted)."""
    import hashlib

    calls = []
    real = hashlib.scrypt

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counted)
    return calls


def test_a_backup_code_costs_one_scrypt_whatever_the_codes_left(person, scrypt_calls):
    """GIVEN a set of codes (one salt for the set) WHEN the last one made is typed, or a wrong one
    THEN one scrypt is computed (not one per code), the right code passes once and a wrong one never."""
    device = BackupCodeDevice.objects.create(user=person, name="backup codes", confirmed=True)
    codes = [f"c0de{i:06d}" for i in range(12)]
    device.codes_add(codes)
    stored = [vault.unseal(ref=device.vault_ref, token=c.sealed_hash).decode() for c in device.code_set.all()]
    assert len({s.split("$")[4] for s in stored}) == 1 and len(set(stored)) == 12  # one salt, twelve digests
    del scrypt_calls[:]
    assert device.verify_token(codes[-1]) is True
    assert len(scrypt_calls) == 1
    assert device.verify_token(codes[-1]) is False  # used once
    device.throttle_reset()
    del scrypt_calls[:]
    assert device.verify_token("nottherightone") is False
    assert len(scrypt_calls) == 1
    assert BackupCode.objects.filter(device=device).count() == 11


def test_backup_codes_stored_with_a_salt_each_still_pass(person):
    """Codes hashed before sets shared a salt (a salt per code) are still checked, and still single use."""
    device = BackupCodeDevice.objects.create(user=person, name="backup codes", confirmed=True)
    codes = ["oldcode001", "oldcode002", "oldcode003"]
    BackupCode.objects.bulk_create([BackupCode(device=device, sealed_hash=vault.seal(
        ref=device.vault_ref, plaintext=vault.hash_make(c).encode())) for c in codes])
    assert device.verify_token("oldcode003") is True
    assert device.verify_token("oldcode003") is False
    device.throttle_reset()
    assert device.verify_token("oldcode001") is True
    assert BackupCode.objects.filter(device=device).count() == 1
