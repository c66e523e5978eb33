#!/usr/bin/env python
"""Measure jitad's engine against a real Samba DC and a real Celery worker, then the portal
and the admin lists.

Adds flat keys to bench/results.json and writes the engine section of docs/benchmarks.md,
keeping what the other parts wrote; then, once the DC and worker are stopped, runs
bench/portal.py (portal and API under load) unless BENCH_PORTAL=0 and bench/admin.py (the
approval queue and grants view with 100,000 requests) unless BENCH_ADMIN=0 and
bench/reports.py (the Reports pages and jitad_report over the same history, beside a bare-SQL
floor) unless BENCH_REPORTS=0, each in its own process. Run with `make bench`.
Timings come from an independent ldap3 connection polling the DC, not from jitad's logs.
"""
import json
import os
import platform
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
VAR = Path(os.environ.setdefault("JITAD_VAR_DIR", str(REPO / "var" / "bench")))
VAR.mkdir(parents=True, exist_ok=True)
if "JITAD_DATABASE_URL" not in os.environ:
    db = VAR / "bench.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    os.environ["JITAD_DATABASE_URL"] = f"sqlite:///{db}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jitad.settings")

from harness import cpu_model, doc_section_write, pct, results_merge  # noqa: E402  (bench/harness.py, beside this file)
from tests.support.samba import SambaDC  # noqa: E402
from tests.support.winrm_host import WinRMTestHost  # noqa: E402
from tests.support.worker import CeleryWorker  # noqa: E402

N_LATENCY = int(os.environ.get("BENCH_N", "100"))
MASS_USERS, MASS_GROUPS = 100, 100  # 100 users x 100 groups = 10,000 grants


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # a killed bench still stops its DC and worker
    env = dict(os.environ)  # before the DC's settings are added: the load parts need no AD
    rc = engine()
    if rc:
        return rc
    for part, switch in (("portal", "BENCH_PORTAL"), ("admin", "BENCH_ADMIN"), ("reports", "BENCH_REPORTS")):
        if os.environ.get(switch, "1") != "0":
            rc = load_part(part, env) or rc  # each part writes only its own figures
    return rc


