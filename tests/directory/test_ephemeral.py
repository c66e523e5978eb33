"""Ephemeral accounts against the real Samba DC: create, bind, disable, delete, list, and the refusals."""
import logging
import uuid

import pytest

from jitad.directory import DirectoryNotManaged, DirectoryRejected, EphemeralAccount, ephemeral_sam, password_works, rdn

from .helpers import ad_add, ad_entry, unique_tag, user_bind


def _password() -> str:
    return "Ep-" + uuid.uuid4().hex + "!7a"


def _sam() -> str:
    return f"eph-{unique_tag()}"


def _create(d, ou, sam=None, password=None, **kw):
    sam = sam or _sam()
    password = password or _password()
    user = d.ephemeral_create(ou_dn=ou, sam=sam, password=password, description=kw.get("description", "session 1"),
                              info=kw.get("info", "for jdoe on SRV01"))
    return user, password


def test_create_bind_disable_delete(d, ou, admin, samba_dc):
    sam = _sam()
    user, password = _create(d, ou, sam=sam, description="jit session 42", info="jdoe on SRV01")
    assert user.sam_account_name == sam
    assert user.dn.lower() == f"cn={sam},{ou}".lower()
    assert user.upn == f"{sam}@{samba_dc.base_dn.replace('DC=', '').replace(',', '.').lower()}"
    assert not user.disabled and user.sid.startswith("S-1-5-21-")
    entry = ad_entry(admin, user.dn, "description", "info", "userAccountControl")
    assert str(entry.description) == "jit session 42" and str(entry.info) == "jdoe on SRV01"
    assert not int(str(entry.userAccountControl)) & 2

    assert password_works(user.dn, password)
    assert user_bind(samba_dc, user.dn, password)
    assert not password_works(user.dn, password + "x")

    assert d.ephemeral_disable(user.dn) is True
    assert int(str(ad_entry(admin, user.dn, "userAccountControl").userAccountControl)) & 2
    assert not user_bind(samba_dc, user.dn, password)

    assert d.ephemeral_delete(user.dn) is True
    assert ad_entry(admin, user.dn) is None
    assert d.ephemeral_list(ou) == []


def test_disable_and_delete_are_idempotent(d, ou, admin):
    user, _ = _create(d, ou)
    assert d.ephemeral_disable(user.dn) is True
    assert d.ephemeral_disable(user.dn) is False
    assert d.ephemeral_delete(user.dn) is True
    assert d.ephemeral_delete(user.dn) is False
    assert d.ephemeral_disable(user.dn) is False  # gone: nothing can log on with it
    assert ad_entry(admin, user.dn) is None


def test_delete_disables_first_and_removes_an_enabled_account(d, ou, admin):
    user, _ = _create(d, ou)
    assert d.ephemeral_delete(user.dn) is True
    assert ad_entry(admin, user.dn) is None


def test_create_refuses_an_existing_account(d, ou, admin):
    user, password = _create(d, ou)
    with pytest.raises(DirectoryRejected, match="already exists"):
        d.ephemeral_create(ou_dn=ou, sam=user.sam_account_name, password=_password(), description="", info="")
    assert password_works(user.dn, password)  # the first account is untouched


def test_create_refuses_an_ou_outside_the_jit_ou(d, samba_dc, admin, jit_ou):
    sam = _sam()
    for ou_dn in (f"CN=Users,{samba_dc.base_dn}", samba_dc.base_dn, samba_dc.jit_ou.replace("OU=JIT", "OU=JIT-old"),
                  "CN=x)(objectClass=*", ""):
        with pytest.raises(DirectoryNotManaged):
            d.ephemeral_create(ou_dn=ou_dn, sam=sam, password=_password(), description="", info="")
    admin.search(samba_dc.base_dn, f"(sAMAccountName={sam})", attributes=["cn"])
    assert not admin.entries


@pytest.mark.parametrize("sam", [
    "", "Upper", "-lead", ".lead", "a" * 21, "a)(cn=*", "a*", "a,b", "a=b", "a\\b", "a\x00b", "a b", "a+b",
    'a"b', "a<b", "a;b", "a#", "é", None,
])
def test_create_refuses_hostile_or_bad_names(d, ou, admin, sam):
    with pytest.raises(DirectoryNotManaged):
        d.ephemeral_create(ou_dn=ou, sam=sam, password=_password(), description="", info="")
    assert d.ephemeral_list(ou) == []


def test_a_refused_password_leaves_no_account_and_no_password_in_the_message(d, ou, admin, caplog):
    sam = _sam()
    password = "Zq7!x"  # shorter than the domain's minimum
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DirectoryRejected) as caught:
        d.ephemeral_create(ou_dn=ou, sam=sam, password=password, description="", info="")
    message = str(caught.value)
    assert sam in message and "password" in message
    assert password not in message and password not in repr(caught.value)
    chained = caught.value.__cause__ or caught.value.__context__
    assert chained is None or caught.value.__suppress_context__
    assert password not in caplog.text
    assert ad_entry(admin, f"CN={sam},{ou}") is None
    assert d.ephemeral_list(ou) == []


