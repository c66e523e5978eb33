"""Removals the reconciler held (too many of a group at once): list them, confirm them, or discard them."""
import getpass

from django.core.management.base import CommandError
from django.db.models import Q

from jitad.commands import ExitCode, JitadCommand, usage_error

from jitad.elevation.models import HeldRemoval
from jitad.elevation.services import held_removals_confirm, held_removals_discard

HeldState = HeldRemoval.State


class Command(JitadCommand):
    help = ("Removals the reconciler held because one run would have removed too many members of a group "
            "(docs/reconciler.md). list: what waits (exit 3 when any is pending); confirm: the worker removes "
            "them; discard: they stay in the group, and the record remains.")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="held removals waiting for a decision or being removed")
        listing.add_argument("--all", action="store_true", help="also those decided and done")
        listing.add_argument("--group", default="", help="only this group (its DN)")
        for name, text in (("confirm", "remove these members (the worker does it)"),
                           ("discard", "leave these members in the group")):
            p = sub.add_parser(name, help=text)
            p.add_argument("ids", nargs="*", type=int, metavar="ID", help="held removal numbers (from list)")
            p.add_argument("--all-for-group", default="", metavar="GROUP_DN", help="every pending one of this group")
            p.add_argument("--reason", default="", help="why (recorded in the audit trail)")
            p.add_argument("--by", default="", help="who decides (default: your login on this machine)")

    def handle(self, *args, **options):
        if options["action"] == "list":
            return self._list(options)
        if not options["ids"] and not options["all_for_group"]:
            raise usage_error(f"{options['action']}: name held removals by number, or --all-for-group GROUP_DN")
        actor = options["by"].strip() or f"manage.py:{getpass.getuser()}"
        decide = held_removals_confirm if options["action"] == "confirm" else held_removals_discard
        result = decide(ids=options["ids"], group_dn=options["all_for_group"], actor=actor, reason=options["reason"])
        self.result = {"action": options["action"], "changed": [h.pk for h in result.changed],
                       "refused": [{"id": pk, "why": why} for pk, why in result.refused]}
        for pk, why in result.refused:
            self.stderr.write(f"#{pk} not {options['action']}ed: {why}")
        if result.changed:
            numbers = " ".join(f"#{h.pk}" for h in result.changed)
            if options["action"] == "confirm":
                self.say(f"confirmed {len(result.changed)}: {numbers}; the worker removes them now "
                                  "(see `list`, or the audit trail: membership.removed_held)")
            else:
                self.say(f"discarded {len(result.changed)}: {numbers}; they stay in the group and "
                                  "the reconciler leaves them alone while they do")
        elif result.refused:
            raise CommandError(f"nothing to {options['action']}")
        else:
            self.say(f"nothing pending for {options['all_for_group']}")
        return None

    def _list(self, options) -> None:
        qs = HeldRemoval.objects.order_by("group_dn", "id")
        if not options["all"]:
            qs = qs.filter(Q(state__in=HeldRemoval.OPEN_STATES) | Q(state=HeldState.DISCARDED, left_at__isnull=True))
        if options["group"]:
            qs = qs.filter(group_dn=options["group"])
        rows = list(qs)
        self.result = {"held": [{"id": h.pk, "group_dn": h.group_dn, "member_dn": h.member_dn, "state": h.state,
                                 "held_at": h.held_at, "decided_by": h.decided_by or None,
                                 "decided_at": h.decided_at, "outcome": h.outcome or None,
                                 "last_error": h.last_error or None, "attempts": h.attempts} for h in rows]}
        if not rows:
            self.say("no held removals" + ("" if options["all"] else " waiting (--all shows past ones)"))
            return
        group = None
        for h in rows:
            if h.group_dn != group:
                group = h.group_dn
                pending = sum(1 for r in rows if r.group_dn == group and r.state == HeldState.PENDING)
                self.say(f"{group}: {pending} pending")
            line = f"  #{h.pk:<6} {h.state:<9} held {h.held_at:%Y-%m-%d %H:%M:%S} UTC  {h.member_dn}"
            if h.decided_by:
                line += f"  (decided by {h.decided_by} {h.decided_at:%Y-%m-%d %H:%M:%S} UTC)"
            if h.outcome:
                line += f"  {h.outcome}"
            if h.state == HeldState.CONFIRMED and h.last_error:
                line += f"  last error: {h.last_error} (attempt {h.attempts})"
            self.say(line)
        waiting = sum(1 for h in rows if h.state == HeldState.PENDING)
        if waiting:
            raise CommandError(f"{waiting} held removal(s) wait for a decision: confirm or discard", returncode=ExitCode.ATTENTION)
