"""Enrolment codes for the service desk: issue one to hand over out of band, revoke, or see who holds one."""
import getpass

from django.contrib.auth import get_user_model
from django.utils import timezone

from jitad.accounts.enrolment import EnrolmentCodeRefused, enrolment_code_issue, enrolment_code_revoke
from jitad.accounts.models import EnrolmentCode
from jitad.commands import JitadCommand, problems_error, usage_error

User = get_user_model()


class Command(JitadCommand):
    help = ("Enrolment codes (docs/mfa.md, 'Enrolment codes'). issue NAME: a new one-time code for NAME's first MFA "
            "enrolment, printed once (earlier codes stop working); revoke NAME: void NAME's code; status NAME: "
            "NAME's codes, never the codes themselves. Exit codes: 0 done, 1 refused, 2 no such user.")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        for action, text in (("issue", "a new code for the person, printed once"),
                             ("revoke", "void the person's live code"), ("status", "the person's codes")):
            p = sub.add_parser(action, help=text)
            p.add_argument("username", help="the person's jitad user name (provision them first: jitad_provision)")
            if action != "status":
                p.add_argument("--by", default="", help="who does it (default: your login on this machine)")
        sub.choices["issue"].add_argument("--hours", type=int, default=None,
                                          help="how long the code works (default JITAD_ENROLMENT_CODE_HOURS)")
        sub.choices["revoke"].add_argument("--reason", default="", help="why (recorded in the audit trail)")

    def handle(self, *args, **options):
        user = User.objects.filter(username__iexact=options["username"].strip()).first()
        if user is None:
            raise usage_error(f"no jitad user {options['username']!r}: provision them first (jitad_provision)")
        actor = (options.get("by") or "").strip() or f"manage.py:{getpass.getuser()}"
        action = options["action"]
        if action == "issue":
            try:
                code, raw = enrolment_code_issue(user=user, actor=actor, hours=options["hours"])
            except EnrolmentCodeRefused as e:
                raise problems_error(str(e)) from None
            self.result = {"user": user.get_username(), "code": raw, "expires_at": code.expires_at.isoformat()}
            self.say(f"Enrolment code for {user.get_username()}: {raw}\nIt works once, until "
                     f"{code.expires_at:%Y-%m-%d %H:%M} UTC. Hand it over out of band (never by e-mail); it is not "
                     "shown again.")
        elif action == "revoke":
            count = enrolment_code_revoke(user=user, actor=actor, reason=options["reason"])
            self.result = {"user": user.get_username(), "revoked": count}
            self.say(f"{count} code(s) of {user.get_username()} revoked")
        else:
            now = timezone.now()
            rows = [{"id": c.pk, "issued_at": c.issued_at.isoformat(), "issued_by": c.issued_by,
                     "expires_at": c.expires_at.isoformat(), "failed_attempts": c.failed_attempts,
                     "state": ("used" if c.used_at else f"void ({c.void_reason})" if c.voided_at
                               else "expired" if c.expires_at <= now else "live")}
                    for c in EnrolmentCode.objects.filter(user=user).order_by("-issued_at")[:20]]
            self.result = {"user": user.get_username(), "codes": rows}
            self.say("\n".join(f"{r['id']:6} {r['state']:16} issued {r['issued_at'][:16]} by {r['issued_by']}, "
                               f"expires {r['expires_at'][:16]}, {r['failed_attempts']} wrong" for r in rows) or "no codes")
