#!/usr/bin/env python
"""Measure the admin's approval queue and grants view with 100,000 access requests.

Seeds a fresh database with the shared estate (bench/catalog.py) and a 180-day history of
100,000 requests (a few thousand pending, the rest decided), their grants (a few thousand
live, the rest ended) and approvals, plus an approver (not staff: a member of the AD
groups most policies name as approvers) and a superuser, each with verified MFA sessions.
Counts the SQL queries of each page in-process (Django's test client on the same
database), then starts gunicorn on 127.0.0.1 and, page by page, measures it from one
client alone and from several clients with no think time; latency is taken at the client.
Any answer other than 200 fails the run and writes nothing.

Adds admin_* keys to bench/results.json (keeping every other key) and rewrites its own
section of docs/benchmarks.md; writes every page's queries with their times, and the plan of
the slowest one, to var/bench/logs/admin-slowest.txt. `make bench` runs it after the portal
part; alone: `.venv/bin/python bench/admin.py`. Knobs (environment): BENCH_ADMIN_REQUESTS
(100000), BENCH_ADMIN_CLIENTS (4), BENCH_ADMIN_SECONDS (15 measured a page),
BENCH_ADMIN_WARMUP_SECONDS (3), BENCH_ADMIN_ALONE_SECONDS (5, one client), BENCH_ADMIN_DB
(PostgreSQL database name to create and drop, jitad_bench_admin).
"""
import json
import os
import platform
import random
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from catalog import BASE_DN, catalog_seed, groups_add, person_name, verified_session
from harness import (GUNICORN_THREADS, GUNICORN_WORKERS, Client, Server, bench_django, cpu_model, database_version,
                     doc_section_write, results_merge, run_phase, server_env, stats)

TARGET_MS = 300  # ARCHITECTURE.md: admin list with 100k requests <= 300 ms
HISTORY_DAYS = 180
N_SIMULATED = 50  # catalog people pu000-pu049; with hu000-hu449 they are the requesters
APPROVER, SUPERUSER = "approver01", "secadmin"
SEARCH = "Lindqvist"  # a requester's last name: about 1 person in 50 has it
QUEUE, GRANTS = "/admin/elevation/accessrequest/", "/admin/elevation/grant/"
PAGES = [  # (key, what, path)
    ("queue", "queue, default: waiting for my decision", QUEUE),
    ("queue_pending", "queue, all pending", f"{QUEUE}?queue=pending"),
    ("queue_all", "queue, everything (newest first)", f"{QUEUE}?queue=all"),
    ("queue_search", "queue, everything, search a last name", f"{QUEUE}?queue=all&q={SEARCH}"),
    ("queue_filtered", "queue, everything, denied on tier 0", f"{QUEUE}?queue=all&state__exact=denied&target__tier__exact=0"),
    ("grants", "grants, default: live now", GRANTS),
    ("grants_ended", "grants, ended", f"{GRANTS}?view=ended"),
]
JUSTIFICATIONS = ["Monthly patching and reboot", "Investigate the failed backup job", "Deploy the quarterly release",
                  "Rotate the service certificate", "Disk full: clean up logs", "Vendor support session",
                  "Restore a database from backup", "Change window: update the agent", "Incident follow-up",
                  "Reset the application pool"]


@dataclass
class Role:
    name: str
    sessions: list[str]  # one verified session per client


