#!/usr/bin/env python
"""Measure jitad's engine against a real Samba DC and a real Celery worker, then the portal
and the admin lists.

Adds flat keys to bench/results.json and writes the engine section of docs/benchmarks.md,
keeping what the other parts wrote; then, once the DC and worker are stopped, runs
bench/portal.py (portal and API under load) unless BENCH_PORTAL=0 and bench/admin.py (the
approval queue and grants view with 100,000 requests) unless BENCH_ADMIN=0 and
bench/reports.py (the Reports pages and jitad_report over the same history, beside a bare-SQL
floor) unless BENCH_REPORTS=0, each in its own process. Run with `make bench`.
Timings come from an independent ldap3 connection polling the DC, not from jitad's logs; the
mass expiry (bench/mass.py) is reported beside its floor, the same LDAP removal done by a bare
client on the same DC in the same run. JITAD_BENCH_MASS_SIZES=10000,30000 runs more sizes.
"""
import json
import logging
import os
import platform
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
VAR = Path(os.environ.setdefault("JITAD_VAR_DIR", str(REPO / "var" / "bench")))
VAR.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jitad.settings")

from harness import (  # noqa: E402  (bench/harness.py, beside this file)
    cpu_model, database_prepare, doc_section_write, group_cpu_seconds, pct, postgres_cpu, results_merge,
)
from mass import GROUPS, MAIL_DOMAIN, groups_ensure, mass_sizes, people_ensure, size_label, wave  # noqa: E402
from out_of_band import measure as out_of_band_measure  # noqa: E402  (bench/out_of_band.py)
from tests.support.samba import SambaDC  # noqa: E402
from tests.support.smtp import SmtpSink  # noqa: E402
from tests.support.winrm_host import WinRMTestHost  # noqa: E402
from tests.support.worker import CeleryWorker  # noqa: E402

