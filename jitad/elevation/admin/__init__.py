"""The elevation admin: catalog (targets, policies), the approval queue, grants now, and standing admins on servers."""
from . import catalog, grants, hosts, requests  # noqa: F401  (each registers its ModelAdmins)