def test_disable_and_delete_refuse_what_is_not_an_ephemeral_account(d, ou, admin, samba_dc):
    admin_dn = samba_dc.admin_dn
    group_dn = d.ensure_group(f"g-{unique_tag()}", ou)
    outside = [admin_dn, f"CN=Guest,CN=Users,{samba_dc.base_dn}", f"CN=x,{samba_dc.jit_ou}".replace("OU=JIT", "OU=JIT-old"),
               "not a dn", "CN=x)(objectClass=*,OU=nowhere"]
    for verb in (d.ephemeral_disable, d.ephemeral_delete):
        with pytest.raises(DirectoryNotManaged, match="not a user"):
            verb(group_dn)
        with pytest.raises(DirectoryNotManaged):
            verb(ou)  # an OU: its parent is the session OU, but it is no user
        for dn in outside:
            with pytest.raises(DirectoryNotManaged):
                verb(dn)
    assert ad_entry(admin, group_dn) is not None
    assert ad_entry(admin, admin_dn) is not None


def test_a_computer_under_the_jit_ou_is_not_an_ephemeral_account(d, ou, admin):
    name = f"pc{unique_tag()}"[:15]
    dn = ad_add(admin, f"CN={name},{ou}", ["top", "person", "organizationalPerson", "user", "computer"],
                {"sAMAccountName": name + "$"})
    for verb in (d.ephemeral_disable, d.ephemeral_delete):
        with pytest.raises(DirectoryNotManaged, match="not a user"):
            verb(dn)
    assert ad_entry(admin, dn) is not None


def test_hostile_characters_in_the_ou_are_escaped_not_interpreted(d, jit_ou, admin):
    ou = f"{rdn('OU', f't-{unique_tag()} (a,b=c*)#+;')},{jit_ou}"
    d.ensure_ou(ou)
    user, password = _create(d, ou)
    assert password_works(user.dn, password)
    [listed] = d.ephemeral_list(ou)
    assert listed.sam == user.sam_account_name
    assert d.ephemeral_delete(user.dn) is True
    assert d.ephemeral_list(ou) == []


def test_list_finds_exactly_the_created_accounts(d, ou, admin, jit_ou):
    d.ensure_user(f"person-{unique_tag()}", jit_ou)  # one level up: not in this OU
    made = [_create(d, ou, description=f"s{i}", info=f"i{i}")[0] for i in range(3)]
    d.ensure_group(f"g-{unique_tag()}", ou)  # a group in the same OU is no account
    child = f"OU=child-{unique_tag()},{ou}"
    d.ensure_ou(child)
    _create(d, child)  # in a child OU: not in this OU
    d.ephemeral_disable(made[1].dn)

    listed = d.ephemeral_list(ou)
    assert all(isinstance(a, EphemeralAccount) for a in listed)
    assert {(a.sam, a.sid) for a in listed} == {(u.sam_account_name, u.sid) for u in made}
    by_sam = {a.sam: a for a in listed}
    for i, u in enumerate(made):
        a = by_sam[u.sam_account_name]
        assert a.dn.lower() == u.dn.lower()
        assert (a.description, a.info, a.disabled) == (f"s{i}", f"i{i}", i == 1)
    with pytest.raises(Exception):
        listed[0].sam = "x"  # frozen


def test_list_refuses_an_ou_outside_the_jit_ou(d, samba_dc):
    with pytest.raises(DirectoryNotManaged):
        d.ephemeral_list(f"CN=Users,{samba_dc.base_dn}")


@pytest.mark.parametrize("username, suffix, expected", [
    ("jdoe", "a1b2", "jdoe-a1b2"),
    ("JDoe", "A1B2", "jdoe-a1b2"),
    ("CORP\\jdoe", "s1", "jdoe-s1"),
    ("jdoe@corp.example", "s1", "jdoe-s1"),
    ("john.o'brien-smith_x", "abc123", "john.obrien-s-abc123"),
    ("a" * 40, "123456", "a" * 13 + "-123456"),
    ("Zoë Ångström", "x", "zongstrm-x"),
    (".-_jdoe", "x", "jdoe-x"),
])
def test_ephemeral_sam(username, suffix, expected):
    sam = ephemeral_sam(username, suffix)
    assert sam == expected
    assert len(sam) <= 20


@pytest.mark.parametrize("username, suffix", [
    ("", "x"), ("***", "x"), ("jdoe", ""), ("jdoe", "!!"), ("jdoe", "s" * 19),
])
def test_ephemeral_sam_refuses_what_cannot_make_a_name(username, suffix):
    with pytest.raises(ValueError):
        ephemeral_sam(username, suffix)