N_LATENCY = int(os.environ.get("BENCH_N", "100"))
NICE = {"notifications,hosts": 10}  # the deliveries' worker process, below the engine's
# As ops/README.md runs them: the engine's worker with twice the cores (a removal waits on the DC and the
# database about half its time), the notifications worker with two.
PROCESSES = {"celery": 4, "notifications,hosts": 2}


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # a killed bench still stops its DC and worker
    env = dict(os.environ)  # before the DC's settings are added: the load parts need no AD
    # A fresh database of the engine part's own (var/engine.sqlite3, or jitad_bench_engine on the PostgreSQL
    # server JITAD_DATABASE_URL names), dropped afterwards: a second run on the same server starts clean.
    url, drop = database_prepare(VAR, "engine")
    os.environ["JITAD_DATABASE_URL"] = url
    try:
        rc = engine()
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not have been set up
            pass
        drop()
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
    # A real SMTP server takes the e-mails the notices send (the waves' people have e-mail).
    smtp = SmtpSink(parse=False).start()
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # the SMTP server's line per command
    os.environ["JITAD_EMAIL_URL"] = smtp.url
    # The bench's WinRM figure is measured over NTLM with message encryption, as before Kerberos came in; NTLM is now
    # allowed only where a profile says so.
    os.environ.update({"JITAD_WINRM_USERNAME": "JITAD\\svc-winrm", "JITAD_WINRM_PASSWORD": winrm_password,
                       "JITAD_WINRM_ALLOW_NTLM": "true"})
    workers = []  # the engine's worker nodes running now (the variants change them)
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.core.management import call_command
        from django.db import connection
        from django.db.models import Value
        from django.db.models.functions import Concat
        from django.utils import timezone
        from ldap3 import BASE, Connection, Server, Tls
        from ldap3.utils.conv import escape_filter_chars

        from jitad import directory
        from jitad.celery import app
        from jitad.elevation import services
        from jitad.elevation.models import Grant, Policy, Target
        from jitad.notifications.models import Delivery

        call_command("migrate", "--noinput", verbosity=0)
        try:
            app.control.purge()
        except Exception:  # noqa: BLE001
            pass
        env = dict(os.environ, PYTHONPATH=str(REPO))
        # As ops/README.md advises where they share CPUs: deliveries run below the engine.
        worker = CeleryWorker(env, VAR / "logs", nice=NICE, concurrency=PROCESSES)
        workers.append(worker)
        worker.start()

        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=dc.ca_file, valid_names=[dc.tls_name])
        probe = Connection(Server(dc.ldaps_url, tls=tls), dc.admin_dn, dc.admin_password, auto_bind=True)

        def members(group_dn):
            probe.search(group_dn, "(objectClass=group)", BASE, attributes=["member"])
            return {m.lower() for m in (probe.response[0]["attributes"].get("member") or [])}

        def is_member(group_dn, dn):
            probe.search(group_dn, f"(member={escape_filter_chars(dn)})", BASE, attributes=["cn"])
            return bool(probe.entries)

        ou = f"OU=bench-{uuid.uuid4().hex[:6]},{dc.jit_ou}"  # jitad changes groups under its JIT OU only
        User = get_user_model()
        admins = Group.objects.create(name="bench-admins")
        with directory.connect() as d:
            d.ensure_ou(dc.jit_ou)
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
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError(f"{dn} not in {group_dn} a minute after approval: see {VAR / 'logs'}")
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
        verified_target = Target.objects.create(name="BENCHW01", group_dn=verified_group, winrm_url=host.url,
                                                winrm_transport="ntlm")
        policy.targets.add(verified_target)
        verified_ms = []
        for u in people:
            t0 = time.perf_counter()
            grant_id = services.request_create(requester=u, target=verified_target, duration_minutes=60).grant.id
            while not Grant.objects.filter(id=grant_id, state=Grant.State.ACTIVE).exists():
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError(f"grant {grant_id} not active a minute after approval: see {VAR / 'logs'}")
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

        # 2b. out-of-band member → removed, beside one bare search + modify (writes its own docs
        # section), before the mass waves so that none of their work is still under way.
        out_of_band = out_of_band_measure(dc=dc, probe=probe, tls=tls, ou=ou)
        missed = len(expiry) - len(gone_at)

        # 3. N grants over 100 groups expiring in the same instant (10,000 by default; more
        # sizes with JITAD_BENCH_MASS_SIZES), rows interleaved, people with e-mail; each wave
        # beside the floor: a bare ldap3 client removing the same memberships on the same DC.
        sizes = mass_sizes()
        with directory.connect() as d:
            mass_dns = people_ensure(d, ou, max(sizes) // GROUPS)
            mass_targets = [Target.objects.create(name=f"MASS{j:03d}", group_dn=gdn)
                            for j, gdn in enumerate(groups_ensure(d, ou))]
        floor_conn = Connection(Server(dc.ldaps_url, tls=tls), dc.admin_dn, dc.admin_password, auto_bind=True)
        tick = os.sysconf("SC_CLK_TCK")

        def cpu() -> dict:
            """CPU seconds so far of the DC, jitad's workers (all their processes) and the database server."""
            used = {"dc": group_cpu_seconds(dc.proc.pid),
                    "workers": sum(group_cpu_seconds(w.proc.pid) for w in workers if w.proc)}
            if connection.vendor == "postgresql":  # the postmaster's count includes the backends it reaped
                used["db"] = sum(postgres_cpu().values()) / tick
            return used

        def mass_wave(n: int, variant: str = "") -> bool:
            smtp.messages.clear()
            started = time.time()
            figures, finished = wave(n, ou=ou, user_dns=mass_dns, targets=mass_targets, policy=policy, probe=probe,
                                     floor_conn=floor_conn, timeout=max(120.0, n / 1000 * 20), variant=variant,
                                     cpu=cpu)
            k = f"mass_expiry_{size_label(n)}{variant}"
            # The notices' e-mails that reached the SMTP server by the end of the wave's settling; then
            # every e-mail is let through before the next wave, so that one wave's sending never runs
            # in another's figures.
            figures[f"{k}_mails_received"] = len(smtp.messages)
            drain = time.time() + 60
            while Delivery.objects.filter(state=Delivery.State.PENDING).exists() and time.time() < drain:
                time.sleep(0.5)
            figures[f"{k}_mails_sent"] = Delivery.objects.filter(state=Delivery.State.SENT,
                                                                 sent_at__gte=datetime.fromtimestamp(started, UTC)).count()
            # Still unsent a minute on (a wave of 100,000 notices): dropped, so that they do not run
            # in the next wave's figures; counted.
            figures[f"{k}_mails_dropped"] = Delivery.objects.filter(state=Delivery.State.PENDING).update(
                state=Delivery.State.FAILED, claim_token=None, lease_until=None, next_attempt_at=None,
                last_error="dropped by the bench a minute after its wave")
            mass.update(figures)
            print(json.dumps(figures), flush=True)
            return finished

        mass = {}
        for i, n in enumerate(sizes):
            if not mass_wave(n):  # its grants are still being worked: a next wave would not measure itself
                sizes = sizes[:i + 1]
                break

        # 3b. Variants of the first size's wave, each beside its own floor: without e-mail (no notice
        # recorded), with one and with two engine processes instead of four, and with two engine nodes.
        variants = []
        first = sizes[0]
        if os.environ.get("BENCH_MASS_VARIANTS", "1") != "0" and f"mass_expiry_{size_label(first)}_s" in mass \
                and mass[f"mass_expiry_{size_label(first)}_s"] is not None:
            mass_users = User.objects.filter(username__startswith="mu")
            mass_users.update(email="")
            finished = mass_wave(first, "_no_mail")
            mass_users.update(email=Concat("username", Value(f"@{MAIL_DOMAIN}")))
            variants.append("_no_mail")
            for label, started in (("_1proc", [dict(concurrency={**PROCESSES, "celery": 1}, nice=NICE)]),
                                   ("_2proc", [dict(concurrency={**PROCESSES, "celery": 2}, nice=NICE)]),
                                   ("_2nodes", [dict(concurrency=PROCESSES, nice=NICE),
                                                dict(concurrency=PROCESSES, beat=False, queues=("celery",))])):
                if not finished:
                    break
                for w in workers:
                    w.stop()
                workers[:] = [CeleryWorker(env, VAR / "logs", **kw) for kw in started]
                for w in workers:
                    w.start()
                finished = mass_wave(first, label)
                variants.append(label)
        floor_conn.unbind()

        results = {
            "grant_to_membership_ms_p50": round(pct(grant_ms, 50), 1),
            "grant_to_membership_ms_p99": round(pct(grant_ms, 99), 1),
            "grant_to_verified_ms_p50": round(pct(verified_ms, 50), 1),
            "grant_to_verified_ms_p99": round(pct(verified_ms, 99), 1),
            "grant_to_verified_unverified": unverified,
            "revocation_lateness_ms_p50": round(pct(lateness_ms, 50), 1) if lateness_ms else None,
            "revocation_lateness_ms_p99": round(pct(lateness_ms, 99), 1) if lateness_ms else None,
            "revocation_missed": missed,
            **mass,
            **out_of_band,
            "mass_expiry_sizes": ",".join(str(n) for n in sizes),
            "mass_expiry_variants": ",".join(variants),
            "mass_expiry_members_left": sum(v for k, v in mass.items() if k.endswith("_members_left")
                                            and "_floor_" not in k),
            "samples": N_LATENCY,
            "sweep_interval_s": settings.JITAD_SWEEP_INTERVAL,
            "database": connection.vendor,
            "broker": settings.CELERY_BROKER_URL.split("://")[0],
        }
        write(results)
        print(json.dumps(results, indent=2))
        return 0
    finally:
        for w in workers:
            w.stop()
        host.stop()
        smtp.stop()
        dc.stop()
        dc.release()


def _fmt(value, unit: str = "") -> str:
    return "—" if value is None else f"{value}{unit}"


def write(results: dict) -> None:
    results_merge(results)
    cpu = cpu_model()
    samba = subprocess.run(["samba", "--version"], capture_output=True, text=True).stdout.strip()
    sizes = [int(n) for n in results["mass_expiry_sizes"].split(",")]
    mass_rows = []
    for n in sizes:
        k = f"mass_expiry_{size_label(n)}"
        jitad_s, floor_s = results[f"{k}_s"], results[f"{k}_floor_s"]
        if jitad_s is None:  # not finished by the deadline: a lower bound, said as such
            ratio, took = f"> {results[f'{k}_timeout_s'] / floor_s:.0f}×", (
                f"not finished in {results[f'{k}_timeout_s']} s: {results[f'{k}_grants_not_revoked']:,} grants "
                f"not revoked, {results[f'{k}_members_left']:,} members left")
        else:
            ratio, took = f"{results[f'{k}_ratio']}×", f"{jitad_s} s"
        mass_rows.append(
            f"| {n:,} ({n // GROUPS:,} people × {GROUPS} groups) | **{ratio}** | {took} | {floor_s} s "
            f"| {_fmt(results[f'{k}_s_per_1k'], ' s')} | {results[f'{k}_floor_s_per_1k']} s "
            f"| {results[f'{k}_ldap_modifies']} / {results[f'{k}_floor_ldap_modifies']} "
            f"| {'≤ 2×' if n == 10000 else 'linear in N'} |")
    rows = [
        ("approval → membership present in AD, p50", f"{results['grant_to_membership_ms_p50']} ms", ""),
        ("approval → membership present in AD, p99", f"{results['grant_to_membership_ms_p99']} ms", "≤ 100 ms"),
        ("approval → active, verified on the server over WinRM, p50", f"{results['grant_to_verified_ms_p50']} ms", ""),
        ("approval → active, verified on the server over WinRM, p99", f"{results['grant_to_verified_ms_p99']} ms",
         "≤ 500 ms"),
        ("expiry → membership gone, p50", f"{results['revocation_lateness_ms_p50']} ms", ""),
        ("expiry → membership gone, p99", f"{results['revocation_lateness_ms_p99']} ms", "≤ 250 ms"),
        ("revocations missed", str(results["revocation_missed"]), "0"),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    mass_table = "\n".join(mass_rows)
    first = size_label(sizes[0])
    base = results.get(f"mass_expiry_{first}_s")
    named = {"": f"as above ({sizes[0]:,})", "_no_mail": "without e-mail (no notice recorded)",
             "_1proc": "one engine worker process (concurrency 1)",
             "_2proc": "two engine worker processes (concurrency 2, one per CPU)",
             "_2nodes": f"two engine nodes ({PROCESSES['celery']} + {PROCESSES['celery']} processes, one database)"}
    variant_rows, cpu_rows = [], []
    variants = [v for v in (results.get("mass_expiry_variants") or "").split(",") if v]
    for v in variants:
        k = f"mass_expiry_{first}{v}"
        jitad_s = results.get(f"{k}_s")
        against = f"{round(base / jitad_s, 2)}" if base and jitad_s else "—"
        variant_rows.append(f"| {named.get(v, v)} | {_fmt(jitad_s, ' s')} | {results[f'{k}_floor_s']} s "
                            f"| {_fmt(results.get(f'{k}_ratio'), '×')} | {against} |")
    for label, key in [*((f"{n:,}", f"mass_expiry_{size_label(n)}") for n in sizes),
                       *((named.get(v, v), f"mass_expiry_{first}{v}") for v in variants)]:
        if f"{key}_cpu_machine_s" not in results:
            continue
        cpu_rows.append(f"| {label} | {_fmt(results.get(f'{key}_s'), ' s')} | {_fmt(results.get(f'{key}_cpu_dc_s'), ' s')} "
                        f"| {_fmt(results.get(f'{key}_cpu_workers_s'), ' s')} | {_fmt(results.get(f'{key}_cpu_db_s'), ' s')} "
                        f"| {results[f'{key}_cpu_machine_s']} s |")
    mail_ratio = (round(base / results[f"mass_expiry_{first}_no_mail_s"], 2)
                  if base and results.get(f"mass_expiry_{first}_no_mail_s") else None)
    results_merge({f"mass_expiry_{first}_mail_cost_ratio": mail_ratio})
    variant_table = "\n".join(variant_rows) or "| (not run: BENCH_MASS_VARIANTS=0) | | | | |"
    cpu_table = "\n".join(cpu_rows)
    doc_section_write("engine", f"""## Engine: grants and revocations against a Samba DC (bench/run.py)

Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} × {cpu},
Python {platform.python_version()}, Samba {samba.removeprefix("Version ")}, database {results['database']}, broker
{results['broker']}, the sweep woken by the scheduler at each grant's end (safety-net sweep every
{results['sweep_interval_s']} s), a Celery worker for the engine's
queue ({PROCESSES['celery']} processes, with beat) and one for notifications and hosts
({PROCESSES['notifications,hosts']} processes, at nice 10), as ops/README.md advises, all on the
same CPUs as the DC; notices' e-mails go to a real SMTP
server on 127.0.0.1 (in the bench's process); {results['samples']} samples for the latency rows. The machine is
shared and absolute times swing by about ±50 % from run to run: read the ratios to the
floor, measured on the same DC in the same run, first.

### Mass expiry: every grant ends in the same instant, beside the floor

| grants | jitad ÷ floor | jitad: expiry → all gone | floor | jitad per 1,000 grants | floor per 1,000 grants | LDAP modifies (jitad / floor) | target |
|---|---|---|---|---|---|---|---|
{mass_table}

The **floor** is the least LDAP work the wave needs, done on the same DC just before
jitad's wave: a bare ldap3 client on its own LDAPS connection (no jitad code) puts the
wave's memberships in (untimed), then removes them with one `MODIFY_DELETE` per group
carrying all of that group's values, sent one after the other; timed from the first request
sent to the last answer read. The grant rows are already in then (ending in an hour), so
the reconciler sees the memberships as backed; the members then go back in for jitad.
jitad's figure runs from the instant every grant expires until a separate ldap3
connection, polling every 50 ms with one search for the wave's groups that still have a
member, finds none: it includes the scheduler's wake-up, the sweep's claim of every grant
and up to 50 ms of polling, which the floor does not.

The wave: 100 JIT groups, people × 100 active grants, one per person and group. The
people are AD users with `mail` and a user principal name, and jitad users with the
same e-mail address, so every revocation also records the notice to its holder. Requests
and grants are inserted in one shuffled order (fixed seed), not group by group, so a batch
the sweeper claims spans many groups, as in life; the grants were activated and warned of
their end an hour before (as a real grant is), and their common `expires_at` is set once
every row is in. LDAP modifies for jitad are counted from the grant rows (each removal
batch marks its grants with one `revoked_at`, so distinct group and `revoked_at` pairs),
not from the DC. A wave jitad has not finished within its time limit (120 s, or 20 s per
1,000 grants if longer) is reported as such, its ratio as a lower bound, and no larger size
runs after it. `JITAD_BENCH_MASS_SIZES=10000,30000,100000 make bench` runs more sizes
(100 groups, more people) to read linearity from the per-1,000 columns.

### Variants of the first wave

| the {sizes[0]:,}-grant wave | jitad: expiry → all gone | its floor | jitad ÷ floor | the wave above ÷ this |
|---|---|---|---|---|
{variant_table}

With e-mail on (the wave above: each holder's notice recorded, and sent by the notifications
worker to a real SMTP server on 127.0.0.1, each person's waiting notices of one kind in one
e-mail, `JITAD_EMAIL_COMBINE_MAX`; the server had received
{_fmt(results.get(f"mass_expiry_{first}_mails_received"))} e-mails when the wave's rows were all
revoked, and {_fmt(results.get(f"mass_expiry_{first}_mails_sent"))} notices were recorded sent within
a minute) the wave costs **{_fmt(mail_ratio, '×')}** the wave without (target ≤ 1.2×).
Each variant is a new wave of the same size over the same people and groups, beside a
floor of its own; "the wave above ÷ this" above 1 means the variant is faster.

### Where the time goes: CPU during each wave

| wave | jitad: expiry → all gone | Samba DC | jitad's workers | database server | whole machine ({os.cpu_count()} CPUs) |
|---|---|---|---|---|---|
{cpu_table}

CPU seconds used between the instant the grants expire and the instant the last member is
gone, read from /proc: the Samba process, every process of jitad's worker nodes (engine and
notifications), and every PostgreSQL process on the machine (its postmaster counts the backends it reaped;
run nothing else against that server meanwhile;
"—" with SQLite, whose work is inside the workers). The machine's column is every CPU's
busy time, the bench's own polling included. When the machine's column approaches
{os.cpu_count()} × the wave's seconds, the CPUs are the limit, and the split says whose work fills them.

### Latency

| measure | result | target |
|---|---|---|
{table}

How: a separate ldap3 connection polls the DC. Approval latency runs from the
`request_create` call (auto-approved policy) until the DC lists the member. "Verified on the
server" runs from `request_create` until the grant is `active`, which for a target with a
WinRM URL means the worker has added the member, read the JIT group's SID and the nested
membership from AD, and run `local_admins.ps1` on the WinRM test host (NTLM with message
encryption over HTTP, a new connection and shell per check) and found the SID. Lateness runs
from each grant's `expires_at` (staggered 50 ms apart) until the member is gone: the
scheduler wakes the sweep at each end (no poll interval to wait out), the sweep claims the
grant and sends one message, the worker removes the member and reads the group back.
""")


if __name__ == "__main__":
    sys.exit(main())
