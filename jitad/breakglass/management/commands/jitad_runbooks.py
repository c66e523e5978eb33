"""List the break-glass runbooks and the files that fail to load; --check exits 1 on any failure."""
from django.core.management.base import CommandError

from jitad.breakglass.runbooks import runbook_dir, runbooks_load
from jitad.commands import JitadCommand


class Command(JitadCommand):
    help = ("List break-glass runbooks (slug, severity, steps, title, accounts) and the files that do not "
            "load. --check exits 1 when any file has a problem, for CI and pre-commit hooks.")

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="exit 1 if any runbook file has a problem")
        parser.add_argument("--format", choices=["text", "json"], default="text")
        parser.add_argument("--dir", help="a runbook directory other than JITAD_RUNBOOK_DIR (e.g. a checkout in CI)")

    def handle(self, *args, **options):
        directory = options["dir"] or runbook_dir()
        loaded = runbooks_load(directory)
        self.result = {
            "directory": str(directory),
            "runbooks": [
                {"slug": rb.slug, "title": rb.title, "severity": rb.severity, "applies_to": list(rb.applies_to),
                 "scenarios": list(rb.scenarios), "steps": len(rb.steps), "digest": rb.digest}
                for rb in loaded.runbooks.values()
            ],
            "errors": loaded.errors,
        }
        for rb in loaded.runbooks.values():
            self.say(f"{rb.slug:<28} {rb.severity:<8} {len(rb.steps):>3} steps  {rb.title}  [{', '.join(rb.applies_to)}]")
        self.say(f"{len(loaded.runbooks)} runbook(s) in {directory}, {len(loaded.errors)} with problems")
        # Problems go to stderr in both formats, so a CI log shows them even when stdout is parsed.
        for name, message in sorted(loaded.errors.items()):
            self.stderr.write(f"error: {message}" if message.startswith(name) else f"error: {name}: {message}")
        if options["check"] and loaded.errors:
            raise CommandError(f"{len(loaded.errors)} runbook file(s) with problems")
