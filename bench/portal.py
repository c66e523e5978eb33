#!/usr/bin/env python
"""Measure the portal's request page and the REST API under 50 concurrent users.

Seeds a fresh database (2,000 targets, five policies, 500 people with a history of
requests, grants and approvals), starts gunicorn on 127.0.0.1 and drives it from 50
client threads, each a person with a verified portal session and a personal API token.
Latency is taken at the client. Any non-2xx answer fails the run and writes nothing.

Adds portal_* and api_* keys to bench/results.json (keeping every other key) and rewrites
its own section of docs/benchmarks.md. `make bench` runs it after bench/run.py's engine
part; alone: `.venv/bin/python bench/portal.py`. Knobs (environment): BENCH_USERS (50),
BENCH_SECONDS (20 measured per phase), BENCH_WARMUP_SECONDS (5), BENCH_THINK_MS (2000:
uniform 0..this between calls, so each person acts about once a second), BENCH_PORTAL_DB
(PostgreSQL database name to create and drop, jitad_bench_portal).

The estate comes from bench/catalog.py, the server, clients and load loop from bench/harness.py.
"""
import json
import math
import os
import platform
import random
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import timedelta

from catalog import BASE_DN, N_DISABLED, catalog_seed, verified_session
from harness import (GUNICORN_THREADS, GUNICORN_WORKERS, Client, Server, bench_django, cpu_model, database_version,
                     doc_section_write, results_merge, run_phase, server_env, stats)

SEARCHES = ["", "sql", "par web", "srv-lon", "finance", "fs0", "payroll", "app1"]
REQUEST_PAGE = "portal request page"
ELIGIBLE_PAGE = "portal eligibility page"
ACCESS_PAGE = "portal My access"
API_ELIGIBILITY = "GET /api/v1/eligibility"
API_LIST = "GET /api/v1/requests"
API_CREATE = "POST /api/v1/requests"
# The API's calls measured each alone, one user: (results key, short name, phase, the call)
ALONE = (("requests_list", "list", "API list, 1 user", API_LIST),
         ("eligibility", "elig", "API eligibility, 1 user", API_ELIGIBILITY),
         ("requests_create", "create", "API create, 1 user", API_CREATE))
ALONE_SECONDS, ALONE_WARMUP = 5.0, 1.0
ALONE_CODES = 200  # the backup codes the user of those phases holds beyond BENCH_OTP_CODES (one per POST)
OUT_OF_CODES = []  # (person) each time the mix wanted a POST from someone with no code left, and read instead


# -- data --------------------------------------------------------------------------------
@dataclass
class Person:
    """A simulated portal/API user: session cookie, token, backup codes, what they may request."""

    username: str
    session_key: str
    token: str
    codes: list[str]
    eligible: list[int]
    manual: list[int]  # targets whose policy needs approvers: a POST there does no AD work


