"""The demo's first steps (ops/demo.py): the seed creates the example policy file's groups under
the JIT OU, so the example applies cleanly against a fresh demo DC.

Against the session's Samba DC, whose JIT OU (OU=JIT,DC=jitad,DC=test) is the one the example names.
"""
import json
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from jitad import directory

EXAMPLE = Path(__file__).resolve().parents[2] / "ops" / "policy.example.yaml"
pytestmark = pytest.mark.django_db


def example_groups() -> list[str]:
    """Every group the example names: each target's group and standing members."""
    targets = yaml.safe_load(EXAMPLE.read_text())["targets"]
    return list(dict.fromkeys([t["group"] for t in targets] + [m for t in targets for m in t.get("standing_members", [])]))


def run(command: str, *args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def fresh_domain(samba_dc, ldap_admin):
    """The session DC without the example's groups, as a freshly provisioned demo domain is (put back after)."""
    conn = ldap_admin()
    for dn in example_groups():
        conn.delete(dn)  # absent already is fine
    conn.unbind()
    with directory.connect() as d:
        assert not any(d.group_facts(dn).exists for dn in example_groups())
    yield
    with directory.connect() as d:  # as other tests of the session may have found them
        for dn in example_groups():
            d.ensure_group(*directory.split_dn(dn))


def test_the_seed_makes_the_example_apply_on_a_fresh_domain(fresh_domain, samba_dc):
    """GIVEN a demo domain without the example's groups THEN the example is refused (its groups are not
    in AD); WHEN the seed's groups stage runs THEN they exist under the JIT OU and the example applies."""
    with pytest.raises(CommandError):
        run("jitad_apply_policy", str(EXAMPLE), "--dry-run")

    out, _ = run("jitad_demo_seed", "--stage=groups", f"--policy-file={EXAMPLE}")

    created = json.loads(out.strip().splitlines()[-1])["jit_groups"]
    assert [dn.lower() for dn in created] == [dn.lower() for dn in example_groups()]
    assert all(directory.under_jit_ou(dn) for dn in created)
    assert directory.group_problems(created) == {dn: "" for dn in created}  # groups jitad may manage
    ephemeral_ou = yaml.safe_load(EXAMPLE.read_text())["targets"][0]["ephemeral"]["ou"]
    with directory.connect() as d:
        assert d.ephemeral_list(ephemeral_ou) == []  # the OU SRV01's ephemeral accounts are made in exists, empty
    out, _ = run("jitad_apply_policy", str(EXAMPLE), "--dry-run")
    assert out.endswith("would be 9 created, 0 updated, 0 unchanged, 0 disabled. Nothing was changed.\n")
    run("jitad_demo_seed", "--stage=groups")  # again: nothing new, no error


def test_the_seed_never_creates_a_group_outside_the_jit_ou(fresh_domain, samba_dc, tmp_path):
    path = tmp_path / "policy.yaml"
    outside = f"CN=JIT-Outside,CN=Users,{samba_dc.base_dn}"
    path.write_text(EXAMPLE.read_text().replace("CN=JIT-SQL01-Admins,OU=JIT,DC=jitad,DC=test", outside))

    with pytest.raises(CommandError) as excinfo:
        run("jitad_demo_seed", "--stage=groups", f"--policy-file={path}")

    assert str(excinfo.value) == f"{path} names groups outside the JIT OU ({samba_dc.jit_ou}): {outside}"
    with directory.connect() as d:
        assert not any(d.group_facts(dn).exists for dn in [outside, *example_groups()])
