"""The people in a group at any depth, and a group by its name: the reads an eligibility review starts from."""
import pytest

from jitad.directory import DirectoryNotFound, DirectoryRejected

from .helpers import ad_add, unique_tag


def test_group_people_reads_nested_members_with_name_and_mail_across_pages(d, ou, monkeypatch):
    """GIVEN a group holding ann directly, and a nested group holding bo and cy
    WHEN its people are read with a page size of 2 THEN all three come back, by sAMAccountName, with their mail;
    a group in the group is not a person."""
    from jitad.directory import people

    tag = unique_tag()
    outer = d.ensure_group(f"Outer-{tag}", ou)
    inner = d.ensure_group(f"Inner-{tag}", ou)
    users = {name: d.ensure_user(f"{name}{tag}", ou, mail=f"{name}{tag}@jitad.test") for name in ("ann", "bo", "cy")}
    d.ensure_member(outer, users["ann"])
    d.ensure_member(outer, inner)
    d.ensure_member(inner, users["bo"])
    d.ensure_member(inner, users["cy"])
    monkeypatch.setattr(people, "_PAGE", 2)
    found = d.group_people(d.find_group_dn(f"Outer-{tag}"))
    assert [(u.sam_account_name, u.mail) for u in found] == [(f"{n}{tag}", f"{n}{tag}@jitad.test") for n in ("ann", "bo", "cy")]
    assert [u.sam_account_name for u in d.group_people(inner)] == [f"bo{tag}", f"cy{tag}"]


@pytest.mark.parametrize("hostile", ["x)(cn", "(&)", "a!b", "%'#", "x)(!(cn"])
def test_a_hostile_group_name_finds_only_that_exact_group(d, ou, admin, hostile):
    """GIVEN a group literally named with filter syntax WHEN it is looked up by name THEN only it is found, and
    a name that merely matches as a pattern finds nothing."""
    tag = unique_tag()
    sam = f"{hostile}{tag}"
    dn = ad_add(admin, f"CN=h{tag},{ou}", "group", {"sAMAccountName": sam, "groupType": -2147483646})
    assert d.find_group_dn(sam).lower() == dn.lower()
    with pytest.raises(DirectoryNotFound):
        d.find_group_dn(f"{sam[:-1]}*")  # a pattern that would match it, were "*" not escaped


def test_missing_groups_and_nul_are_refused(d, ou):
    with pytest.raises(DirectoryNotFound):
        d.find_group_dn(f"no-such-{unique_tag()}")
    with pytest.raises(DirectoryRejected):
        d.find_group_dn("Ops\x00x")
    with pytest.raises(DirectoryNotFound):
        d.group_people(f"CN=none-{unique_tag()},{ou}")
