"""Pre-provision people from AD before their first login, optionally with an enrolment code each."""
import getpass
import sys

from jitad import directory
from jitad.accounts.enrolment import EnrolmentCodeRefused, enrolment_code_issue
from jitad.accounts.mfa import mfa_enrolled
from jitad.accounts.provisioning import ProvisionRefused, account_provision
from jitad.commands import JitadCommand, problems_error, unreachable_error


class Command(JitadCommand):
    help = ("Create (or refresh) the portal users of AD accounts, by sAMAccountName, DOMAIN\\name or UPN; "
            "--enrolment-code also issues each person who has no MFA device yet a one-time enrolment code, "
            "printed once. Names from the arguments, or one a line from stdin with '-'. Exit codes: 0 every "
            "name done, 1 some refused (the others done), 69 no DC answered (the rest not tried).")

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="+", help="AD account names, or '-' to read them from stdin")
        parser.add_argument("--enrolment-code", action="store_true", help="issue an enrolment code to each")
        parser.add_argument("--hours", type=int, default=None, help="how long the codes work")
        parser.add_argument("--by", default="", help="who does it (default: your login on this machine)")

    def handle(self, *args, **options):
        names = [n for n in options["names"] if n != "-"]
        if "-" in options["names"]:
            names += [line.strip() for line in sys.stdin if line.strip()]
        actor = options["by"].strip() or f"manage.py:{getpass.getuser()}"
        rows, refused, unreachable = [], 0, ""
        self.result = {"people": rows}
        for name in names:
            row = {"name": name}
            rows.append(row)
            try:
                done = account_provision(name=name, actor=actor)
            except ProvisionRefused as e:
                row.update(result="refused", error=str(e))
                refused += 1
                continue
            except directory.DirectoryError as e:  # no DC, or jitad's own bind refused: the rest would fail too
                row.update(result="failed", error=f"Active Directory: {e}")
                unreachable = str(e)
                break
            row.update(result="created" if done.created else "refreshed", user=done.user.get_username())
            if options["enrolment_code"] and not mfa_enrolled(done.user):
                try:
                    code, raw = enrolment_code_issue(user=done.user, actor=actor, hours=options["hours"])
                    row.update(enrolment_code=raw, expires_at=code.expires_at.isoformat())
                except EnrolmentCodeRefused as e:
                    row.update(result="refused", error=str(e))
                    refused += 1
        for r in rows:
            line = f"{r['name']}: {r['result']}" + (f" ({r['error']})" if "error" in r else "")
            if "enrolment_code" in r:
                line += f", enrolment code {r['enrolment_code']} until {r['expires_at'][:16]} UTC"
            self.say(line)
        if unreachable:
            raise unreachable_error(f"Active Directory did not answer: {unreachable}")
        if refused:
            raise problems_error(f"{refused} of {len(names)} refused")
