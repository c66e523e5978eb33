"""The audit list in the admin: newest first, search by actor, object id and object name; the audited export."""
import csv
import io
import json

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction

from jitad.audit.models import AuditEvent
from jitad.audit.services import AuditEntry, audit_record_many, audit_verify
from jitad.breakglass.models import Checkout, SealedAccount

pytestmark = pytest.mark.django_db
URL = "/admin/audit/auditevent/"


@pytest.fixture
def trail(django_user_model, staff):
    """Events of bg-da-01 (the account and one of its checkouts), of another account, and of other things."""
    holder = django_user_model.objects.create_user(username="responder1")
    mine, other = SealedAccount.objects.create(name="bg-da-01"), SealedAccount.objects.create(name="bg-da-02")
    checkout = Checkout.objects.create(account=mine, holder=holder, incident_ref="INC-7", reason="outage",
                                       duration_minutes=60)
    with transaction.atomic():
        rows = audit_record_many([
            AuditEntry("admin1", "breakglass.account_enrolled", "sealed_account", str(mine.pk)),
            AuditEntry("admin1", "breakglass.account_enrolled", "sealed_account", str(other.pk)),
            AuditEntry("responder1", "breakglass.checkout_requested", "checkout", str(checkout.pk)),
            AuditEntry("carol", "request.created", "request", "42"),
            AuditEntry("system:breakglass", "breakglass.rotated", "sealed_account", str(mine.pk)),
        ])
    return [r.seq for r in rows]


@pytest.fixture
def staff(django_user_model, verified_client):
    user = django_user_model.objects.create_user(username="auditor", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    return user, verified_client(user)


def seqs(response) -> list[int]:
    return [ev.seq for ev in response.context["cl"].result_list]


def test_newest_first(trail, staff):
    _, client = staff
    assert seqs(client.get(URL))[:5] == trail[::-1]


def test_search_by_account_name_finds_its_events_and_its_checkouts(trail, staff):
    """GIVEN events of bg-da-01, of its checkout and of other objects WHEN searching "bg-da-01"
    THEN exactly the account's and its checkout's events are listed, newest first."""
    _, client = staff
    response = client.get(URL, {"q": "bg-da-01"})
    assert response.status_code == 200
    assert seqs(response) == [trail[4], trail[2], trail[0]]


def test_search_by_actor_and_object_id(trail, staff):
    _, client = staff
    assert seqs(client.get(URL, {"q": "responder1"})) == [trail[2]]
    assert seqs(client.get(URL, {"q": "42"})) == [trail[3]]
    assert seqs(client.get(URL, {"q": "no-such-thing"})) == []


def test_export_needs_the_permission(trail, staff):
    _, client = staff
    assert client.get(URL + "export/").status_code == 403
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


def test_export_of_a_filtered_range_is_streamed_and_audited(trail, staff):
    """GIVEN an auditor allowed to export WHEN exporting the search "bg-da-01" as CSV and as JSON lines
    THEN the rows are that range in chain order with seq and hash, and each export is an audit event."""
    user, client = staff
    user.user_permissions.add(Permission.objects.get(codename="export_auditevent"))
    page = client.get(URL, {"q": "bg-da-01"})
    assert b"format=csv" in page.content
    response = client.get(URL + "export/", {"q": "bg-da-01", "format": "csv"})
    assert response.status_code == 200 and response.streaming
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [int(r["seq"]) for r in rows] == [trail[0], trail[2], trail[4]]
    assert rows[0]["hash"] == AuditEvent.objects.get(seq=trail[0]).hash
    response = client.get(URL + "export/", {"q": "bg-da-01", "format": "jsonl"})
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [(r["seq"], r["prev_hash"]) for r in lines] == list(
        AuditEvent.objects.filter(seq__in=trail[::2]).order_by("seq").values_list("seq", "prev_hash"))
    exports = AuditEvent.objects.filter(action="audit.exported").order_by("seq")
    assert [(e.actor, e.object_id, e.data["count"], e.data["filters"]) for e in exports] == [
        ("auditor", "csv", 3, "q=bg-da-01"), ("auditor", "jsonl", 3, "q=bg-da-01")]
    assert audit_verify() == []


def test_export_bad_input_is_a_clear_error(trail, staff):
    user, client = staff
    user.user_permissions.add(Permission.objects.get(codename="export_auditevent"))
    assert client.get(URL + "export/", {"format": "xml"}).status_code == 400
    assert client.get(URL + "export/", {"at__gte": "not a date", "format": "csv"}).status_code == 400


def test_search_by_target_name(staff):
    from jitad.elevation.models import Target

    _, client = staff
    target = Target.objects.create(name="SRV-AUDIT-01", hostname="srv-audit-01.jitad.test",
                                   group_dn="CN=JIT-SRV-AUDIT-01-Admins,OU=JIT,DC=jitad,DC=test")
    with transaction.atomic():
        rows = audit_record_many([AuditEntry("admin1", "target.created", "target", str(target.pk)),
                                  AuditEntry("admin1", "target.created", "target", str(target.pk + 1))])
    assert seqs(client.get(URL, {"q": "srv-audit-01"})) == [rows[0].seq]
