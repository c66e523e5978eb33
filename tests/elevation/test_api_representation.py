"""The API's rows written out by hand give the answer DRF's walk over the declared fields gives.

``RequestSerializer.to_representation`` and ``EligibilitySerializer.to_representation`` build
each row directly (a list page's largest cost otherwise); these tests read every kind of row the
API shows, the ways the views read them, and compare both answers value by value (requests in
UTC and in a zone with an offset).
"""
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework import serializers

from jitad.elevation import services
from jitad.elevation.api.serializers import EligibilitySerializer, RequestSerializer
from jitad.elevation.models import AccessRequest, Approval, Grant, Policy
from jitad.elevation.selectors.eligibility import eligibility_search
from jitad.elevation.selectors.requests import (
    request_current, request_visible, requests_listed, requests_page_complete,
)

from .builders import policy, target, user

pytestmark = pytest.mark.django_db


def _stage(name, n):
    return {"name": name, "approvals_required": n, "approver_groups": ["Leads"], "distinct_groups": False,
            "escalation": None, "timeout": None}


def _rows():
    """(requester, approver) and one request of each shape: pending in stages (escalated, one approval),
    approved with a live grant on an ephemeral account (revealed), scheduled, an extension of that
    grant, denied, and one with a revoked grant."""
    t1, t2 = target("SRV01", hostname="srv01.jitad.test"), target("SRV02")
    policy(t1, t2)
    alice, lead = user("alice", "Ops"), user("lead", "Leads")
    now = timezone.now().replace(microsecond=123456)

    staged = services.request_create(requester=alice, target=t1, duration_minutes=30, justification="Patch it")
    AccessRequest.objects.filter(pk=staged.pk).update(
        stages=[_stage("peer", 1), _stage("security", 2)], stage=1, escalated_at=now, window_action="extra_stage")
    Approval.objects.create(request=staged, approver=lead, decision=Approval.Decision.APPROVE, stage=0,
                            approver_groups=["Leads"])

    def decided(state, **fields):
        return AccessRequest.objects.create(requester=alice, target=t2, policy=staged.policy, state=state,
                                            duration_minutes=60, ticket="CHG000001", approvals_required=1,
                                            decided_at=now, pending_until=now + timedelta(hours=1), **fields)

    live = decided(AccessRequest.State.APPROVED, starts_at=now + timedelta(minutes=5))
    grant = Grant.objects.create(
        request=live, user=alice, target=t2, group_dn=t2.group_dn, state=Grant.State.ACTIVE, activated_at=now,
        starts_at=now + timedelta(minutes=5), expires_at=now + timedelta(hours=1), extensions=1,
        account=Grant.Account.CREATED, account_sam="jit-alice-01", account_revealed_at=now)
    decided(AccessRequest.State.APPROVED, kind=AccessRequest.Kind.EXTENSION, extends=grant)
    decided(AccessRequest.State.DENIED)
    gone = decided(AccessRequest.State.APPROVED)
    Grant.objects.create(request=gone, user=alice, target=t2, group_dn=t2.group_dn, state=Grant.State.REVOKED,
                         expires_at=now, revoke_requested_at=now, revoked_at=now + timedelta(seconds=1))
    Approval.objects.create(request=gone, approver=lead, decision=Approval.Decision.APPROVE, approver_groups=["Leads"])
    return alice, lead


def _generic(row):
    """What DRF's own walk over the serializer's declared fields answers for ``row``."""
    return serializers.ModelSerializer.to_representation(RequestSerializer(), row)


def _assert_same(rows):
    assert rows
    for row in rows:
        fast, generic = RequestSerializer(row).data, _generic(row)
        assert fast == generic, row.pk
        assert list(fast) == list(generic)


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Chatham"])
def test_each_shape_of_row_reads_the_same_as_drf_would_write_it(zone):
    """GIVEN requests of every shape WHEN they are read as the list, a single request and the answer after a
    change read them THEN the rows written out equal DRF's field by field, in UTC and at +13:45."""
    with override_settings(TIME_ZONE=zone):
        alice, lead = _rows()
        page = requests_page_complete(list(requests_listed(user=alice)))
        assert {r.kind for r in page} == {"new", "extension"} and {r.state for r in page} >= {"pending", "denied"}
        _assert_same(page)
        _assert_same(list(requests_page_complete(list(requests_listed(user=lead)))))
        _assert_same([request_visible(user=alice, request_id=r.pk) for r in page])
        _assert_same([request_current(request_id=r.pk) for r in page])
        text = RequestSerializer(page, many=True).data
        grants = [r["grant"] for r in text if r["grant"]]
        assert any(g["account_name"] == "jit-alice-01" for g in grants)
        assert any(s["escalated_at"] for r in text for s in r["stages"])
        if zone == "UTC":
            assert all(r["created_at"].endswith("Z") for r in text)
        else:
            assert all(r["created_at"].endswith(("+13:45", "+12:45")) for r in text)


def test_eligibility_rows_read_the_same_as_drf_would_write_them():
    """GIVEN targets under an automatic and a manual policy (ticket rules, extensions, a description)
    WHEN the eligibility page is read THEN each row written out equals DRF's, field by field."""
    t1 = target("SRV01", hostname="srv01.jitad.test", description="File server, Lyon")
    t2, t3 = target("SQL02", kind="domain_role"), target("WEB03")
    policy(t1, t2, require_ticket=True, ticket_pattern=r"CHG\d{6}", max_extensions=2, min_justification_length=12,
           approvals_required=2)
    policy(t3, name="auto-web", approval_mode=Policy.ApprovalMode.AUTO, require_justification=True, priority=5)
    page = eligibility_search(user=user("alice", "Ops"), q="", limit=50, offset=0)
    rows = [{"target": t, "policy": p} for t, p in page.items]
    assert len(rows) == 3
    for row in rows:
        fast, generic = EligibilitySerializer(row).data, serializers.Serializer.to_representation(EligibilitySerializer(), row)
        assert fast == generic and list(fast) == list(generic)
    text = {r["name"]: r for r in EligibilitySerializer(rows, many=True).data}
    assert text["WEB03"]["approvals_required"] == 0 and text["SRV01"]["approvals_required"] == 2
    assert text["SRV01"]["description"] == "File server, Lyon" and text["SQL02"]["ticket_pattern"] == r"CHG\d{6}"
