"""What the seam reads of a group jitad is asked to manage, and the rules it applies to it (real Samba DC)."""
import pytest
from ldap3 import MODIFY_REPLACE

from jitad import directory
from jitad.directory import DirectoryRejected, DirectoryUnavailable, GroupFacts

from .helpers import unique_tag

DEAD_URL = "ldaps://127.0.0.1:1"  # nothing listens on port 1: refused at once


def test_group_facts_of_a_group_a_user_and_nothing(d, ou):
    group = d.ensure_group(f"g{unique_tag()}", ou)
    user = d.ensure_user(f"u{unique_tag()}", ou)

    facts = d.group_facts(group)
    assert (facts.exists, facts.is_group, facts.admin_count) == (True, True, 0)
    assert facts.sid == d.object_sid(group)
    assert (d.group_facts(user).exists, d.group_facts(user).is_group) == (True, False)
    missing = f"CN=nothing-{unique_tag()},{ou}"
    assert d.group_facts(missing) == GroupFacts(dn=missing, exists=False)


def test_group_facts_reads_admin_count(d, ou, admin, samba_dc):
    group = d.ensure_group(f"g{unique_tag()}", ou)
    assert admin.modify(group, {"adminCount": [(MODIFY_REPLACE, [1])]}), admin.result

    assert d.group_facts(group).admin_count == 1
    domain_admins = d.group_facts(f"CN=Domain Admins,CN=Users,{samba_dc.base_dn}")
    assert domain_admins.admin_count == 1 and domain_admins.sid.endswith("-512")


def test_a_dn_with_filter_characters_is_sent_escaped(d, ou):
    """GIVEN a group whose name holds ``)(objectClass=*`` WHEN it is read by the DN a person would
    type (``=`` unescaped, which Samba refuses as invalid DN syntax) THEN the seam escapes it and finds it."""
    name = f"x)(objectClass=*{unique_tag()}"
    d.ensure_group(name, ou)

    facts = d.group_facts(f"CN={name},{ou}")

    assert facts.exists and facts.is_group


@pytest.mark.parametrize("dn", ["CN=x,,OU=JIT,DC=jitad,DC=test", "JIT-SRV01-Admins", "CN=x\x00,OU=JIT,DC=jitad,DC=test",
                                "", "<SID=S-1-5-21-1-2-3-512>"])
def test_a_malformed_dn_is_refused_without_reaching_the_dc(d, ou, dn):
    d.close()  # any read on a closed connection fails as unavailable: the refusal comes first
    with pytest.raises(DirectoryUnavailable):
        d.group_facts(f"CN=x,{ou}")

    with pytest.raises(DirectoryRejected, match="not a valid DN"):
        d.group_facts(dn)


def test_group_problems_applies_every_rule(settings, d, ou, samba_dc):
    """GIVEN CN=Users counted as a JIT OU too (so protected groups get as far as the DC) WHEN each
    kind of DN is checked THEN each answer says why, and a group jitad may manage has none."""
    base = samba_dc.base_dn
    settings.JITAD_LDAP_JIT_OU = f"{samba_dc.jit_ou};CN=Users,{base}"
    good = d.ensure_group(f"g{unique_tag()}", ou)
    user = d.ensure_user(f"u{unique_tag()}", ou)
    missing = f"CN=missing-{unique_tag()},{ou}"
    cases = {
        good: "",
        missing: "it does not exist in AD",
        user: "it is not a group in AD",
        f"CN=Domain Admins,CN=Users,{base}": "it is a well-known privileged group (RID 512)",
        f"CN=Cert Publishers,CN=Users,{base}": "it is a well-known privileged group (RID 517)",
        f"CN=Administrators,CN=Builtin,{base}": f"it is not under the JIT OU ({samba_dc.jit_ou}; CN=Users,{base})",
        "CN=x)(objectClass=*": f"it is not under the JIT OU ({samba_dc.jit_ou}; CN=Users,{base})",
        f"CN=x,,{ou}": "it is not a well-formed DN",
    }

    assert directory.group_problems(list(cases)) == cases


def test_group_problems_needs_a_dc_only_for_dns_that_pass_the_rules(settings, samba_dc):
    settings.JITAD_LDAP_URLS = [DEAD_URL]

    assert directory.group_problems(["CN=Domain Admins,CN=Users,DC=jitad,DC=test"]) == {
        "CN=Domain Admins,CN=Users,DC=jitad,DC=test": f"it is not under the JIT OU ({samba_dc.jit_ou})"}
    with pytest.raises(DirectoryUnavailable, match="no domain controller answered"):
        directory.group_problems([f"CN=JIT-SRV01-Admins,{samba_dc.jit_ou}"])


