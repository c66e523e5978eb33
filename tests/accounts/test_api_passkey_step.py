"""A passkey step for API writes: options, an assertion, a single-use ``mfa_step`` in place of ``otp``.

The authenticator here is a software one (an ECDSA P-256 key signing real WebAuthn
assertions); the server side is the real django-otp-webauthn verification the portal uses.
"""
import base64
import hashlib
import json
import os
import struct
import threading
from datetime import timedelta

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_otp_webauthn.models import WebAuthnCredential
from rest_framework.test import APIClient

from jitad.accounts.models import ApiMfaStep
from jitad.accounts.services import api_token_create
from jitad.audit.models import AuditEvent
from jitad.elevation.models import AccessRequest
from tests.elevation.builders import policy, target, user

pytestmark = pytest.mark.django_db
OPTIONS, VERIFY, REQUESTS = "/api/v1/mfa/passkey/options", "/api/v1/mfa/passkey/verify", "/api/v1/requests"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SoftAuthenticator:
    """A passkey in software: registers a P-256 credential for a person and signs assertions for options."""

    def __init__(self, person):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.count = 0
        numbers = self.key.public_key().public_numbers()
        cose = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
        self.device = WebAuthnCredential.objects.create(user=person, name="soft key", confirmed=True,
                                                        credential_id=self.credential_id, public_key=cose, sign_count=0)

    def assertion(self, options: dict, *, origin: str | None = None, rp_id: str | None = None) -> dict:
        self.count += 1
        client_data = json.dumps({"type": "webauthn.get", "challenge": options["challenge"],
                                  "origin": origin or settings.OTP_WEBAUTHN_ALLOWED_ORIGINS[0],
                                  "crossOrigin": False}).encode()
        auth_data = hashlib.sha256((rp_id or options["rpId"]).encode()).digest() + bytes([0x05]) + struct.pack(">I", self.count)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {"id": b64url(self.credential_id), "rawId": b64url(self.credential_id), "type": "public-key",
                "response": {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
                             "signature": b64url(signature)},
                "clientExtensionResults": {}}