def seed(n_people: int, codes_each: int, rng: random.Random) -> tuple[list[Person], dict]:
    """The shared catalog (bench/catalog.py), a 90-day history, and the simulated people;
    returns those people and row counts."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from jitad.accounts.devices import AuthenticatorDevice, BackupCodeDevice
    from jitad.accounts.mfa import BACKUP_DEVICE_NAME
    from jitad.accounts.services import api_token_create
    from jitad.elevation.models import AccessRequest, Approval, Grant, Policy, Target

    base = BASE_DN
    now = timezone.now()
    catalog = catalog_seed(n_people)
    User = get_user_model()
    users, specs, pools, approvers = catalog.users, catalog.specs, catalog.pools, catalog.approvers

    # History: ~35 requests a person over 90 days, with their grants and approvals.
    reqs, live_grant_reqs = [], set()
    for u, gs in specs:
        pool = pools[gs]
        if not pool:
            continue
        user = users[u]
        for k in range(40 if u.startswith("pu") else 30):
            target, policy = rng.choice(pool)
            auto = policy.approval_mode == "auto"
            created = now - timedelta(minutes=rng.randint(600, 90 * 24 * 60))
            state = "approved" if auto else rng.choices(
                ["approved", "denied", "cancelled", "expired_unapproved"], weights=[80, 8, 7, 5])[0]
            reqs.append(AccessRequest(
                requester=user, target=target, policy=policy, state=state,
                duration_minutes=min(policy.max_duration_minutes, rng.choice([30, 60, 120, 240])),
                justification=f"Change window: patching and checks on {target.name}",
                ticket=f"CHG{rng.randint(0, 999999):06d}" if policy.require_ticket else "",
                approvals_required=0 if auto else policy.approvals_required, created_at=created,
                pending_until=created + timedelta(minutes=policy.pending_timeout_minutes),
                decided_at=None if state == "expired_unapproved" else created + timedelta(seconds=rng.randint(1, 3600))))
        if u.startswith("pu"):  # a pending request and two current grants on the page
            manual = [(t, p) for t, p in pool if p.approval_mode == "manual"]
            target, policy = rng.choice(manual)
            reqs.append(AccessRequest(requester=user, target=target, policy=policy, duration_minutes=60,
                                      justification="Investigate the failed backup job", ticket="CHG000123",
                                      approvals_required=policy.approvals_required,
                                      created_at=now - timedelta(minutes=5), pending_until=now + timedelta(hours=4)))
            for _ in range(2):
                target, policy = rng.choice(pool)
                live_grant_reqs.add(len(reqs))
                reqs.append(AccessRequest(requester=user, target=target, policy=policy, duration_minutes=120,
                                          state="approved", justification="Deploy the quarterly release",
                                          ticket="CHG000456" if policy.require_ticket else "",
                                          created_at=now - timedelta(minutes=rng.randint(5, 60)),
                                          decided_at=now - timedelta(minutes=4)))
    AccessRequest.objects.bulk_create(reqs, batch_size=1000)

    grants, approvals = [], []
    for i, r in enumerate(reqs):
        if r.policy.approval_mode == "manual" and r.state in ("approved", "denied"):
            chosen = rng.sample([a for a in approvers if a.id != r.requester_id], max(1, r.approvals_required))
            for a in chosen if r.state == "approved" else chosen[:1]:
                approvals.append(Approval(request=r, approver=a, at=r.decided_at,
                                          decision="approve" if r.state == "approved" else "deny",
                                          comment="" if r.state == "approved" else "Not during the change freeze"))
        if r.state != "approved":
            continue
        start = r.decided_at + timedelta(seconds=2)
        live = i in live_grant_reqs
        grants.append(Grant(
            request=r, user_id=r.requester_id, target=r.target, group_dn=r.target.group_dn,
            user_dn=f"CN={r.requester.username},OU=People,{base}", state="active" if live else "revoked",
            created_at=r.decided_at, activated_at=start, expires_at=start + timedelta(minutes=r.duration_minutes),
            revoked_at=None if live else start + timedelta(minutes=r.duration_minutes, seconds=1),
            revoke_reason="" if live else "expired", membership_removed=None if live else True))
    Approval.objects.bulk_create(approvals, batch_size=1000)
    Grant.objects.bulk_create(grants, batch_size=1000)
    extensions = [AccessRequest(kind="extension", extends=g, requester_id=g.user_id, target=g.target,
                                policy=g.request.policy, state="approved", duration_minutes=60,
                                justification="The patch run overran", created_at=g.activated_at + timedelta(minutes=20),
                                decided_at=g.activated_at + timedelta(minutes=21))
                  for g in grants if g.state == "revoked" and rng.random() < 0.05]
    AccessRequest.objects.bulk_create(extensions, batch_size=1000)

    # The simulated people: a verified session (as login + MFA leaves it), a token, backup codes.
    people = []
    for i, (u, gs) in enumerate(specs[:n_people]):
        user = users[u]
        device = AuthenticatorDevice.objects.create(user=user, name="authenticator app", confirmed=True)
        static = BackupCodeDevice.objects.create(user=user, name=BACKUP_DEVICE_NAME, confirmed=True)
        codes = [secrets.token_hex(5) for _ in range(codes_each + (ALONE_CODES if i == 1 else 0))]
        static.codes_add(codes)  # hashed (scrypt) and sealed: the seeding's slowest step
        session_key = verified_session(user, device)
        _, raw = api_token_create(user=user, name="bench", days=1)
        pool = pools[gs]
        people.append(Person(username=u, session_key=session_key, token=raw, codes=codes,
                             eligible=[t.id for t, _ in pool], manual=[t.id for t, p in pool if p.approval_mode == "manual"]))
    counts = {"targets": Target.objects.count(), "policies": Policy.objects.count(), "users": User.objects.count(),
              "requests": AccessRequest.objects.count(), "grants": Grant.objects.count(),
              "approvals": Approval.objects.count()}
    return people, counts


def smoke(person: Person, port: int, cookie: str) -> None:
    """One call of each kind before the load: a page or endpoint that is missing fails here, clearly."""
    portal = Client(port, {"Accept": "text/html"}, {cookie: person.session_key})
    api = Client(port, {"Accept": "application/json", "Authorization": f"Bearer {person.token}"})
    checks = [
        (portal, "GET", f"/request/new/?target={person.eligible[0]}", None, "the request page (elevation:request-new)"),
        (portal, "GET", "/eligible/?q=sql", None, "the eligibility page (elevation:eligible)"),
        (portal, "GET", "/access/", None, "My access (elevation:access)"),
        (api, "GET", "/api/v1/eligibility", None, "the eligibility API"),
        (api, "GET", "/api/v1/requests", None, "the requests API"),
        (api, "POST", "/api/v1/requests", post_body(person, random.Random(0)), "creating a request through the API"),
    ]
    for client, method, path, body, what in checks:
        status, payload = client.call(method, path, body)
        if status == 404:
            raise SystemExit(f"FAIL: {method} {path} answered 404: {what} is not in place yet.\n{payload[:300]!r}")
        if not 200 <= status < 300:
            raise SystemExit(f"FAIL: {method} {path} answered {status} ({what}).\n{payload[:500]!r}")


def post_body(person: Person, rng: random.Random) -> dict | None:
    """A request under a manual policy with one of the person's backup codes, picked at random (the device
    checks its codes in the order they were stored, until the one given: on average half of them)."""
    if not person.codes or not person.manual:
        return None
    code = person.codes.pop(rng.randrange(len(person.codes)))
    return {"target": rng.choice(person.manual), "duration_minutes": 60, "ticket": f"CHG{rng.randint(0, 999999):06d}",
            "justification": "Bench: apply the monthly patches and reboot", "otp": code}


def api_only(person: Person, kind: str):
    """One kind of the mix's calls, every time."""
    def next_call(rng):
        if kind == API_CREATE and (body := post_body(person, rng)) is not None:
            return API_CREATE, "POST", "/api/v1/requests", body
        if kind == API_ELIGIBILITY:
            return API_ELIGIBILITY, "GET", "/api/v1/eligibility", None
        return API_LIST, "GET", "/api/v1/requests", None
    return next_call


