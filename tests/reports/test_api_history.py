"""GET /api/v1/access-history: token auth, the view_reports permission, clear 400s, pagination, the fields."""
import pytest
from rest_framework.test import APIClient

from jitad.accounts.services import api_token_create

from .history_builders import at, grant, policy, reporter, target, user

pytestmark = pytest.mark.usefixtures("db")
URL = "/api/v1/access-history"


def caller(u) -> APIClient:
    _token, raw = api_token_create(user=u, name="tests")
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return c


@pytest.fixture
def srv():
    t = target("SRV01")
    policy(t)
    return t


def test_needs_a_token_and_the_permission(srv):
    assert APIClient().get(URL, {"target": "SRV01", "at": "2026-06-01T10:00Z"}).status_code == 401
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer jitad_nope_nope")
    r = bad.get(URL, {"target": "SRV01", "at": "2026-06-01T10:00Z"})
    assert r.status_code == 401 and r.json()["code"] == "authentication_failed"
    r = caller(user("alice")).get(URL, {"target": "SRV01", "at": "2026-06-01T10:00Z"})
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"


def test_a_moment_on_a_target_with_the_grants_evidence(srv):
    alice, bob = user("alice"), user("bob")
    g = grant(srv, alice, start=at(0), end=at(2), approvers=[bob], justification="disk full", ticket="INC-42")
    r = caller(reporter()).get(URL, {"target": "srv01", "at": "2026-06-01T11:00Z"})
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["count"] == 1
    row = body["results"][0]
    assert (row["source"], row["target"], row["principal"], row["ongoing"]) == ("grant", "SRV01", "alice", False)
    assert row["start"].startswith("2026-06-01T10:00:00") and row["end"].startswith("2026-06-01T12:00:00")
    e = row["evidence"]
    assert (e["grant_id"], e["request_id"], e["justification"], e["ticket"]) == (g.pk, g.request_id, "disk full", "INC-42")
    assert [(a["approver"], a["decision"]) for a in e["approvals"]] == [("bob", "approve")]
    # A zone offset is honoured: 13:00+02:00 is 11:00 UTC.
    assert caller(reporter("a2")).get(URL, {"target": "SRV01", "at": "2026-06-01T13:00+02:00"}).json()["count"] == 1


def test_a_range_by_person_is_paginated(srv):
    alice = user("alice")
    ids = [grant(srv, alice, start=at(i * 3), end=at(i * 3 + 1)).pk for i in range(7)]
    c = caller(reporter())
    first = c.get(URL, {"person": "alice", "start": "2026-06-01", "end": "2026-06-03T00:00Z", "limit": 5}).json()
    assert first["count"] == 7 and [r["record_id"] for r in first["results"]] == ids[:5]
    assert first["next"] and "offset=5" in first["next"]
    second = c.get(URL, {"person": "alice", "start": "2026-06-01", "end": "2026-06-03T00:00Z", "limit": 5, "offset": 5}).json()
    assert [r["record_id"] for r in second["results"]] == ids[5:]


@pytest.mark.parametrize("params, code", [
    ({}, "subject_required"),
    ({"at": "2026-06-01T10:00Z"}, "subject_required"),
    ({"target": "nope", "at": "2026-06-01T10:00Z"}, "target_unknown"),
    ({"person": "nobody", "at": "2026-06-01T10:00Z"}, "person_unknown"),
    ({"target": "SRV01"}, "time_required"),
    ({"target": "SRV01", "at": "yesterday"}, "time_invalid"),
    ({"target": "SRV01", "at": "2026-13-45T99:00Z"}, "time_invalid"),
    ({"target": "SRV01", "at": "2026-06-01T10:00Z\x00"}, "invalid"),
    ({"target": "SRV01", "at": "2026-06-01T10:00Z", "start": "2026-06-01"}, "time_conflict"),
    ({"target": "SRV01", "end": "2026-06-01"}, "start_required"),
    ({"target": "SRV01", "start": "2026-06-02", "end": "2026-06-01"}, "range_reversed"),
    ({"target": "SRV01", "at": "9" * 300}, "max_length"),
])
def test_bad_input_is_a_clear_400(srv, params, code):
    r = caller(reporter()).get(URL, params)
    assert r.status_code == 400, r.content
    body = r.json()
    assert body["code"] == code and body["detail"]
    assert "fields" in body or code == "invalid"  # NUL is refused before the form, by the portal's guard


def test_the_openapi_schema_lists_it(srv):
    r = caller(reporter()).get("/api/schema/", {"format": "json"})
    assert r.status_code == 200
    assert "/api/v1/access-history" in r.json()["paths"]
