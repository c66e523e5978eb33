"""Is this installation ready: settings, database, DCs, rights on the JIT OU, WinRM, alert destinations, vault keys."""
from django.core.management.base import CommandError

from jitad import __version__
from jitad.commands import ExitCode, JitadCommand
from jitad.operations.readiness import OK, PROBLEM, UNREACHABLE, WARNING, readiness_check


class Command(JitadCommand):
    help = ("Readiness report (ops/README.md, 'Checking an installation'): settings and database, each DC's TLS "
            "certificate and bind, the service account's rights under the JIT OU (asked of the DC, nothing written), "
            "WinRM profiles and endpoints, alert destinations (nothing sent), vault keys. Exit 0 when ready, 1 on any "
            "problem, 69 when the only trouble is a part that did not answer.")

    def handle(self, *args, **options):
        from django.conf import settings

        findings = readiness_check()
        counts = {s: sum(1 for f in findings if f.status == s) for s in (OK, WARNING, PROBLEM, UNREACHABLE)}
        self.result = {"version": __version__, "environment": settings.JITAD_ENV, "counts": counts,
                       "checks": [f.as_dict() for f in findings]}
        self.say(f"jitad {__version__} readiness check ({settings.JITAD_ENV})")
        marks = {OK: self.style.SUCCESS, WARNING: self.style.WARNING, PROBLEM: self.style.ERROR,
                 UNREACHABLE: self.style.ERROR}
        for f in findings:
            self.say(f"{marks[f.status](f'{f.status:<11}')} {f.area:<13} {f.subject}: {f.detail}")
        summary = (f"{counts[PROBLEM]} problem(s), {counts[UNREACHABLE]} part(s) not answering, "
                   f"{counts[WARNING]} warning(s), {counts[OK]} ok")
        if counts[PROBLEM]:
            raise CommandError(f"not ready: {summary}", returncode=ExitCode.PROBLEMS)
        if counts[UNREACHABLE]:
            raise CommandError(f"not ready: {summary}", returncode=ExitCode.UNREACHABLE)
        self.say(f"ready: {summary}")
