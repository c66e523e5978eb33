#!/usr/bin/env python
"""Django's command-line entry point for jitad."""
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jitad.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS
    except ImproperlyConfigured as e:
        if not hasattr(e, "problems"):
            raise
        # jitad's settings list every problem at once (jitad/settings/env.py): the list, not a traceback.
        from jitad.commands import ExitCode

        sys.stderr.write(f"{e}\n")
        sys.exit(ExitCode.CONFIG)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
