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
        message = "\n".join(["jitad-request-v1", method, full_path, stamp, nonce, self.prefix,
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