def api_mix(person: Person):
    """Half list my requests, a quarter read eligibility, a quarter create a request (manual policy, backup code)."""
    def next_call(rng):
        r = rng.random()
        if r < 0.5:
            return API_LIST, "GET", "/api/v1/requests", None
        if r < 0.75:
            return API_ELIGIBILITY, "GET", "/api/v1/eligibility", None
        body = post_body(person, rng)
        if body is None:  # out of backup codes: read instead (counted and reported; codes are sized so it should not happen)
            OUT_OF_CODES.append(person.username)
            return API_LIST, "GET", "/api/v1/requests", None
        return API_CREATE, "POST", "/api/v1/requests", body
    return next_call


# -- main ----------------------------------------------------------------------------------
def main() -> int:
    n_users = int(os.environ.get("BENCH_USERS", "50"))
    seconds = float(os.environ.get("BENCH_SECONDS", "20"))
    warmup = float(os.environ.get("BENCH_WARMUP_SECONDS", "5"))
    think_ms = float(os.environ.get("BENCH_THINK_MS", "2000"))
    # As many backup codes as a person gets (ten), or three times the POSTs the mix asks of each person if
    # that is more (a quarter of the calls, one a think time): a device checks its codes one by one until
    # the code given, so a stock far above a person's ten made every POST unseal a hundred.
    posts = (seconds + warmup) / (think_ms / 2000 + 0.05) / 4
    codes_each = int(os.environ.get("BENCH_OTP_CODES", str(max(10, math.ceil(3 * posts)))))

    with bench_django("portal") as var:
        from django.conf import settings
        from django.db import connection

        t0 = time.monotonic()
        people, counts = seed(n_users, codes_each, random.Random(42))
        print(f"seeded in {time.monotonic() - t0:.1f} s: {counts}", flush=True)
        vendor, db = connection.vendor, database_version(connection)
        connection.close()
        with Server(server_env(), var / "logs" / "portal-gunicorn.log") as server:
            return measure(people, counts, server, n_users=n_users, seconds=seconds, warmup=warmup,
                           think_ms=think_ms, vendor=vendor, db=db, codes_each=codes_each,
                           conn_max_age=settings.DATABASES["default"]["CONN_MAX_AGE"])


