"""The login throttle for operators: who is counted now, and ending a pause someone is sure about."""
import getpass

from jitad.accounts.throttle import login_throttle_clear, login_throttle_status
from jitad.commands import JitadCommand, usage_error


class Command(JitadCommand):
    help = ("Login throttling (docs/logins.md). status: accounts and client addresses with wrong passwords in the "
            "window; clear ACCOUNT or clear --client ADDRESS: end that pause now (audited).")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("status", help="accounts and addresses counted now, most failures first")
        clear = sub.add_parser("clear", help="end the pause of an account (or, with --client, of an address)")
        clear.add_argument("account", nargs="?", default="", help="the account, as people type it")
        clear.add_argument("--client", default="", help="a client address (an IPv6 address clears its /64)")
        clear.add_argument("--reason", default="", help="why (recorded in the audit trail)")
        clear.add_argument("--by", default="", help="who decides (default: your login on this machine)")

    def handle(self, *args, **options):
        if options["action"] == "status":
            rows = login_throttle_status()
            self.result = {"counted": [{"scope": r["scope"], "key": r["key"], "failures": r["failures"],
                                        "last": r["last"]} for r in rows]}
            for r in rows:
                self.say(f"{r['scope']:8} {r['key']:40} {r['failures']:4} wrong, last {r['last']:%Y-%m-%d %H:%M:%S}")
            if not rows:
                self.say("no wrong passwords in the window")
            return
        actor = options["by"].strip() or f"manage.py:{getpass.getuser()}"
        try:
            count = login_throttle_clear(account=options["account"].strip(), client=options["client"].strip(),
                                         actor=actor, reason=options["reason"])
        except ValueError as e:
            raise usage_error(str(e)) from None
        self.result = {"cleared": count}
        self.say(f"cleared: {count} wrong password(s) no longer count")
