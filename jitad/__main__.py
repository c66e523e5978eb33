"""``python -m jitad``: ``--version`` prints the release; anything else is manage.py's (``python -m jitad migrate``).

On an installed machine the ``jitad`` command (ops/jitad) runs this as the jitad user, in the
checkout, with the environment the systemd units read (ops/README.md).
"""
import os
import sys

from jitad import __version__


def main(argv: list[str] | None = None) -> int:
    """Print ``jitad <version>`` for ``--version``; hand every other command line to Django."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-V"]):
        print(f"jitad {__version__}")
        return 0
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jitad.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["jitad", *args])
    return 0


if __name__ == "__main__":
    sys.exit(main())
