"""The least-privilege delegation ops/README.md documents for a Samba DC, applied as written.

The shell block under the ``samba-delegation`` marker in ops/README.md is read from the
file and run as it stands; only the two variables an operator sets (``JIT_OU``,
``ACCOUNT``) get this test's values, and ``SMB_CONF_PATH`` points samba-tool at the
session's DC (an operator's DC reads its default smb.conf). Then jitad's service account,
bound with only that delegation, is shown to do exactly what jitad needs and no more.
"""
import os
import re
import ssl
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, Connection, Server, Tls

from jitad import directory
from tests.directory.helpers import ad_has_member

REPO = Path(__file__).resolve().parents[2]
MARKER = "<!-- samba-delegation:"
EPHEMERAL_MARKER = "<!-- samba-ephemeral-delegation:"
INSUFFICIENT_ACCESS = 50


def documented_recipe(marker: str = MARKER) -> str:
    """The shell block right after the marker in ops/README.md, exactly as an operator reads it."""
    text = (REPO / "ops" / "README.md").read_text()
    assert marker in text, "ops/README.md lost the Samba delegation recipe"
    block = re.search(r"```sh\n(.*?)```", text[text.index(marker):], re.S)
    assert block, "no ```sh block after the samba-delegation marker"
    return block.group(1)


def with_values(recipe: str, **values: str) -> str:
    """``recipe`` with the operator's variables set (each must be assigned exactly once, on its own line)."""
    for name, value in values.items():
        recipe, count = re.subn(rf"^{name}='[^']*'", f"{name}='{value}'", recipe, flags=re.M)
        assert count == 1, f"the recipe should set {name}=... once"
    return recipe


def as_account(samba_dc, dn: str, password: str) -> Connection:
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=samba_dc.ca_file, valid_names=[samba_dc.tls_name])
    return Connection(Server(samba_dc.ldaps_url, tls=tls, connect_timeout=5), dn, password, auto_bind=True,
                      raise_exceptions=False, receive_timeout=10)


def refused(conn: Connection, ok: bool) -> bool:
    return not ok and conn.result["result"] == INSUFFICIENT_ACCESS


@pytest.mark.parametrize("marker", [MARKER, EPHEMERAL_MARKER])
def test_the_recipe_uses_only_the_operators_variables(marker):
    """No DN or account name is written into the commands themselves: setting the two variables is enough."""
    commands = [line for line in documented_recipe(marker).splitlines()
                if not re.match(r"(JIT_OU|EPHEMERAL_OU|ACCOUNT)=", line)]
    assert not any(re.search(r"DC=|svc-jitad", line) for line in commands), commands


def test_samba_delegation_recipe_gives_member_writes_under_the_jit_ou_only(samba_dc, ou, admin):
    """GIVEN a service account with no rights, a group under a JIT OU made before the delegation
    and one made after, and a group in CN=Users WHEN the documented recipe is run THEN the account
    adds and removes members of both JIT groups (through jitad's own seam) and is refused
    (insufficient access) on the group outside the OU, on any other attribute, and on creating
    or deleting objects in the OU."""
    tag = uuid.uuid4().hex[:6]
    password = "Svc-" + uuid.uuid4().hex
    users = f"CN=Users,{samba_dc.base_dn}"
    with directory.connect() as d:
        account_dn = d.ensure_user(f"svcjit{tag}", users, password=password)
        person_dn = d.ensure_user(f"person{tag}", users, password="Pw-" + uuid.uuid4().hex)
        before = d.ensure_group(f"JIT-before-{tag}", ou)
        outside = d.ensure_group(f"notjit-{tag}", users)

    svc = as_account(samba_dc, account_dn, password)
    try:
        # Without the delegation the account cannot write member anywhere: the test below proves the recipe.
        assert refused(svc, svc.modify(before, {"member": [(MODIFY_ADD, [person_dn])]}))

        env = {**os.environ, "SMB_CONF_PATH": str(samba_dc.smb_conf)}
        script = with_values(documented_recipe(), JIT_OU=ou, ACCOUNT=f"svcjit{tag}")
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        with directory.connect() as d:
            sid = d.object_sid(account_dn)
        assert sid in run.stdout  # the recipe's own check printed the entry

        with directory.connect() as d:
            after = d.ensure_group(f"JIT-after-{tag}", ou)
        config = replace(directory.DirectoryConfig.from_settings(), bind_dn=account_dn, bind_password=password,
                         jit_ou=ou)
        with directory.connect(config) as jitad_as_svc:
            for group in (before, after):
                assert jitad_as_svc.add_member(group, person_dn) is True
                assert ad_has_member(admin, group, person_dn)
                assert jitad_as_svc.remove_member(group, person_dn) is True
                assert not ad_has_member(admin, group, person_dn)

        # Outside the OU: refused by the DC itself (jitad's seam would not even try).
        assert refused(svc, svc.modify(outside, {"member": [(MODIFY_ADD, [person_dn])]}))
        assert not ad_has_member(admin, outside, person_dn)
        assert admin.modify(outside, {"member": [(MODIFY_ADD, [person_dn])]}), admin.result
        assert refused(svc, svc.modify(outside, {"member": [(MODIFY_DELETE, [person_dn])]}))
        assert ad_has_member(admin, outside, person_dn)
        # Under the OU: member only; no other attribute, no new or deleted objects.
        assert refused(svc, svc.modify(after, {"description": [(MODIFY_REPLACE, ["changed"])]}))
        assert refused(svc, svc.add(f"CN=JIT-new-{tag},{ou}", ["top", "group"], {"sAMAccountName": f"jitnew{tag}"}))
        assert refused(svc, svc.delete(after))
        assert refused(svc, svc.modify(ou, {"description": [(MODIFY_REPLACE, ["changed"])]}))
    finally:
        svc.unbind()


