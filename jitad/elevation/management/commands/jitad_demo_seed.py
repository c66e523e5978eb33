"""Seed a small demo estate: the JIT groups a policy file names, AD OUs, groups and users, their
jitad accounts, one live grant."""
import json
import secrets
import time
from datetime import timedelta
from pathlib import Path

import yaml

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from jitad import directory
from jitad.accounts.devices import AuthenticatorDevice
from jitad.accounts.mfa import MfaStep
from jitad.accounts.services import account_sync_from_directory
from jitad.commands import JitadCommand, usage_error
from jitad.elevation import services
from jitad.elevation.models import AccessRequest, Grant, Target

EXAMPLE_POLICY = Path(settings.BASE_DIR) / "ops" / "policy.example.yaml"
# Role groups named in ops/policy.example.yaml, and who is in them.
PEOPLE = {
    "alice": ["Server-Operators", "DBAs", "App-Admins"],
    "bob": ["DBA-Leads", "Tier0-Approvers", "BreakGlass-Approvers", "App-Operators"],
    "carol": ["Tier0-Admins", "Tier0-Approvers", "BreakGlass-Responders", "On-Call-Leads"],
    "dave": ["Security-Managers", "BreakGlass-Approvers", "IT-Managers"],
}
# Sealed break-glass accounts: bg-da-01 disabled while sealed, bg-env-01 kept enabled for a paper envelope.
BREAKGLASS = {
    "bg-da-01": {"description": "Domain Admins break-glass (demo)", "disable_when_sealed": True},
    "bg-env-01": {"description": "Envelope account for the portal-down runbook (demo)", "disable_when_sealed": False},
}


