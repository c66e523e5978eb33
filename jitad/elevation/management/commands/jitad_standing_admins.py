"""Report standing admins on servers: the members of local Administrators no JIT grant explains."""
import csv

from django.core.management.base import CommandError

from jitad.commands import ExitCode, JitadCommand, unreachable_error, usage_error
from jitad.elevation.models import StandingAdmin
from jitad.elevation.selectors.targets import scannable_targets
from jitad.elevation.services import host_scan


class Command(JitadCommand):
    help = ("List standing admins found by the last scans (exit 3 when there are any). --scan scans "
            "now first; --target limits to servers by name. Servers still reached over NTLM are named "
            "in a warning on stderr (and in the JSON document).")

    def add_arguments(self, parser):
        parser.add_argument("--scan", action="store_true", help="scan the servers now, from this process")
        parser.add_argument("--target", action="append", default=[], help="only this target (repeatable)")
        parser.add_argument("--format", choices=["text", "csv", "json"], default="text")

    def handle(self, *args, **options):
        targets = scannable_targets()
        if options["target"]:
            targets = targets.filter(name__in=options["target"])
            missing = set(options["target"]) - set(targets.values_list("name", flat=True))
            if missing:
                raise usage_error(f"no enabled target with WinRM named: {', '.join(sorted(missing))}")
        failed = []
        if options["scan"]:
            for target in targets:
                scan = host_scan(target=target)
                if not scan.ok:
                    failed.append(f"{target.name}: {scan.error}")
        findings = list(
            StandingAdmin.objects.filter(resolved_at__isnull=True, target__in=targets).select_related("target")
        )
        self._write(findings, options["format"], checked=targets.count())
        self._warn_ntlm(targets)
        for line in failed:
            self.stderr.write(f"scan failed: {line}")
        self.result["scan_failures"] = failed
        if failed:
            raise unreachable_error(f"{len(failed)} server(s) could not be scanned")
        if findings:
            raise CommandError(f"{len(findings)} standing admin(s) on {len({f.target_id for f in findings})} server(s)",
                               returncode=ExitCode.ATTENTION)

    def _warn_ntlm(self, targets) -> None:
        """NTLM is allowed only where a profile asks for it; every server that still uses it is named, each report
        (on stderr, and as ``ntlm_targets`` in the JSON document), with what to do: switch it to Kerberos."""
        from urllib.parse import urlsplit

        ntlm = list(targets.filter(winrm_transport="ntlm").exclude(winrm_url="").order_by("name")
                    .values_list("name", "winrm_profile", "hostname", "winrm_url"))
        self.result["ntlm_targets"] = [{"target": name, "profile": profile or "default"}
                                       for name, profile, _host, _url in ntlm]
        for name, profile, hostname, url in ntlm:
            spn_host = (hostname or urlsplit(url).hostname or "<its hostname>").rstrip(".").lower()
            setting = (f"JITAD_WINRM_PROFILE_{profile.upper().replace('-', '_')}_ALLOW_NTLM" if profile
                       else "JITAD_WINRM_ALLOW_NTLM")
            self.stderr.write(
                f"warning: {name} is reached over NTLM (WinRM profile {profile or 'default'} allows it). NTLM is "
                "deprecated, being switched off in Windows, and its logons can be relayed or cracked offline. "
                f"Switch the target to Kerberos (transport: kerberos in its winrm policy, or its WinRM transport in "
                f"the admin), with HTTP/{spn_host} known to AD (a domain-joined server's HOST/ SPN covers it); "
                f"once no target needs NTLM, unset {setting} (ops/README.md, Kerberos)")

    def _write(self, findings, fmt: str, *, checked: int) -> None:
        rows = [
            {"target": f.target.name, "member": f.name or f.sid, "sid": f.sid, "class": f.member_class,
             "orphaned": f.orphaned, "first_seen": f.first_seen_at.isoformat(), "last_seen": f.last_seen_at.isoformat()}
            for f in findings
        ]
        self.result = {"checked": checked, "findings": rows}
        if fmt == "json":
            return  # the document is written when the command ends (jitad/commands.py)
        if fmt == "csv":
            writer = csv.DictWriter(self.stdout, fieldnames=list(rows[0]) if rows else ["target"])
            writer.writeheader()
            writer.writerows(rows)
        elif not rows:
            self.stdout.write(f"no standing admins on {checked} checked server(s)")
        else:
            for r in rows:
                flag = " (orphaned SID)" if r["orphaned"] else ""
                self.stdout.write(f"{r['target']}\t{r['member']}{flag}\t{r['sid']}\tsince {r['first_seen']}")
