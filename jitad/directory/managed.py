"""Which groups jitad may touch: groups under the JIT OU(s), never a protected one.

``JITAD_LDAP_JIT_OU`` names one OU, or several separated by ``;`` (a DN holds ``;`` only
escaped). A group is *under* an OU when the OU's RDNs are a proper suffix of the group's,
compared the way DCs compare them (types and values case-folded, escaping canonical), so
``CN=x,OU=JIT-old,DC=…`` is not under ``OU=JIT,DC=…`` and neither is the OU itself.

These rules are the seam's: the policy file, the admin and the engine all ask here, and the
directory client refuses a member change outside them whatever the database says. A group
named as a target's group must also exist in AD as a group when it is named
(:func:`group_problems` asks the DC).
"""
from django.conf import settings

from .connection import connect
from .dn import _dn_parts, group_label
from .errors import DirectoryNotManaged, DirectoryRejected
from .groups import GroupFacts

# Well-known RIDs of groups that confer control of the domain or of every server
# (MS-DTYP 2.4.2.4 and AD's protected groups, the ones AdminSDHolder guards and more):
# jitad never manages their membership, whatever OU they sit in.
PROTECTED_RIDS = frozenset({
    498,  # Enterprise Read-only Domain Controllers
    512,  # Domain Admins
    516,  # Domain Controllers
    517,  # Cert Publishers
    518,  # Schema Admins
    519,  # Enterprise Admins
    520,  # Group Policy Creator Owners
    521,  # Read-only Domain Controllers
    526,  # Key Admins
    527,  # Enterprise Key Admins
    544,  # Administrators (BUILTIN)
    548,  # Account Operators
    549,  # Server Operators
    550,  # Print Operators
    551,  # Backup Operators
    552,  # Replicator
    557,  # Incoming Forest Trust Builders
    569,  # Cryptographic Operators
    573,  # Event Log Readers
    578,  # Hyper-V Administrators
    580,  # Remote Management Users
})


def _rdns(dn: str) -> tuple[tuple[str, str], ...]:
    """The DN's RDN components, case-folded, outermost last; ValueError if it is not a DN.

    A multi-valued RDN (``CN=x+OU=JIT,…``) is refused: AD allows none, and flattened it would
    read as if it were below ``OU=JIT,…``.
    """
    if not isinstance(dn, str) or not dn.strip() or "\x00" in dn:
        raise ValueError("empty")
    parts = _dn_parts(dn)
    if any(sep == "+" for _a, _v, sep, _end in parts):
        raise ValueError("multi-valued RDN")
    return tuple((a.lower(), v.lower()) for a, v, _sep, _end in parts)


def jit_ous(value: str | None = None) -> tuple[str, ...]:
    """The configured JIT OUs, as written (blank entries dropped)."""
    raw = settings.JITAD_LDAP_JIT_OU if value is None else value
    return tuple(part.strip() for part in (raw or "").split(";") if part.strip())


def under_jit_ou(dn: str, ous: tuple[str, ...] | None = None) -> bool:
    """True if ``dn`` is a well-formed DN strictly below one of the JIT OUs."""
    try:
        mine = _rdns(dn)
    except ValueError:
        return False
    for ou in jit_ous() if ous is None else ous:
        try:
            theirs = _rdns(ou)
        except ValueError:
            continue
        if len(mine) > len(theirs) and mine[-len(theirs):] == theirs:
            return True
    return False


def require_managed(dn: str, what: str = "change members of", ous: tuple[str, ...] | None = None) -> None:
    """Raise DirectoryNotManaged unless ``dn`` is under a JIT OU (the seam's last word).

    ``ous`` defaults to the configured JIT OUs; no DC is asked.
    """
    ous = jit_ous() if ous is None else ous
    if not under_jit_ou(dn, ous):
        ous = "; ".join(ous) or "(JITAD_LDAP_JIT_OU is not set)"
        raise DirectoryNotManaged(dn, f"jitad does not {what} {dn!r}: it is not under the JIT OU {ous}")


def rid(sid: str) -> int | None:
    """The last sub-authority of an S-1-… SID, or None."""
    try:
        return int(sid.rsplit("-", 1)[1]) if sid and sid.upper().startswith("S-1-") else None
    except (IndexError, ValueError):
        return None


