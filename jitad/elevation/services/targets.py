"""Moved to ``jitad.elevation.selectors.targets``; this name stays for ``grants`` until its import moves."""
from ..selectors.targets import group_nested_into_protected  # noqa: F401  re-exported for grants.py until its imports move

__all__ = ["group_nested_into_protected"]