# -- data ----------------------------------------------------------------------------------
def seed(n_requests: int, n_clients: int, rng: random.Random) -> tuple[dict, dict]:
    """The estate, the history, the approver and the superuser; returns their roles and row counts."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone
    from jitad.accounts.devices import AuthenticatorDevice

    from jitad.elevation.models import AccessRequest, Approval, Grant, Policy, Target

    now = timezone.now()
    catalog = catalog_seed(N_SIMULATED)
    User = get_user_model()
    unusable = make_password(None)
    first, last = person_name(len(catalog.specs))
    approver = User.objects.create(username=APPROVER, first_name=first, last_name=last, password=unusable,
                                   email=f"{APPROVER}@corp.example.com")
    superuser = User.objects.create(username=SUPERUSER, first_name="Security", last_name="Admin", password=unusable,
                                    email=f"{SUPERUSER}@corp.example.com", is_staff=True, is_superuser=True)
    groups_add({APPROVER: approver}, [(APPROVER, ("Domain Users", "JIT-Approvers", "JIT-DBA-Leads"))], catalog.groups)

    # Who approves what: the members of each approver group (the bench approver among them).
    members = {"JIT-Approvers": [*catalog.approvers, approver],
               "JIT-DBA-Leads": [catalog.users[u] for u, gs in catalog.specs if "JIT-DBA-Leads" in gs] + [approver]}
    splits = {}  # per profile: what needs approvers (tier 0 apart) and what is automatic
    for gs, pool in catalog.pools.items():
        manual = [tp for tp in pool if tp[1].approval_mode == "manual"]
        splits[gs] = (manual, [tp for tp in manual if tp[0].tier == Target.Tier.IDENTITY],
                      [tp for tp in pool if tp[1].approval_mode == "auto"])
    requesters = [(catalog.users[u], splits[gs]) for u, gs in catalog.specs if catalog.pools[gs]]
    n_pending = max(1, n_requests * 3 // 100)  # 3,000 of 100,000: a backlog over the last three days
    n_live = max(1, n_requests * 3 // 100)  # 3,000 grants live now, the rest ended

    def pick(split, manual_only=False):
        """Three requests in four need approvers; people who may ask for tier 0 often do."""
        manual, tier0, auto = split
        if manual and (manual_only or not auto or rng.random() < 0.75):
            return rng.choice(tier0 if tier0 and rng.random() < 0.5 else manual)
        return rng.choice(auto)

    pending_people = [r for r in requesters if r[1][0]]  # who may ask for something needing approval
    reqs, kinds = [], []  # kinds[i]: "live" | "ended" grant, or "" (none)
    for i in range(n_requests):
        if i < n_pending:
            user, split = rng.choice(pending_people)
            target, policy = pick(split, manual_only=True)
            kind, state = "", AccessRequest.State.PENDING
            duration = min(policy.max_duration_minutes, rng.choice([60, 120, 240]))
            created = now - timedelta(minutes=rng.uniform(1, 72 * 60))
            decided = None
        else:
            user, split = rng.choice(requesters)
            target, policy = pick(split)
            live = i < n_pending + n_live
            auto = policy.approval_mode == "auto"
            state = AccessRequest.State.APPROVED if auto or live else rng.choices(
                [AccessRequest.State.APPROVED, AccessRequest.State.DENIED, AccessRequest.State.CANCELLED,
                 AccessRequest.State.EXPIRED_UNAPPROVED], weights=[80, 8, 7, 5])[0]
            duration = min(policy.max_duration_minutes, rng.choice([30, 60, 120, 240, 480]))
            if live:  # decided within minutes, still running
                created = now - timedelta(minutes=rng.uniform(5, max(6, duration - 5)))
                decided = created + timedelta(seconds=rng.uniform(1, 60))
            else:
                created = now - timedelta(minutes=rng.uniform(12 * 60, HISTORY_DAYS * 24 * 60))
                decided = None if state == "expired_unapproved" else created + timedelta(
                    seconds=1 if auto else rng.uniform(30, 4 * 3600))
            kind = ("live" if live else "ended") if state == "approved" else ""
        reqs.append(AccessRequest(
            requester=user, target=target, policy=policy, state=state, duration_minutes=duration,
            justification=f"{rng.choice(JUSTIFICATIONS)} on {target.name}",
            ticket=f"CHG{rng.randint(0, 999999):06d}" if policy.require_ticket else "",
            approvals_required=0 if policy.approval_mode == "auto" else policy.approvals_required,
            created_at=created, decided_at=decided,
            pending_until=created + timedelta(days=4) if state == "pending" else None))
        kinds.append(kind)
    AccessRequest.objects.bulk_create(reqs, batch_size=2000)

    approvals, grants = [], []
    for r, kind in zip(reqs, kinds):
        if r.approvals_required:
            group = r.policy.approver_groups[0]
            people = [a for a in members[group] if a.id != r.requester_id]
            n = {"approved": r.approvals_required, "denied": 1}.get(r.state, 0)
            if r.state == "pending" and r.approvals_required > 1 and rng.random() < 0.4:
                n = 1  # 2-of-N, one approval in
            for k, a in enumerate(rng.sample(people, n)):
                deny = r.state == "denied"
                approvals.append(Approval(
                    request=r, approver=a, decision="deny" if deny else "approve", approver_groups=[group],
                    comment="Not during the change freeze" if deny else "",
                    at=r.decided_at or min(now, r.created_at + timedelta(minutes=10 * (k + 1)))))
        if kind:
            start = r.decided_at + timedelta(seconds=2)
            expires = start + timedelta(minutes=r.duration_minutes)
            if kind == "live":
                state, revoked, reason, removed = "active", None, "", None
            else:
                reason = rng.choices(["expired", "released", "admin_revoked"], weights=[85, 12, 3])[0]
                revoked = expires + timedelta(seconds=1) if reason == "expired" else start + timedelta(
                    minutes=rng.uniform(1, r.duration_minutes))
                state, removed = "revoked", True
            grants.append(Grant(
                request=r, user_id=r.requester_id, target=r.target, group_dn=r.target.group_dn,
                user_dn=f"CN={r.requester.username},OU=People,{BASE_DN}", state=state, created_at=r.decided_at,
                activated_at=start, expires_at=expires, revoked_at=revoked, revoke_reason=reason,
                membership_removed=removed))
    Approval.objects.bulk_create(approvals, batch_size=2000)
    Grant.objects.bulk_create(grants, batch_size=2000)

    roles = {}
    for who in (approver, superuser):
        device = AuthenticatorDevice.objects.create(user=who, name="authenticator app", confirmed=True)
        roles[who.username] = Role(who.username, [verified_session(who, device) for _ in range(n_clients)])
    counts = {
        "targets": Target.objects.count(), "policies": Policy.objects.count(), "users": User.objects.count(),
        "requests": AccessRequest.objects.count(), "pending": AccessRequest.objects.filter(state="pending").count(),
        "grants": Grant.objects.count(), "live": Grant.objects.filter(state="active").count(),
        "approvals": Approval.objects.count(),
    }
    return roles, counts


def analyze() -> None:
    """PostgreSQL: statistics, as autovacuum would gather them a minute after a bulk load.
    SQLite gathers none unless someone runs ANALYZE, so it is left as a deployment would be."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as c:
            c.execute("ANALYZE")