def protected(sid: str, admin_count) -> str:
    """Why a group with this SID and adminCount is protected, or '' when it is not."""
    if str(admin_count or "0").strip() not in ("", "0"):
        return "it is a protected group (adminCount=1)"
    number = rid(sid)
    if number in PROTECTED_RIDS:
        return f"it is a well-known privileged group (RID {number})"
    return ""


def jit_ou_problems(value: str | None = None) -> list[str]:
    """What is wrong with the JIT OU setting: each entry must be the DN of an OU (first RDN OU=)."""
    problems = []
    for ou in jit_ous(value):
        try:
            first = _rdns(ou)[0][0]
        except ValueError:
            problems.append(f"{ou!r} is not a well-formed DN")
            continue
        if first != "ou":
            problems.append(f"{ou!r} is not an OU: its first RDN must be OU=")
    return problems


def placement_problem(dn: str) -> str:
    """Why ``dn`` cannot be a group jitad manages, judged from the DN alone ('' when it can)."""
    try:
        _rdns(dn)
    except ValueError:
        return "it is not a well-formed DN"
    if not under_jit_ou(dn):
        ous = "; ".join(jit_ous())
        return f"it is not under the JIT OU ({ous})" if ous else "JITAD_LDAP_JIT_OU is not set, so no group is managed"
    return ""


# The hint a refusal for protection gives, where a target could mark its group as tier 0.
TIER0_HINT = ("if it is a tier-0 JIT group nested into a protected group on purpose, "
              "mark the target nested_into_protected")


def facts_problem(facts: GroupFacts, *, nested_into_protected: bool = False) -> str:
    """Why the object the DC shows cannot be a group jitad manages ('' when it can).

    A group nested into a protected group is refused as that group would be: its members
    hold that group's rights, and AD's SDProp marks it adminCount=1 and resets its ACL.
    ``nested_into_protected`` is a target's explicit opt-in for a tier-0 JIT group: it
    accepts the nesting and the adminCount=1 SDProp stamps because of it, nothing else.
    A well-known privileged group (Domain Admins and the like) is refused whatever it says.
    """
    if not facts.exists:
        return "it does not exist in AD"
    if not facts.is_group:
        return "it is not a group in AD"
    number = rid(facts.sid)
    if number in PROTECTED_RIDS:
        return f"it is a well-known privileged group (RID {number})"
    if nested_into_protected:
        return ""
    own = protected(facts.sid, facts.admin_count)
    if own:
        return f"{own}; {TIER0_HINT}"
    above = [group_label(dn) for dn, sid, admin_count in facts.protected_parents if protected(sid, admin_count)]
    if above:
        return (f"it is nested into the protected group(s) {', '.join(above)} (SDProp makes it adminCount=1); "
                f"{TIER0_HINT}")
    return ""


def group_problems(groups) -> dict:
    """{group: why jitad may not manage it, or ''}: the DN rules, then one read per DN on the DC.

    Each item of ``groups`` is a DN, or a ``(DN, nested_into_protected)`` pair for a target
    that opted in (see :func:`facts_problem`); the answer is keyed by the items as given.
    Only DNs that pass the DN rules are sent to the DC, over one connection, each read once.
    Raises DirectoryUnavailable or DirectoryMisconfigured when the DC cannot be asked; a DC
    that refuses to read one DN makes that DN's problem.
    """
    items = {item: (item, False) if isinstance(item, str) else (item[0], bool(item[1])) for item in groups}
    placed = {dn: placement_problem(dn) for dn, _flag in items.values()}
    facts: dict[str, GroupFacts | str] = {}
    to_read = [dn for dn, problem in placed.items() if not problem]
    if to_read:
        with connect() as d:
            for dn in to_read:
                try:
                    facts[dn] = d.group_facts(dn)
                except DirectoryRejected as e:
                    facts[dn] = f"the DC refused to read it ({e})"
    problems = {}
    for item, (dn, flag) in items.items():
        found = placed[dn] or facts[dn]
        problems[item] = found if isinstance(found, str) else facts_problem(found, nested_into_protected=flag)
    return problems
