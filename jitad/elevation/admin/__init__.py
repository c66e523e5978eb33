"""The elevation admin: catalog (targets, policies), the approval queue, grants now, standing admins on servers, held reconciler removals, deputies."""
from . import catalog, delegations, evidence, grants, held, hosts, requests  # noqa: F401  (each registers its ModelAdmins)
