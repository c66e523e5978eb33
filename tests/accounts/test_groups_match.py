"""JSONListMatches: which rows' JSON list of group names holds one of a person's groups, inside the query.

On PostgreSQL it asks the list lowered as a whole (``?|``), which a GIN index answers; these
tests pin its answers to the element-by-element rule on both databases, and check that the
index elevation's migration builds is one PostgreSQL can use for it.
"""
import pytest
from django.contrib.auth.models import Group, User
from django.db import connection

from jitad.accounts.groups import JSONListMatches, group_names_query
from jitad.elevation.models import Target

pytestmark = pytest.mark.django_db

LISTS = {
    "plain": ["JIT-Approvers"],
    "second": ["Other", "jit-dba-leads"],
    "quoted": ['Ops "Leads"\\EU'],
    "accented": ["Équipe-Sécurité"],
    "empty": [],
    "object": {"jit-approvers": True},  # not a list: never matches, not even by key
    "text": "jit-approvers",
    "number": 7,
}


def _targets():
    for name, groups in LISTS.items():
        Target.objects.create(name=name, group_dn=f"CN=JIT-{name},OU=JIT,DC=jitad,DC=test", approver_groups=groups)


def _matching(names) -> set[str]:
    return set(Target.objects.filter(JSONListMatches("approver_groups", names)).values_list("name", flat=True))


def test_names_match_whatever_their_case_and_only_as_elements_of_a_list():
    _targets()
    assert _matching(["jit-approvers"]) == {"plain"}
    assert _matching(["JIT-DBA-LEADS", "nobody"]) == {"second"}
    assert _matching(['ops "leads"\\eu']) == {"quoted"}
    assert _matching(["other", "jit-approvers"]) == {"plain", "second"}
    assert _matching(["nobody"]) == set()
    assert _matching([]) == set()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite's lower() folds ASCII only (accounts/groups.py)")
def test_non_ascii_names_fold_as_python_folds_them_on_postgresql():
    _targets()
    assert _matching(["équipe-sécurité"]) == {"accented"}


def test_a_persons_groups_as_a_subquery_give_the_same_answer():
    _targets()
    person = User.objects.create_user("lead")
    for name in ("JIT-DBA-Leads", "Équipe-Sécurité" if connection.vendor == "postgresql" else "Ops \"Leads\"\\EU"):
        person.groups.add(Group.objects.create(name=name))
    expected = {"second", "accented" if connection.vendor == "postgresql" else "quoted"}
    assert _matching(group_names_query(person)) == expected
    assert _matching(group_names_query(User.objects.create_user("nobody"))) == set()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the GIN index is PostgreSQL's")
def test_postgresql_can_answer_it_from_the_approver_groups_index():
    _targets()
    sql, params = Target.objects.filter(JSONListMatches("approver_groups", ["jit-approvers"])).values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "elevation_target_approvers_gin" in plan, plan
