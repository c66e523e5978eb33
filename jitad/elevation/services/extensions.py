"""Moved to ``jitad.elevation.selectors.grants``; this name stays for ``grants`` until its import moves."""
from ..selectors.grants import grant_end_limit  # noqa: F401  re-exported for grants.py until its imports move

__all__ = ["grant_end_limit"]
