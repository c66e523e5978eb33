"""The policy file's ephemeral-account and logon-source fields: how they are stored, and each mistake's line and field."""
import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from jitad.elevation.models import Policy, Target
from jitad.elevation.policy_file import PolicyFileError, apply_policy_text
from jitad.elevation.selectors.ephemeral import ephemeral_config

JIT_OU = "OU=JIT,DC=jitad,DC=test"
TEXT = f"""\
version: 1
targets:
  - name: EPH01
    group: "CN=JIT-EPH01-Admins,{JIT_OU}"
    logon_sources: [10.50.0.0/24, "2001:db8:50::/48"]
  - name: EPH02
    group: "CN=JIT-EPH02-Admins,{JIT_OU}"
    ephemeral: {{ou: "OU=Target-Eph,{JIT_OU}", suffix_length: 6}}
policies:
  - name: eph-policy
    targets: [EPH01, EPH02]
    eligible: {{groups: [Ops]}}
    approval: {{mode: auto}}
    ephemeral:
      ou: "OU=Ephemeral,{JIT_OU}"
      password: {{length: 32, classes: [upper, lower, digit]}}
"""


@pytest.fixture(scope="module", autouse=True)
def jit_groups(samba_dc):
    from jitad import directory

    with directory.connect() as d:
        d.ensure_ou(samba_dc.jit_ou)
        d.ensure_group("JIT-EPH01-Admins", samba_dc.jit_ou)
        d.ensure_group("JIT-EPH02-Admins", samba_dc.jit_ou)


def _apply(text: str):
    with override_settings(JITAD_LDAP_JIT_OU=JIT_OU):
        return apply_policy_text(text)


@pytest.mark.django_db
def test_ephemeral_and_logon_sources_are_stored_and_the_target_setting_wins(samba_dc):
    _apply(TEXT)
    policy = Policy.objects.get(name="eph-policy")
    one, two = Target.objects.get(name="EPH01"), Target.objects.get(name="EPH02")
    assert one.logon_sources == ["10.50.0.0/24", "2001:db8:50::/48"] and two.logon_sources == []
    assert ephemeral_config(target=one, policy=policy) == {
        "ou": f"OU=Ephemeral,{JIT_OU}", "suffix_length": 4, "password": {"length": 32, "classes": ["upper", "lower", "digit"]}}
    assert ephemeral_config(target=two, policy=policy) == {
        "ou": f"OU=Target-Eph,{JIT_OU}", "suffix_length": 6,
        "password": {"length": 24, "classes": ["upper", "lower", "digit", "symbol"]}}
    # Removed from the file: back to the person's own account.
    _apply(TEXT.replace("    ephemeral:\n      ou: \"OU=Ephemeral,OU=JIT,DC=jitad,DC=test\"\n"
                        "      password: {length: 32, classes: [upper, lower, digit]}\n", ""))
    assert ephemeral_config(target=Target.objects.get(name="EPH01"), policy=Policy.objects.get(name="eph-policy")) is None