def test_a_jit_group_nested_into_domain_admins_is_refused(d, ou, admin, samba_dc):
    """GIVEN a group under the JIT OU nested (through a group in between) into Domain Admins WHEN the
    policy rules ask about it, or jitad is asked to add a member to it THEN both refuse, naming Domain
    Admins, and the DC is unchanged; a removal from it still goes ahead (taking a right away is wanted).
    Taken out of Domain Admins again, it is a group jitad manages."""
    from ldap3 import MODIFY_ADD, MODIFY_DELETE

    domain_admins = f"CN=Domain Admins,CN=Users,{samba_dc.base_dn}"
    jit = d.ensure_group(f"g{unique_tag()}", ou)
    between = d.ensure_group(f"b{unique_tag()}", ou)
    user = d.ensure_user(f"u{unique_tag()}", ou)
    held = d.ensure_user(f"h{unique_tag()}", ou)
    d.add_member(jit, held)
    d.add_member(between, jit)
    assert admin.modify(domain_admins, {"member": [(MODIFY_ADD, [between])]}), admin.result
    try:
        parents = {directory.normalize_dn(p[0]) for p in d.group_facts(jit).protected_parents}
        assert directory.normalize_dn(domain_admins) in parents and directory.normalize_dn(between) not in parents
        why = directory.group_problems([jit])[jit]
        assert why.startswith("it is nested into the protected group(s) ") and "Domain Admins" in why
        with pytest.raises(directory.DirectoryNotManaged, match="nested into the protected group.*Domain Admins"):
            d.add_member(jit, user)
        assert not d.is_member(jit, user)
        assert d.remove_member(jit, held) is True
    finally:
        assert admin.modify(domain_admins, {"member": [(MODIFY_DELETE, [between])]}), admin.result
    assert directory.group_problems([jit]) == {jit: ""}
    assert d.add_member(jit, user) is True


def test_nesting_is_found_from_the_domain_root_when_the_base_dn_is_an_ou(settings, ou, admin, samba_dc):
    """GIVEN a base DN narrowed to an OU (where the people are; Domain Admins sits in CN=Users, outside
    it) and a JIT group nested into Domain Admins WHEN the seam reads the group THEN the nesting is still
    found: protected groups are looked for from the root of the group's own domain."""
    from ldap3 import MODIFY_ADD, MODIFY_DELETE

    settings.JITAD_LDAP_BASE_DN = ou
    domain_admins = f"CN=Domain Admins,CN=Users,{samba_dc.base_dn}"
    with directory.connect() as d:
        jit = d.ensure_group(f"g{unique_tag()}", ou)
        assert admin.modify(domain_admins, {"member": [(MODIFY_ADD, [jit])]}), admin.result
        try:
            parents = {directory.normalize_dn(p[0]) for p in d.group_facts(jit).protected_parents}
        finally:
            assert admin.modify(domain_admins, {"member": [(MODIFY_DELETE, [jit])]}), admin.result
    assert directory.normalize_dn(domain_admins) in parents


def test_the_search_for_protected_parents_runs_only_for_a_group_that_is_a_member(d, ou, admin, samba_dc,
                                                                                 monkeypatch):
    """GIVEN a group in no group WHEN its facts are read THEN the domain-wide search for protected groups
    holding it is skipped (no memberOf value: nothing can hold it); nested into a plain group it runs and
    finds nothing; put straight into Domain Admins it finds Domain Admins and an add is refused."""
    from ldap3 import MODIFY_ADD, MODIFY_DELETE

    from jitad.directory.client import Directory

    searched = []
    real = Directory._protected_parents
    monkeypatch.setattr(Directory, "_protected_parents", lambda self, dn, sid: searched.append(dn) or real(self, dn, sid))
    jit = d.ensure_group(f"g{unique_tag()}", ou)
    plain = d.ensure_group(f"p{unique_tag()}", ou)
    user = d.ensure_user(f"u{unique_tag()}", ou)

    assert d.group_facts(jit).protected_parents == () and searched == []
    d.add_member(plain, jit)
    searched.clear()
    assert d.group_facts(jit).protected_parents == () and len(searched) == 1

    domain_admins = f"CN=Domain Admins,CN=Users,{samba_dc.base_dn}"
    assert admin.modify(domain_admins, {"member": [(MODIFY_ADD, [jit])]}), admin.result
    try:
        parents = {directory.normalize_dn(p[0]) for p in d.group_facts(jit).protected_parents}
        assert directory.normalize_dn(domain_admins) in parents
        with pytest.raises(directory.DirectoryNotManaged, match="Domain Admins"):
            d.add_member(jit, user)
        assert not d.is_member(jit, user)
    finally:
        assert admin.modify(domain_admins, {"member": [(MODIFY_DELETE, [jit])]}), admin.result
