"""Every URL in the URLconf is behind login + verified MFA, and every state change behind *fresh* MFA.

The test walks the whole URLconf, so a view added tomorrow is checked without anyone
remembering to add it here. The exemptions are pinned: widening them means editing this
file, in review.
"""
import functools
import re
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern

from jitad.accounts.devices import AuthenticatorDevice
from jitad.accounts import middleware
from jitad.audit.models import AuditEvent
from tests.support.mfa import stale_age, verify_session

pytestmark = pytest.mark.django_db

# /readyz and /metrics answer without a login: they limit what they show by the caller's network (and a
# token for /metrics) instead (jitad/health/views.py).
EXPECTED_PUBLIC = {"accounts:login", "accounts:logout", "health", "ready", "metrics", "admin:login", "admin:logout"}
EXPECTED_UNVERIFIED_OK = {
    "accounts:mfa-verify", "accounts:mfa-enrol", "accounts:mfa-enrol-code",
    "otp_webauthn:credential-authentication-begin", "otp_webauthn:credential-authentication-complete",
    "otp_webauthn:js-i18n-catalog",
}
EXPECTED_FRESHNESS_EXEMPT = {
    "accounts:logout", "accounts:mfa-verify", "admin:logout",
    "otp_webauthn:credential-authentication-begin", "otp_webauthn:credential-authentication-complete",
}
API_CATCH_ALL = "not-found"
PASSWORD = "A-long-passphrase-9"
_SAMPLE = {"int": "1", "str": "x", "slug": "x", "path": "x", "uuid": str(uuid.UUID(int=1))}


def _route_sample(route: str) -> str:
    return re.sub(r"<(?:(\w+):)?\w+>", lambda m: _SAMPLE.get(m.group(1) or "str", "x"), route)


def _regex_sample(regex: str) -> str:
    out, i = [], 0
    regex = regex.lstrip("^").rstrip("$").replace(r"\Z", "")
    regex = re.sub(r"\(\?:[^()]*\)\?", "", regex).replace("/?", "")  # optional parts: leave them out
    while i < len(regex):
        if regex.startswith("(?P<", i):
            depth, j = 0, i
            while True:  # find the matching ")"
                if regex[j] == "(" and regex[j - 1 : j] != "\\":
                    depth += 1
                elif regex[j] == ")" and regex[j - 1 : j] != "\\":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            body = regex[regex.index(">", i) + 1 : j]
            first = body.split("|")[0]
            out.append(first if re.fullmatch(r"[\w-]+", first) else "1")
            i = j + 1
        elif regex[i] == "\\" and i + 1 < len(regex):
            out.append(regex[i + 1])
            i += 2
        else:
            out.append(regex[i])
            i += 1
    return "".join(out)


def _walk(resolver, prefix="", namespace=""):
    for p in resolver.url_patterns:
        sample = _route_sample(str(p.pattern)) if isinstance(p.pattern, RoutePattern) else _regex_sample(p.pattern.regex.pattern)
        if isinstance(p, URLResolver):
            ns = ":".join(x for x in (namespace, p.namespace) if x)
            yield from _walk(p, prefix + sample, ns)
        elif isinstance(p, URLPattern):
            name = ":".join(x for x in (namespace, p.name) if x) if p.name else f"<unnamed {prefix + sample}>"
            yield name, "/" + prefix + sample


def _urls():
    seen, urls = set(), []
    for name, url in _walk(get_resolver()):
        if name in seen:
            continue
        seen.add(name)
        urls.append((name, url))
    return urls


URLS = _urls()


def test_exemptions_are_exactly_the_reviewed_ones():
    assert middleware.PUBLIC == EXPECTED_PUBLIC
    assert middleware.UNVERIFIED_OK == EXPECTED_UNVERIFIED_OK
    assert middleware.FRESHNESS_EXEMPT == EXPECTED_FRESHNESS_EXEMPT


def test_every_sample_url_resolves_to_its_own_view():
    """Guards the walker itself: a sample that resolves elsewhere would test the wrong view."""
    wrong = []
    for name, url in URLS:
        if name.startswith("<unnamed"):
            continue
        match = resolve(url.split("?")[0])
        if match.view_name != name:
            wrong.append((name, url, match.view_name))
    assert not wrong, wrong
    assert len(URLS) > 30  # admin + portal + API; a broken walker finds almost nothing


