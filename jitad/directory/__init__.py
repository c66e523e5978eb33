"""The directory seam: the only code in jitad that imports ldap3.

    with directory.connect() as d:
        user = d.find_user("jdoe")
        d.add_member(group_dn, user.dn, ttl_seconds=4 * 3600)
"""
from .client import Directory
from .connection import connect, session, session_warm
from .dn import dn_domain, escape_filter, group_label, member_ttl_value, normalize_dn, rdn, sid_filter_value, split_dn
from .changes import GroupChanges
from .groups import DirectoryPrincipal, GroupFacts, GroupMembers
from .users import AccountFacts, DirectoryUser
from .ephemeral import EphemeralAccount, ephemeral_sam
from .auth import authenticate_user, password_works
from .config import DirectoryConfig
from .probe import ephemeral_state_each, probe_each
from .readiness import DCReport, OURights, dc_reports, jit_ou_rights
from .managed import PROTECTED_RIDS, rid, group_problems, jit_ou_problems, jit_ous, placement_problem, protected, require_managed, under_jit_ou
from .errors import DirectoryAuthFailed, DirectoryError, DirectoryMisconfigured, DirectoryNotFound, DirectoryNotManaged, DirectoryRejected, DirectoryUnavailable, unexpected

__all__ = [
    "AccountFacts",
    "password_works",
    "Directory",
    "DirectoryAuthFailed",
    "DirectoryConfig",
    "DCReport",
    "OURights",
    "dc_reports",
    "jit_ou_rights",
    "DirectoryError",
    "DirectoryMisconfigured",
    "DirectoryNotFound",
    "DirectoryNotManaged",
    "DirectoryRejected",
    "DirectoryUnavailable",
    "DirectoryPrincipal",
    "DirectoryUser",
    "EphemeralAccount",
    "ephemeral_sam",
    "ephemeral_state_each",
    "GroupChanges",
    "GroupFacts",
    "GroupMembers",
    "PROTECTED_RIDS",
    "rid",
    "group_label",
    "group_problems",
    "jit_ou_problems",
    "placement_problem",
    "authenticate_user",
    "unexpected",
    "connect",
    "dn_domain",
    "escape_filter",
    "jit_ous",
    "protected",
    "require_managed",
    "under_jit_ou",
    "member_ttl_value",
    "normalize_dn",
    "probe_each",
    "rdn",
    "session",
    "session_warm",
    "sid_filter_value",
    "split_dn",
]
