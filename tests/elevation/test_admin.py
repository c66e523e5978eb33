"""The approval queue and grants view in the admin: scope, decisions, revocation, query counts.

Database only (the ``db`` fixture): decisions go through the same services as the API and
create their grants, but the test's transaction never commits, so nothing reaches a
worker. The browser tests drive the same pages against Samba and a real worker.
"""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jitad.audit.models import AuditEvent
from jitad.elevation import services
from jitad.elevation.models import AccessRequest, Approval, Grant
from tests.support.mfa import stale_age

from .builders import policy, target, user

pytestmark = pytest.mark.usefixtures("db")

QUEUE = "/admin/elevation/accessrequest/"
GRANTS = "/admin/elevation/grant/"
RequestState = AccessRequest.State


@pytest.fixture
def world():
    """SRV01 under ops-servers (Leads approve), SQL01 under dba (DBA-Leads approve)."""
    srv, sql = target("SRV01"), target("SQL01", tier=0)
    policy(srv, name="ops-servers")
    policy(sql, name="dba", approver_groups=["DBA-Leads"])
    return {
        "srv": srv, "sql": sql,
        "alice": user("alice", "Ops"), "bob": user("bob", "Ops"),
        "lead": user("lead", "Leads", "Ops"), "lead2": user("lead2", "Leads"), "dba": user("dbalead", "DBA-Leads"),
    }


def ask(who, tgt, **kw):
    return services.request_create(requester=who, target=tgt, justification=kw.pop("why", "patching"), **kw)


def ids(response) -> set[int]:
    return {r.pk for r in response.context["cl"].result_list}


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def act(client, action: str, requests, *, queue: str = "", **data):
    """Run an admin action on ``requests`` from the changelist (``queue`` as its filter, if any)."""
    url = QUEUE + (f"?queue={queue}" if queue else "")
    return client.post(url, {"action": action, "_selected_action": [r.pk for r in requests], **data}, follow=True)


# -- who gets in, who sees what ---------------------------------------------------------------
def test_an_approver_enters_the_admin_without_being_staff_and_sees_only_their_scope(world, verified_client):
    """GIVEN requests under two policies WHEN a Leads approver (not staff) opens the admin
    THEN the queue opens on what waits for them: ops-servers requests, not their own, not DBA's."""
    mine = ask(world["lead"], world["srv"])
    theirs = ask(world["alice"], world["srv"])
    dba = ask(world["bob"], world["sql"])
    client = verified_client(world["lead2"])
    assert client.get("/admin/").status_code == 200
    queue = client.get(QUEUE)
    assert queue.status_code == 200
    assert ids(queue) == {mine.pk, theirs.pk}
    lead_client = verified_client(world["lead"])
    assert ids(lead_client.get(QUEUE)) == {theirs.pk}  # never their own in "waiting for me"
    assert ids(lead_client.get(QUEUE + "?queue=all")) == {mine.pk, theirs.pk}
    assert lead_client.get(f"{QUEUE}{dba.pk}/change/").status_code == 302  # out of scope: "does not exist"
    # Targets and policies stay with staff permissions.
    assert lead_client.get("/admin/elevation/policy/").status_code == 403


def test_a_person_who_approves_nothing_is_kept_out(world, verified_client):
    client = verified_client(world["alice"])
    response = client.get("/admin/")
    assert response.status_code == 302 and response.url.startswith("/admin/login/")
    assert client.get(QUEUE).status_code == 302


def test_a_superuser_sees_everything_read_only_but_cannot_approve_outside_policy(world, verified_client):
    req = ask(world["alice"], world["sql"])
    root = user("root")
    root.is_staff = root.is_superuser = True
    root.save()
    client = verified_client(root)
    assert ids(client.get(QUEUE + "?queue=pending")) == {req.pk}
    response = act(client, "approve_selected", [req], queue="pending", post="yes", decision="approve", comment="")
    assert any("not an approver" in m for m in messages_of(response))
    req.refresh_from_db()
    assert req.state == RequestState.PENDING


