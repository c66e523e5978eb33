"""JSON bodies outside the REST API (the passkey ceremonies) meet the same limits as the API's.

The passkey views parse JSON with Python's recursive json module; a hostile body must be
answered 4xx in the API's error shape before it reaches them.
"""
import pytest
from django.conf import settings
from django.urls import reverse

from tests.support.mfa import verify_session

pytestmark = pytest.mark.django_db

DEEP = ("[" * 50_000 + "]" * 50_000).encode()


@pytest.fixture
def session(client, django_user_model):
    verify_session(client, django_user_model.objects.create_user("pk-person", password="unused-Pw-1"))
    return client


@pytest.mark.parametrize("name", ["otp_webauthn:credential-registration-complete",
                                  "otp_webauthn:credential-authentication-complete"])
def test_deep_json_to_a_passkey_ceremony_is_400_json(session, name):
    """GIVEN a verified session WHEN 50,000 nested arrays are posted to a passkey ceremony
    THEN 400 {code: too_deep} rather than a RecursionError's 500."""
    response = session.generic("POST", reverse(name), DEEP, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "too_deep"
    assert str(settings.JITAD_JSON_MAX_DEPTH) in response.json()["detail"]


def test_too_big_json_to_a_passkey_ceremony_is_413_json(session):
    body = b'{"id": "' + b"x" * (settings.JITAD_MAX_BODY_BYTES + 1) + b'"}'
    response = session.generic("POST", reverse("otp_webauthn:credential-authentication-complete"), body,
                               content_type="application/json; charset=utf-8")
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


def test_a_normal_passkey_body_still_reaches_the_view(session):
    """An ordinary (here: malformed credential) body passes the limits and gets the library's own answer."""
    response = session.generic("POST", reverse("otp_webauthn:credential-authentication-complete"),
                               b'{"id": "abc", "response": {"clientDataJSON": "[[[{}]]]"}}', content_type="application/json")
    assert response.status_code not in (413, 500)
    assert response.json().get("code") != "too_deep"


def test_a_portal_form_over_the_body_limit_is_a_400_not_a_500(session):
    body = b"justification=" + b"x" * (settings.JITAD_MAX_BODY_BYTES + 1)
    response = session.generic("POST", reverse("accounts:mfa-verify"), body,
                               content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