def _is_api(url: str) -> bool:
    return url.startswith("/api/")


def _refused(response, url: str, *, to: str) -> bool:
    if _is_api(url):
        # The API answers for itself: 401/403 (JSON), never the resource. Unknown API
        # paths are a JSON 404 for everyone, which reveals nothing.
        if response.status_code == 404 and _catch_all(url):
            return True
        return response.status_code in (401, 403) and b'"paths"' not in response.content and b"paths:" not in response.content
    return response.status_code == 302 and response.url.startswith(to)


def _catch_all(url: str) -> bool:
    return resolve(url).url_name == API_CATCH_ALL


@functools.cache
def _password_hash() -> str:
    """PASSWORD's hash, made once for the file: each PBKDF2 hash costs a quarter of a second, and hundreds of tests
    here each make a user (who logs in with ``force_login``; the password is never checked)."""
    from django.contrib.auth.hashers import make_password

    return make_password(PASSWORD)


def _user(django_user_model, prefix: str, *, superuser: bool = False):
    """A user (a superuser if told) whose password is PASSWORD."""
    make = django_user_model.objects.create_superuser if superuser else django_user_model.objects.create_user
    user = make(f"{prefix}{uuid.uuid4().hex[:6]}")
    user.password = _password_hash()
    user.save(update_fields=["password"])
    return user


def _urls_except(*exempt) -> list:
    """The walked URLs whose name is in none of the ``exempt`` sets: left out of a test, not passed vacuously."""
    return [pytest.param(n, u, id=n) for n, u in URLS if not any(n in names for names in exempt)]


@pytest.mark.parametrize("name,url", _urls_except(middleware.PUBLIC))
def test_anonymous_is_refused(client, name, url):
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        assert _refused(response, url, to="/account/login/"), (method, response.status_code, response.get("Location"))


@pytest.mark.parametrize("name,url", _urls_except(middleware.PUBLIC, middleware.UNVERIFIED_OK))
def test_password_only_session_is_refused(client, django_user_model, name, url):
    """GIVEN a session that passed the password step but not MFA THEN nothing but the MFA pages opens."""
    user = _user(django_user_model, "half")
    AuthenticatorDevice.objects.create(user=user, name="phone", confirmed=True)
    client.force_login(user)
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        assert _refused(response, url, to="/account/mfa/verify/"), (method, response.status_code, response.get("Location"))


@pytest.mark.parametrize("name,url", _urls_except(middleware.PUBLIC, middleware.FRESHNESS_EXEMPT))
def test_stale_mfa_cannot_change_anything(client, django_user_model, name, url):
    """GIVEN a session verified longer ago than the fresh-MFA window WHEN it POSTs anywhere
    THEN it is asked to verify again (403) and no audit event (no state change) is written."""
    user = _user(django_user_model, "stale", superuser=True)
    verify_session(client, user, age_seconds=stale_age())
    before = AuditEvent.objects.exclude(object_type="alert").count()
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)(url, data={"comment": "x", "reason": "x", "name": "x"},
                                           content_type="application/x-www-form-urlencoded" if method != "post" else None) \
            if method != "post" else client.post(url, data={"comment": "x", "reason": "x", "name": "x", "duration_minutes": "5"})
        if _is_api(url):
            # 415: the API does not even parse a form post; 404: the JSON catch-all.
            assert response.status_code in (401, 403, 405, 415) or _catch_all(url), (method, response.status_code)
        else:
            assert response.status_code == 403 and b"Confirm it" in response.content, (method, response.status_code)
    assert AuditEvent.objects.exclude(object_type="alert").count() == before


@pytest.mark.parametrize("name,url", [(n, u) for n, u in URLS if _is_api(u)], ids=[n for n, u in URLS if _is_api(u)])
def test_api_writes_need_an_otp_even_from_a_fresh_session(client, django_user_model, name, url):
    user = _user(django_user_model, "api")
    verify_session(client, user)
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)(url, data={}, content_type="application/json")
        if _catch_all(url):
            assert response.status_code == 404
            continue
        if name.startswith("mfa_api:"):  # the passkey step's own calls: how a person without a code gets one
            assert response.status_code in (400, 403, 405), (method, response.status_code)
            continue
        assert response.status_code in (403, 405), (method, response.status_code)
        if response.status_code == 403:
            assert response.json()["code"] == "otp_required"