# -- the queue --------------------------------------------------------------------------------
def test_the_queue_shows_what_a_decision_needs(world, verified_client):
    """Per row: requester, target and tier, duration, justification, ticket, approvals so far,
    recent use with the always-on flag, what they hold now, and the policy's limits."""
    alice, srv, sql = world["alice"], world["srv"], world["sql"]
    now = timezone.now()
    # Ten working days of 8-hour grants on SRV01, and one live grant on SQL01.
    for day in range(1, 11):
        start = now - timedelta(days=day, hours=2)
        old = AccessRequest.objects.create(requester=alice, target=srv, policy=srv.policies.get(), duration_minutes=480,
                                           state=RequestState.APPROVED, created_at=start)
        Grant.objects.create(request=old, user=alice, target=srv, group_dn=srv.group_dn, state=Grant.State.REVOKED,
                             created_at=start, activated_at=start, expires_at=start + timedelta(hours=8),
                             revoked_at=start + timedelta(hours=8))
    live = AccessRequest.objects.create(requester=alice, target=sql, policy=sql.policies.get(), duration_minutes=60,
                                        state=RequestState.APPROVED)
    Grant.objects.create(request=live, user=alice, target=sql, group_dn=sql.group_dn, state=Grant.State.ACTIVE,
                         activated_at=now, expires_at=now + timedelta(hours=1))
    req = ask(alice, srv, duration_minutes=240, why="monthly patching of the payroll app", ticket="CHG000123")

    page = verified_client(world["lead2"]).get(QUEUE).content.decode()
    assert f"#{req.pk}" in page
    for text in ("alice", "SRV01", "4 h", "monthly patching of the payroll app", "CHG000123", "0 of 1",
                 "always-on", "10×", "80 h", "SQL01", "max 4 h"):
        assert text in page, text


def test_an_occasional_requester_is_not_flagged_always_on(world, verified_client):
    alice, srv = world["alice"], world["srv"]
    start = timezone.now() - timedelta(days=3)
    old = AccessRequest.objects.create(requester=alice, target=srv, policy=srv.policies.get(), duration_minutes=60,
                                       state=RequestState.APPROVED, created_at=start)
    Grant.objects.create(request=old, user=alice, target=srv, group_dn=srv.group_dn, state=Grant.State.REVOKED,
                         created_at=start, activated_at=start, expires_at=start + timedelta(hours=1))
    ask(alice, srv)
    page = verified_client(world["lead2"]).get(QUEUE).content.decode()
    assert "1×" in page and "always-on" not in page


def test_filters_search_and_waiting_order(world, verified_client):
    alice, bob, srv = world["alice"], world["bob"], world["srv"]
    oldest = ask(alice, srv)
    AccessRequest.objects.filter(pk=oldest.pk).update(created_at=timezone.now() - timedelta(hours=30))
    newer = ask(bob, srv, ticket="INC42")
    client = verified_client(world["lead2"])
    rows = list(client.get(QUEUE).context["cl"].result_list)
    assert [r.pk for r in rows] == [oldest.pk, newer.pk]  # longest waiting first
    assert ids(client.get(QUEUE + "?waiting=gt24h")) == {oldest.pk}
    assert ids(client.get(QUEUE + f"?requester={bob.pk}")) == {newer.pk}
    assert ids(client.get(QUEUE + "?q=INC42")) == {newer.pk}
    assert ids(client.get(QUEUE + "?q=inc42")) == {newer.pk}
    assert ids(client.get(QUEUE + f"?q=%23{oldest.pk}")) == {oldest.pk}
    assert ids(client.get(QUEUE + "?q=BO")) == {newer.pk}  # bob, by part of the name
    assert ids(client.get(QUEUE + "?q=srv0")) == {oldest.pk, newer.pk}
    assert ids(client.get(QUEUE + "?q=nobody-matches")) == set()
    assert ids(client.get(QUEUE + f"?target={srv.pk}&target__tier__exact=1")) == {oldest.pk, newer.pk}
    assert ids(client.get(QUEUE + "?target__tier__exact=0")) == set()
    services.request_deny(request=newer, approver=world["lead"], comment="not now")
    assert ids(client.get(QUEUE + "?queue=decided&state__exact=denied")) == {newer.pk}