def measure(people, counts, server, *, n_users, seconds, warmup, think_ms, vendor, db, codes_each, conn_max_age) -> int:
    """Run the phases against the started server; write the results unless a call failed."""
    from django.conf import settings

    think_s = think_ms / 1000
    cookie = settings.SESSION_COOKIE_NAME
    smoke(people[0], server.port, cookie)
    print(f"gunicorn on 127.0.0.1:{server.port}; {n_users} users, {warmup:g} s warm-up + {seconds:g} s a phase, "
          f"think 0-{think_ms:g} ms", flush=True)

    def portal(p):
        return Client(server.port, {"Accept": "text/html"}, {cookie: p.session_key})

    def api(p):
        return Client(server.port, {"Accept": "application/json", "Authorization": f"Bearer {p.token}"})

    def request_page(p):
        return lambda rng: (REQUEST_PAGE, "GET", f"/request/new/?target={rng.choice(p.eligible)}", None)

    def eligible_page(p):
        return lambda rng: (ELIGIBLE_PAGE, "GET", f"/eligible/?q={rng.choice(SEARCHES).replace(' ', '+')}", None)

    def access_page(p):
        return lambda rng: (ACCESS_PAGE, "GET", "/access/", None)

    plan = [
        ("request page, 1 user", [(portal(people[0]), request_page(people[0]))]),
        ("request page", [(portal(p), request_page(p)) for p in people]),
        ("eligibility page", [(portal(p), eligible_page(p)) for p in people]),
        ("My access", [(portal(p), access_page(p)) for p in people]),
        ("API mix", [(api(p), api_mix(p)) for p in people]),
    ]
    # Then each kind of the API's calls alone: one user calling back to back (no thinking, so the server's
    # idle CPU is spread over many calls), for its service time and what one call costs the server and
    # PostgreSQL.
    plan += [(name, [(api(people[1]), api_only(people[1], call))]) for _, _, name, call in ALONE]
    phases = []
    for i, (name, users) in enumerate(plan):
        by_itself = i >= len(plan) - len(ALONE)
        length = ALONE_SECONDS if by_itself else seconds
        phase = run_phase(name, users, server, warmup=ALONE_WARMUP if by_itself else warmup, seconds=length,
                          think_s=0.0 if by_itself else think_s, seed=1000 * i)
        phases.append(phase)
        total = sum(len(v) for v in phase.samples.values())
        summary = {k: stats(v, length) for k, v in phase.samples.items()}
        print(f"{name}: {json.dumps(summary)} errors={len(phase.errors)} server CPU "
              f"{1000 * phase.server_cpu_s / max(1, total):.1f} ms/request; CPUs busy: server "
              f"{phase.server_cpu_s / length:.2f}, client {phase.client_cpu_s / length:.2f}, PostgreSQL "
              f"{phase.db_cpu_s / length:.2f}, other {phase.other_cpu_s / length:.2f}", flush=True)
        if phase.errors:
            break
    errors = [e for p in phases for e in p.errors]
    if errors:
        print(f"\nFAIL: {len(errors)} non-2xx answers or failed calls; nothing written. First ones:", file=sys.stderr)
        for e in errors[:10]:
            print(f"  {e[0]}: {e[1]} {e[2]} -> {e[3]} {e[4]!r}", file=sys.stderr)
        print(f"server log tail:\n{server.log_tail(2000)}", file=sys.stderr)
        return 1

    one, page, elig, access, mix, *alone = phases
    api_all = [ms for v in mix.samples.values() for ms in v]
    s = {
        "one": stats(one.samples[REQUEST_PAGE], seconds), "page": stats(page.samples[REQUEST_PAGE], seconds),
        "elig": stats(elig.samples[ELIGIBLE_PAGE], seconds), "access": stats(access.samples[ACCESS_PAGE], seconds),
        "api": stats(api_all, seconds), "api_elig": stats(mix.samples[API_ELIGIBILITY], seconds),
        "api_list": stats(mix.samples[API_LIST], seconds), "api_create": stats(mix.samples[API_CREATE], seconds),
    }
    for phase, (_, short, _, _) in zip(alone, ALONE):
        s[f"api_{short}_1"] = stats(phase.samples[next(iter(phase.samples))], ALONE_SECONDS)
    cpu = {p.name: round(1000 * p.server_cpu_s / max(1, sum(len(v) for v in p.samples.values())), 1) for p in phases}
    db_cpu = {p.name: round(1000 * p.db_cpu_s / max(1, sum(len(v) for v in p.samples.values())), 1) for p in phases}
    results = {
        "portal_request_page_ms_p50": s["page"]["p50"],
        "portal_request_page_ms_p95": s["page"]["p95"],
        "portal_request_page_rps": s["page"]["rps"],
        "portal_request_page_1user_ms_p50": s["one"]["p50"],
        "portal_eligible_page_ms_p50": s["elig"]["p50"],
        "portal_eligible_page_ms_p95": s["elig"]["p95"],
        "portal_access_page_ms_p50": s["access"]["p50"],
        "portal_access_page_ms_p95": s["access"]["p95"],
        "api_request_ms_p50": s["api"]["p50"],
        "api_request_ms_p95": s["api"]["p95"],
        "api_rps": s["api"]["rps"],
        "api_eligibility_ms_p95": s["api_elig"]["p95"],
        "api_requests_list_ms_p95": s["api_list"]["p95"],
        "api_requests_create_ms_p95": s["api_create"]["p95"],
        # CPU per call of the API mix, from /proc over the measured window: the gunicorn processes,
        # and (PostgreSQL) the backends serving the bench's database.
        "api_cpu_ms_per_call": cpu["API mix"],
        "api_db_cpu_ms_per_call": db_cpu["API mix"] if vendor == "postgresql" else None,
        "portal_errors": 0,
        "portal_users": n_users,
        "portal_seconds": seconds,
        "portal_think_ms_max": think_ms,
        "portal_database": vendor,
        "portal_db_conn_max_age": conn_max_age,
        "portal_targets": counts["targets"],
        "api_otp_codes_each": codes_each,
        "api_posts_out_of_codes": len(OUT_OF_CODES),
    }
    for key, short, name, _ in ALONE:  # each kind alone, one user: service time, server and PostgreSQL CPU per call
        results[f"api_{key}_1user_ms_p50"] = s[f"api_{short}_1"]["p50"]
        results[f"api_{key}_1user_cpu_ms"] = cpu[name]
        results[f"api_{key}_1user_db_cpu_ms"] = db_cpu[name] if vendor == "postgresql" else None
    results_merge(results)
    write_doc(s, cpu, db_cpu, phases, counts, n_users=n_users, seconds=seconds, warmup=warmup, think_ms=think_ms,
              vendor=vendor, db=db, codes_each=codes_each, conn_max_age=conn_max_age)
    print(json.dumps(results, indent=2))
    return 0


