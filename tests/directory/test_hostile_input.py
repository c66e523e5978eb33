"""Hostile names never change the meaning of an LDAP filter or DN.

Property tests: the first group needs no DC (escaping round-trips); the rest run against
the session's real Samba DC and read every effect back over the test's own connection.
"""
import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ldap3.utils.dn import parse_dn

from jitad.directory import DirectoryNotFound, DirectoryRejected, escape_filter, normalize_dn, rdn

from .helpers import ad_add, ad_entry, ad_has_member, ad_members, unique_tag

# Characters with a meaning in filters (RFC 4515) or DNs (RFC 4514), spaces, and non-ASCII.
HOSTILE = '*()\\,=+<>#;" ' + "éß漢" + "ab"
TREE_DELETE = "1.2.840.113556.1.4.805"  # LDAP_SERVER_TREE_DELETE_OID
hostile_text = st.text(alphabet=HOSTILE, min_size=1, max_size=20)
# For filter values NUL too: Samba ends a filter value at NUL, so jitad must refuse it.
probe_text = st.text(alphabet=HOSTILE + "\x00", min_size=1, max_size=20)
# Legal in a sAMAccountName, yet special in a filter or a DN.
SAM_SAFE_HOSTILE = "()&!#'% " + "éß漢" + "ab"

# Some hostile names leave Samba unable to casefold an index key ("ldb_handler_fold: unable to
# casefold string"): from then on its full searches from the base DN (a person's nested groups at
# login) fail with "Indexed and full searches both failed". So this file runs after every other test
# on its DC (tests/conftest.py, DC_LAST), and its OU goes with everything in it at the end.
ON_DC = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
OFFLINE = settings(max_examples=300, deadline=None)


def rfc4514_unescape(value: str) -> str:
    """The test's own reading of an RFC 4514 attribute value (independent of jitad's)."""
    out, i = bytearray(), 0
    while i < len(value):
        c = value[i]
        if c == "\\":
            nxt = value[i + 1 : i + 3]
            if re.fullmatch(r"[0-9A-Fa-f]{2}", nxt):
                out += bytes.fromhex(nxt)
                i += 3
                continue
            out += value[i + 1].encode()
            i += 2
            continue
        out += c.encode()
        i += 1
    return out.decode("utf-8")


def hex_escaped(value: str) -> str:
    """Another spelling of the same value, every octet as \\XX (as some DCs return DNs)."""
    return "".join(f"\\{b:02X}" for b in value.encode())


# -- no DC needed -----------------------------------------------------------------------

@OFFLINE
@given(st.text(min_size=1, max_size=40))
def test_rdn_round_trips_through_parse_dn(value):
    """GIVEN any text WHEN built into an RDN THEN ldap3 parses it back as exactly one
    CN component whose unescaped value is the original text (nothing leaks into the DN)."""
    dn = f"{rdn('CN', value)},OU=x,DC=example"
    parts = parse_dn(dn)
    assert [(a, sep) for a, _v, sep in parts] == [("CN", ","), ("OU", ","), ("DC", "")]
    assert rfc4514_unescape(parts[0][1]) == value
    assert parts[1][1] == "x" and parts[2][1] == "example"


def test_rdn_refuses_an_empty_value():
    with pytest.raises(ValueError):
        rdn("CN", "")


@OFFLINE
@given(st.text(min_size=1, max_size=40))
def test_normalize_dn_ignores_escaping_style_and_case(value):
    """GIVEN one value written the way jitad escapes it and the way a DC may return it
    (hex escapes, other case, spaces after commas) THEN both normalize to the same key."""
    ours = f"{rdn('CN', value)},OU=People,DC=example"
    theirs = f"cn={hex_escaped(value)}, ou=PEOPLE, dc=EXAMPLE"
    assert normalize_dn(ours) == normalize_dn(theirs)


@OFFLINE
@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_normalize_dn_keeps_different_values_apart(a, b):
    assume(a.lower() != b.lower())
    assert normalize_dn(f"{rdn('CN', a)},DC=x") != normalize_dn(f"{rdn('CN', b)},DC=x")


@pytest.mark.parametrize("samba_form, ours", [
    ("CN=a\\,b\\+c\\3Dd\\3Be,OU=x", "CN=a\\,b\\+c\\=d\\;e,OU=x"),  # what Samba returned for a,b+c=d;e
    ("CN=a\\0Ab,OU=x", "CN=a\nb,OU=x"),
    ("CN=\\ sp\\ ,OU=x", "CN=\\20sp\\20,OU=x"),
])
def test_normalize_dn_matches_samba_spellings(samba_form, ours):
    assert normalize_dn(samba_form) == normalize_dn(ours)


@OFFLINE
@given(st.text(min_size=1, max_size=40))
def test_split_dn_inverts_rdn(value):
    from jitad.directory import split_dn

    assert split_dn(f"{rdn('CN', value)},OU=x,DC=example") == (value, "OU=x,DC=example")


