"""The portal fuzzed: no form field, filter, id or query string makes it answer 500.

Hypothesis sends the portal's forms and query strings (request, extend, release, cancel,
token and device forms, the eligibility search and paging, My access polling, break-glass
and runbook pages, the admin's queue filters and search, the login and MFA forms) values a
person would never type: NUL bytes, huge numbers and strings, unicode controls and right-to-left
marks, markup, SQL, path tricks, empty and repeated fields. Every answer must be below 500.
Django's test client re-raises a view's exception, so a crash shows its own traceback.
The database only: manual policies, so no request reaches a DC or a worker.
"""
import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitad.elevation import services
from jitad.elevation.models import Grant
from tests.elevation.builders import policy, target, user
from tests.support.mfa import stale_age

pytestmark = pytest.mark.usefixtures("db")

FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

ODD = [
    "", " ", "0", "-1", "+1", "1.5", "1e309", "nan", "inf", "-inf", "0x10", "٣", "１２",
    "9" * 30, "-" + "9" * 30, str(2**63), str(-(2**63) - 1), "2147483648",
    "\x00", "a\x00b", "%00", "\r\n", "\u202e", "\ufeff", "\U0001f600", "Ω" * 3000, "x" * 100_000,
    "' OR 1=1 --", "*)(uid=*))(|(uid=*", "\\", "<script>alert(1)</script>", "{{ 7*7 }}", "../../etc/passwd",
    "//evil.example/", "https://evil.example/", "javascript:alert(1)", "null", "true", "[]", "{}",
]
# Values for any field: the odd list, any text (NUL and all of unicode but surrogates, which a URL
# or a form cannot carry), any integer.
value = st.one_of(
    st.sampled_from(ODD),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60),
    st.integers().map(str),
)
params = st.dictionaries(st.sampled_from(["q", "page", "target", "v", "s", "next", "o", "p", "e", "queue", "view",
                                          "state__exact", "waiting", "requester", "_changelist_filters", "all"])
                         | st.text(max_size=10), value, max_size=4)
ids = st.one_of(st.integers(min_value=0, max_value=2**70), st.sampled_from([1, 2, 3]))


def below_500(response, what=""):
    assert response.status_code < 500, (what, response.status_code, response.content[:300])


@pytest.fixture
def portal(verified_client):
    """A requester with a fresh MFA session, a target they may request and an active grant."""
    alice = user("alice", "Ops")
    lead = user("lead", "Leads")
    srv = target("SRV01")
    policy(srv, require_ticket=True, ticket_pattern=r"^CHG-\d+$")
    req = services.request_create(requester=alice, target=srv, duration_minutes=30, ticket="CHG-1")
    services.request_approve(request=req, approver=lead)
    Grant.objects.filter(request=req).update(state=Grant.State.ACTIVE, claim_token=None, lease_until=None)
    pending = services.request_create(requester=alice, target=srv, duration_minutes=30, ticket="CHG-2")
    client = verified_client(alice)
    return {"client": client, "target": srv, "grant": Grant.objects.get(request=req), "pending": pending}


@FUZZ
@given(query=params)
def test_portal_pages_take_any_query_string(portal, query):
    client = portal["client"]
    for name in ("elevation:eligible", "elevation:access", "elevation:access-live", "elevation:request-new",
                 "accounts:security", "breakglass:dashboard", "breakglass:runbooks"):
        below_500(client.get(reverse(name), query), name)
        below_500(client.get(reverse(name), query, HTTP_HX_REQUEST="true"), name + " (htmx)")


@FUZZ
@given(data=st.fixed_dictionaries({}, optional={"duration_minutes": value, "justification": value,
                                                "ticket": value, "otp": value, "target": value}),
       own=st.booleans(), target_ref=value)
def test_the_request_form_takes_any_input(portal, data, own, target_ref):
    target_id = portal["target"].pk if own else target_ref
    response = portal["client"].post(reverse("elevation:request-new") + "?" + _qs(target=target_id), data)
    below_500(response, "request-new")


@FUZZ
@given(pk=ids, data=st.dictionaries(st.sampled_from(["duration_minutes", "justification", "ticket", "otp", "reason"]),
                                    value, max_size=4), own=st.booleans())
