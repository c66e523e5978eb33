"""The rules of which groups jitad may touch (no DC needed: pure DN and SID rules)."""
import pytest

from jitad.directory import DirectoryNotManaged, managed

OU = "OU=JIT,DC=jitad,DC=test"


@pytest.mark.parametrize("dn", [
    "CN=JIT-SRV01-Admins,OU=JIT,DC=jitad,DC=test",
    "cn=jit-srv01-admins,ou=jit,dc=JITAD,dc=test",
    "CN=a\\,b,OU=Servers,OU=JIT,DC=jitad,DC=test",
    "CN=x,OU=JIT , DC=jitad,DC=test",
])
def test_groups_below_the_jit_ou_are_managed(dn):
    assert managed.under_jit_ou(dn, (OU,))


@pytest.mark.parametrize("dn", [
    "CN=Domain Admins,CN=Users,DC=jitad,DC=test",
    "OU=JIT,DC=jitad,DC=test",  # the OU itself
    "CN=x,OU=JIT-old,DC=jitad,DC=test",
    "CN=x,OU=JIT,DC=other,DC=test",
    "CN=x)(objectClass=*",
    "CN=x\\,OU=JIT,DC=jitad,DC=test",  # the comma is part of the value: not below the OU
    "",
    "CN=x,OU=JIT,DC=jitad,DC=test\x00",
    "CN=x+OU=JIT,DC=jitad,DC=test",  # one multi-valued RDN, not a child of the OU
    "CN=x+CN=y,OU=JIT,DC=jitad,DC=test",  # AD allows no multi-valued RDN
])
def test_anything_else_is_not(dn):
    assert not managed.under_jit_ou(dn, (OU,))


def test_several_ous_separated_by_semicolons(settings):
    settings.JITAD_LDAP_JIT_OU = f"{OU}; OU=Tier0-JIT,DC=jitad,DC=test ;"
    assert managed.jit_ous() == (OU, "OU=Tier0-JIT,DC=jitad,DC=test")
    assert managed.under_jit_ou("CN=t0,OU=Tier0-JIT,DC=jitad,DC=test")


def test_no_jit_ou_configured_means_nothing_is_managed(settings):
    settings.JITAD_LDAP_JIT_OU = ""
    with pytest.raises(DirectoryNotManaged, match="not set"):
        managed.require_managed("CN=x,OU=JIT,DC=jitad,DC=test")


@pytest.mark.parametrize("sid,admin_count,why", [
    ("S-1-5-21-1-2-3-512", None, "RID 512"),
    ("S-1-5-32-544", "0", "RID 544"),
    ("S-1-5-21-1-2-3-1105", "1", "adminCount=1"),
    ("S-1-5-21-1-2-3-1105", None, ""),
])
def test_protected_groups(sid, admin_count, why):
    assert why in managed.protected(sid, admin_count) if why else managed.protected(sid, admin_count) == ""


@pytest.mark.parametrize("dn,why", [
    ("CN=JIT-SRV01-Admins,OU=JIT,DC=jitad,DC=test", ""),
    ("CN=Domain Admins,CN=Users,DC=jitad,DC=test", f"it is not under the JIT OU ({OU})"),
    ("CN=x)(objectClass=*", f"it is not under the JIT OU ({OU})"),
    ("CN=x,,OU=JIT,DC=jitad,DC=test", "it is not a well-formed DN"),
    ("JIT-SRV01-Admins", "it is not a well-formed DN"),
])
def test_placement_problem_judges_the_dn_alone(settings, dn, why):
    settings.JITAD_LDAP_JIT_OU = OU
    assert managed.placement_problem(dn) == why


def test_placement_problem_without_a_jit_ou(settings):
    settings.JITAD_LDAP_JIT_OU = ""
    assert "JITAD_LDAP_JIT_OU is not set" in managed.placement_problem("CN=x,OU=JIT,DC=jitad,DC=test")


@pytest.mark.parametrize("value,problems", [
    (OU, []),
    (f"{OU};OU=Tier0,OU=JIT,DC=jitad,DC=test", []),
    ("CN=Users,DC=jitad,DC=test", ["'CN=Users,DC=jitad,DC=test' is not an OU: its first RDN must be OU="]),
    ("DC=jitad,DC=test", ["'DC=jitad,DC=test' is not an OU: its first RDN must be OU="]),
    (f"{OU};JIT", ["'JIT' is not a well-formed DN"]),
])
def test_jit_ou_problems(value, problems):
    assert managed.jit_ou_problems(value) == problems


def test_the_system_check_of_the_jit_ou(settings):
    """A malformed JIT OU is an error everywhere; a missing one is an error in production and a
    warning where a DC is configured."""
    from jitad.directory.checks import jit_ou_check

    settings.JITAD_LDAP_JIT_OU = "CN=Users,DC=jitad,DC=test"
    assert [c.id for c in jit_ou_check()] == ["jitad.directory.E001"]
    settings.JITAD_LDAP_JIT_OU = OU
    assert jit_ou_check() == []
    settings.JITAD_LDAP_JIT_OU = ""
    settings.JITAD_LDAP_URLS = []
    assert jit_ou_check() == []
    settings.JITAD_LDAP_URLS = ["ldaps://dc1.jitad.test"]
    assert [c.id for c in jit_ou_check()] == ["jitad.directory.W001"]
    settings.PRODUCTION = True
    assert [c.id for c in jit_ou_check()] == ["jitad.directory.E002"]