# -- in-process: queries and rows per page -----------------------------------------------------
def page_costs(roles: dict, slowest_log: Path) -> dict:
    """Each page once per role through Django's test client: status, SQL queries and their time,
    rows in scope; every query with its time, and the slowest one's plan, go to ``slowest_log``."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client as DjangoClient
    from django.test.utils import CaptureQueriesContext

    costs, report = {}, []
    for role in roles.values():
        client = DjangoClient(HTTP_HOST="127.0.0.1")
        client.cookies[settings.SESSION_COOKIE_NAME] = role.sessions[0]
        for key, what, path in PAGES:
            client.get(path)  # warm: first-use caches (content types, templates)
            with CaptureQueriesContext(connection) as queries:
                response = client.get(path)
            if response.status_code != 200:
                raise SystemExit(f"FAIL: {path} as {role.name} answered {response.status_code}, not 200\n"
                                 f"{response.content[:500]!r}")
            cl = response.context_data["cl"]
            timed = [(float(q["time"]) * 1000, q["sql"]) for q in queries.captured_queries]
            sql_ms = sum(t for t, _ in timed)
            costs[(role.name, key)] = {"queries": len(queries), "rows": cl.result_count, "shown": len(cl.result_list),
                                       "sql_ms": round(sql_ms, 1)}
            slow_ms, slow_sql = max(timed)
            report.append(f"== {role.name} {path}: {cl.result_count:,} rows in scope, {len(queries)} queries "
                          f"taking {sql_ms:.1f} ms in all:\n"
                          + "".join(f"  {t:7.1f} ms  {q[:160]}\n" for t, q in timed)
                          + f"-- the slowest ({slow_ms:.1f} ms):\n{slow_sql}\n-- its plan:\n{plan(connection, slow_sql)}\n")
    slowest_log.parent.mkdir(parents=True, exist_ok=True)
    slowest_log.write_text("\n".join(report))
    for key, _what, _path in PAGES:  # pages that would measure nothing are a broken seed, not a fast page
        if key != "grants" and costs[(APPROVER, key)]["shown"] == 0:
            raise SystemExit(f"FAIL: {key} shows no rows to {APPROVER}; the seed does not exercise it")
    return costs


def plan(connection, sql: str) -> str:
    """The database's plan for one captured query (on PostgreSQL run again, with timings: reads only)."""
    if not sql.lstrip().upper().startswith("SELECT"):
        return "(not a SELECT: no plan)"
    explain = "EXPLAIN (ANALYZE, BUFFERS) " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN "
    try:
        with connection.cursor() as c:
            c.execute(explain + sql)
            return "\n".join(" ".join(str(v) for v in row) for row in c.fetchall())
    except Exception as e:  # noqa: BLE001 - a plan is a diagnostic, never a reason to fail
        return f"(no plan: {e})"