def test_grant_and_request_actions_take_any_id_and_fields(portal, pk, data, own):
    client = portal["client"]
    grant_pk = portal["grant"].pk if own else pk
    request_pk = portal["pending"].pk if own else pk
    below_500(client.get(reverse("elevation:grant-extend", args=[grant_pk]), data), "extend GET")
    for name in ("elevation:grant", "elevation:grant-evidence-json", "elevation:grant-evidence-csv"):
        below_500(client.get(reverse(name, args=[grant_pk]), data), name)
    below_500(client.post(reverse("elevation:grant-extend", args=[grant_pk]), data), "extend")
    below_500(client.post(reverse("elevation:grant-release", args=[pk]), data), "release")
    below_500(client.post(reverse("elevation:request-cancel", args=[request_pk]), data), "cancel")


@FUZZ
@given(pk=ids, slug=st.one_of(st.just("dc-outage"), st.from_regex(r"[-a-zA-Z0-9_]{1,60}", fullmatch=True)), query=params,
       data=st.dictionaries(st.sampled_from(["reason", "incident", "otp", "done", "summary", "note"]), value, max_size=4))
def test_break_glass_pages_take_any_id_and_fields(portal, pk, slug, query, data):
    client = portal["client"]
    below_500(client.get(reverse("breakglass:runbook", args=[slug]), query), "runbook")
    for name in ("breakglass:checkout-new", "breakglass:envelope-new"):
        below_500(client.get(reverse(name, args=[pk]), query), name)
        below_500(client.post(reverse(name, args=[pk]), data), name)
    for name in ("breakglass:checkout", "breakglass:checkout-state", "breakglass:checkout-told"):
        below_500(client.get(reverse(name, args=[pk]), query), name)
    for name in ("breakglass:checkout-checkin", "breakglass:checkout-cancel", "breakglass:checkout-review"):
        below_500(client.post(reverse(name, args=[pk]), data), name)
    below_500(client.post(reverse("breakglass:checkout-tick", args=[pk, slug]), data), "tick")


@FUZZ
@given(data=st.dictionaries(st.sampled_from(["name", "days", "otp", "device"]), value, max_size=4), pk=ids)
def test_security_forms_take_any_input(portal, data, pk):
    client = portal["client"]
    below_500(client.post(reverse("accounts:token-create"), data), "token-create")
    below_500(client.post(reverse("accounts:token-revoke", args=[pk]), data), "token-revoke")
    below_500(client.post(reverse("accounts:device-remove"), data), "device-remove")


@FUZZ
@given(data=st.dictionaries(st.sampled_from(["otp", "next", "csrfmiddlewaretoken", "duration_minutes"]), value,
                            max_size=3), query=params)
def test_step_up_and_mfa_forms_take_any_input(verified_client, data, query):
    """A stale session: every POST meets the step-up page first, whatever it carries."""
    bob = User.objects.get_or_create(username="bob")[0]
    client = verified_client(bob, age_seconds=stale_age())
    below_500(client.post(reverse("accounts:token-create") + "?" + _qs(**query), data), "step-up")
    below_500(client.post(reverse("accounts:mfa-verify") + "?" + _qs(**query), data), "mfa-verify")
    below_500(client.get(reverse("accounts:mfa-verify"), query), "mfa-verify GET")


@FUZZ
@given(data=st.dictionaries(st.sampled_from(["username", "password", "next"]), value, max_size=3), query=params)
def test_login_takes_any_input(client, data, query):
    below_500(client.get(reverse("accounts:login"), query), "login GET")
    response = client.post(reverse("accounts:login") + "?" + _qs(**query), data)
    below_500(response, "login")
    if response.status_code in (301, 302):
        assert response["Location"].startswith("/") and not response["Location"].startswith("//"), response["Location"]


@FUZZ
@given(query=params, model=st.sampled_from(["accessrequest", "grant", "target", "policy"]))
def test_admin_lists_take_any_filter(verified_client, query, model):
    boss = User.objects.filter(username="boss").first() or User.objects.create_superuser("boss", "b@example.org", None)
    client = verified_client(boss)
    below_500(client.get(reverse(f"admin:elevation_{model}_changelist"), query), model)


def _qs(**query) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in query.items()})