def load_part(part: str, env: dict) -> int:
    """Run bench/<part>.py in its own process (own database, own gunicorn), after the DC and
    worker stopped so they do not take CPU from the server under load."""
    proc = subprocess.Popen([sys.executable, str(REPO / "bench" / f"{part}.py")], env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        try:  # after Ctrl-C it has its own SIGINT; after our SIGTERM it needs one
            proc.wait(2)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # it stops its server and drops its database
            proc.wait(120)
        raise


def engine() -> int:
    dc = SambaDC(Path(tempfile.mkdtemp(prefix="jitad-bench-")))
    dc.provision()
    dc.start()
    os.environ.update(dc.settings_env())
    # A WinRM test host for the "verified on the server" figures; the worker logs on to it.
    winrm_password = "Bench-" + uuid.uuid4().hex
    host = WinRMTestHost(users={"JITAD\\svc-winrm": winrm_password}).start()
    os.environ.update({"JITAD_WINRM_USERNAME": "JITAD\\svc-winrm", "JITAD_WINRM_PASSWORD": winrm_password})
    worker = None
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.core.management import call_command
        from django.db import connection
        from django.utils import timezone
        from ldap3 import BASE, MODIFY_ADD, Connection, Server, Tls
        from ldap3.utils.conv import escape_filter_chars

        from jitad import directory
        from jitad.celery import app
        from jitad.elevation import services
        from jitad.elevation.models import AccessRequest, Grant, Policy, Target

        call_command("migrate", "--noinput", verbosity=0)
        try:
            app.control.purge()
        except Exception:  # noqa: BLE001
            pass
        env = dict(os.environ, PYTHONPATH=str(REPO))
        worker = CeleryWorker(env, VAR / "logs")
        worker.start()

        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=dc.ca_file, valid_names=[dc.tls_name])
        probe = Connection(Server(dc.ldaps_url, tls=tls), dc.admin_dn, dc.admin_password, auto_bind=True)

        def members(group_dn):
            probe.search(group_dn, "(objectClass=group)", BASE, attributes=["member"])
            return {m.lower() for m in (probe.response[0]["attributes"].get("member") or [])}

        def is_member(group_dn, dn):
            probe.search(group_dn, f"(member={escape_filter_chars(dn)})", BASE, attributes=["cn"])
            return bool(probe.entries)

        ou = f"OU=bench-{uuid.uuid4().hex[:6]},{dc.base_dn}"
        User = get_user_model()
        admins = Group.objects.create(name="bench-admins")
        with directory.connect() as d:
            d.ensure_ou(ou)
            group_dn = d.ensure_group("JIT-BENCH-Admins", ou)
            people = []
            for i in range(N_LATENCY):
                d.ensure_user(f"bu{i}", ou, password=f"Bench-{uuid.uuid4().hex}")
                u = User.objects.create_user(f"bu{i}")
                u.groups.add(admins)
                people.append(u)
        target = Target.objects.create(name="BENCH01", group_dn=group_dn)
        policy = Policy.objects.create(name="bench", approval_mode="auto", eligible_groups=["bench-admins"],
                                       require_justification=False, max_duration_minutes=240)
        policy.targets.add(target)

        # 1. approval → membership present in AD (auto-approval is the approval).
        grant_ms = []
        for u in people:
            dn = f"CN={u.username},{ou}"
            t0 = time.perf_counter()
            services.request_create(requester=u, target=target, duration_minutes=60)
            while not is_member(group_dn, dn):
                time.sleep(0.002)
            grant_ms.append((time.perf_counter() - t0) * 1000)
        deadline = time.monotonic() + 30
        while Grant.objects.exclude(state=Grant.State.ACTIVE).exists() and time.monotonic() < deadline:
            time.sleep(0.05)

        # 1b. approval → active, verified on the server over WinRM (NTLM, encrypted, test host).
        with directory.connect() as d:
            verified_group = d.ensure_group("JIT-BENCHW-Admins", ou)
            host.admins.append({"sid": d.object_sid(verified_group), "path": "WinNT://JITAD/JIT-BENCHW-Admins",
                                "class": "Group"})
        verified_target = Target.objects.create(name="BENCHW01", group_dn=verified_group, winrm_url=host.url)
        policy.targets.add(verified_target)
        verified_ms = []
        for u in people:
            t0 = time.perf_counter()
            grant_id = services.request_create(requester=u, target=verified_target, duration_minutes=60).grant.id
            while not Grant.objects.filter(id=grant_id, state=Grant.State.ACTIVE).exists():
                time.sleep(0.002)
            verified_ms.append((time.perf_counter() - t0) * 1000)
        unverified = Grant.objects.filter(target=verified_target).exclude(host_verified_at__isnull=False).count()

        # 2. expiry → membership gone: staggered expiries, polled from the DC.
        base = timezone.now() + timedelta(seconds=3)
        expiry = {}
        for i, g in enumerate(Grant.objects.filter(target=target).order_by("id")):
            at = base + timedelta(milliseconds=50 * i)
            Grant.objects.filter(id=g.id).update(expires_at=at)
            expiry[g.user_dn.lower()] = at.timestamp()
        gone_at = {}
        deadline = time.time() + (base.timestamp() - time.time()) + 30
        while len(gone_at) < len(expiry) and time.time() < deadline:
            present = members(group_dn)
            now = time.time()
            for dn in expiry:
                if dn not in gone_at and dn not in present:
                    gone_at[dn] = now
            time.sleep(0.01)
        lateness_ms = [(gone_at[dn] - expiry[dn]) * 1000 for dn in gone_at]
        missed = len(expiry) - len(gone_at)

        # 3. 10,000 grants over 100 groups expiring in the same second.
        with directory.connect() as d:
            mass_users = [d.ensure_user(f"mu{i}", ou) for i in range(MASS_USERS)]
            mass_groups = [d.ensure_group(f"JIT-MASS-{j:03d}", ou) for j in range(MASS_GROUPS)]
        for g in mass_groups:
            probe.modify(g, {"member": [(MODIFY_ADD, mass_users)]})
        django_users = User.objects.bulk_create([User(username=f"mu{i}") for i in range(MASS_USERS)])
        now = timezone.now()
        reqs, grants = [], []
        for j, gdn in enumerate(mass_groups):
            t = Target.objects.create(name=f"MASS{j:03d}", group_dn=gdn)
            for i, u in enumerate(django_users):
                reqs.append(AccessRequest(requester=u, target=t, policy=policy, duration_minutes=60,
                                          state=AccessRequest.State.APPROVED))
        AccessRequest.objects.bulk_create(reqs, batch_size=2000)
        expires = now + timedelta(seconds=8)
        for r in AccessRequest.objects.filter(target__name__startswith="MASS").select_related("target", "requester"):
            grants.append(Grant(request=r, user=r.requester, target=r.target, group_dn=r.target.group_dn,
                                user_dn=f"CN={r.requester.username},{ou}", state=Grant.State.ACTIVE,
                                activated_at=now, expires_at=expires))
        Grant.objects.bulk_create(grants, batch_size=2000)
        while time.time() < expires.timestamp():
            time.sleep(0.01)
        deadline = time.time() + 120
        remaining = set(mass_groups)
        while remaining and time.time() < deadline:
            remaining = {g for g in remaining if members(g)}
            if remaining:
                time.sleep(0.1)
        mass_s = time.time() - expires.timestamp() if not remaining else None
        mass_left = sum(len(members(g)) for g in remaining)

        results = {
            "grant_to_membership_ms_p50": round(pct(grant_ms, 50), 1),
            "grant_to_membership_ms_p99": round(pct(grant_ms, 99), 1),
            "grant_to_verified_ms_p50": round(pct(verified_ms, 50), 1),
            "grant_to_verified_ms_p99": round(pct(verified_ms, 99), 1),
            "grant_to_verified_unverified": unverified,
            "revocation_lateness_ms_p50": round(pct(lateness_ms, 50), 1) if lateness_ms else None,
            "revocation_lateness_ms_p99": round(pct(lateness_ms, 99), 1) if lateness_ms else None,
            "revocation_missed": missed,
            "mass_expiry_10k_s": round(mass_s, 2) if mass_s is not None else None,
            "mass_expiry_members_left": mass_left,
            "samples": N_LATENCY,
            "sweep_interval_s": settings.JITAD_SWEEP_INTERVAL,
            "database": connection.vendor,
            "broker": settings.CELERY_BROKER_URL.split("://")[0],
        }
        write(results)
        print(json.dumps(results, indent=2))
        return 0
    finally:
        if worker:
            worker.stop()
        host.stop()
        dc.stop()
        dc.release()


