"""The elevation admin: catalog (targets, policies), the approval queue, and grants now."""
from . import catalog, grants, requests  # noqa: F401  (each registers its ModelAdmins)
