"""eligibility_search: the same answer as policy_for, searchable, paginated, in a fixed number of queries.

Database only: no DC, no worker.
"""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jitad.elevation.models import Policy, Target
from jitad.elevation.selectors.eligibility import eligibility_search, eligible_target_get, policy_for
from .builders import policy, target, user

pytestmark = pytest.mark.usefixtures("db")






def names(page) -> list[tuple[str, str]]:
    return [(t.name, p.name) for t, p in page.items]


def test_agrees_with_policy_for_on_a_mixed_set():
    """GIVEN targets covered by group and user policies, a disabled policy, a disabled target,
    another group's policy, and overlapping policies of different priority and equal priority
    WHEN alice searches with no filter THEN she gets exactly the targets policy_for allows,
    each with the policy policy_for picks."""
    alice = user("alice", "ops", "DBA")
    both, by_user, by_disabled, off, others, tie, upper = (
        target(n) for n in ("BOTH01", "USER01", "DISP01", "OFF01", "OTHER01", "TIE01", "UPPER01")
    )
    off.enabled = False
    off.save()
    policy(both, off, eligible_groups=["Ops"], priority=100, name="ops-wide")
    policy(both, eligible_groups=["dba"], priority=10, name="dba-narrow")
    policy(by_user, upper, eligible_groups=[], eligible_users=["ALICE"], priority=50, name="named")
    policy(by_disabled, eligible_groups=["ops"], enabled=False, name="disabled")
    policy(others, eligible_groups=["Web"], name="web-team")
    policy(tie, eligible_groups=["ops"], priority=5, name="b-tie")
    policy(tie, eligible_groups=["ops"], priority=5, name="a-tie")
    policy(upper, eligible_groups=["OPS"], priority=1, name="upper-groups")

    page = eligibility_search(user=alice, limit=100)

    expected = [
        (t.name, policy_for(user=alice, target=t).name)
        for t in Target.objects.filter(enabled=True).order_by("name")
        if policy_for(user=alice, target=t) is not None
    ]
    assert names(page) == expected
    assert names(page) == [("BOTH01", "dba-narrow"), ("TIE01", "a-tie"), ("UPPER01", "upper-groups"), ("USER01", "named")]
    assert page.total == 4


def test_nobody_covered_gets_nothing():
    target("SRV01")
    policy(Target.objects.get(name="SRV01"), eligible_groups=["ops"], name="ops")
    page = eligibility_search(user=user("mallory", "guests"), limit=50)
    assert page.items == [] and page.total == 0


def test_search_matches_name_hostname_and_description_case_insensitively():
    alice = user("alice", "ops")
    ts = [
        target("SQL-PROD-01", hostname="sqlprod01.corp.example", description="Payroll database"),
        target("WEB01", hostname="web01.corp.example", description="Intranet front end"),
        target("FILE01", hostname="files.corp.example", description="Home drives, payroll exports"),
        target("DC-ADMINS", kind=Target.Kind.DOMAIN_ROLE, description="Domain Admins"),
    ]
    policy(*ts, eligible_groups=["ops"], name="ops")

    def found(q):
        return [t.name for t, _ in eligibility_search(user=alice, q=q, limit=50).items]

    assert found("sql") == ["SQL-PROD-01"]
    assert found("WEB01.CORP") == ["WEB01"]
    assert found("PAYROLL") == ["FILE01", "SQL-PROD-01"]
    assert found("payroll home") == ["FILE01"]  # every word must match
    assert found("  domain  ") == ["DC-ADMINS"]
    assert found("nothing-like-this") == []
    assert found("") == ["DC-ADMINS", "FILE01", "SQL-PROD-01", "WEB01"]
    assert eligibility_search(user=alice, q="payroll", limit=50).total == 2


def test_pagination_walks_every_target_once_in_name_order():
    alice = user("alice", "ops")
    ts = [target(f"SRV{i:02d}") for i in range(7)]
    policy(*ts, eligible_groups=["ops"], name="ops")

    pages = [eligibility_search(user=alice, limit=3, offset=o) for o in (0, 3, 6, 9)]

    assert [len(p.items) for p in pages] == [3, 3, 1, 0]
    assert all(p.total == 7 for p in pages)
    assert [t.name for p in pages for t, _ in p.items] == [f"SRV{i:02d}" for i in range(7)]


def _bulk_targets(prefix: str, n: int, *policies: Policy) -> None:
    Target.objects.bulk_create(
        [Target(name=f"{prefix}{i:05d}", hostname=f"{prefix.lower()}{i:05d}.corp.example",
                group_dn=f"CN=JIT-{prefix}{i:05d},OU=JIT,DC=jitad,DC=test") for i in range(n)]
    )
    ids = list(Target.objects.filter(name__startswith=prefix).values_list("id", flat=True))
    Link = Policy.targets.through
    Link.objects.bulk_create([Link(policy_id=p.id, target_id=t) for p in policies for t in ids])


def test_query_count_does_not_grow_with_targets(django_assert_max_num_queries):
    """GIVEN 20 targets, then 2,000 more, each covered by two policies
    WHEN alice asks for a page THEN both searches cost the same few queries (and the
    winner is still the higher-priority policy)."""
    alice = user("alice", "ops")
    low = Policy.objects.create(name="low", eligible_groups=["ops"], priority=200)
    high = Policy.objects.create(name="high", eligible_groups=["ops"], priority=20)
    _bulk_targets("FEW", 20, low, high)

    with CaptureQueriesContext(connection) as few:
        small = eligibility_search(user=alice, q="few", limit=50)
    _bulk_targets("MANY", 2000, low, high)
    with CaptureQueriesContext(connection) as many:
        big = eligibility_search(user=alice, q="many", limit=50, offset=1000)
    with django_assert_max_num_queries(5):
        eligibility_search(user=alice, limit=50, offset=50)

    assert len(many.captured_queries) == len(few.captured_queries) <= 5
    assert small.total == 20 and big.total == 2000
    assert len(big.items) == 50 and big.items[0][0].name == "MANY01000"
    assert {p.name for _, p in big.items} == {"high"}


def test_eligible_target_get_refuses_unknown_disabled_and_uncovered():
    alice = user("alice", "ops")
    ok, off, foreign = target("OK01"), target("OFF01", enabled=False), target("FOREIGN01")
    p = policy(ok, off, eligible_groups=["ops"], name="ops")
    policy(foreign, eligible_groups=["web"], name="web")

    assert eligible_target_get(user=alice, target_id=str(ok.pk)) == (ok, p)
    assert eligible_target_get(user=alice, target_id=off.pk) is None
    assert eligible_target_get(user=alice, target_id=foreign.pk) is None
    assert eligible_target_get(user=alice, target_id=999999) is None
    for junk in (None, "", "abc", "1; drop table"):
        assert eligible_target_get(user=alice, target_id=junk) is None