# -- deciding -----------------------------------------------------------------------------------
def test_approve_from_the_changelist_with_a_comment(world, verified_client):
    req = ask(world["alice"], world["srv"])
    client = verified_client(world["lead2"])
    confirm = act(client, "approve_selected", [req])
    assert confirm.status_code == 200 and b"You are about to <strong>approve</strong>" in confirm.content
    response = act(client, "approve_selected", [req], post="yes", decision="approve", comment="go ahead")
    assert any(f"Approved #{req.pk}" in m for m in messages_of(response))
    req.refresh_from_db()
    assert req.state == RequestState.APPROVED and Grant.objects.filter(request=req).exists()
    approval = Approval.objects.get(request=req)
    assert (approval.approver, approval.comment, approval.approver_groups) == (world["lead2"], "go ahead", ["Leads"])


def test_deny_needs_a_comment_and_keeps_the_request_pending_without_one(world, verified_client):
    req = ask(world["alice"], world["srv"])
    client = verified_client(world["lead2"])
    page = act(client, "deny_selected", [req], post="yes", decision="deny", comment="  ")
    assert page.status_code == 200 and b"Say why you deny it" in page.content
    req.refresh_from_db()
    assert req.state == RequestState.PENDING
    act(client, "deny_selected", [req], post="yes", decision="deny", comment="use the change window")
    req.refresh_from_db()
    assert req.state == RequestState.DENIED
    assert AuditEvent.objects.get(action="request.denied", object_id=str(req.pk)).reason == "use the change window"


def test_self_approval_is_refused_in_the_admin_by_action_and_by_button(world, verified_client):
    req = ask(world["lead"], world["srv"])  # lead is both requester (Ops) and approver (Leads)
    client = verified_client(world["lead"])
    response = act(client, "approve_selected", [req], queue="all", post="yes", decision="approve", comment="")
    assert any("Nobody may decide their own request" in m for m in messages_of(response))
    page = client.get(f"{QUEUE}{req.pk}/change/").content.decode()
    assert "This is your own request" in page and 'value="approve"' not in page
    response = client.post(f"{QUEUE}{req.pk}/decide/", {"decision": "approve", "comment": ""}, follow=True)
    assert any("Nobody may decide their own request" in m for m in messages_of(response))
    req.refresh_from_db()
    assert req.state == RequestState.PENDING and not Approval.objects.exists()


def test_decide_on_the_request_page(world, verified_client):
    req = ask(world["alice"], world["srv"])
    client = verified_client(world["lead2"])
    page = client.get(f"{QUEUE}{req.pk}/change/").content.decode()
    assert "Before you decide" in page and 'value="deny"' in page
    bad = client.post(f"{QUEUE}{req.pk}/decide/", {"decision": "deny", "comment": ""})
    assert bad.status_code == 200 and b"Say why you deny it" in bad.content
    client.post(f"{QUEUE}{req.pk}/decide/", {"decision": "deny", "comment": "wrong server"})
    req.refresh_from_db()
    assert req.state == RequestState.DENIED


def test_two_of_n_needs_two_different_people_in_the_admin(world, verified_client, client):
    world["srv"].policies.update(approvals_required=2)
    req = ask(world["alice"], world["srv"])
    first = verified_client(world["lead2"])
    act(first, "approve_selected", [req], post="yes", decision="approve", comment="")
    response = first.post(f"{QUEUE}{req.pk}/decide/", {"decision": "approve", "comment": ""}, follow=True)
    assert any("already approved" in m for m in messages_of(response))
    req.refresh_from_db()
    assert req.state == RequestState.PENDING
    assert ids(first.get(QUEUE)) == set()  # decided by me: no longer waiting for me
    second = verified_client(user("lead3", "Leads"))
    assert ids(second.get(QUEUE)) == {req.pk}
    act(second, "approve_selected", [req], post="yes", decision="approve", comment="")
    req.refresh_from_db()
    assert req.state == RequestState.APPROVED


def test_bulk_decisions_only_where_policy_allows(world, verified_client):
    a, b = ask(world["alice"], world["srv"]), ask(world["bob"], world["srv"])
    client = verified_client(world["lead2"])
    response = act(client, "approve_selected", [a, b], post="yes", decision="approve", comment="")
    assert any("one at a time" in m for m in messages_of(response))
    assert set(AccessRequest.objects.filter(pk__in=[a.pk, b.pk]).values_list("state", flat=True)) == {RequestState.PENDING}
    world["srv"].policies.update(allow_bulk_decisions=True)
    act(client, "approve_selected", [a, b], post="yes", decision="approve", comment="")
    assert set(AccessRequest.objects.filter(pk__in=[a.pk, b.pk]).values_list("state", flat=True)) == {RequestState.APPROVED}