# -- main ----------------------------------------------------------------------------------
def main() -> int:
    n_requests = int(os.environ.get("BENCH_ADMIN_REQUESTS", "100000"))
    n_clients = int(os.environ.get("BENCH_ADMIN_CLIENTS", "4"))
    seconds = float(os.environ.get("BENCH_ADMIN_SECONDS", "15"))
    warmup = float(os.environ.get("BENCH_ADMIN_WARMUP_SECONDS", "3"))
    alone = float(os.environ.get("BENCH_ADMIN_ALONE_SECONDS", "5"))

    with bench_django("admin") as var:
        from django.conf import settings
        from django.db import connection

        t0 = time.monotonic()
        roles, counts = seed(n_requests, n_clients, random.Random(42))
        analyze()
        print(f"seeded in {time.monotonic() - t0:.1f} s: {counts}", flush=True)
        costs = page_costs(roles, var / "logs" / "admin-slowest.txt")
        for (who, key), c in costs.items():
            print(f"{who:>10} {key:<15} {c['queries']:>3} queries, {c['rows']:>7,} rows in scope", flush=True)
        vendor, db = connection.vendor, database_version(connection)
        db_name = settings.DATABASES["default"]["NAME"] if vendor == "postgresql" else None
        connection.close()
        with Server(server_env(), var / "logs" / "admin-gunicorn.log") as server:
            cookie = settings.SESSION_COOKIE_NAME
            print(f"gunicorn on 127.0.0.1:{server.port}; per page: 1 client {alone:g} s, then {n_clients} clients "
                  f"{warmup:g} s warm-up + {seconds:g} s, no think time", flush=True)

            def clients(role: Role, n: int, path: str, label: str):
                return [(Client(server.port, {"Accept": "text/html"}, {cookie: s}), lambda rng: (label, "GET", path, None))
                        for s in role.sessions[:n]]

            plan_ = []
            for key, _what, path in PAGES:
                plan_.append((f"{key}|alone", clients(roles[APPROVER], 1, path, key), 1.0, alone))
            for key, _what, path in PAGES:
                plan_.append((f"{key}|{APPROVER}", clients(roles[APPROVER], n_clients, path, key), warmup, seconds))
            for key, _what, path in PAGES:
                if key != "queue":  # a superuser in no approver group has nothing waiting for them
                    plan_.append((f"{key}|{SUPERUSER}", clients(roles[SUPERUSER], n_clients, path, key), warmup, seconds))
            phases = {}
            for i, (name, users, warm, secs) in enumerate(plan_):
                phase = run_phase(name, users, server, warmup=warm, seconds=secs, think_s=0.0, seed=1000 * i,
                                  database=db_name)
                key = name.split("|")[0]
                phases[name] = (phase, stats(phase.samples[key], secs))
                n = max(1, len(phase.samples[key]))
                if not db_name:  # SQLite works inside the server; PostgreSQL here is someone else's
                    phase.other_cpu_s, phase.db_cpu_s = phase.other_cpu_s + phase.db_cpu_s, 0.0
                print(f"{name}: {json.dumps(phases[name][1])} errors={len(phase.errors)}; per page: server CPU "
                      f"{1000 * phase.server_cpu_s / n:.1f} ms, PostgreSQL {1000 * phase.db_cpu_s / n:.1f} ms; other "
                      f"work on the machine {phase.other_cpu_s / secs:.2f} CPUs", flush=True)
                if phase.errors:
                    print(f"\nFAIL: {len(phase.errors)} answers other than 200 or failed calls; nothing written. "
                          "First ones:", file=sys.stderr)
                    for e in phase.errors[:10]:
                        print(f"  {e[0]}: {e[1]} {e[2]} -> {e[3]} {e[4]!r}", file=sys.stderr)
                    print(f"server log tail:\n{server.log_tail(2000)}", file=sys.stderr)
                    return 1
    report(phases, costs, counts, n_clients=n_clients, seconds=seconds, warmup=warmup, alone=alone, vendor=vendor,
           db=db, conn_max_age=settings.DATABASES["default"]["CONN_MAX_AGE"])
    return 0


