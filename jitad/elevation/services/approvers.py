"""Moved to ``jitad.elevation.selectors.approvers``; this name stays for ``grants`` until its import moves."""
from ..selectors.approvers import can_revoke  # noqa: F401  re-exported for grants.py until its imports move

__all__ = ["can_revoke"]
