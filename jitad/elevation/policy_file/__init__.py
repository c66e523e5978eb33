"""Policy as code: validate a YAML file of targets and policies, then apply it to the database.

loader.py reads the YAML (size limit, strict loader, line numbers); schema.py holds the
JSON schema; validation.py checks the rest and asks the DC about each group; apply.py
diffs the file against the database and writes it in one transaction.
"""
from .apply import DEFAULT_ACTOR, ApplySummary, apply_policy_file, apply_policy_text
from .loader import MAX_DEPTH, PolicyFileError
from .schema import FILE_SCHEMA, POLICY_SCHEMA, SUPPORTED_VERSION, TARGET_SCHEMA
from .validation import load_policy_text

__all__ = [
    "DEFAULT_ACTOR",
    "FILE_SCHEMA",
    "MAX_DEPTH",
    "POLICY_SCHEMA",
    "SUPPORTED_VERSION",
    "TARGET_SCHEMA",
    "ApplySummary",
    "PolicyFileError",
    "apply_policy_file",
    "apply_policy_text",
    "load_policy_text",
]
