"""The Content-Security-Policy on every kind of response: portal, admin, API, login, break-glass.

The HTML of each page is parsed: every inline script must carry the nonce the same
response's header names, and that nonce must change from one response to the next. A
script with no nonce (or another one) is what the browser would refuse to run.
"""
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from jitad.accounts.services import api_token_create
from jitad.breakglass import services as breakglass
from tests.breakglass.test_views import PASSWORD, account, approvers, responder  # noqa: F401 - fixtures
from tests.elevation.builders import policy, target, user
from tests.support.mfa import backup_codes, stale_age, verify_session

pytestmark = pytest.mark.usefixtures("db")

REQUIRED = {
    "default-src": {"'self'"},
    "object-src": {"'none'"},
    "base-uri": {"'self'"},
    "frame-ancestors": {"'none'"},
    "form-action": {"'self'"},
}
# <script type> values a browser runs as code; anything else (application/json) is a data block.
SCRIPT_TYPES = {"", "text/javascript", "application/javascript", "module"}


def policy_of(response) -> dict[str, list[str]]:
    header = response.get("Content-Security-Policy")
    assert header, f"{response.status_code} {response.get('Content-Type')}: no Content-Security-Policy"
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


def nonce_of(directives: dict) -> str | None:
    found = [w[len("'nonce-"):-1] for w in directives["script-src"] if w.startswith("'nonce-")]
    assert len(found) <= 1, directives["script-src"]
    return found[0] if found else None


class Scripts(HTMLParser):
    """The page's <script> elements: (attributes, inline text)."""

    def __init__(self):
        super().__init__()
        self.found: list[tuple[dict, str]] = []
        self._open: dict | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._open, self._text = {k: v or "" for k, v in attrs}, []

    def handle_data(self, data):
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._open is not None:
            self.found.append((self._open, "".join(self._text)))
            self._open = None


