"""The change feed (DirSync) against the real Samba DC: which JIT groups changed since a cookie."""
import dataclasses
import ssl
import uuid

import pytest
from ldap3 import MODIFY_ADD, MODIFY_DELETE, SUBTREE, Connection, Server, Tls
from ldap3.protocol.microsoft import dir_sync_control

from jitad import directory

from .helpers import unique_tag

pytestmark = pytest.mark.django_db


def _drain(d, cookie):
    """Read the feed until nothing is left (changes other tests made meanwhile); the cookie after."""
    for _ in range(20):
        changes = d.groups_changed(cookie)
        cookie = changes.cookie
        if not changes.groups:
            return cookie
    raise AssertionError("the feed never ran dry")


def _put(admin, group_dn, member_dn, op=MODIFY_ADD):
    assert admin.modify(group_dn, {"member": [(op, [member_dn])]}), admin.result


@pytest.fixture
def outside(admin, samba_dc):
    """An OU outside the JIT OU, with a group in it."""
    ou = f"OU=outside-{unique_tag()},{samba_dc.base_dn}"
    assert admin.add(ou, "organizationalUnit"), admin.result
    tag = unique_tag()
    group = f"CN=Outside-{tag},{ou}"
    assert admin.add(group, "group", {"sAMAccountName": f"Outside-{tag}"}), admin.result
    return group


def test_the_first_read_starts_over_and_is_not_a_list_of_changes(d, ou):
    """GIVEN groups with members under the JIT OU WHEN the feed is read without a cookie THEN it says
    "start over" with a cookie of this DC, and lists no group as changed."""
    group = d.ensure_group(f"G-{unique_tag()}", ou)
    d.ensure_member(group, d.ensure_user(f"u{unique_tag()}", ou))

    first = d.groups_changed(None)

    assert first.restarted and first.groups == () and first.cookie
    assert first.dc == d.dc
    assert first.dc.startswith("CN=NTDS Settings,CN=DC1,")  # the DC's own name, not the URL jitad reached it at


def test_only_changed_groups_under_the_jit_ou_are_reported(d, ou, admin, outside):
    """GIVEN a cookie WHEN a member goes into a JIT group and into a group outside the JIT OU THEN the next
    read reports the JIT group only, and once read, not again; a removal alone lets nobody in and is not
    reported, a removal beside an add is."""
    changed = d.ensure_group(f"G-{unique_tag()}", ou)
    quiet = d.ensure_group(f"G-{unique_tag()}", ou)
    person = d.ensure_user(f"u{unique_tag()}", ou)
    cookie = _drain(d, d.groups_changed(None).cookie)

    _put(admin, changed, person)
    _put(admin, outside, person)
    after_add = d.groups_changed(cookie)

    assert not after_add.restarted
    assert changed in after_add.groups
    assert quiet not in after_add.groups
    assert outside not in after_add.groups
    assert all(directory.under_jit_ou(dn) for dn in after_add.groups)

    assert changed not in d.groups_changed(after_add.cookie).groups

    _put(admin, changed, person, MODIFY_DELETE)
    after_remove = d.groups_changed(after_add.cookie)
    assert changed not in after_remove.groups and not after_remove.restarted

    other = d.ensure_user(f"u{unique_tag()}", ou)
    _put(admin, changed, other)
    _put(admin, changed, other, MODIFY_DELETE)
    _put(admin, changed, person)
    assert changed in d.groups_changed(after_remove.cookie).groups


def test_a_cookie_the_dc_refuses_starts_over(d, ou, admin):
    """GIVEN a cookie the DC cannot use (another system's, or damaged) WHEN the feed is read with it THEN
    the answer is "start over" with a fresh cookie, which then works; no error reaches the caller."""
    refused = d.groups_changed(b"MSDS" + uuid.uuid4().bytes)

    assert refused.restarted and refused.groups == ()
    group = d.ensure_group(f"G-{unique_tag()}", ou)
    cookie = _drain(d, refused.cookie)
    _put(admin, group, d.ensure_user(f"u{unique_tag()}", ou))
    assert group in d.groups_changed(cookie).groups


def test_an_account_without_replication_rights_reads_the_feed(d, ou, admin, dir_config, samba_dc):
    """GIVEN jitad bound as a plain domain user (no "Replicating Directory Changes" right, as a delegated
    service account on Windows), which the DC refuses a DirSync without the object-security flag WHEN it
    reads the feed THEN the DC answers (the seam sends the flag) and reports a change to a JIT group."""
    password = "Svc-" + uuid.uuid4().hex
    account = d.ensure_user(f"svc{unique_tag()}", ou, password=password)
    group = d.ensure_group(f"G-{unique_tag()}", ou)
    config = dataclasses.replace(dir_config, bind_dn=account, bind_password=password)
    bare = Connection(Server(samba_dc.ldaps_url, tls=Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=samba_dc.ca_file,
                                                         valid_names=[samba_dc.tls_name])), account, password,
                      auto_bind=True)
    without_flag = dir_sync_control(criticality=True, object_security=False, ancestors_first=False,
                                    public_data_only=False, incremental_values=True, max_length=1 << 20, cookie=None)
    bare.search(samba_dc.base_dn, "(objectClass=group)", SUBTREE, attributes=["member"], controls=[without_flag])
    assert bare.result["result"] == 50, bare.result  # insufficientAccessRights: the replication right is missing
    bare.unbind()

    with directory.connect(config) as plain:
        cookie = _drain(plain, plain.groups_changed(None).cookie)
        _put(admin, group, d.ensure_user(f"u{unique_tag()}", ou))
        assert group in plain.groups_changed(cookie).groups


def test_a_base_that_is_not_a_naming_context_is_never_used(d, dir_config):
    """GIVEN JITAD_LDAP_BASE_DN set below the domain root WHEN the feed is read THEN it still reads from the
    naming context holding the JIT OU (DirSync refuses any other base)."""
    config = dataclasses.replace(dir_config, base_dn=f"CN=Users,{dir_config.base_dn}")

    with directory.connect(config) as other:
        assert other.groups_changed(None).restarted