@pytest.mark.parametrize("name", ["JIT_OU", "ACCOUNT"])
def test_a_recipe_without_the_variable_is_caught(name):
    with pytest.raises(AssertionError, match=name):
        with_values(documented_recipe().replace(f"{name}=", f"#{name}="), **{name: "x"})


def test_samba_ephemeral_recipe_lets_jitad_manage_accounts_in_that_ou_only(samba_dc, ou, admin):
    """GIVEN a service account with no rights and an ephemeral OU WHEN the documented recipe is run
    THEN jitad's own verbs, bound as that account, create an account there with a password that
    binds, disable it and delete it; and the DC refuses the account creating a user elsewhere,
    resetting a person's password, or changing another attribute of an account in the OU."""
    from tests.directory.helpers import user_bind

    tag = uuid.uuid4().hex[:6]
    password = "Svc-" + uuid.uuid4().hex
    users = f"CN=Users,{samba_dc.base_dn}"
    eph = f"OU=eph-{tag},{ou}"
    with directory.connect() as d:
        account_dn = d.ensure_user(f"svceph{tag}", users, password=password)
        person_dn = d.ensure_user(f"person{tag}", users, password="Pw-" + uuid.uuid4().hex)
        d.ensure_ou(eph)
    svc = as_account(samba_dc, account_dn, password)
    try:
        assert refused(svc, svc.add(f"CN=pre-{tag},{eph}", ["top", "person", "organizationalPerson", "user"],
                                    {"sAMAccountName": f"pre{tag}"}))

        env = {**os.environ, "SMB_CONF_PATH": str(samba_dc.smb_conf)}
        script = with_values(documented_recipe(EPHEMERAL_MARKER), EPHEMERAL_OU=eph, ACCOUNT=f"svceph{tag}")
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]

        config = replace(directory.DirectoryConfig.from_settings(), bind_dn=account_dn, bind_password=password,
                         jit_ou=ou)
        secret = "Ep-" + uuid.uuid4().hex + "!7a"
        with directory.connect(config) as jitad_as_svc:
            made = jitad_as_svc.ephemeral_create(ou_dn=eph, sam=f"eph-{tag}", password=secret, description="test",
                                                 info="jitad grant #0")
            assert user_bind(samba_dc, made.dn, secret)
            assert jitad_as_svc.ephemeral_disable(made.dn) is True
            assert not user_bind(samba_dc, made.dn, secret)
            assert jitad_as_svc.ephemeral_delete(made.dn) is True
            again = jitad_as_svc.ephemeral_create(ou_dn=eph, sam=f"eph2-{tag}", password=secret, description="",
                                                  info="")
        # What the delegation does not give:
        assert refused(svc, svc.add(f"CN=out-{tag},{ou}", ["top", "person", "organizationalPerson", "user"],
                                    {"sAMAccountName": f"out{tag}"}))
        assert refused(svc, svc.modify(person_dn, {"unicodePwd": [(MODIFY_REPLACE, ['"New-pw-1234567"'.encode("utf-16-le")])]}))
        assert refused(svc, svc.modify(person_dn, {"userAccountControl": [(MODIFY_REPLACE, ["514"])]}))
        assert refused(svc, svc.modify(again.dn, {"scriptPath": [(MODIFY_REPLACE, ["evil.bat"])]}))
        assert refused(svc, svc.delete(eph))
    finally:
        svc.unbind()