class Handlers(HTMLParser):
    """Inline event handlers (onclick=...) and javascript: links: no nonce can let them run."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, val in attrs:
            if name.startswith("on") or (name in ("href", "src", "action", "formaction")
                                         and (val or "").strip().lower().startswith("javascript:")):
                self.found.append(f"<{tag} {name}={val!r}>")


def inline_scripts(response) -> list[dict]:
    """The attributes of every inline script the browser would run."""
    parser = Scripts()
    parser.feed(response.content.decode())
    return [attrs for attrs, text in parser.found
            if "src" not in attrs and attrs.get("type", "").lower() in SCRIPT_TYPES and text.strip()]


def check(response, *, inline: bool | None = None) -> str | None:
    """Assert the policy is whole and the page's inline scripts run only by nonce; returns the nonce.

    ``inline``: True if the page must have inline scripts, False if it must have none.
    """
    directives = policy_of(response)
    for name, values in REQUIRED.items():
        assert set(directives.get(name, ())) == values, (name, directives.get(name))
    assert "'unsafe-inline'" not in directives["script-src"] and "'unsafe-eval'" not in directives["script-src"]
    assert "'self'" in directives["script-src"]
    nonce = nonce_of(directives)
    if response.get("Content-Type", "").startswith("text/html"):
        scripts = inline_scripts(response)
        if inline is not None:
            assert bool(scripts) is inline, scripts
        for attrs in scripts:
            assert nonce and attrs.get("nonce") == nonce, f"an inline script without the response's nonce: {attrs}"
        handlers = Handlers()
        handlers.feed(response.content.decode())
        assert handlers.found == [], f"inline handlers the policy blocks: {handlers.found}"
    return nonce


def fresh_nonces(client, path: str, **extra) -> None:
    """Two responses for the same page: each has a nonce, its scripts carry it, and they differ."""
    first = client.get(path, **extra)
    second = client.get(path, **extra)
    assert first.status_code == second.status_code == 200, (path, first.status_code)
    a, b = check(first, inline=True), check(second, inline=True)
    assert a and b and a != b, (a, b)
    assert len(a) >= 16


@pytest.fixture
def alice(verified_client):
    """A requester with a verified session, eligible for SRV01 (so the pages have rows)."""
    u = user("alice", "Ops")
    policy(target("SRV01"))
    return u, verified_client(u)


def test_portal_pages_with_inline_scripts_carry_a_fresh_nonce(alice):
    _user, client = alice
    for path in (reverse("elevation:eligible"), reverse("elevation:access"), reverse("accounts:security")):
        fresh_nonces(client, path)


def test_portal_and_break_glass_pages_have_the_policy(alice):
    _user, client = alice
    paths = [reverse("elevation:request-new") + f"?target={target('SRV02').pk}", reverse("breakglass:dashboard"),
             reverse("breakglass:runbooks"), reverse("breakglass:runbook", args=["dc-outage"]),
             reverse("accounts:backup-codes"), reverse("api-docs")]
    for path in paths:
        response = client.get(path)
        assert response.status_code in (200, 404), (path, response.status_code)
        check(response)
    # The API docs page runs Swagger UI from files only, its start-up script included.
    docs = client.get(reverse("api-docs"))
    check(docs, inline=False)
    script = client.get(reverse("api-docs"), {"script": ""})
    assert script.status_code == 200
    check(script)


def test_the_security_page_with_a_stale_session_has_no_inline_script(verified_client):
    """Without fresh MFA the passkey scripts are not on the page; the policy is still there."""
    client = verified_client(user("bob"), age_seconds=stale_age())
    check(client.get(reverse("accounts:security")), inline=False)


def test_login_and_anonymous_answers_have_the_policy(client):
    check(client.get(reverse("accounts:login")))
    redirect = client.get(reverse("elevation:access"))
    assert redirect.status_code == 302
    check(redirect)
    check(client.get("/healthz"))
    check(client.get(reverse("admin:login")))


def test_admin_pages_have_the_policy(verified_client):
    boss = User.objects.create_superuser("boss", "boss@example.org", None)
    client = verified_client(boss)
    t = target("SRV03")
    policy(t, name="p3")
    for path in (reverse("admin:index"), reverse("admin:elevation_accessrequest_changelist"),
                 reverse("admin:elevation_target_change", args=[t.pk]), reverse("admin:elevation_target_add")):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        check(response)


def test_api_answers_have_the_policy(alice):
    u, client = alice
    _token, raw = api_token_create(user=u, name="csp")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    from django.test import Client

    api = Client()
    for path in ("/api/v1/eligibility", "/api/v1/requests", "/api/v1/nothing-here", "/api/schema/"):
        check(api.get(path, **bearer))
    check(api.get("/api/v1/requests"))  # 401
    # The browsable API is HTML: whatever scripts it has are files or data blocks.
    check(client.get("/api/v1/requests", HTTP_ACCEPT="text/html"), inline=False)
    # Refusals made by middleware before any view (oversized body, NUL byte) carry it too.
    too_large = api.post("/api/v1/requests", b"{" + b" " * (2 * 1024 * 1024) + b"}", content_type="application/json",
                         **bearer)
    assert too_large.status_code == 413
    check(too_large)
    nul = client.get(reverse("elevation:eligible"), {"q": "a\x00b"})
    assert nul.status_code == 400
    check(nul)


def test_not_found_page_has_the_policy(alice):
    _user, client = alice
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    check(response)


def test_the_envelope_sheet_prints_by_a_nonce_script(client, account, responder, approvers):
    """The break-glass envelope sheet (shown once): its Print button is wired by a script with the
    response's nonce, not by an onclick attribute the policy would block."""
    envelope = breakglass.envelope_request(account=account, requester=responder, incident_ref="CHG-9",
                                           reason="an envelope for the DR safe")
    for a in approvers:
        breakglass.checkout_approve(checkout=envelope, approver=a)
    codes = backup_codes(responder, 1)
    verify_session(client, responder)
    check(client.get(reverse("breakglass:checkout", args=[envelope.pk])))
    sheet = client.post(reverse("breakglass:envelope-print", args=[envelope.pk]), {"otp": codes[0]})
    assert sheet.status_code == 200 and PASSWORD in sheet.content.decode()
    assert check(sheet, inline=True)
    assert 'id="print-sheet"' in sheet.content.decode()
