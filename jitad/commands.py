"""What every ``manage.py jitad_*`` command shares: ``--format json`` and stable exit codes (ops/README.md,
"Exit codes").

A command subclasses :class:`JitadCommand`, writes its text with :meth:`JitadCommand.say` as before, and
puts what a script needs in ``self.result`` (a dict). With ``--format json`` the text is not written:
stdout carries exactly one JSON object, ``{"ok": ..., "exit_code": ..., **result}``, with ``"error"`` when
the command fails. A command whose output already is a JSON document of its own (``jitad_report``) sets
``json_document`` and writes it itself; only a failure is then written by this class. The exit code says
what happened, whatever the format.
"""
import argparse
import json
import sys
from enum import IntEnum

from django.core.management.base import BaseCommand, CommandError


class ExitCode(IntEnum):
    """The exit codes of the jitad_* commands; the numbers never change (the larger ones are sysexits.h's)."""

    OK = 0
    PROBLEMS = 1        # the command ran and found something wrong, or refused what was asked
    USAGE = 2           # bad usage (argparse's own code): an unknown option, a malformed argument, a name or id
                        # that does not exist, an input file that cannot be read
    ATTENTION = 3       # findings that wait for a person's decision (standing admins, held removals)
    UNREACHABLE = 69    # cannot reach a part jitad needs: the database, a DC, a WinRM host, a destination
    INTERNAL = 70       # a fault in jitad itself (the traceback is on stderr)
    CONFIG = 78         # the configuration is refused (settings at start: every problem is listed)


def usage_error(message: str) -> CommandError:
    """A CommandError for bad usage (exit 2)."""
    return CommandError(message, returncode=ExitCode.USAGE)


def problems_error(message: str) -> CommandError:
    """A CommandError for problems found (exit 1)."""
    return CommandError(message, returncode=ExitCode.PROBLEMS)


def unreachable_error(message: str) -> CommandError:
    """A CommandError for a part that did not answer (exit 69)."""
    return CommandError(message, returncode=ExitCode.UNREACHABLE)


def _usage_errors(parser) -> None:
    """argparse's errors are bad usage (exit 2) when the command is called from Python too (call_command), in
    this parser and its subcommands' (Django's parser raises a CommandError of exit 1 there)."""
    def error(message):
        if parser.called_from_command_line:
            parser.print_usage(sys.stderr)
            parser.exit(ExitCode.USAGE, f"{parser.prog}: error: {message}\n")
        raise usage_error(f"Error: {message}")

    parser.error = error
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _usage_errors(sub)


def _database_answers() -> bool:
    """True if a new connection to the database answers (an error of one query is then not an outage)."""
    from django.db import DatabaseError, connection

    try:
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError:
        return False


class JitadCommand(BaseCommand):
    """A jitad_* management command with ``--format json`` and the exit codes of :class:`ExitCode`."""

    # True where the command writes a JSON document of its own with --format json (see the module's docstring).
    json_document = False

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        # After the subcommand's name where there is one: `jitad_breakglass status --format json`.
        for p in (list(subs[0].choices.values()) if subs else [parser]):
            if not any(a.dest == "format" for a in p._actions):
                p.add_argument("--format", choices=("text", "json"), default="text",
                               help="text for people (the default), or one JSON object on stdout for scripts")
        _usage_errors(parser)
        return parser

    @property
    def as_json(self) -> bool:
        return getattr(self, "_format", "text") == "json"

    def say(self, text: str = "", style=None, ending=None) -> None:
        """Write a line of the text output (nothing with --format json)."""
        if not self.as_json:
            self.stdout.write(style(text) if style else text, ending=ending)

    def execute(self, *args, **options):
        self._format = options.get("format") or "text"
        self.result: dict = {}
        try:
            output = super().execute(*args, **options)
        except CommandError as e:
            self._emit(e.returncode, error=str(e))
            raise
        except SystemExit as e:  # a command that chose its own exit code (jitad_breakglass_envelope)
            self._emit(e.code if isinstance(e.code, int) else ExitCode.PROBLEMS)
            raise
        except Exception as e:
            from django.db import DatabaseError, InterfaceError, OperationalError

            if isinstance(e, (OperationalError, InterfaceError)) or type(e) is DatabaseError:
                if not _database_answers():
                    error = unreachable_error(f"the database did not answer: {e}")
                    self._emit(error.returncode, error=str(error))
                    raise error from e
            self._emit(ExitCode.INTERNAL, error=f"{type(e).__name__}: {e}")
            raise
        self._emit(ExitCode.OK)
        return output

    def _emit(self, code: int, error: str = "") -> None:
        if not self.as_json or (self.json_document and not error):
            return
        doc = {"ok": code == ExitCode.OK, "exit_code": int(code), **self.result}
        if error:
            doc["error"] = error
        self.stdout.write(json.dumps(doc, indent=2, default=str))

    def run_from_argv(self, argv):
        try:
            super().run_from_argv(argv)
        except CommandError as e:
            # Only with --traceback does Django let a CommandError out: the traceback asked for, and the
            # command's own exit code still (not 70: the code must not depend on how verbose the run was).
            import traceback

            traceback.print_exc()
            sys.exit(e.returncode)
        except Exception:
            # A fault in jitad: the traceback as Python prints it, and exit 70 (Python's own is 1, "problems").
            import traceback

            traceback.print_exc()
            sys.exit(ExitCode.INTERNAL)