def api(person):
    token, raw = api_token_create(user=person, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.token = token
    return client


@pytest.fixture
def world():
    t = target("SRV01")
    policy(t)
    alice = user("alice", "Ops")
    return {"target": t, "alice": alice, "key": SoftAuthenticator(alice)}


def step_for(client, key, **kwargs) -> dict:
    options = client.post(OPTIONS, format="json")
    assert options.status_code == 200, options.json()
    answer = client.post(VERIFY, key.assertion(options.json(), **kwargs), format="json")
    assert answer.status_code == 200, answer.json()
    return answer.json()


def test_a_passkey_step_lets_a_passkey_only_person_write_once(world):
    """GIVEN a person whose only MFA device is a passkey, calling with an API token
    WHEN they get options, sign them and create a request with the step in place of a code
    THEN the request is made and records webauthn; the same step is refused the second time."""
    client = api(world["alice"])
    options = client.post(OPTIONS, format="json").json()
    assert options["allowCredentials"][0]["id"] == b64url(world["key"].credential_id)
    assert options["challenge"]
    body = client.post(VERIFY, world["key"].assertion(options), format="json").json()
    assert body["mfa_step"].startswith("jitad_mfa_") and body["expires_at"]

    created = client.post(REQUESTS, {"target": "SRV01", "mfa_step": body["mfa_step"]}, format="json")
    assert created.status_code == 201, created.json()
    req = AccessRequest.objects.get()
    assert req.mfa_method == "webauthn" and req.mfa_verified_at is not None

    again = client.post(f"{REQUESTS}/{req.pk}/cancel", {"mfa_step": body["mfa_step"]}, format="json")
    assert again.status_code == 403 and again.json()["code"] == "mfa_step_invalid"


def test_the_step_is_stored_hashed(world):
    client = api(world["alice"])
    step = step_for(client, world["key"])["mfa_step"]
    row = ApiMfaStep.objects.get()
    assert row.digest == hashlib.sha256(step.encode()).hexdigest() and row.challenge == ""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apimfastep")
        dump = repr(cursor.fetchall())
    assert step not in dump and step.removeprefix("jitad_mfa_") not in dump


def test_the_step_is_bound_to_its_person_and_token(world):
    """GIVEN a step made through one token WHEN another token of the same person, or another person, sends it
    THEN it is refused, and it still works once through its own token."""
    client = api(world["alice"])
    step = step_for(client, world["key"])["mfa_step"]
    other_token = api(world["alice"])
    assert other_token.post(REQUESTS, {"target": "SRV01", "mfa_step": step}, format="json").json()["code"] == "mfa_step_invalid"
    bob = api(user("bob", "Ops"))
    assert bob.post(REQUESTS, {"target": "SRV01", "mfa_step": step}, format="json").json()["code"] == "mfa_step_invalid"
    assert client.post(REQUESTS, {"target": "SRV01", "mfa_step": step}, format="json").status_code == 201


def test_an_expired_step_is_refused(world):
    client = api(world["alice"])
    step = step_for(client, world["key"])["mfa_step"]
    ApiMfaStep.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    answer = client.post(REQUESTS, {"target": "SRV01", "mfa_step": step}, format="json")
    assert answer.status_code == 403 and answer.json()["code"] == "mfa_step_invalid"


def test_the_step_lives_for_the_fresh_mfa_window(world):
    client = api(world["alice"])
    step_for(client, world["key"])
    row = ApiMfaStep.objects.get()
    assert row.expires_at - row.verified_at == timedelta(seconds=settings.JITAD_MFA_FRESH_SECONDS)


def test_a_wrong_assertion_gives_no_step_and_is_audited(world):
    """GIVEN options WHEN the assertion is for another origin, or signed by another key, or a challenge is
    answered twice THEN no step is given and each refusal is in the audit trail."""
    client = api(world["alice"])
    options = client.post(OPTIONS, format="json").json()
    wrong = client.post(VERIFY, world["key"].assertion(options, origin="https://evil.example"), format="json")
    assert wrong.status_code == 403 and wrong.json()["code"] == "mfa_step_refused"
    # The challenge was used up by the wrong answer: a right one to the same options finds nothing open.
    replay = client.post(VERIFY, world["key"].assertion(options), format="json")
    assert replay.status_code == 403 and replay.json()["code"] == "mfa_challenge_missing"

    options = client.post(OPTIONS, format="json").json()
    impostor = SoftAuthenticator(user("mallory", "Ops"))
    forged = impostor.assertion(options)
    assert client.post(VERIFY, forged, format="json").json()["code"] == "mfa_step_refused"
    assert not ApiMfaStep.objects.exclude(digest="").exists()
    assert AuditEvent.objects.filter(action="mfa.api_step_refused").count() == 3


def test_a_good_verification_is_audited(world):
    client = api(world["alice"])
    step_for(client, world["key"])
    event = AuditEvent.objects.get(action="mfa.api_step_verified")
    assert event.actor == "alice" and event.object_id == world["key"].device.persistent_id
    assert event.data["kind"] == "webauthn" and event.data["token"] == client.token.prefix


def test_asking_again_replaces_the_unanswered_challenge(world):
    """GIVEN options asked for twice WHEN the first options are signed THEN they are refused (only the newest
    challenge is open), the second are accepted, and one row per caller was kept."""
    client = api(world["alice"])
    first = client.post(OPTIONS, format="json").json()
    second = client.post(OPTIONS, format="json").json()
    assert ApiMfaStep.objects.count() == 1
    assert client.post(VERIFY, world["key"].assertion(first), format="json").json()["code"] == "mfa_step_refused"
    client.post(OPTIONS, format="json")
    third = client.post(OPTIONS, format="json").json()
    assert client.post(VERIFY, world["key"].assertion(third), format="json").status_code == 200
    assert second["challenge"] != third["challenge"]


def test_options_need_a_passkey_and_authentication(world):
    assert APIClient().post(OPTIONS, format="json").status_code in (401, 403)
    nobody = api(user("carol", "Ops"))
    answer = nobody.post(OPTIONS, format="json")
    assert answer.status_code == 403 and answer.json()["code"] == "no_passkey"


def test_a_write_without_otp_or_step_still_needs_one(world):
    answer = api(world["alice"]).post(REQUESTS, {"target": "SRV01"}, format="json")
    assert answer.status_code == 403 and answer.json()["code"] == "otp_required"
    garbage = api(world["alice"]).post(REQUESTS, {"target": "SRV01", "mfa_step": "jitad_mfa_nope"}, format="json")
    assert garbage.json()["code"] == "mfa_step_invalid"


def test_a_malformed_assertion_is_a_4xx(world):
    client = api(world["alice"])
    client.post(OPTIONS, format="json")
    answer = client.post(VERIFY, {"id": "x", "rawId": "x", "type": "public-key", "response": {"x": 1}}, format="json")
    assert 400 <= answer.status_code < 500 and "code" in answer.json()


@pytest.mark.django_db(transaction=True)
def test_two_writes_racing_with_one_step_only_one_passes(world):
    """GIVEN one step WHEN two threads send it at once THEN exactly one write is accepted."""
    client = api(world["alice"])
    step = step_for(client, world["key"])["mfa_step"]
    token = client._credentials["HTTP_AUTHORIZATION"]
    results, barrier = [], threading.Barrier(2)

    def write():
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=token)
        barrier.wait()
        results.append(c.post(REQUESTS, {"target": "SRV01", "mfa_step": step}, format="json").status_code)
        connection.close()

    threads = [threading.Thread(target=write) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results)[0] == 201 and sorted(results)[1] in (403, 409)
