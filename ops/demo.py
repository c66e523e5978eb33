#!/usr/bin/env python
"""`make demo`: a throwaway Samba DC, two demo Windows servers (WinRM test hosts), then
jitad's web and workers (the engine worker with its elected scheduler), all on 127.0.0.1.

Everything lives under var/demo (git-ignored): the DC, the SQLite database, the broker
folder and the generated demo passwords. Ctrl-C stops everything this script started.
SRV01 and SQL01 are WinRM test hosts (tests/support/winrm_host/) running in this process:
jitad logs on to them with NTLM and checks their local Administrators as it would on
Windows. Their Administrators groups hold the JIT group, Domain Admins, the built-in
Administrator, and on SRV01 a deleted account's SID, so the standing-admin scan has
something to report.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.samba import SambaDC, SambaUnavailable  # noqa: E402  (the tests' DC recipe, reused)
from tests.support.winrm_host import WinRMTestHost  # noqa: E402  (the tests' Windows server, reused)

VAR = REPO / "var" / "demo"
PORT = int(os.environ.get("JITAD_DEMO_PORT", "8000"))
PY = sys.executable
DEMO_SERVERS = ("SRV01", "SQL01")
WINRM_USER = "JITAD\\svc-jitad-winrm"


def _demo_admins(name: str, jit_sid: str) -> list[dict]:
    """A plausible local Administrators group: the JIT group plus what real servers carry."""
    domain = jit_sid.rsplit("-", 1)[0]
    admins = [
        {"sid": "S-1-5-21-3623811015-3361044348-30300820-500", "path": f"WinNT://JITAD/{name}/Administrator",
         "class": "User"},
        {"sid": jit_sid, "path": f"WinNT://JITAD/JIT-{name}-Admins", "class": "Group"},
        {"sid": f"{domain}-512", "path": "WinNT://JITAD/Domain Admins", "class": "Group"},
    ]
    if name == "SRV01":  # an old admin account deleted from AD, still in the group: an orphaned SID
        admins.append({"sid": f"{domain}-4711", "path": f"WinNT://{domain}-4711", "class": ""})
    return admins


def _demo_session(host: WinRMTestHost, sids: list[str]) -> None:
    """An admin's session on a demo server, written into its Security log over the next minute.

    What a real server logs when someone uses a grant: an RDP logon from an admin workstation
    (10.0.5.0/24, the target's expected logon sources), special privileges, the programs
    started, a network logon from an address nobody expects (a signal), then the logoff. The
    times are a little ahead, so jitad's next reads of the log find them as they "happen".
    """
    from datetime import datetime, timedelta, timezone

    sid = sids[-1]  # the grant's ephemeral account where there is one, else the person's
    t0 = datetime.now(timezone.utc)

    def at(seconds: float) -> str:
        return (t0 + timedelta(seconds=seconds)).isoformat()

    system = "S-1-5-18"
    events = [
        {"id": 4624, "at": at(5), "SubjectUserSid": system, "TargetUserSid": sid, "LogonType": "10",
         "IpAddress": "10.0.5.21", "TargetLogonId": "0x5a1f0", "SubjectLogonId": "0x3e7"},
        {"id": 4672, "at": at(5), "SubjectUserSid": sid, "SubjectLogonId": "0x5a1f0"},
        {"id": 4688, "at": at(12), "SubjectUserSid": sid, "SubjectLogonId": "0x5a1f0",
         "NewProcessName": "C:\\Windows\\System32\\mmc.exe"},
        {"id": 4688, "at": at(20), "SubjectUserSid": sid, "SubjectLogonId": "0x5a1f0",
         "NewProcessName": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"},
        {"id": 4688, "at": at(21), "SubjectUserSid": system, "SubjectLogonId": "0x3e7",
         "NewProcessName": "C:\\Windows\\System32\\svchost.exe"},  # not the admin's: never collected
        {"id": 4624, "at": at(30), "SubjectUserSid": system, "TargetUserSid": sid, "LogonType": "3",
         "IpAddress": "10.9.9.9", "TargetLogonId": "0x5b002", "SubjectLogonId": "0x3e7"},
        {"id": 4634, "at": at(31), "TargetUserSid": sid, "TargetLogonId": "0x5b002", "LogonType": "3"},
        {"id": 4647, "at": at(45), "TargetUserSid": sid, "TargetLogonId": "0x5a1f0"},
        {"id": 4634, "at": at(46), "TargetUserSid": sid, "TargetLogonId": "0x5a1f0", "LogonType": "10"},
    ]
    with host.lock:
        first = 52_000 + len(host.security_log)
        host.security_log.extend({**e, "record": first + i} for i, e in enumerate(events))


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the demo as cleanly as Ctrl-C
    VAR.mkdir(parents=True, exist_ok=True)
    pw_file = VAR / "samba-admin-password"
    dc = SambaDC(VAR / "samba", admin_password=pw_file.read_text().strip() if pw_file.exists() else None)
    procs: list[subprocess.Popen] = []
    servers: dict[str, WinRMTestHost] = {}
    try:
        if not dc.smb_conf.exists():
            print("provisioning a throwaway Samba AD DC (realm JITAD.TEST) ...", flush=True)
            dc.provision()
            pw_file.write_text(dc.admin_password)
            pw_file.chmod(0o600)
        dc.start()
        winrm_pw_file = VAR / "winrm-password"
        if not winrm_pw_file.exists():
            import secrets

            winrm_pw_file.write_text("Demo-" + secrets.token_urlsafe(16))
            winrm_pw_file.chmod(0o600)
        winrm_password = winrm_pw_file.read_text().strip()
        for name in DEMO_SERVERS:
            servers[name] = WinRMTestHost(users={WINRM_USER: winrm_password}, computer_name=name, admins=[]).start()
        env = dict(os.environ)
        env.update(dc.settings_env())
        env.update({
            "JITAD_VAR_DIR": str(VAR),
            "JITAD_BASE_URL": f"http://localhost:{PORT}",  # localhost: passkeys need a name, not an IP
            "DJANGO_SETTINGS_MODULE": "jitad.settings",
            "PYTHONPATH": str(REPO),
            "JITAD_WINRM_USERNAME": WINRM_USER,
            "JITAD_WINRM_PASSWORD": winrm_password,
            "JITAD_WINRM_ALLOW_NTLM": "true",
            "JITAD_HOST_SCAN_INTERVAL": "300",
            # Read the demo servers' Security logs often, so a session shows in its grant's timeline within seconds.
            "JITAD_EVIDENCE_SWEEP_INTERVAL": "5",
            "JITAD_EVIDENCE_INTERVAL_SECONDS": "10",
        })
        env.pop("JITAD_DATABASE_URL", None)  # the demo is SQLite and the filesystem broker, always
        env.pop("CELERY_BROKER_URL", None)

        def manage(*args, capture=False):
            return subprocess.run([PY, "manage.py", *args], cwd=REPO, env=env, check=True, text=True,
                                  capture_output=capture)

        manage("migrate", "--noinput", "-v", "0")
        # The policy file's groups must exist in AD, under the JIT OU, before it is applied
        # (jitad_apply_policy refuses any other): create them in the demo domain first.
        manage("jitad_demo_seed", "--stage=groups", "--policy-file=ops/policy.example.yaml", capture=True)
        manage("jitad_apply_policy", "ops/policy.example.yaml")
        logs = VAR / "logs"
        logs.mkdir(exist_ok=True)

        names: dict[int, str] = {}

        def start(name, *cmd):
            procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=open(logs / f"{name}.log", "ab"),
                                          stderr=subprocess.STDOUT, start_new_session=True))
            names[procs[-1].pid] = name

        # As in production (ops/README.md): the grant engine and the deliveries each have a
        # worker of their own, so a chat service that hangs never delays a revocation.
        # The engine worker runs the elected scheduler (-B), as every engine worker does in production.
        start("worker", PY, "-m", "celery", "-A", "jitad", "worker", "-B", "-Q", "celery", "-n", "engine@%h", "-l", "INFO",
              "-c", "2")
        start("notifier", PY, "-m", "celery", "-A", "jitad", "worker", "-Q", "notifications,hosts", "-n", "notifications@%h",
              "-l", "INFO", "-c", "2")
        start("web", PY, "manage.py", "runserver", "--insecure", "--noreload", f"127.0.0.1:{PORT}")
        # The estate first (AD groups and accounts), then the servers learn their JIT groups'
        # SIDs (as a GPO would put them there), then the demo requests: verified on arrival.
        winrm = [f"--winrm={name}={host.url}" for name, host in servers.items()]
        seed = json.loads(manage("jitad_demo_seed", "--stage=estate", *winrm, capture=True).stdout.strip().splitlines()[-1])
        for name, sid in seed["jit_group_sids"].items():
            with servers[name].lock:
                servers[name].admins[:] = _demo_admins(name, sid)
        manage("jitad_demo_seed", "--stage=requests", capture=True)
        # alice's grant on SRV01 is through an ephemeral account: once it is active, the demo server
        # logs her session, which jitad reads into the grant's timeline (docs/hosts.md).
        sessions = json.loads(manage("jitad_demo_seed", "--stage=sessions", capture=True).stdout.strip().splitlines()[-1])
        for name, session in sessions.items():
            _demo_session(servers[name], session["sids"])
        # Past weeks of requests, grants, scans and incidents, so the Reports' charts mean something.
        manage("jitad_demo_seed", "--stage=history", capture=True)
        subprocess.run([PY, "manage.py", "jitad_standing_admins", "--scan"], cwd=REPO, env=env, capture_output=True)
        print(f"""
jitad demo is running.

  Portal (requesters):   http://localhost:{PORT}/
    log in as an AD user below; the first login sets up an authenticator app
    (scan the QR code, or compute codes with pyotp from the key the page shows)

  Admin (OTP required):  http://localhost:{PORT}/admin/
    user      admin
    password  {seed['admin_password']}
    TOTP      add this to an authenticator app, or compute codes with pyotp:
              {seed['totp_uri']}

  AD users in the demo domain JITAD.TEST (portal logins):
""" + "\n".join(f"    {name:<8} {pw}" for name, pw in seed["people"].items()) + f"""

  alice already holds an auto-approved grant on SRV01 (see "My access" as alice), through an
  ephemeral account made for it (alice-xxxx: "Show its password", once, with a code), verified on
  the demo server SRV01 over WinRM ({servers['SRV01'].url}). Over the next minute SRV01 logs her
  session (an RDP logon, programs, a logon from an unexpected address): the grant's page
  (My access → the grant) shows it in its timeline, with the signal, and exports it. At the end
  jitad disables the account, removes it, logs it off SRV01 and deletes it.
  Standing admins found on SRV01 and SQL01: admin → Standing admins (rescanned every 5 min).
  alice's request for SQL01 waits for a DBA lead: log in as bob (portal login, then
  {'http://localhost:' + str(PORT) + '/admin/'}) and approve or deny it in the queue.
  carol may request Domain Admins: that needs bob (Tier0-Approvers) and dave
  (Security-Managers), one approval from each group.
  alice's request for APP01 goes through stages: bob approves as the peer, then dave as the
  manager (outside Mon-Fri 07:00-19:00 Paris time carol, the on-call lead, too); each sees
  "Approvals" with a count in the portal. APP01 takes one admin at a time, requests may be
  scheduled up to 7 days ahead, and dave reviews who stays eligible (portal: Reviews).
  Deputies: an approver away names a deputy in the portal (Deputies).
  Break-glass: http://localhost:{PORT}/breakglass/ — carol (BreakGlass-Responders) may check
  out bg-da-01 (a Domain Admin, sealed and disabled) or bg-env-01; bob and dave approve in
  the admin (Break-glass › Checkouts), or carol ticks "Emergency" and goes alone.
  API docs: http://localhost:{PORT}/docs/api/  (tokens: Security & tokens in the portal)
  Notifications: e-mail lands as files in {VAR}/mail/; the admin's Notifications page
  shows every delivery.

  Logs: {logs}/    Data: {VAR}/    Ctrl-C stops everything.
""", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        dead = [names[p.pid] for p in procs if p.poll() is not None]
        print(f"a demo process exited ({dead}); see {logs}", file=sys.stderr)
        return 1
    except SambaUnavailable as e:
        print(f"cannot start the demo DC: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        for host in servers.values():
            host.stop()
        dc.stop()
        dc.release()


if __name__ == "__main__":
    sys.exit(main())
