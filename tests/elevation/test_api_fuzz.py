"""The REST API fuzzed from its own OpenAPI schema: no input makes it answer 5xx.

schemathesis reads the schema the running server publishes at /api/schema/, generates
valid and invalid calls for every operation (odd types, missing and extra fields, huge and
unicode strings, NUL bytes, wrong methods) and sends them over HTTP to a live server with a
real token, against a real Samba DC and worker. Each answer must not be a server error and
must conform to the schema: a documented status, JSON, the documented body. Every POST
carries a valid single-use backup code in ``otp`` when its body is an object, so bodies get
past the OTP check into validation and the services. The number of examples is bounded so
the run stays short.
"""
import json

import pytest
import requests
import schemathesis
from django.contrib.auth.models import Permission
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.config import SchemathesisConfig

from jitad.accounts.services import api_token_create
from jitad.elevation import services
from tests.support.mfa import backup_codes

pytestmark = pytest.mark.django_db(transaction=True)

CONFIG = SchemathesisConfig.from_dict({
    "generation": {"mode": "all", "max-examples": 10, "database": "none"},
    "phases": {"coverage": {"enabled": True}, "stateful": {"enabled": False}},
})
# Valid codes per POST operation; once they are used up, calls carry whatever ``otp`` was generated.
CODES_PER_OPERATION = 30
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
# Not negative_data_rejection: list endpoints use DRF's pagination, which by design reads a
# malformed limit or offset as "the default" (200) instead of refusing it.


def _token(user) -> str:
    return api_token_create(user=user, name="fuzz")[1]


@pytest.fixture
def world(live, live_server, make_user, make_target):
    """A caller who may request, approve others, release and read reports: requests of every kind to poke at."""
    manual = make_target(mode="manual", eligible_groups=("admins",), approver_groups=("approvers",))
    auto = make_target(mode="auto", eligible_groups=("admins",))
    alice = make_user("fz", groups=("admins", "approvers"))
    # An auditor too, so the access history is fuzzed past its permission check (its 400s, its pages).
    alice.user_permissions.add(Permission.objects.get(content_type__app_label="reports", codename="view_reports"))
    bob = make_user("fzb", groups=("admins",))
    ids = [
        services.request_create(requester=bob, target=manual, justification="bob's, for alice to decide").pk,
        services.request_create(requester=alice, target=manual, justification="alice's own").pk,
        services.request_create(requester=alice, target=auto, duration_minutes=30).pk,  # granted by the worker
    ]
    return {"url": live_server.url, "token": _token(alice), "user": alice, "codes": None, "ids": ids}


def _generated_schema() -> dict:
    """The schema /api/schema/ serves, made by the same generator (test_schema_is_what_the_server_serves)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


# Built when the module is collected, so each operation becomes a test of its own.
schema = schemathesis.openapi.from_dict(_generated_schema(), config=CONFIG)


def test_schema_is_what_the_server_serves(world):
    served = requests.get(world["url"] + "/api/schema/", params={"format": "json"},
                          headers={"Authorization": f"Bearer {world['token']}"}, timeout=10)
    assert served.status_code == 200
    assert served.json() == _generated_schema()


@schema.parametrize()
@settings(max_examples=10, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
def test_no_input_is_a_server_error(case, world):
    request_id = (case.path_parameters or {}).get("id")
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        # Generated ids seldom exist: aim well-formed ones at real requests (malformed ones stay as made).
        case.path_parameters["id"] = world["ids"][request_id % len(world["ids"])]
    if case.method == "POST" and isinstance(case.body, dict):
        if world["codes"] is None:  # made on the operation's first POST (each costs a scrypt hash)
            world["codes"] = backup_codes(world["user"], CODES_PER_OPERATION)
        if world["codes"]:
            case.body["otp"] = world["codes"].pop(0)  # the oldest is checked first: one hash, not all
    case.call_and_validate(base_url=world["url"], headers={"Authorization": f"Bearer {world['token']}"},
                           checks=CHECKS)