class Command(JitadCommand):
    help = "Create the demo estate in a throwaway DC (refuses to run in production)."

    def add_arguments(self, parser):
        parser.add_argument("--winrm", action="append", default=[], metavar="TARGET=URL",
                            help="check this target's grants on a (test) WinRM host at URL")
        parser.add_argument("--stage", choices=["groups", "estate", "requests", "sessions", "history", "all"], default="all",
                            help="groups: the JIT OU and the groups the policy file names, so it can be applied; "
                                 "estate: AD objects and accounts (prints the JIT groups' SIDs); requests: the demo "
                                 "requests; sessions: wait for the demo grants on WinRM servers to be active and print their SIDs (for the "
                                 "demo servers' Security logs); history: ~75 days of past requests, grants and scans for the Reports "
                                 "(database only); all: estate and requests")
        parser.add_argument("--policy-file", default=str(EXAMPLE_POLICY),
                            help="the policy file whose groups the groups stage creates (default: the example)")

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("jitad_demo_seed is for throwaway demo domains only")
        if options["stage"] == "history":
            # The reports own the history (and its snapshots); called by name, so this app never imports them.
            try:
                call_command("jitad_demo_history", "--format", options["format"], stdout=self.stdout)
            finally:
                self._format = "text"  # jitad_demo_history wrote the JSON document (or its error) itself
            return
        if options["stage"] == "groups":
            created = self._jit_groups(options["policy_file"])
            self._stage({"jit_groups": created})
            return
        for spec in options["winrm"]:
            name, _, url = spec.partition("=")
            # The demo's servers are WinRM test hosts speaking NTLM (the demo has no keytab); ops/demo.py allows it.
            if not Target.objects.filter(name=name).update(winrm_url=url, winrm_transport="ntlm"):
                raise usage_error(f"no target named {name!r}")
        if options["stage"] == "requests":
            self._requests()
            self._stage({})
            return
        if options["stage"] == "sessions":
            self._stage(self._sessions())
            return
        creds_file = Path(settings.VAR_DIR) / "demo-credentials.json"
        creds = json.loads(creds_file.read_text()) if creds_file.exists() else {}
        base = settings.JITAD_LDAP_BASE_DN
        people_ou = f"OU=People,{base}"
        with directory.connect() as d:
            d.ensure_ou(people_ou)
            for target in Target.objects.all():
                for dn, what in [(target.group_dn, f"jitad: admin on {target.name}")] + [
                    (m, "standing member (break-glass)") for m in target.standing_members
                ]:
                    name, parent = directory.split_dn(dn)
                    if parent.upper().startswith("OU="):
                        d.ensure_ou(parent)
                    d.ensure_group(name, parent, what)
            role_dns = {}
            for groups in PEOPLE.values():
                for g in groups:
                    role_dns[g] = d.ensure_group(g, people_ou)
            for name, groups in PEOPLE.items():
                password = creds.get(name) or f"Demo-{secrets.token_urlsafe(12)}"
                creds[name] = password
                dn = d.ensure_user(name, people_ou, password=password, display_name=name.title(),
                                   mail=f"{name}@jitad.test", upn_suffix="jitad.test")
                for g in groups:
                    d.ensure_member(role_dns[g], dn)  # eligibility groups live outside the JIT OU
        User = get_user_model()
        # The same path an AD login takes: linked by objectGUID, groups from AD, no local password.
        with directory.connect() as d:
            for name in PEOPLE:
                entry = d.find_user(name)
                account_sync_from_directory(entry=entry, groups=d.groups_of(entry.dn))

        admin_password = creds.get("admin") or secrets.token_urlsafe(14)
        creds["admin"] = admin_password
        admin, created = User.objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
        if created:
            admin.set_password(admin_password)
            admin.save()
        device = AuthenticatorDevice.objects.filter(user=admin, name="demo").first() or AuthenticatorDevice.objects.create(
            user=admin, name="demo", confirmed=True
        )
        self._breakglass(base)
        creds_file.write_text(json.dumps(creds))
        creds_file.chmod(0o600)
        with directory.connect() as d:
            sids = {t.name: d.object_sid(t.group_dn) for t in Target.objects.exclude(winrm_url="")}
        if options["stage"] == "all":
            self._requests()
        self._stage({"admin_password": admin_password, "totp_uri": device.config_url,
                     "people": {k: v for k, v in creds.items() if k != "admin"}, "jit_group_sids": sids})

    def _stage(self, facts: dict) -> None:
        """A stage's facts: one JSON line of text (ops/demo.py reads the last line), or the JSON document's fields."""
        self.result = dict(facts)
        self.say(json.dumps(facts))

    def _jit_groups(self, path: str) -> list[str]:
        """Create the JIT OU(s), every group the policy file names (targets' groups, standing members) and its
        ephemeral OUs.

        jitad_apply_policy refuses a group that is not in AD, so a fresh demo domain needs them
        first. Only DNs under the JIT OU are created: the demo never makes a group jitad would
        refuse to manage.
        """
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise usage_error(f"cannot read {path}: {e}") from e
        targets = (data.get("targets") or []) if isinstance(data, dict) else []
        policies = (data.get("policies") or []) if isinstance(data, dict) else []
        wanted, ephemeral_ous = [], []
        for target in targets:
            if isinstance(target, dict):
                wanted += [target.get("group")] + list(target.get("standing_members") or [])
        for entry in [*targets, *policies]:
            if isinstance(entry, dict) and isinstance(entry.get("ephemeral"), dict):
                ephemeral_ous.append(entry["ephemeral"].get("ou"))
        ephemeral_ous = [ou for ou in dict.fromkeys(ephemeral_ous) if isinstance(ou, str) and directory.under_jit_ou(ou)]
        wanted = list(dict.fromkeys(dn for dn in wanted if isinstance(dn, str)))
        outside = [dn for dn in wanted if directory.placement_problem(dn)]
        if outside:
            raise CommandError(f"{path} names groups outside the JIT OU ({'; '.join(directory.jit_ous()) or 'unset'}): "
                               + ", ".join(outside))
        created = []
        with directory.connect() as d:
            for ou in directory.jit_ous():
                d.ensure_ou(ou)
            for dn in wanted:
                name, parent = directory.split_dn(dn)
                if parent.upper().startswith("OU="):
                    d.ensure_ou(parent)
                created.append(d.ensure_group(name, parent, "jitad demo: a JIT group"))
            for ou in ephemeral_ous:  # the OUs ephemeral accounts are made in (only under the JIT OU)
                d.ensure_ou(ou)
        return created

    def _breakglass(self, base: str) -> None:
        """Create the break-glass accounts in AD and seal them here (nobody knows their passwords)."""
        from jitad.breakglass.models import SealedAccount
        from jitad.breakglass.services import account_enrol, account_rotate_here

        ou = f"OU=BreakGlass,{base}"
        with directory.connect() as d:
            d.ensure_ou(ou)
            admins = f"CN=Domain Admins,CN=Users,{base}"
            for name in BREAKGLASS:
                dn = d.ensure_user(name, ou, password=f"Demo-{secrets.token_urlsafe(16)}", display_name=name)
                d.ensure_member(admins, dn)  # break-glass: a standing member jitad never manages
        for name, fields in BREAKGLASS.items():
            if SealedAccount.objects.filter(name=name).exists():
                continue
            account = account_enrol(account=SealedAccount(
                name=name, responder_groups=["BreakGlass-Responders"], approver_groups=["BreakGlass-Approvers"],
                **fields), actor="system:demo-seed")
            account_rotate_here(account=account, token=account.claim_token)

    def _sessions(self, wait_seconds: float = 90.0) -> dict:
        """{target: {grant, sids, activated_at}} for the active demo grants on WinRM-checked servers, waiting (up to
        ``wait_seconds``) for each to be applied, so the demo's servers can log a session of those accounts."""
        names = list(Target.objects.exclude(winrm_url="").values_list("name", flat=True))
        deadline = time.monotonic() + wait_seconds
        found: dict = {}
        while True:
            for g in Grant.objects.filter(target__name__in=names, state=Grant.State.ACTIVE).exclude(user_sid=""):
                if not g.ephemeral or g.account_sid:
                    found[g.target.name] = {"grant": g.pk, "sids": g.sids, "activated_at": g.activated_at.isoformat()}
            if found or time.monotonic() > deadline:
                return found
            time.sleep(1)

    def _requests(self):
        User = get_user_model()
        alice = User.objects.get(username="alice")
        # Alice asks from a portal session verified with her authenticator app a minute earlier.
        mfa = MfaStep(method="totp", verified_at=timezone.now() - timedelta(minutes=1))
        srv01 = Target.objects.filter(name="SRV01").first()
        if srv01 and not Grant.objects.filter(user=alice, target=srv01, state=Grant.State.ACTIVE).exists():
            services.request_create(requester=alice, target=srv01, duration_minutes=60,
                                    justification="Demo: monthly patching of SRV01", mfa=mfa)
        # A request waiting for an approver (bob, a DBA lead) in the admin's queue.
        sql01 = Target.objects.filter(name="SQL01").first()
        if sql01 and not AccessRequest.objects.filter(requester=alice, target=sql01,
                                                      state=AccessRequest.State.PENDING).exists():
            services.request_create(requester=alice, target=sql01, duration_minutes=90, ticket="CHG004711",
                                    justification="Demo: apply the quarterly SQL Server cumulative update", mfa=mfa)
        # A two-stage request: a peer (bob, App-Operators) then a manager (dave, IT-Managers); at night or at the
        # weekend (Paris time) the policy's window adds the on-call lead (carol) as a third stage.
        app01 = Target.objects.filter(name="APP01").first()
        if app01 and not AccessRequest.objects.filter(requester=alice, target=app01,
                                                      state=AccessRequest.State.PENDING).exists():
            services.request_create(requester=alice, target=app01, duration_minutes=60, mfa=mfa,
                                    justification="Demo: deploy release 4.2 of the line-of-business application")
