"""The directory seam: the only code in jitad that imports ldap3.

    with directory.connect() as d:
        user = d.find_user("jdoe")
        d.add_member(group_dn, user.dn, ttl_seconds=4 * 3600)
"""
from .client import AccountFacts, Directory, DirectoryPrincipal, DirectoryUser, sid_filter_value, connect, session, escape_filter, member_ttl_value, normalize_dn, rdn, split_dn
from .auth import authenticate_user, password_works
from .config import DirectoryConfig
from .errors import DirectoryAuthFailed, DirectoryError, DirectoryMisconfigured, DirectoryNotFound, DirectoryRejected, DirectoryUnavailable

__all__ = [
    "AccountFacts",
    "password_works",
    "Directory",
    "DirectoryAuthFailed",
    "DirectoryConfig",
    "DirectoryError",
    "DirectoryMisconfigured",
    "DirectoryNotFound",
    "DirectoryRejected",
    "DirectoryUnavailable",
    "DirectoryPrincipal",
    "DirectoryUser",
    "authenticate_user",
    "connect",
    "escape_filter",
    "member_ttl_value",
    "normalize_dn",
    "rdn",
    "session",
    "sid_filter_value",
    "split_dn",
]