def write(results: dict) -> None:
    results_merge(results)
    cpu = cpu_model()
    samba = subprocess.run(["samba", "--version"], capture_output=True, text=True).stdout.strip()
    rows = [
        ("approval → membership present in AD, p50", f"{results['grant_to_membership_ms_p50']} ms", ""),
        ("approval → membership present in AD, p99", f"{results['grant_to_membership_ms_p99']} ms", "≤ 500 ms"),
        ("approval → active, verified on the server over WinRM, p50", f"{results['grant_to_verified_ms_p50']} ms", ""),
        ("approval → active, verified on the server over WinRM, p99", f"{results['grant_to_verified_ms_p99']} ms",
         "≤ 1,000 ms"),
        ("expiry → membership gone, p50", f"{results['revocation_lateness_ms_p50']} ms", ""),
        ("expiry → membership gone, p99", f"{results['revocation_lateness_ms_p99']} ms", "≤ 2,000 ms"),
        ("revocations missed", str(results["revocation_missed"]), "0"),
        ("10,000 grants / 100 groups expiring together → all gone", f"{results['mass_expiry_10k_s']} s", "≤ 10 s"),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    doc_section_write("engine", f"""## Engine: grants and revocations against a Samba DC (bench/run.py)

Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} × {cpu},
Python {platform.python_version()}, Samba {samba.removeprefix("Version ")}, database {results['database']}, broker
{results['broker']}, sweeper every {results['sweep_interval_s']} s, one Celery worker
(2 processes) with beat, {results['samples']} samples for the latency rows.

| measure | result | target |
|---|---|---|
{table}

How: a separate ldap3 connection polls the DC. Approval latency runs from the
`request_create` call (auto-approved policy) until the DC lists the member. "Verified on the
server" runs from `request_create` until the grant is `active`, which for a target with a
WinRM URL means the worker has added the member, read the JIT group's SID and the nested
membership from AD, and run `local_admins.ps1` on the WinRM test host (NTLM with message
encryption over HTTP, a new connection and shell per check) and found the SID. Lateness runs
from each grant's `expires_at` (staggered 50 ms apart) until the member is gone. The mass
expiry puts 100 users in 100 JIT groups with 10,000 active grants all expiring at the same
instant, and times until every group is empty.
""")


if __name__ == "__main__":
    sys.exit(main())