@OFFLINE
@given(st.text(max_size=60))
def test_escape_filter_leaves_nothing_special_unescaped(value):
    """GIVEN any text WHEN escaped for a filter THEN no bare * ( ) \\ or NUL remains and
    the escapes decode back to exactly the text."""
    escaped = escape_filter(value)
    bare = re.sub(r"\\[0-9a-fA-F]{2}", "", escaped)
    assert not set(bare) & set("*()\\\x00")
    decoded = re.sub(r"\\([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), escaped)
    assert decoded == value


# -- against the DC ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hostile_ou(jit_ou, ldap_admin):
    from jitad import directory

    ou = f"OU=hostile-{unique_tag()},{jit_ou}"
    with directory.connect() as d:
        d.ensure_ou(ou)
    yield ou
    conn = ldap_admin()
    try:
        conn.delete(ou, controls=[(TREE_DELETE, True, None)])  # the OU and everything in it
    finally:
        conn.unbind()


def _count_groups(admin, ou: str) -> int:
    admin.search(ou, "(objectClass=group)", attributes=["cn"])
    return len(admin.entries)


@ON_DC
@given(name=hostile_text, tag_first=st.booleans())
def test_ensure_group_with_a_hostile_name_creates_exactly_that_group(d, admin, hostile_ou, name, tag_first):
    """GIVEN a group name full of filter and DN metacharacters WHEN ensure_group THEN exactly
    one new group exists, its CN reads back as exactly that name, and a second call finds
    the same group instead of making another.

    A unique tag (at the start or the end, so both edges of the hostile part are exercised)
    keeps names from different examples apart."""
    tag = unique_tag()
    full = f"{tag}~{name}" if tag_first else f"{name}~{tag}"
    before = _count_groups(admin, hostile_ou)

    dn = d.ensure_group(full, hostile_ou)
    assert d.ensure_group(full, hostile_ou) == dn

    assert _count_groups(admin, hostile_ou) == before + 1
    entry = ad_entry(admin, dn, "cn", "objectClass")
    assert entry is not None, f"ensure_group returned {dn!r}, which does not exist"
    assert entry.cn.value == full
    assert "group" in entry.objectClass.values
    assert normalize_dn(entry.entry_dn) == normalize_dn(dn)
    assert d.group_exists(dn) is True
    assert d.members_of(dn) == set()


@ON_DC
@given(value=probe_text)
def test_a_star_is_never_a_wildcard_in_find_user(d, value):
    """GIVEN users exist (Administrator, Guest, krbtgt, the session's own) WHEN find_user is
    given a value holding ``*`` THEN nothing matches: no user's name contains ``*``. (With
    a NUL the name is refused outright.)"""
    value += "*"  # a star in the name part, always (filtering for one starved hypothesis)
    with pytest.raises(DirectoryNotFound if "\x00" not in value else DirectoryRejected):
        d.find_user(value)


@pytest.mark.parametrize("value", [
    "*", "a*", "A*", "*a*", "Adm*", "x)(objectClass=*", "*)(sAMAccountName=*",
    "Administrator)(|(sAMAccountName=*", "*@*", "JITAD\\*", "\\2a", "Administrator\\00",
])
def test_filter_injection_attempts_find_nobody(d, ou, value):
    d.ensure_user(f"a{unique_tag()}", ou)  # a user starting with "a" exists
    with pytest.raises(DirectoryNotFound):
        d.find_user(value)


@pytest.mark.parametrize("value", ["Administrator\x00", "Administrator\x00zz", "JITAD\\Administrator\x00x",
                                   "Administrator@jitad.test\x00"])
def test_a_nul_never_truncates_a_user_name(d, value):
    """Samba reads a filter value only up to NUL: ``Administrator\\x00zz`` would find
    Administrator. jitad refuses such a name instead of asking."""
    with pytest.raises(DirectoryRejected, match="NUL"):
        d.find_user(value)


def test_a_nul_never_truncates_a_member_dn(d, hostile_ou):
    group = d.ensure_group(f"nul-{unique_tag()}", hostile_ou)
    user = d.ensure_user(f"nul{unique_tag()}", hostile_ou)
    d.add_member(group, user)
    assert d.is_member(group, user) is True
    assert d.is_member_nested(group, user) is True
    for probe in (f"{user}\x00", f"{user}\x00,OU=elsewhere"):
        assert d.is_member(group, probe) is False
        assert d.is_member_nested(group, probe) is False


@ON_DC
@given(middle=st.text(alphabet=SAM_SAFE_HOSTILE, min_size=1, max_size=10))
def test_find_user_finds_exactly_a_user_whose_name_is_filter_syntax(d, hostile_ou, middle):
    """GIVEN a user whose sAMAccountName holds ``( ) & ! #`` and non-ASCII WHEN found by that
    name THEN exactly that user comes back (unescaped, the name would break the filter)."""
    sam = f"h{unique_tag()}{middle}"[:20].rstrip(" .")
    dn = d.ensure_user(sam, hostile_ou)
    try:
        user = d.find_user(sam)
        assert user.sam_account_name == sam
        assert normalize_dn(user.dn) == normalize_dn(dn)
    finally:
        d.delete(dn)


@ON_DC
@given(name=probe_text)
def test_is_member_of_a_hostile_dn_is_false_and_never_a_filter_error(d, hostile_ou, name):
    """GIVEN a real group with a real member WHEN asked about a hostile value, as a
    well-formed DN of nothing or as raw text THEN the answer is False, never an error and
    never the real member's True."""
    group = d.ensure_group("hostile-probe", hostile_ou)
    member = d.ensure_user("hostile-probe-u", hostile_ou)
    d.add_member(group, member)
    for probe in (f"{rdn('CN', name)},{hostile_ou}", name, f"{member})(member=*", f"*{name}"):
        assert d.is_member(group, probe) is False, probe
        assert d.is_member_nested(group, probe) is False, probe
    assert d.is_member(group, member) is True


@ON_DC
@given(name=hostile_text)
def test_membership_of_a_user_with_a_hostile_cn(d, admin, hostile_ou, name):
    """GIVEN a user whose CN holds ``, + = ; # "`` and non-ASCII (the sAMAccountName is
    plain) WHEN added and removed THEN the DC confirms each step, jitad's view agrees, and
    the DN the DC hands back normalizes to the one jitad built."""
    tag = unique_tag()
    group = d.ensure_group(f"hm-{tag}", hostile_ou)
    user = ad_add(admin, f"{rdn('CN', f'{name}~{tag}')},{hostile_ou}", ["top", "person", "organizationalPerson", "user"],
                  {"sAMAccountName": f"hm{tag}"})
    try:
        assert normalize_dn(d.find_user(f"hm{tag}").dn) == normalize_dn(user)

        assert d.add_member(group, user) is True
        assert ad_has_member(admin, group, user)
        stored = ad_members(admin, group)
        assert len(stored) == 1 and normalize_dn(stored[0]) == normalize_dn(user)
        assert {normalize_dn(m) for m in d.members_of(group)} == {normalize_dn(user)}
        assert d.is_member(group, user) is True
        assert d.add_member(group, user) is False

        assert d.remove_member(group, user) is True
        assert not ad_has_member(admin, group, user)
        assert ad_members(admin, group) == []
        assert d.remove_member(group, user) is False
    finally:
        d.delete(user)
        d.delete(group)


def test_remove_verification_sees_a_member_the_dc_spells_differently(d, admin, hostile_ou):
    """GIVEN a member whose CN the DC spells with hex escapes (``=`` → ``\\3D``, ``;`` →
    ``\\3B``) WHEN a removal leaves it in place THEN remove_members raises instead of
    reporting success."""
    tag = unique_tag()
    group = d.ensure_group(f"hv-{tag}", hostile_ou)
    user = ad_add(admin, f"{rdn('CN', f'a=b;c~{tag}')},{hostile_ou}", "contact")
    d.add_member(group, user)
    assert "\\3D" in ad_members(admin, group)[0]  # the DC's spelling is not jitad's

    real_modify = d._conn.modify
    d._conn.modify = lambda *a, **k: True  # the DC "accepts" the delete, yet nothing changes
    try:
        with pytest.raises(DirectoryRejected, match="still in"):
            d.remove_members(group, [user])
    finally:
        d._conn.modify = real_modify
    assert ad_has_member(admin, group, user)
    assert d.remove_members(group, [user]) == {user}
    assert ad_members(admin, group) == []


def test_a_member_whose_cn_ends_in_a_space_does_not_break_the_group(d, admin, hostile_ou):
    """GIVEN a group with a member whose CN ends in a space (the DC returns ``\\ ``) WHEN
    reading members and removing other members THEN nothing raises and each removal is
    verified."""
    tag = unique_tag()
    group = d.ensure_group(f"hs-{tag}", hostile_ou)
    odd = ad_add(admin, f"{rdn('CN', f'ends in space~{tag} ')},{hostile_ou}", "contact")
    plain = ad_add(admin, f"CN=plain-{tag},{hostile_ou}", "contact")
    d.add_member(group, odd)
    d.add_member(group, plain)
    assert {normalize_dn(m) for m in d.members_of(group)} == {normalize_dn(odd), normalize_dn(plain)}
    assert d.remove_member(group, plain) is True
    assert d.remove_member(group, odd) is True
    assert ad_members(admin, group) == []


@pytest.mark.parametrize("name", ["ab ,", "漢 ,", "ß ,", " ,", "a ,b ,"])
def test_a_name_ending_in_a_space_and_a_comma_survives_samba(d, admin, hostile_ou, name):
    """GIVEN a group name that ends in a space and a comma (found by the property test above) WHEN
    ensure_group THEN its CN reads back as exactly that name: Samba cuts ``ab \\,`` down to ``a``
    (and a multi-byte character before it into invalid UTF-8), so jitad writes the last comma as ``\\2C``."""
    full = f"{unique_tag()}~{name}"
    dn = d.ensure_group(full, hostile_ou)
    entry = ad_entry(admin, dn, "cn")
    assert entry is not None and entry.cn.value == full
    assert d.ensure_group(full, hostile_ou) == dn
