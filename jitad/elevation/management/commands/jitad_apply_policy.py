"""Apply a YAML policy file: create or update its targets and policies; exit 1 if it is rejected
or its groups cannot be checked in AD."""
from django.core.management.base import CommandError

from jitad import directory
from jitad.commands import JitadCommand, unreachable_error, usage_error
from jitad.elevation.policy_file import ApplySummary, PolicyFileError, apply_policy_file


class Command(JitadCommand):
    help = "Validate a YAML policy file and bring targets and policies in line with it (all or nothing)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="the policy file (YAML, version 1)")
        parser.add_argument(
            "--prune", action="store_true", help="disable (never delete) targets and policies the file does not name"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="validate and show what would change; change nothing"
        )

    def handle(self, *args, **options):
        path = options["file"]
        try:
            summary = apply_policy_file(path, prune=options["prune"], dry_run=options["dry_run"])
        except (OSError, UnicodeDecodeError) as e:
            raise usage_error(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from e
        except PolicyFileError as e:
            self.result = {"file": path, "errors": list(e.errors)}
            for error in e.errors:
                self.stderr.write(f"{path}: {error}")
            raise CommandError(f"{path} rejected with {len(e.errors)} error(s); nothing was changed") from e
        except directory.DirectoryError as e:
            # Every target's group must be checked in AD before anything is written.
            if not isinstance(e, directory.DirectoryUnavailable):
                raise CommandError(f"cannot check the targets' groups in Active Directory: {e}; "
                                   "nothing was changed") from e
            raise unreachable_error(f"cannot check the targets' groups in Active Directory: {e}; "
                               "nothing was changed") from e
        self.report(path, summary)

    def report(self, path: str, summary: ApplySummary) -> None:
        """One line per object touched, then the counts."""
        self.result = {"file": path, "dry_run": summary.dry_run, "created": list(summary.created),
                       "updated": {label: list(summary.changed_fields[label]) for label in summary.updated},
                       "unchanged": list(summary.unchanged), "disabled": list(summary.disabled)}
        for label in summary.created:
            self.say(f"  created   {label}")
        for label in summary.updated:
            self.say(f"  updated   {label}: {', '.join(summary.changed_fields[label])}")
        for label in summary.disabled:
            self.say(f"  disabled  {label}")
        counts = (
            f"{len(summary.created)} created, {len(summary.updated)} updated, "
            f"{len(summary.unchanged)} unchanged, {len(summary.disabled)} disabled"
        )
        if summary.dry_run:
            self.say(f"Dry run of {path}: would be {counts}. Nothing was changed.")
        else:
            self.say(f"Applied {path}: {counts}.", style=self.style.SUCCESS)
