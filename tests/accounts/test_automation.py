"""Automation identities over real HTTP: scoped rights, signed writes, no portal login.

The live server, the session's Samba DC and a real worker; the client signs as docs/mfa.md
says (written here from the doc, not with jitad's own helper), with the private key the
operator's command printed.
"""
import base64
import hashlib
import json
import secrets
import time
import uuid
from io import StringIO
from urllib.parse import urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from prometheus_client import REGISTRY
from django.core.management import call_command
from django.test import RequestFactory
from django.utils import timezone
from rest_framework.request import Request

from jitad import directory
from jitad.accounts.api import ApiTokenAuthentication
from jitad.accounts.enrolment import EnrolmentCodeRefused, enrolment_code_issue
from jitad.accounts.models import ApiToken, AutomationIdentity
from jitad.accounts.services import api_token_create
from jitad.audit.models import AuditEvent
from jitad.elevation.models import AccessRequest, Grant
from tests.elevation.helpers import ad_is_member, ad_user_dn
from tests.support.waiting import wait_for

HISTORY = "/api/v1/access-history?person={}&start=2026-06-01&end=2026-06-03T00:00Z"


def _command(*args) -> dict:
    out = StringIO()
    call_command("jitad_automation", *args, "--by", "ops:kim", "--format", "json", stdout=out)
    return json.loads(out.getvalue())


class Bot:
    """An automation identity's client: its token, and its private key for signing writes."""

    def __init__(self, base: str, token: str, private_pem: str):
        self.base, self.token = base, token
        self.key = serialization.load_pem_private_key(private_pem.encode(), password=None)
        self.prefix = token.split("_")[1]

    def get(self, path: str) -> requests.Response:
        return requests.get(self.base + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def signed(self, method: str, path: str, body: dict, *, nonce: str | None = None, stamp: int | None = None,
               sign_body: bytes | None = None) -> tuple[dict, bytes]:
        data = json.dumps(body).encode()
        stamp = str(stamp if stamp is not None else int(time.time()))
        nonce = nonce or secrets.token_urlsafe(18)
        url = urlsplit(self.base + path)
        full_path = url.path + (f"?{url.query}" if url.query else "")
        message = "\n".join(["jitad-request-v1", method, full_path, stamp, nonce, self.prefix, "application/json",
                             hashlib.sha256(sign_body if sign_body is not None else data).hexdigest()])
        signature = base64.urlsafe_b64encode(self.key.sign(message.encode())).decode().rstrip("=")
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                   "X-Jitad-Timestamp": stamp, "X-Jitad-Nonce": nonce, "X-Jitad-Signature": signature}
        return headers, data

    def post(self, path: str, body: dict, **kwargs) -> requests.Response:
        headers, data = self.signed("POST", path, body, **kwargs)
        return requests.post(self.base + path, data=data, headers=headers, timeout=30)


@pytest.fixture
def service_account(jit_ou):
    """An AD service account in the AD group 'admins' (eligible on make_target's targets)."""
    sam = f"svc{uuid.uuid4().hex[:6]}"
    password = "Pw-" + uuid.uuid4().hex
    with directory.connect() as d:
        dn = d.ensure_user(sam, jit_ou, password=password)
        d.add_member(d.ensure_group("admins", jit_ou), dn)
    return sam, password


def _bot(base, name, *create_args) -> Bot:
    _command("create", name, *create_args)
    private = _command("key", name)["private_key"]
    token = _command("token", name, "--days", "7")["token"]
    return Bot(base, token, private)