def test_a_decision_from_a_stale_session_asks_for_a_fresh_otp_first(world, verified_client):
    req = ask(world["alice"], world["srv"])
    client = verified_client(world["lead2"], age_seconds=stale_age())
    response = client.post(f"{QUEUE}{req.pk}/decide/", {"decision": "approve", "comment": ""})
    assert response.status_code == 403 and b'name="otp"' in response.content
    req.refresh_from_db()
    assert req.state == RequestState.PENDING


# -- grants ---------------------------------------------------------------------------------------
def _grant(req_user, tgt, state, minutes):
    req = AccessRequest.objects.create(requester=req_user, target=tgt, policy=tgt.policies.get(), duration_minutes=60,
                                       state=RequestState.APPROVED)
    return Grant.objects.create(request=req, user=req_user, target=tgt, group_dn=tgt.group_dn, state=state,
                                expires_at=timezone.now() + timedelta(minutes=minutes))


def test_grants_view_shows_failures_first_then_soonest_expiring(world, verified_client):
    alice, srv = world["alice"], world["srv"]
    later = _grant(alice, srv, Grant.State.ACTIVE, 120)
    sooner = _grant(alice, srv, Grant.State.ACTIVE, 10)
    failed = _grant(alice, srv, Grant.State.REVOKE_FAILED, -5)
    ended = _grant(alice, srv, Grant.State.REVOKED, -60)
    _grant(alice, world["sql"], Grant.State.ACTIVE, 5)  # not in lead2's scope
    client = verified_client(world["lead2"])
    rows = [g.pk for g in client.get(GRANTS).context["cl"].result_list]
    assert rows == [failed.pk, sooner.pk, later.pk]
    assert [g.pk for g in client.get(GRANTS + "?view=ended").context["cl"].result_list] == [ended.pk]
    found = {g.pk for g in client.get(GRANTS + "?view=all&q=srv01").context["cl"].result_list}
    assert found == {failed.pk, ended.pk, sooner.pk, later.pk}  # and not the SQL01 grant, out of scope
    assert [g.pk for g in client.get(GRANTS + f"?view=all&q=%23{later.pk}").context["cl"].result_list] == [later.pk]


def test_admin_revoke_needs_a_reason(world, verified_client):
    grant = _grant(world["alice"], world["srv"], Grant.State.ACTIVE, 60)
    client = verified_client(world["lead2"])
    page = client.post(GRANTS, {"action": "revoke_selected", "_selected_action": [grant.pk], "post": "yes",
                                "reason": ""})
    assert page.status_code == 200 and b"This field is required" in page.content
    grant.refresh_from_db()
    assert grant.revoke_requested_at is None
    client.post(f"{GRANTS}{grant.pk}/revoke/", {"reason": "left the company"})
    grant.refresh_from_db()
    assert grant.state == Grant.State.REVOKING and grant.revoke_reason == Grant.RevokeReason.ADMIN
    assert AuditEvent.objects.get(action="grant.revoking", object_id=str(grant.pk)).reason == "left the company"


def test_revoke_outside_scope_is_refused(world, verified_client):
    grant = _grant(world["alice"], world["sql"], Grant.State.ACTIVE, 60)
    client = verified_client(world["lead2"])
    response = client.post(f"{GRANTS}{grant.pk}/revoke/", {"reason": "x"}, follow=True)
    assert any("does not exist" in m for m in messages_of(response))
    grant.refresh_from_db()
    assert grant.revoke_requested_at is None