def write_doc(s, cpu, db_cpu, phases, counts, *, n_users, seconds, warmup, think_ms, vendor, db, codes_each,
              conn_max_age) -> None:
    import gunicorn

    other = max(p.other_cpu_s / (p.end - p.record_from) for p in phases)
    offered = n_users / (think_ms / 2000 + s["one"]["p50"] / 1000)
    cpu_used = next(p.server_cpu_s for p in phases if p.name == "request page") / seconds
    verdict = (": it could not keep up, so most of the latency is waiting for a CPU"
               if offered > 1.1 * s["page"]["rps"] else ": it kept up")
    rows = [
        ("request page `GET /request/new/?target=…`", s["page"], cpu["request page"], "p95 ≤ 100 ms"),
        ("request page, 1 user alone (service time)", s["one"], cpu["request page, 1 user"], ""),
        ("eligibility page `GET /eligible/?q=…`", s["elig"], cpu["eligibility page"], ""),
        ("My access `GET /access/`", s["access"], cpu["My access"], ""),
        ("API, all calls of the mix", s["api"], cpu["API mix"], ""),
        ("… `GET /api/v1/requests` (½ of calls)", s["api_list"], None, ""),
        ("… `GET /api/v1/eligibility` (¼)", s["api_elig"], None, ""),
        ("… `POST /api/v1/requests` (¼)", s["api_create"], None, ""),
        *((f"`{call}`, 1 user alone", s[f"api_{short}_1"], cpu[name], "") for _, short, name, call in ALONE),
    ]
    db_line = (f" and {db_cpu['API mix']} ms of PostgreSQL's (`api_db_cpu_ms_per_call`: the backends serving the "
               f"bench's database; autovacuum's workers count as other work)" if vendor == "postgresql" else "")
    alone_line = ", per call: " + "; ".join(
        f"`{call}` {cpu[name]} ms of server CPU" + (f" and {db_cpu[name]} ms of PostgreSQL's" if vendor == "postgresql"
                                                   else "") for _, _, name, call in ALONE)
    table = "\n".join(
        f"| {name} | {r['p50']} ms | {r['p95']} ms | {r['p99']} ms | {r['n']:,} | {r['rps']} | "
        f"{f'{c} ms' if c is not None else ''} | {target} |" for name, r, c, target in rows)
    doc_section_write("portal", f"""
## Portal and REST API under load (bench/portal.py)

Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} × {cpu_model()},
Python {platform.python_version()}, {db}, `CONN_MAX_AGE={conn_max_age}`, gunicorn {gunicorn.__version__}
({GUNICORN_WORKERS} workers × {GUNICORN_THREADS} threads) on 127.0.0.1. The load generator{' and the server' if vendor == 'sqlite' else ', the server and the database'}
share the machine's CPUs; other work on the machine took up to {other:.2f} CPUs during a phase.

{n_users} concurrent users, each a thread with its own keep-alive connection, calling, then
thinking 0–{think_ms:g} ms (uniform), in a closed loop. Every row: {warmup:g} s warm-up, then
{seconds:g} s measured; phases run one after another. Errors (any non-2xx answer): 0 — the
run fails and writes nothing otherwise.

| measure | p50 | p95 | p99 | requests | per second | server CPU / request | target |
|---|---|---|---|---|---|---|---|
{table}

The API mix used {cpu['API mix']} ms of the server's CPU per call (`api_cpu_ms_per_call`){db_line}.
Each kind of call alone (one user calling back to back, {ALONE_WARMUP:g} s warm-up and {ALONE_SECONDS:g} s measured,
the rows "1 user alone"){alone_line}.

At the one-user service time, {n_users} people thinking {think_ms / 2:g} ms on average would ask for
about {offered:.0f} request pages a second; the server answered {s['page']['rps']:g} a second using
{cpu_used:.2f} CPUs{verdict}.

How: a fresh database is seeded with {counts['targets']:,} targets ({N_DISABLED} disabled), {counts['policies']}
policies (auto and manual approval, one disabled), {counts['users']} people and a 90-day history of
{counts['requests']:,} requests, {counts['grants']:,} grants and {counts['approvals']:,} approvals; each
simulated person may request about 1,900 targets and has one pending request and two current
grants. The request page is loaded for a random target the person may request. Portal
sessions are made as a login with MFA leaves them (Django session with the auth and
django-otp keys, verification fresh), so no login is timed; only the HTML or JSON document
is fetched, not static files. The API mix uses personal tokens (`Authorization: Bearer`);
each POST carries a single-use backup code and asks for a target under a manual-approval
policy, so it writes the request and its audit event but triggers no AD work (no worker or
DC runs in this part). `GET /api/v1/eligibility` returns the first page (50) of the targets
the person may request. Latency is measured at the client, from sending
the request to reading the whole answer; server CPU per request is the gunicorn processes'
CPU time (user + system, from /proc) over the measured window divided by the requests
answered in it. Each POST checks its backup code: one scrypt hash (about 60 ms of CPU by
itself) whatever the number of codes the person has left, as the codes of a set share a salt
(`docs/mfa.md`). The device then unseals its stored codes one by one until the one given: each
person holds {codes_each} codes (`BENCH_OTP_CODES`: ten, as a person gets, or three times the POSTs
the mix asks of them if more) and gives one picked at random; the one user of the "alone" rows
holds {ALONE_CODES} more, so each of their POSTs unseals about a hundred. A POST the mix wanted from
someone with no code left is made a list call instead: {len(OUT_OF_CODES)} this run
(`api_posts_out_of_codes`).
""")


if __name__ == "__main__":
    sys.exit(main())
