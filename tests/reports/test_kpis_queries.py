"""The report costs a bounded number of queries: the same for a handful of rows as for many times more."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jitad.elevation.models import AccessRequest, HeldRemoval
from jitad.reports.selectors.kpis import report_build
from jitad.reports.services.demo_history import _audit_at

from .rows import at, grant, person, request, scan, standing_admin, target

pytestmark = pytest.mark.django_db
MAX_QUERIES = 30


def _rows(n: int, tag: str):
    """n of everything every KPI reads: targets, scans, findings, grants (late, failed), approvals, incidents."""
    approver = person(f"appr-{tag}")
    for i in range(n):
        t = target(f"SRV-{tag}-{i}", tier=i % 3, policy=f"p-{tag}", eligible_groups=["ops"])
        u = person(f"u-{tag}-{i}", groups=["ops"])
        scan(t, when=at(0, i), standing=2)
        standing_admin(t, f"S-1-5-21-{tag}-{i}", first_seen=at(0), resolved=at(3) if i % 2 else None)
        g = grant(u, t, activated=at(1, i), expires=at(1, i + 1), revoked=at(1, i + 1, 5 * i), host_check="verified")
        _audit_at(at(1, i + 1, 1), actor="system:engine", action="grant.revoke_failed", object_type="grant",
                  object_id=g.pk, before="revoking", after="revoke_failed")
        c = at(2, i)
        request(u, t, created=c, decided=c + timedelta(seconds=30 * i), approvers=[(approver, c + timedelta(seconds=30))],
                groups=[f"G{i % 2}"])
        for k in range(3):
            request(u, t, created=at(3, 20, k), state=AccessRequest.State.DENIED)
        request(u, t, created=c, state=AccessRequest.State.EXPIRED_UNAPPROVED)
        _audit_at(at(4, i), actor="system:reconciler", action="membership.removed_unbacked", object_type="group",
                  object_id=t.group_dn[:64], data={"group": t.group_dn, "member": f"CN=m{i}"})
        HeldRemoval.objects.create(group_dn=t.group_dn, member_dn=f"CN=h{i}", member_key=f"cn=h{i}", held_at=at(4),
                                   batch="00000000-0000-0000-0000-000000000003")


def _count(**filters) -> int:
    with CaptureQueriesContext(connection) as q:
        report_build(start=at(0), end=at(10), **filters)
    return len(q)


@pytest.mark.parametrize("filters", [{}, {"tier": 1}, {"policy": "p-a"}])
def test_query_count_does_not_grow_with_rows(filters, django_assert_max_num_queries):
    """GIVEN 2 of everything, then 12 more of everything
    WHEN the report runs (unfiltered, by tier, by policy)
    THEN it costs the same number of queries both times, and at most MAX_QUERIES."""
    _rows(2, "a")
    small = _count(**filters)
    _rows(12, "b")
    with django_assert_max_num_queries(MAX_QUERIES):
        report_build(start=at(0), end=at(10), **filters)
    assert _count(**filters) == small