@pytest.mark.django_db(transaction=True)
def test_a_pipeline_requests_for_itself_on_its_target_only_with_signed_calls(live, live_server, service_account,
                                                                               make_target, ldap_admin, jit_ou):
    """GIVEN an identity acting as an AD service account, allowed requests.create on one named target
    and requests.read WHEN it asks over HTTP with a signed call THEN the grant goes active in AD under
    its own name, recorded with the signed-request MFA step and audited as the identity; AND the same
    call replayed, an unsigned call, a tampered body, a stale timestamp, another target, and calls
    outside its scopes (approve, reports) are each refused with a 4xx that says why."""
    sam, _password = service_account
    allowed, other = make_target(mode="auto"), make_target(mode="auto")
    bot = _bot(live_server.url, sam, "--ad-account", sam, "--scope", "requests.create", "--scope", "requests.read",
               "--target", allowed.name)

    assert bot.get("/api/v1/requests").status_code == 200
    body = {"target": allowed.name, "duration_minutes": 30, "justification": "deploy 4.2"}
    headers, data = bot.signed("POST", "/api/v1/requests", body)
    created = requests.post(live_server.url + "/api/v1/requests", data=data, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    req = AccessRequest.objects.get(pk=created.json()["id"])
    assert req.requester.username == sam and req.mfa_method == "signed_request" and req.mfa_verified_at
    assert AuditEvent.objects.filter(actor=sam, object_type="request", object_id=str(req.pk)).exists()
    grant = wait_for(lambda: Grant.objects.filter(request=req, state=Grant.State.ACTIVE).first(), timeout=30)
    assert ad_is_member(ldap_admin, grant.group_dn, ad_user_dn(ldap_admin, jit_ou, sam))

    replayed = requests.post(live_server.url + "/api/v1/requests", data=data, headers=headers, timeout=30)
    assert replayed.status_code == 403 and replayed.json()["code"] == "signature_replayed"
    unsigned = requests.post(live_server.url + "/api/v1/requests", json={**body, "otp": "123456"},
                             headers={"Authorization": f"Bearer {bot.token}"}, timeout=30)
    assert unsigned.status_code == 403 and unsigned.json()["code"] == "signature_required"
    tampered = bot.post("/api/v1/requests", {**body, "duration_minutes": 240}, sign_body=data)
    assert tampered.status_code == 403 and tampered.json()["code"] == "signature_invalid"
    stale = bot.post("/api/v1/requests", body, stamp=int(time.time()) - 3600)
    assert stale.status_code == 403 and stale.json()["code"] == "signature_invalid"
    elsewhere = bot.post("/api/v1/requests", {**body, "target": other.name})
    assert elsewhere.status_code == 403 and elsewhere.json()["code"] == "automation_target"
    by_id = bot.post("/api/v1/requests", {**body, "target": allowed.pk})
    assert by_id.status_code == 403 and by_id.json()["code"] == "automation_target"
    approve = bot.post(f"/api/v1/requests/{req.pk}/approve", {"comment": "self"})
    assert approve.status_code == 403 and approve.json()["code"] == "automation_scope"
    assert bot.get(HISTORY.format(sam)).status_code == 403
    for stamp in ("\u00b2", "9" * 5000):  # a digit str.isdigit() takes but int() refuses, and a number too long to read
        headers, data = bot.signed("POST", "/api/v1/requests", body)
        odd = requests.post(live_server.url + "/api/v1/requests", data=data, timeout=30,
                            headers={**headers, "X-Jitad-Timestamp": stamp})
        assert odd.status_code == 403 and odd.json()["code"] == "signature_invalid", odd.text[:300]
    assert AccessRequest.objects.filter(requester__username=sam).count() == 1

    # Its rights narrowed to the other target (extensions allowed): the grant it still holds is no longer its to extend.
    _command("rights", sam, "--scope", "requests.extend", "--scope", "requests.read", "--target", other.name)
    extend = bot.post(f"/api/v1/requests/{req.pk}/extend", {"duration_minutes": 30, "justification": "more"})
    assert extend.status_code == 403 and extend.json()["code"] == "automation_target", extend.text[:300]
    assert not AccessRequest.objects.filter(kind=AccessRequest.Kind.EXTENSION, requester__username=sam).exists()


@pytest.mark.django_db(transaction=True)
def test_an_identity_never_logs_in_to_the_portal_nor_gets_a_persons_things(live, live_server, service_account):
    """GIVEN identities, one acting as an AD service account WHEN someone logs in to the portal with
    that account's AD password THEN it is refused; neither gets a personal token nor an enrolment code."""
    sam, password = service_account
    _command("create", sam, "--ad-account", sam, "--scope", "requests.read")
    session = requests.Session()
    page = session.get(live_server.url + "/account/login/", timeout=30)
    refused = session.post(live_server.url + "/account/login/", timeout=30, allow_redirects=False,
                           data={"username": sam, "password": password,
                                 "csrfmiddlewaretoken": session.cookies.get("csrftoken")},
                           headers={"Referer": page.url})
    assert refused.status_code == 401 and "automation identity" in refused.text
    identity = AutomationIdentity.objects.get(user__username=sam)
    with pytest.raises(ValueError):
        api_token_create(user=identity.user, name="personal")
    with pytest.raises(EnrolmentCodeRefused):
        enrolment_code_issue(user=identity.user, actor="desk:sam")
    local = AutomationIdentity.objects.get(user__username=_command("create", f"rep{uuid.uuid4().hex[:5]}",
                                                                   "--scope", "reports.read")["name"])
    assert not local.user.has_usable_password()


@pytest.mark.django_db(transaction=True)
def test_a_report_reader_reads_reports_only_and_stops_when_disabled(live, live_server):
    name = f"exporter-{uuid.uuid4().hex[:5]}"
    bot = _bot(live_server.url, name, "--scope", "reports.read")
    read = bot.get(HISTORY.format(name))
    assert read.status_code == 200, read.text
    assert bot.get("/api/v1/requests").json()["code"] == "automation_scope"
    assert bot.post("/api/v1/requests", {"target": "x"}).json()["code"] == "automation_scope"
    _command("rights", name, "--scope", "eligibility.read")
    assert bot.get(HISTORY.format(name)).status_code == 403  # the scope and its permission went together
    _command("disable", name, "--reason", "retired")
    assert bot.get("/api/v1/eligibility").status_code == 401
    assert AuditEvent.objects.filter(action="automation.disabled", actor="ops:kim").exists()


@pytest.mark.django_db
def test_a_persons_token_costs_one_query(make_user, django_assert_num_queries):
    """The automation check adds nothing to a person's call: the token's row (with its user) is the only
    read once its last use is recent."""
    person = make_user("tok")
    token, raw = api_token_create(user=person, name="script")
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    request = Request(RequestFactory().get("/api/v1/requests", HTTP_AUTHORIZATION=f"Bearer {raw}"))
    with django_assert_num_queries(1):
        user, _ = ApiTokenAuthentication().authenticate(request)
    assert user == person


# --- On the database alone, through Django's test client (every middleware and DRF, no socket) -------------------

REQUESTS = "/api/v1/requests"


def _identity(name: str, *create_args):
    """A new identity (made with the operator's command): (its token, its private key)."""
    _command("create", name, *create_args)
    private = _command("key", name)["private_key"]
    token = _command("token", name, "--days", "7")["token"]
    return token, serialization.load_pem_private_key(private.encode(), password=None)


def _signed(key, token: str, path: str, content_type: str, body: bytes, *, stamp=None, nonce=None) -> dict:
    """The headers of a POST signed as docs/mfa.md says, for Django's test client."""
    stamp = str(stamp if stamp is not None else int(time.time()))
    nonce = nonce or secrets.token_urlsafe(18)
    message = "\n".join(["jitad-request-v1", "POST", path, stamp, nonce, token.split("_")[1],
                         content_type.strip().lower(), hashlib.sha256(body).hexdigest()])
    signature = base64.urlsafe_b64encode(key.sign(message.encode())).decode().rstrip("=")
    return {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_X_JITAD_TIMESTAMP": stamp, "HTTP_X_JITAD_NONCE": nonce,
            "HTTP_X_JITAD_SIGNATURE": signature}


def _post(client, body: bytes, content_type: str, headers: dict, path: str = REQUESTS):
    return client.generic("POST", path, body, content_type=content_type, **headers)


@pytest.mark.django_db
def test_the_signature_covers_the_content_type(client):
    """GIVEN an identity allowed to request SRV01 WHEN it signs a JSON body and a form body, each under its own
    Content-Type (written in any case, with spaces) THEN both pass the signature and reach the view (no such target
    here); WHEN signed bytes are sent under another Content-Type than the one signed (so that they would be parsed
    another way: as a form, as JSON, or with a charset added) THEN signature_invalid, before any parser runs."""
    token, key = _identity("ct-bot", "--scope", "requests.create", "--target", "SRV01")
    as_json, as_form = json.dumps({"target": "SRV01"}).encode(), b"target=SRV01"
    json_type, form_type = "application/json", "application/x-www-form-urlencoded"
    for body, signed, sent in ((as_json, json_type, json_type), (as_form, form_type, form_type),
                               (as_json, json_type, " Application/JSON ")):
        passed = _post(client, body, sent, _signed(key, token, REQUESTS, signed, body))
        assert passed.status_code == 400 and passed.json()["code"] == "target_unknown", passed.content[:300]
    for body, signed, sent in ((as_json, json_type, form_type), (as_form, form_type, json_type),
                               (as_json, json_type, "application/json; charset=latin-1"), (as_json, json_type, "")):
        swapped = _post(client, body, sent, _signed(key, token, REQUESTS, signed, body))
        assert swapped.status_code == 403 and swapped.json()["code"] == "signature_invalid", (sent, swapped.content[:300])


def _failures(reason: str) -> float:
    return REGISTRY.get_sample_value("jitad_mfa_failures_total", {"device": "signature", "reason": reason}) or 0.0


@pytest.mark.django_db(transaction=True)
def test_each_refused_signature_is_counted_audited_and_a_replay_alerted_once(client):
    """GIVEN an identity allowed to request SRV01 WHEN its writes are refused (no signature headers, a stale
    timestamp, a malformed nonce, a signature that does not match, a replayed call, and from an identity with no key)
    THEN each is counted in jitad_mfa_failures (device signature, the reason) and audited as
    automation.signature_refused under the identity's name, committed although the request failed (no test
    transaction here to hide a rollback), once per token and reason in ten minutes (so a loop of refused calls
    does not write a row each); a replay also opens one critical alert for that token, and replaying it again
    only counts on that alert; revoking the identity's other token or replacing its key does not answer it;
    WHEN the operator revokes the replayed token THEN the alert is resolved, that token is refused and the
    identity's other token still works."""
    from jitad.notifications.models import AlertCondition, Notification

    token, key = _identity("refused-bot", "--scope", "requests.create", "--target", "SRV01")
    other_token = _command("token", "refused-bot", "--days", "7")["token"]
    body, ctype = json.dumps({"target": "SRV01"}).encode(), "application/json"
    before = {r: _failures(r) for r in ("signature_required", "timestamp_invalid", "nonce_invalid", "signature_invalid",
                                        "signature_replayed", "no_key")}

    assert _post(client, body, ctype, {"HTTP_AUTHORIZATION": f"Bearer {token}"}).json()["code"] == "signature_required"
    stale = _post(client, body, ctype, _signed(key, token, REQUESTS, ctype, body, stamp=int(time.time()) - 3600))
    assert stale.json()["code"] == "signature_invalid"
    odd_nonce = _post(client, body, ctype, _signed(key, token, REQUESTS, ctype, body, nonce="short"))
    assert odd_nonce.json()["code"] == "signature_invalid"
    tampered = _post(client, json.dumps({"target": "SRV02"}).encode(), ctype, _signed(key, token, REQUESTS, ctype, body))
    assert tampered.json()["code"] == "signature_invalid"
    captured = _signed(key, token, REQUESTS, ctype, body)
    assert _post(client, body, ctype, captured).json()["code"] == "target_unknown"  # the real call, signature good
    for _ in range(3):
        replayed = _post(client, body, ctype, captured)
        assert replayed.status_code == 403 and replayed.json()["code"] == "signature_replayed"
    keyless = _command("token", _command("create", "keyless-bot", "--scope", "requests.create", "--target",
                                         "SRV01")["name"], "--days", "7")["token"]
    assert _post(client, body, ctype, _signed(key, keyless, REQUESTS, ctype, body)).json()["code"] == "signature_invalid"

    for reason, n in (("signature_required", 1), ("timestamp_invalid", 1), ("nonce_invalid", 1),
                      ("signature_invalid", 1), ("signature_replayed", 3), ("no_key", 1)):
        assert _failures(reason) == before[reason] + n, reason
    refused = AuditEvent.objects.filter(action="automation.signature_refused")
    assert sorted(refused.filter(actor="refused-bot").values_list("reason", flat=True)) == sorted(
        ["signature_required", "timestamp_invalid", "nonce_invalid", "signature_invalid", "signature_replayed"])
    assert refused.filter(actor="keyless-bot", reason="no_key").count() == 1
    replay = refused.filter(reason="signature_replayed").first()
    assert replay.object_type == "api_token" and replay.object_id == str(ApiToken.objects.get(prefix=token.split("_")[1]).pk)
    assert replay.data["nonce"] == captured["HTTP_X_JITAD_NONCE"] and replay.data["path"] == REQUESTS
    assert "nonce" not in refused.get(reason="signature_invalid", actor="refused-bot").data
    condition = AlertCondition.objects.get(key=f"automation.signature_replayed:refused-bot:{token.split('_')[1]}")
    assert condition.resolved_at is None and condition.occurrences == 3 and condition.severity == "critical"
    assert Notification.objects.filter(event="automation.signature_replayed").count() == 1

    # Neither stops the copied token: the alert stays open.
    spare = _command("token", "refused-bot", "--days", "7")["token"]
    _command("token-revoke", "refused-bot", spare.split("_")[1])
    key = serialization.load_pem_private_key(_command("key", "refused-bot")["private_key"].encode(), password=None)
    condition.refresh_from_db()
    assert condition.resolved_at is None

    revoked = _command("token-revoke", "refused-bot", token.split("_")[1], "--reason", "replayed")
    assert revoked["revoked"] is True
    condition.refresh_from_db()
    assert condition.resolved_at is not None
    assert _post(client, body, ctype, _signed(key, token, REQUESTS, ctype, body)).status_code == 401
    assert _post(client, body, ctype, _signed(key, other_token, REQUESTS, ctype, body)).json()["code"] == "target_unknown"


@pytest.mark.django_db
def test_tokens_are_listed_and_revoked_one_at_a_time(client):
    """GIVEN an identity with two tokens WHEN the operator lists them THEN each shows its prefix, name, dates and
    state (never the token); WHEN one is revoked by its prefix THEN that one is refused, audited with the operator as
    actor, the other still works; revoking it again changes nothing; an unknown identity or prefix is bad usage
    (exit 2); with --format json each answer is one object."""
    from jitad.commands import ExitCode
    from tests.operations.test_commands import run

    first, _key = _identity("two-tokens", "--scope", "eligibility.read")
    second = _command("token", "two-tokens", "--days", "30", "--token-name", "nightly")["token"]
    first_prefix, second_prefix = first.split("_")[1], second.split("_")[1]
    assert client.get("/api/v1/eligibility", HTTP_AUTHORIZATION=f"Bearer {first}").status_code == 200

    code, listed = run("jitad_automation", "tokens", "two-tokens")
    assert code == ExitCode.OK and listed["name"] == "two-tokens"
    rows = {row["prefix"]: row for row in listed["tokens"]}
    assert set(rows) == {first_prefix, second_prefix}
    assert rows[second_prefix]["name"] == "nightly" and rows[first_prefix]["state"] == "live"
    assert rows[first_prefix]["last_used_at"] and rows[second_prefix]["last_used_at"] is None
    assert all(set(row) == {"prefix", "name", "state", "created_at", "expires_at", "last_used_at", "revoked_at"}
               for row in rows.values())
    assert first not in json.dumps(listed) and second not in json.dumps(listed)
    text = StringIO()
    call_command("jitad_automation", "tokens", "two-tokens", stdout=text)
    assert first_prefix in text.getvalue() and "nightly" in text.getvalue()

    code, done = run("jitad_automation", "token-revoke", "two-tokens", first_prefix, "--by", "ops:kim", "--reason", "leaked")
    assert code == ExitCode.OK and done["revoked"] is True and done["prefix"] == first_prefix
    event = AuditEvent.objects.get(action="api_token.revoked", object_id=str(ApiToken.objects.get(prefix=first_prefix).pk))
    assert event.actor == "ops:kim" and event.reason == "leaked"
    assert client.get("/api/v1/eligibility", HTTP_AUTHORIZATION=f"Bearer {first}").status_code == 401
    assert client.get("/api/v1/eligibility", HTTP_AUTHORIZATION=f"Bearer {second}").status_code == 200
    code, again = run("jitad_automation", "token-revoke", "two-tokens", first_prefix)
    assert code == ExitCode.OK and again["revoked"] is False
    assert AuditEvent.objects.filter(action="api_token.revoked").count() == 1
    code, listed = run("jitad_automation", "tokens", "two-tokens")
    assert {r["prefix"]: r["state"] for r in listed["tokens"]} == {first_prefix: "revoked", second_prefix: "live"}

    code, doc = run("jitad_automation", "token-revoke", "two-tokens", "00000000")
    assert code == ExitCode.USAGE and "no token" in doc["error"]
    _identity("another-bot", "--scope", "eligibility.read")
    code, doc = run("jitad_automation", "token-revoke", "another-bot", second_prefix)  # not its token
    assert code == ExitCode.USAGE
    assert client.get("/api/v1/eligibility", HTTP_AUTHORIZATION=f"Bearer {second}").status_code == 200
    for args in (("tokens", "nobody-here"), ("token-revoke", "nobody-here", second_prefix)):
        code, doc = run("jitad_automation", *args)
        assert code == ExitCode.USAGE and "no automation identity" in doc["error"]


@pytest.mark.django_db
def test_an_identity_in_an_approver_group_sees_only_its_own_requests(client):
    """GIVEN an identity whose user is in the approver group (Leads) of a policy, and a person's pending request
    under it WHEN the identity lists requests, reads that request or (signed) cancels it THEN it sees only its own
    request, and the person's is 404 and stays pending; a person in Leads still sees both (the rule is the
    identity's, not the group's)."""
    from jitad.elevation import services as elevation
    from jitad.elevation.models import AccessRequest
    from tests.elevation.builders import policy, target, user

    srv = target("SRV01")
    policy(srv)  # Ops may request, one approval from Leads
    token, key = _identity("lead-bot", "--scope", "requests.read", "--scope", "requests.end")
    bot = AutomationIdentity.objects.get(user__username="lead-bot").user
    lead = user("lead", "Leads", "Ops")
    bot.groups.add(*lead.groups.all())
    alice = user("alice", "Ops")
    theirs = elevation.request_create(requester=alice, target=srv)
    mine = elevation.request_create(requester=bot, target=srv)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    listed = client.get(REQUESTS, **auth).json()
    assert [r["id"] for r in listed["results"]] == [mine.pk]
    assert client.get(f"{REQUESTS}?state=pending", **auth).json()["count"] == 1
    assert client.get(f"{REQUESTS}/{mine.pk}", **auth).status_code == 200
    assert client.get(f"{REQUESTS}/{theirs.pk}", **auth).json()["code"] == "not_found"
    path = f"{REQUESTS}/{theirs.pk}/cancel"
    cancel = _post(client, b"{}", "application/json", _signed(key, token, path, "application/json", b"{}"), path=path)
    assert cancel.status_code == 404 and cancel.json()["code"] == "not_found"
    theirs.refresh_from_db()
    assert theirs.state == AccessRequest.State.PENDING

    _person_token, raw = api_token_create(user=lead, name="script")
    assert {r["id"] for r in client.get(REQUESTS, HTTP_AUTHORIZATION=f"Bearer {raw}").json()["results"]} == {
        mine.pk, theirs.pk}


def test_the_signed_content_type_is_the_one_the_body_is_parsed_as():
    """Without a Content-Type, DRF parses the body by a Content_Type header (HTTP_CONTENT_TYPE): the signature
    covers that same value, so no unsigned header chooses the parser."""
    from django.test import RequestFactory
    from rest_framework.request import Request

    from jitad.accounts.automation_api import _content_type

    request = RequestFactory().generic("POST", REQUESTS, b"target=SRV01")
    request.META.pop("CONTENT_TYPE", None)
    request.META["HTTP_CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    assert _content_type(request) == Request(request).content_type == "application/x-www-form-urlencoded"