# -- report --------------------------------------------------------------------------------
def report(phases, costs, counts, *, n_clients, seconds, warmup, alone, vendor, db, conn_max_age) -> None:
    import gunicorn

    def ms(v):
        return f"{v:,.1f} ms" if v is not None else "-"

    def cpu_per_page(name):
        phase, st = phases[name]
        return 1000 * (phase.server_cpu_s + phase.db_cpu_s) / max(1, st["n"])

    results = {"admin_errors": 0, "admin_database": vendor, "admin_clients": n_clients, "admin_seconds": seconds,
               "admin_target_ms": TARGET_MS, "admin_requests": counts["requests"], "admin_grants": counts["grants"],
               "admin_approvals": counts["approvals"]}
    rows, super_rows, missed, missed_alone = [], [], {}, []
    for key, what, path in PAGES:
        st, one = phases[f"{key}|{APPROVER}"][1], phases[f"{key}|alone"][1]
        cost = costs[(APPROVER, key)]
        results.update({f"admin_{key}_ms_p50": st["p50"], f"admin_{key}_ms_p95": st["p95"],
                        f"admin_{key}_ms_p99": st["p99"], f"admin_{key}_1client_ms_p50": one["p50"],
                        f"admin_{key}_1client_ms_p95": one["p95"], f"admin_{key}_sql_ms": cost["sql_ms"],
                        f"admin_{key}_queries": cost["queries"], f"admin_{key}_rows": cost["rows"]})
        ok = st["p95"] is not None and st["p95"] <= TARGET_MS
        if not ok:
            missed.setdefault(what, []).append(APPROVER)
        if one["p95"] is None or one["p95"] > TARGET_MS:
            missed_alone.append(what)
        rows.append(f"| {what} `{path}` | {cost['rows']:,} | {cost['queries']} | {ms(cost['sql_ms'])} "
                    f"| {ms(one['p50'])} | {ms(one['p95'])} | {ms(st['p50'])} "
                    f"| {ms(st['p95'])} | {ms(st['p99'])} | {st['rps']} | {ms(cpu_per_page(f'{key}|{APPROVER}'))} "
                    f"| {'yes' if ok else '**no**'} |")
        name = f"{key}|{SUPERUSER}"
        if name in phases:
            st, cost = phases[name][1], costs[(SUPERUSER, key)]
            results.update({f"admin_superuser_{key}_ms_p50": st["p50"], f"admin_superuser_{key}_ms_p95": st["p95"],
                            f"admin_superuser_{key}_ms_p99": st["p99"], f"admin_superuser_{key}_queries": cost["queries"],
                            f"admin_superuser_{key}_rows": cost["rows"]})
            ok = st["p95"] is not None and st["p95"] <= TARGET_MS
            if not ok:
                missed.setdefault(what, []).append(SUPERUSER)
            super_rows.append(f"| {what} | {cost['rows']:,} | {cost['queries']} | {ms(cost['sql_ms'])} | {ms(st['p50'])} "
                              f"| {ms(st['p95'])} "
                              f"| {ms(st['p99'])} | {st['rps']} | {'yes' if ok else '**no**'} |")
    results["admin_pages_over_target"] = sum(len(who) for who in missed.values())
    results["admin_pages_over_target_1client"] = len(missed_alone)
    results_merge(results)
    other = max(p.other_cpu_s / (alone if name.endswith("|alone") else seconds) for name, (p, _) in phases.items())
    verdict = (f"With {n_clients} clients every page's p95 is within {TARGET_MS} ms" if not missed else
               f"With {n_clients} clients, over {TARGET_MS} ms at p95: "
               + "; ".join(f"{what} ({', '.join(who)})" for what, who in missed.items()))
    verdict += (f". One client alone, every page's p95 is within {TARGET_MS} ms." if not missed_alone else
                f". One client alone, over {TARGET_MS} ms at p95: {'; '.join(missed_alone)}.")
    header = (f"| page | rows in scope | SQL queries | SQL time | 1 client, p50 | 1 client, p95 | {n_clients} clients, p50 "
              f"| p95 | p99 | pages per second | CPU per page (server + database) | p95 ≤ {TARGET_MS} ms |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|")
    super_header = (f"| page | rows in scope | SQL queries | SQL time | p50 | p95 | p99 | pages per second "
                    f"| p95 ≤ {TARGET_MS} ms |\n|---|---|---|---|---|---|---|---|---|")
    newline = "\n"
    doc_section_write("admin", f"""
## Admin lists with {counts['requests']:,} requests (bench/admin.py)

Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} × {cpu_model()},
Python {platform.python_version()}, {db}, `CONN_MAX_AGE={conn_max_age}`, gunicorn {gunicorn.__version__}
({GUNICORN_WORKERS} workers × {GUNICORN_THREADS} threads) on 127.0.0.1. The load generator{' and the server' if vendor == 'sqlite' else ', the server and the database'}
share the machine's CPUs; other work on the machine took up to {other:.2f} CPUs during a phase.
Target (ARCHITECTURE.md): admin list with 100k requests ≤ {TARGET_MS} ms, read here as p95.
{verdict}

As the approver ({APPROVER}: not staff, in the AD groups three of the four enabled policies
name as approvers, so most requests are in their scope). Each page: 1 client alone for
{alone:g} s (the page's own cost), then {n_clients} clients, each with its own session and keep-alive
connection, asking again as soon as the last answer arrived ({warmup:g} s warm-up, {seconds:g} s
measured). With no think time {n_clients} clients keep the CPUs busy, so a page also waits for the
others' pages: those columns are bound by CPU per page (about clients × CPU per page ÷ CPUs),
while the 1-client columns are what one approver sees on an idle server. Rows in scope: what
the page's filters select (its count query); a page shows 50 requests or 100 grants. SQL time:
the page's queries, run once in-process.

{header}
{newline.join(rows)}

As a superuser ({SUPERUSER}, no approver groups: sees every request and grant; its own queue is
empty, so that page is not repeated), {n_clients} clients as above:

{super_header}
{newline.join(super_rows)}

How: a fresh database is seeded with {counts['targets']:,} targets, {counts['policies']} policies and
{counts['users']} people, and a {HISTORY_DAYS}-day history of {counts['requests']:,} requests
({counts['pending']:,} pending over the last three days, the rest approved, denied, cancelled or
expired; three in four under policies with approvers), {counts['grants']:,} grants ({counts['live']:,} live now, the rest
ended) and {counts['approvals']:,} approvals that record the approver groups they count for. Sessions are
made as a login with MFA leaves them. SQL queries were counted once per page in-process
(Django's test client on the same database){'; PostgreSQL statistics were gathered after the load, as autovacuum would' if vendor == 'postgresql' else '; SQLite has no statistics (nobody runs ANALYZE on a deployment), as it would be'}.
Every page's queries with their times, and the slowest one's plan, are written to
`var/bench/logs/admin-slowest.txt`.
Only the HTML document is fetched. Latency is measured at the client, from sending the
request to reading the whole answer; CPU per page is the gunicorn processes' CPU time{' and that of the PostgreSQL backends serving the bench database (parallel query workers count as other work)' if vendor == 'postgresql' else ''}
over the measured window, divided by the pages answered in it. Any answer other than 200 fails the run, which then
writes nothing.
""")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