# -- cost ---------------------------------------------------------------------------------------
def _count(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_changelists_cost_the_same_queries_with_100k_requests(world, verified_client):
    """GIVEN a queue page of 50 rows WHEN the table grows from 60 to 100,000 requests (with
    grants and approvals) THEN each list view runs the same number of queries: no N+1."""
    srv, sql, alice = world["srv"], world["sql"], world["alice"]
    pol = srv.policies.get()
    people = [user(f"req{i}", "Ops") for i in range(20)]

    def grow(n):
        now = timezone.now()
        rows = [AccessRequest(requester=people[i % 20], target=srv if i % 3 else sql, policy=pol, duration_minutes=60,
                              justification="routine", state=RequestState.PENDING if i % 2 else RequestState.APPROVED,
                              created_at=now - timedelta(minutes=i)) for i in range(n)]
        made = AccessRequest.objects.bulk_create(rows, batch_size=5000)
        grants = [Grant(request=r, user=r.requester, target=r.target, group_dn=r.target.group_dn,
                        state=Grant.State.ACTIVE, activated_at=now, expires_at=now + timedelta(hours=1))
                  for r in made if r.state == RequestState.APPROVED][:2000]
        Grant.objects.bulk_create(grants, batch_size=5000)
        Approval.objects.bulk_create([Approval(request=r, approver=world["lead2"], decision="approve")
                                      for r in made[:500] if r.state == RequestState.PENDING])

    grow(60)
    client = verified_client(world["lead"])
    # "_facets" would make Django count every filter choice over the whole table: it is switched off.
    urls = [QUEUE, QUEUE + "?queue=all", QUEUE + "?queue=pending&waiting=lt1h", QUEUE + "?queue=all&_facets=1",
            GRANTS, GRANTS + "?view=all&_facets=1"]
    small = [_count(client, u) for u in urls]
    grow(100_000 - 60)
    assert AccessRequest.objects.count() >= 100_000
    large = [_count(client, u) for u in urls]
    assert large == small
    assert max(large) <= 20


def test_the_admin_login_form_lets_approvers_in_and_keeps_others_out(world, client):
    """The admin's own login page (password + OTP) admits an approver who is not staff, and
    refuses a person who approves nothing, as Django refuses non-staff."""
    from tests.support.mfa import totp_code, totp_device

    for person, admitted in ((world["lead2"], True), (world["alice"], False)):
        person.set_password("A-long-passphrase-9")
        person.save()
        device = totp_device(person)
        response = client.post("/admin/login/", {"username": person.username, "password": "A-long-passphrase-9",
                                                 "otp_device": device.persistent_id, "otp_token": totp_code(device)})
        assert (response.status_code == 302) is admitted, person.username
        assert (client.get(QUEUE).status_code == 200) is admitted
        client.logout()


# -- crafted input ----------------------------------------------------------------------------
@pytest.mark.parametrize("query", ["?target=%C2%B2", "?requester=99999999999999999999999", "?target=-1",
                                   "?ticket=%00", "?q=%00", "?justification__contains=%00"])
def test_crafted_filters_never_give_a_500(world, verified_client, query):
    ask(world["alice"], world["srv"])
    response = verified_client(world["lead2"]).get(QUEUE + query)
    assert response.status_code in (200, 302, 400), response.status_code


def test_a_crafted_selection_is_refused_with_a_message(world, verified_client):
    req = ask(world["alice"], world["srv"])
    client = verified_client(world["lead2"])
    response = client.post(QUEUE, {"action": "approve_selected", "_selected_action": ["abc"], "post": "yes",
                                   "decision": "approve"}, follow=True)
    assert response.status_code == 200
    assert any("selection was not understood" in m for m in messages_of(response))
    req.refresh_from_db()
    assert req.state == RequestState.PENDING


def test_a_blocked_requester_s_request_leaves_the_queue_and_cannot_be_approved(world, verified_client):
    req = ask(world["alice"], world["srv"])
    world["alice"].is_active = False
    world["alice"].save()
    client = verified_client(world["lead2"])
    assert ids(client.get(QUEUE)) == set()
    response = act(client, "approve_selected", [req], queue="pending", post="yes", decision="approve", comment="")
    assert any("blocked" in m for m in messages_of(response))
    req.refresh_from_db()
    assert req.state == RequestState.PENDING and not Grant.objects.exists()


def test_edits_of_people_and_policies_in_the_admin_are_audited(world, verified_client):
    """A superuser who adds a local account to an approver group, or changes a policy, leaves
    an audit event naming them; an AD-linked person's groups cannot be edited at all."""
    from django.contrib.auth.models import Group

    from jitad.accounts.models import DirectoryAccount

    root = user("root")
    root.is_staff = root.is_superuser = True
    root.save()
    client = verified_client(root)
    page = client.get(f"/admin/auth/user/{world['alice'].pk}/change/")
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k not in ("password", "groups",
                                                                                  "user_permissions", "last_login")}
    data.update({"date_joined_0": "2026-01-01", "date_joined_1": "00:00:00",
                 "groups": [Group.objects.get_or_create(name="DBA-Leads")[0].pk]})
    response = client.post(f"/admin/auth/user/{world['alice'].pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    event = AuditEvent.objects.get(action="account.changed", object_id=str(world["alice"].pk))
    assert event.actor == "root" and event.data["groups"] == {"before": ["Ops"], "after": ["DBA-Leads"]}

    DirectoryAccount.objects.create(user=world["bob"], guid="00000000-0000-0000-0000-000000000001", dn="CN=bob")
    page = client.get(f"/admin/auth/user/{world['bob'].pk}/change/")
    assert "groups" not in page.context["adminform"].form.fields  # read-only: AD decides

    pol = world["srv"].policies.get()
    page = client.get(f"/admin/elevation/policy/{pol.pk}/change/")
    form = page.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if hasattr(value, "__iter__") and not isinstance(value, str) and name == "targets":
            value = [t.pk for t in value]
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue
        if isinstance(value, (list, dict)) and name != "targets":
            import json
            value = json.dumps(value)
        if value is not None:
            data[name] = value
    data["max_duration_minutes"] = 120
    response = client.post(f"/admin/elevation/policy/{pol.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    event = AuditEvent.objects.get(action="policy.updated", object_id=str(pol.pk))
    assert event.actor == "root" and "max_duration_minutes" in event.data["changed"]


# -- servers: what WinRM showed, and standing admins -----------------------------------------
def test_server_columns_views_and_standing_admin_pages(world, verified_client):
    """GIVEN a checked target with an unverified grant, a revoked grant still admin by another path and
    standing-admin findings THEN the grants views, the findings and the scans render for a superuser,
    read-only, and an approver sees no findings at all."""
    from jitad.elevation.models import HostScan, StandingAdmin

    alice, srv = world["alice"], world["srv"]
    srv.winrm_url = "https://srv01.jitad.test:5986/wsman"
    srv.save()
    unverified = _grant(alice, srv, Grant.State.UNVERIFIED, 30)
    unverified.host_detail = "SRV01: the JIT group is not in local Administrators"
    unverified.save()
    still = _grant(alice, srv, Grant.State.REVOKED, -5)
    still.host_revoke_check = Grant.HostCheck.STILL_ADMIN
    still.save()
    StandingAdmin.objects.create(target=srv, sid="S-1-5-21-1-2-3-512", name="Domain Admins", is_group=True)
    StandingAdmin.objects.create(target=srv, sid="S-1-5-21-1-2-3-4711", name="S-1-5-21-1-2-3-4711", orphaned=True)
    HostScan.objects.create(target=srv, ok=True, members=4, standing=2, finished_at=timezone.now())
    root = user("root")
    root.is_staff = root.is_superuser = True
    root.save()
    client = verified_client(root)

    failed = client.get("/admin/elevation/grant/?view=failed")
    assert ids(failed) == {unverified.pk} and "not verified" in failed.content.decode()
    assert ids(client.get("/admin/elevation/grant/?view=server")) == {still.pk}
    page = client.get("/admin/elevation/standingadmin/").content.decode()
    assert "Domain Admins" in page and "orphaned SID" in page
    assert client.get("/admin/elevation/standingadmin/?status=resolved").status_code == 200
    assert client.get("/admin/elevation/hostscan/").status_code == 200
    assert client.get(f"/admin/elevation/standingadmin/{StandingAdmin.objects.first().pk}/change/").status_code == 200

    client.logout()
    approver = verified_client(world["lead"])  # an approver, not staff: the queue, never the findings
    assert approver.get("/admin/elevation/accessrequest/").status_code == 200
    assert approver.get("/admin/elevation/standingadmin/").status_code in (302, 403)
