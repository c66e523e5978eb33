"""Where settings come from: the environment (django-environ), the checkout, and the var dir.

JITAD_ENV=production turns on the fail-fast checks in the other parts; JITAD_VAR_DIR holds
everything jitad writes on a single machine (SQLite, the broker folder, generated keys).

A part that finds a variable it cannot use calls :func:`refuse` and goes on with a safe value;
so does :data:`env` for a value it cannot read (a number that is not one). The package raises
once, after every part has run, with every problem listed (``jitad.settings``): an operator
fixes the environment in one pass, not one restart per variable.
"""
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

# What each cast expects, in the words of the message that refuses a value.
_EXPECTED = {int: "a whole number", float: "a number", bool: "true or false", (int,): "a list of whole numbers"}
_BOOL_WORDS = {"true", "on", "ok", "y", "yes", "1", "false", "off", "no", "n", "0", ""}

problems: list[str] = []


def refuse(message: str) -> None:
    """Record a configuration problem; jitad.settings refuses to start with all of them."""
    if message not in problems:
        problems.append(message)


def problems_error(found: list[str]) -> ImproperlyConfigured:
    """One ImproperlyConfigured naming every problem, one a line; ``.problems`` keeps the list."""
    count = f"{len(found)} problem{'s' if len(found) != 1 else ''}"
    error = ImproperlyConfigured(
        f"jitad cannot start: {count} in its configuration (every variable is described in ops/jitad.env.example):\n"
        + "\n".join(f"  - {p}" for p in found)
    )
    error.problems = list(found)
    return error


class _Env(environ.Env):
    """django-environ's reader, except that a value it cannot read is recorded (:func:`refuse`) and the
    default used, and a boolean must be one of the usual words (environ reads any other word as false)."""

    @classmethod
    def parse_value(cls, value, cast):
        if cast is bool and isinstance(value, str) and value.strip().lower() not in _BOOL_WORDS:
            try:
                int(value)
            except ValueError:
                raise ValueError(value) from None
        return super().parse_value(value, cast)

    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except (ValueError, TypeError):
            expected = _EXPECTED.get(tuple(cast) if isinstance(cast, list) else cast, "a value jitad can read")
            # Only numbers and switches are quoted back: a text, list or URL variable may hold a secret.
            shown = f"={self.ENVIRON.get(var, '')[:40]!r}" if cast in (int, float, bool) else ""
            refuse(f"{var}{shown} is not {expected}")
            return None if default is self.NOTSET else default


# jitad/settings/env.py -> the checkout.
BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = _Env()

JITAD_ENV = env.str("JITAD_ENV", default="development")
PRODUCTION = JITAD_ENV == "production"
VAR_DIR = Path(env.str("JITAD_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)