MISTAKES = [
    pytest.param(('ou: "OU=Ephemeral,OU=JIT,DC=jitad,DC=test"', 'ou: "CN=Users,DC=jitad,DC=test"'),
                 "policies[0].ephemeral.ou: 'CN=Users,DC=jitad,DC=test' is not under the JIT OU OU=JIT,DC=jitad,DC=test: "
                 "jitad creates ephemeral accounts only there", id="ou-outside"),
    pytest.param(('ou: "OU=Ephemeral,OU=JIT,DC=jitad,DC=test"', 'ou: "not a dn"'),
                 "policies[0].ephemeral.ou: 'not a dn' is not a DN such as OU=Ephemeral,OU=JIT,DC=corp,DC=example",
                 id="ou-not-a-dn"),
    pytest.param(("classes: [upper, lower, digit]", "classes: [upper, lower]"),
                 "policies[0].ephemeral.password.classes: ['upper', 'lower'] is too short", id="two-classes"),
    pytest.param(("classes: [upper, lower, digit]", "classes: [upper, lower, emoji]"),
                 "policies[0].ephemeral.password.classes[2]: 'emoji' is not one of ['upper', 'lower', 'digit', 'symbol']",
                 id="unknown-class"),
    pytest.param(("length: 32", "length: 8"), "policies[0].ephemeral.password.length: 8 is less than the minimum of 16",
                 id="short-password"),
    pytest.param(("suffix_length: 6", "suffix_length: 12"),
                 "targets[1].ephemeral.suffix_length: 12 is greater than the maximum of 8", id="long-suffix"),
    pytest.param(("suffix_length: 6", "sufix_length: 6"),
                 "targets[1].ephemeral.sufix_length: unknown field (did you mean 'suffix_length'?)", id="misspelt"),
    pytest.param(("10.50.0.0/24", "10.50.0.1/24"),
                 "targets[0].logon_sources[0]: '10.50.0.1/24' is not a network such as 10.20.0.0/16 or 2001:db8::/32 "
                 "(10.50.0.1/24 has host bits set)", id="logon-source-host-bits"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("change", "error"), MISTAKES)
def test_each_mistake_names_its_line_and_field_and_changes_nothing(change, error, samba_dc):
    assert change[0] in TEXT
    text = TEXT.replace(change[0], change[1])
    with pytest.raises(PolicyFileError) as excinfo:
        _apply(text)
    messages = [e.split(": ", 1)[1] for e in excinfo.value.errors]
    assert error in messages, excinfo.value.errors
    line = int(excinfo.value.errors[messages.index(error)].split(":")[0].removeprefix("line "))
    assert abs(line - (text[:text.index(change[1])].count("\n") + 1)) <= 2, (line, error)
    assert not Target.objects.exists() and not Policy.objects.exists()


@pytest.mark.parametrize(("value", "problem"), [
    ({}, ""),
    ({"ou": f"OU=Eph,{JIT_OU}"}, ""),
    ({"ou": "CN=Users,DC=jitad,DC=test"}, "not under the JIT OU"),
    ({"ou": f"OU=Eph,{JIT_OU}", "suffix_length": 2}, "suffix_length"),
    ({"ou": f"OU=Eph,{JIT_OU}", "password": {"length": 10}}, "password length"),
    ({"ou": f"OU=Eph,{JIT_OU}", "password": {"classes": ["upper", "upper", "digit"]}}, "each once"),
    ({"ou": f"OU=Eph,{JIT_OU}", "colour": "red"}, "unknown keys: colour"),
    ("OU=Eph", "an object"),
])
def test_the_admin_form_checks_the_ephemeral_setting(value, problem):
    """The admin saves through Model.clean: the same rules as the file, in a field error."""
    with override_settings(JITAD_LDAP_JIT_OU=JIT_OU):
        target = Target(name="T", group_dn=f"CN=G,{JIT_OU}", ephemeral=value)
        if problem:
            with pytest.raises(ValidationError, match=problem):
                target.clean()
        else:
            target.clean()


def test_the_admin_form_checks_logon_sources():
    with pytest.raises(ValidationError, match="not a network"):
        Target(name="T", group_dn=f"CN=G,{JIT_OU}", logon_sources=["10.0.0.0/33"]).clean()


@pytest.mark.django_db
def test_a_user_name_with_nothing_usable_gets_a_neutral_account_name():
    from jitad.elevation.services.grant_ephemeral import ephemeral_plan

    target = Target.objects.create(name="T", group_dn=f"CN=G,{JIT_OU}", ephemeral={"ou": f"OU=Eph,{JIT_OU}"})
    policy = Policy.objects.create(name="p")
    plan = ephemeral_plan(target=target, policy=policy, username="李小龙")
    assert plan["account_sam"].startswith("jit-") and len(plan["account_sam"]) == 8
    assert plan["account_dn"] == f"CN={plan['account_sam']},OU=Eph,{JIT_OU}"
    assert ephemeral_plan(target=Target.objects.create(name="U", group_dn=f"CN=H,{JIT_OU}"), policy=policy,
                          username="alice") == {}
