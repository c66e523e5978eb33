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
uniform 0..this between calls, so each person acts about once a second), BENCH_PORTAL_DB (PostgreSQL database name to create and
drop, jitad_bench_portal).

Nothing at module level touches Django, so bench/run.py can import the report helpers.
"""
import http.client
import json
import os
import platform
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results.json"
DOC = REPO / "docs" / "benchmarks.md"
DOC_HEADER = """# Benchmarks

Written by `make bench` (bench/run.py, bench/portal.py); do not edit by hand. Targets from ARCHITECTURE.md.
"""

N_TARGETS, N_DOMAIN_ROLES, N_DISABLED = 2000, 20, 40
N_HISTORY_USERS = 450
GUNICORN_WORKERS, GUNICORN_THREADS = 2, 4
SEARCHES = ["", "sql", "par web", "srv-lon", "finance", "fs0", "payroll", "app1"]
REQUEST_PAGE = "portal request page"
ELIGIBLE_PAGE = "portal eligibility page"
ACCESS_PAGE = "portal My access"
API_ELIGIBILITY = "GET /api/v1/eligibility"
API_LIST = "GET /api/v1/requests"
API_CREATE = "POST /api/v1/requests"


# -- report helpers (shared with bench/run.py) --------------------------------------------
def pct(values, p):
    """Nearest-rank percentile, as bench/run.py computes it."""
    values = sorted(values)
    if not values:
        return None
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def results_merge(new: dict, path: Path = RESULTS) -> dict:
    """Update bench/results.json with ``new``, keeping the keys another part wrote."""
    try:
        results = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        results = {}
    results.update(new)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


def doc_section_write(name: str, body: str, path: Path = DOC) -> None:
    """Replace this part's section of docs/benchmarks.md (between markers), or append it."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else DOC_HEADER
    block = f"{begin}\n{body.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)


def cpu_model() -> str:
    return next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")), platform.processor())


# -- database: a fresh one of our own ----------------------------------------------------
def database_prepare(var: Path):
    """A fresh database URL for this part, and how to drop it afterwards.

    SQLite (or nothing configured): var/portal.sqlite3. PostgreSQL: a database of our own
    (BENCH_PORTAL_DB) on the server JITAD_DATABASE_URL names, so nobody else's is touched.
    """
    url = os.environ.get("JITAD_DATABASE_URL", "")
    if not url or url.startswith("sqlite"):
        db = var / "portal.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{db}", lambda: None
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql", "psql"):
        raise SystemExit(f"bench/portal.py supports SQLite and PostgreSQL, not {parts.scheme}")
    import psycopg
    from psycopg import sql

    name = os.environ.get("BENCH_PORTAL_DB", "jitad_bench_portal")
    admin = urlunsplit(("postgresql", parts.netloc, "/postgres", parts.query, ""))

    def drop():
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    drop()
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, "")), drop


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
    """Targets, policies, people and history; returns the simulated people and row counts."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group
    from django.utils import timezone
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from jitad.accounts.mfa import BACKUP_DEVICE_NAME, FRESH_DEVICE_KEY, FRESH_KEY
    from jitad.accounts.models import DirectoryAccount
    from jitad.accounts.services import api_token_create
    from jitad.elevation.models import AccessRequest, Approval, Grant, Policy, Target
    from jitad.elevation.services.eligibility import eligibility_search

    base = "DC=corp,DC=example,DC=com"
    now = timezone.now()
    sites, roles = ["PAR", "LON", "NYC", "FRA", "SIN"], ["SQL", "WEB", "APP", "FS", "PRT", "RDS"]
    depts = ["finance", "payroll", "logistics", "sales", "research", "hr", "plant", "it"]
    servers = []
    for i in range(N_TARGETS - N_DOMAIN_ROLES):
        name = f"SRV-{sites[i % 5]}-{roles[(i // 5) % 6]}{i:04d}"
        servers.append(Target(name=name, hostname=f"{name.lower()}.corp.example.com",
                              description=f"{roles[(i // 5) % 6]} server for {depts[i % 8]}, site {sites[i % 5]}",
                              group_dn=f"CN=JIT-{name},OU=JIT,{base}", enabled=i % 50 != 49))
    domain_roles = [Target(name=f"Domain role {j:02d}", kind=Target.Kind.DOMAIN_ROLE, description="Tier 0 role",
                           group_dn=f"CN=JIT-Tier0-{j:02d},OU=JIT,{base}") for j in range(N_DOMAIN_ROLES)]
    Target.objects.bulk_create(servers + domain_roles, batch_size=1000)
    servers = list(Target.objects.filter(kind=Target.Kind.SERVER).order_by("id"))
    domain_roles = list(Target.objects.filter(kind=Target.Kind.DOMAIN_ROLE).order_by("id"))

    ticket = r"CHG[0-9]{6}"
    policies = [
        (Policy(name="tier0-domain-roles", priority=5, approval_mode="manual", approvals_required=2,
                eligible_groups=["JIT-Domain-Admins"], approver_groups=["JIT-Approvers"], require_ticket=True,
                ticket_pattern=ticket, max_duration_minutes=120), domain_roles),
        (Policy(name="servers-standard", priority=10, approval_mode="auto", eligible_groups=["JIT-Server-Admins"],
                max_duration_minutes=480), servers[:1200]),
        (Policy(name="servers-sensitive", priority=20, approval_mode="manual", eligible_groups=["jit-server-admins"],
                approver_groups=["JIT-Approvers"], require_ticket=True, ticket_pattern=ticket), servers[1000:1900]),
        (Policy(name="database-servers", priority=30, approval_mode="manual", eligible_groups=["JIT-DBA"],
                approver_groups=["JIT-DBA-Leads"]), [t for t in servers if "-SQL" in t.name]),
        (Policy(name="legacy-contractors", priority=40, enabled=False, eligible_groups=["JIT-Server-Admins"]),
         servers[1900:]),
    ]
    for policy, targets in policies:
        policy.save()
        policy.targets.add(*targets)

    User = get_user_model()
    groups = {n: Group.objects.create(name=n) for n in
              ["JIT-Server-Admins", "JIT-Domain-Admins", "JIT-Approvers", "JIT-DBA", "JIT-DBA-Leads", "Domain Users"]}

    def profile(i: int, bench: bool) -> tuple[str, ...]:
        if bench:
            extra = ("JIT-Domain-Admins",) if i < n_people // 5 else ("JIT-Approvers",) if i >= n_people * 4 // 5 else ()
            return ("Domain Users", "JIT-Server-Admins", *extra)
        if i < 300:
            return ("Domain Users", "JIT-Server-Admins")
        if i < 400:
            return ("Domain Users", "JIT-DBA")
        return ("Domain Users", "JIT-Server-Admins", "JIT-Approvers", "JIT-DBA-Leads")

    specs = [(f"pu{i:03d}", profile(i, True)) for i in range(n_people)]
    specs += [(f"hu{i:03d}", profile(i, False)) for i in range(N_HISTORY_USERS)]
    unusable = make_password(None)
    User.objects.bulk_create([User(username=u, first_name=u.upper(), last_name="Bench", email=f"{u}@corp.example.com",
                                   password=unusable) for u, _ in specs])
    users = {u.username: u for u in User.objects.all()}
    through = User.groups.through
    through.objects.bulk_create([through(user_id=users[u].id, group_id=groups[g].id) for u, gs in specs for g in gs])
    DirectoryAccount.objects.bulk_create([
        DirectoryAccount(user=users[u], guid=str(uuid.uuid4()), dn=f"CN={u},OU=People,{base}", groups=list(gs))
        for u, gs in specs])

    # What each profile may request, from the service the API uses (one representative each).
    pools: dict[tuple, list] = {}
    for u, gs in specs:
        if gs not in pools:
            pools[gs] = eligibility_search(user=users[u], limit=100_000).items
    approvers = [users[u] for u, gs in specs if "JIT-Approvers" in gs]

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
    store = import_module(settings.SESSION_ENGINE).SessionStore
    people, tokens = [], []
    for u, gs in specs[:n_people]:
        user = users[u]
        device = TOTPDevice.objects.create(user=user, name="authenticator app", confirmed=True)
        static = StaticDevice.objects.create(user=user, name=BACKUP_DEVICE_NAME, confirmed=True)
        codes = [secrets.token_hex(5) for _ in range(codes_each)]
        tokens += [StaticToken(device=static, token=c) for c in codes]
        session = store()
        session.update({
            "_auth_user_id": str(user.pk), "_auth_user_backend": "jitad.accounts.backends.ThrottledModelBackend",
            "_auth_user_hash": user.get_session_auth_hash(), DEVICE_ID_SESSION_KEY: device.persistent_id,
            FRESH_KEY: time.time(),  # fresh (JITAD_MFA_FRESH_SECONDS, 15 min) for the whole run
            FRESH_DEVICE_KEY: device.persistent_id,
        })
        session.save()
        _, raw = api_token_create(user=user, name="bench", days=1)
        pool = pools[gs]
        people.append(Person(username=u, session_key=session.session_key, token=raw, codes=codes,
                             eligible=[t.id for t, _ in pool], manual=[t.id for t, p in pool if p.approval_mode == "manual"]))
    StaticToken.objects.bulk_create(tokens, batch_size=2000)
    counts = {"targets": Target.objects.count(), "policies": Policy.objects.count(), "users": User.objects.count(),
              "requests": AccessRequest.objects.count(), "grants": Grant.objects.count(),
              "approvals": Approval.objects.count()}
    return people, counts


# -- the server ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn serving jitad.wsgi on 127.0.0.1, in its own process group."""

    def __init__(self, env: dict, log: Path):
        self.env, self.log, self.port, self.proc = env, log, free_port(), None

    def start(self, timeout: float = 60) -> None:
        cmd = [sys.executable, "-m", "gunicorn", "jitad.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
               "--workers", str(GUNICORN_WORKERS), "--threads", str(GUNICORN_THREADS), "--log-level", "warning"]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn not answering /healthz within {timeout}s:\n{self.log_tail()}")

    def pids(self) -> list[int]:
        """The master and its workers."""
        if not self.proc:
            return []
        found = [self.proc.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    found.append(int(stat.parent.name))
            except (OSError, ValueError, IndexError):
                continue
        return found

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_bytes()[-n:].decode(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None


def cpu_seconds(pids) -> float:
    """User + system CPU of these processes, from /proc."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / tick


def postgres_cpu() -> dict[int, int]:
    """CPU ticks of every PostgreSQL process on the machine, by pid; the postmaster's include its
    reaped children (with CONN_MAX_AGE=0 each request has a backend of its own)."""
    ticks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            if text[text.index("(") + 1:text.rindex(")")] == "postgres":
                ticks[int(stat.parent.name)] = sum(int(x) for x in text.rsplit(")", 1)[1].split()[11:15])
        except (OSError, IndexError, ValueError):
            continue
    return ticks


def postgres_cpu_seconds(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU the PostgreSQL processes used between two snapshots (a backend that came and went unseen is lost)."""
    return sum(max(0, t - before.get(pid, 0)) for pid, t in after.items()) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent not idle, from /proc/stat."""
    v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


# -- the load ------------------------------------------------------------------------------
class Client:
    """One person's keep-alive connection, cookies and headers (http.client: small and predictable)."""

    def __init__(self, port: int, headers: dict, cookies: dict | None = None):
        self.port, self.headers, self.cookies, self.conn, self.reconnects = port, headers, dict(cookies or {}), None, 0

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        headers = dict(self.headers)
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                payload = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection before reading: safe to resend once.
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                self.reconnects += 1
                continue
            for header in resp.headers.get_all("Set-Cookie") or []:
                cookie = SimpleCookie()
                cookie.load(header)
                self.cookies.update({k: m.value for k, m in cookie.items()})
            if resp.will_close:
                self.conn.close()
                self.conn = None
            return resp.status, payload
        raise AssertionError("unreachable")


@dataclass
class Phase:
    """One load phase: when recording starts and ends, what was measured, what went wrong."""

    name: str
    record_from: float
    end: float
    samples: dict = field(default_factory=lambda: defaultdict(list))
    errors: list = field(default_factory=list)
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    db_cpu_s: float = 0.0
    other_cpu_s: float = 0.0


def user_loop(client: Client, next_call, rng: random.Random, phase: Phase, think_s: float, stop: threading.Event):
    """Call, record, think 0..think_s (uniform), until the phase ends."""
    time.sleep(rng.uniform(0, think_s))  # people do not all click in the same millisecond
    while not stop.is_set() and time.monotonic() < phase.end:
        call = next_call(rng)
        if call is None:
            break
        label, method, path, body = call
        started = time.monotonic()
        t0 = time.perf_counter()
        try:
            status, payload = client.call(method, path, body)
        except (OSError, http.client.HTTPException) as e:
            status, payload = None, repr(e).encode()
        ms = (time.perf_counter() - t0) * 1000
        if status is None or not 200 <= status < 300:
            phase.errors.append((label, method, path, status, payload[:300].decode(errors="replace")))
        elif started >= phase.record_from:
            phase.samples[label].append(ms)
        time.sleep(rng.uniform(0, think_s))


def run_phase(name: str, users: list[tuple[Client, object]], server: Server, *, warmup: float, seconds: float,
              think_s: float, seed: int) -> Phase:
    start = time.monotonic()
    phase = Phase(name=name, record_from=start + warmup, end=start + warmup + seconds)
    stop = threading.Event()
    threads = [threading.Thread(target=user_loop, args=(c, nxt, random.Random(seed + i), phase, think_s, stop),
                                daemon=True) for i, (c, nxt) in enumerate(users)]
    try:
        for t in threads:
            t.start()
        time.sleep(max(0.0, phase.record_from - time.monotonic()))
        pids = server.pids()
        s0, c0, d0, m0 = cpu_seconds(pids), time.process_time(), postgres_cpu(), machine_busy_seconds()
        time.sleep(max(0.0, phase.end - time.monotonic()))
        s1, c1, d1, m1 = cpu_seconds(pids), time.process_time(), postgres_cpu(), machine_busy_seconds()
        phase.server_cpu_s, phase.client_cpu_s = s1 - s0, c1 - c0
        phase.db_cpu_s = postgres_cpu_seconds(d0, d1)
        phase.other_cpu_s = max(0.0, (m1 - m0) - phase.server_cpu_s - phase.client_cpu_s - phase.db_cpu_s)
        for t in threads:
            t.join(90)
    finally:
        stop.set()
    return phase


def stats(samples: list[float], seconds: float) -> dict:
    if not samples:
        return {"p50": None, "p95": None, "p99": None, "n": 0, "rps": 0.0}
    return {"p50": round(pct(samples, 50), 1), "p95": round(pct(samples, 95), 1), "p99": round(pct(samples, 99), 1),
            "n": len(samples), "rps": round(len(samples) / seconds, 1)}


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
    if not person.codes or not person.manual:
        return None
    return {"target": rng.choice(person.manual), "duration_minutes": 60, "ticket": f"CHG{rng.randint(0, 999999):06d}",
            "justification": "Bench: apply the monthly patches and reboot", "otp": person.codes.pop()}


def api_mix(person: Person):
    """Half list my requests, a quarter read eligibility, a quarter create a request (manual policy, backup code)."""
    def next_call(rng):
        r = rng.random()
        if r < 0.5:
            return API_LIST, "GET", "/api/v1/requests", None
        if r < 0.75:
            return API_ELIGIBILITY, "GET", "/api/v1/eligibility", None
        body = post_body(person, rng)
        if body is None:  # out of backup codes: read instead (codes are sized so this should not happen)
            return API_LIST, "GET", "/api/v1/requests", None
        return API_CREATE, "POST", "/api/v1/requests", body
    return next_call


# -- main ----------------------------------------------------------------------------------
def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # a killed bench still stops its server and drops its database
    sys.path.insert(0, str(REPO))
    var = Path(os.environ.setdefault("JITAD_VAR_DIR", str(REPO / "var" / "bench")))
    var.mkdir(parents=True, exist_ok=True)
    n_users = int(os.environ.get("BENCH_USERS", "50"))
    seconds = float(os.environ.get("BENCH_SECONDS", "20"))
    warmup = float(os.environ.get("BENCH_WARMUP_SECONDS", "5"))
    think_ms = float(os.environ.get("BENCH_THINK_MS", "2000"))
    think_s = think_ms / 1000
    # Generous: a person POSTs at most a few times a second in the API phase.
    codes_each = int(os.environ.get("BENCH_OTP_CODES", str(int((seconds + warmup) * 4) + 20)))

    url, drop = database_prepare(var)
    os.environ["JITAD_DATABASE_URL"] = url
    # No worker runs: keep anything enqueued in our own directory, never on a shared broker.
    os.environ["CELERY_BROKER_URL"] = "jitadfs://"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jitad.settings")
    server = None
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection

        t0 = time.monotonic()
        call_command("migrate", "--noinput", verbosity=0)
        people, counts = seed(n_users, codes_each, random.Random(42))
        print(f"seeded in {time.monotonic() - t0:.1f} s: {counts}", flush=True)
        vendor = connection.vendor
        if vendor == "postgresql":
            v = connection.connection.info.server_version
            db_version = f"{v // 10000}.{v % 10000}"
        else:
            import sqlite3

            db_version = sqlite3.sqlite_version
        connection.close()

        server = Server(dict(os.environ, PYTHONPATH=str(REPO)), var / "logs" / "portal-gunicorn.log")
        server.start()
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
        phases = []
        for i, (name, users) in enumerate(plan):
            phase = run_phase(name, users, server, warmup=warmup, seconds=seconds, think_s=think_s, seed=1000 * i)
            phases.append(phase)
            total = sum(len(v) for v in phase.samples.values())
            summary = {k: stats(v, seconds) for k, v in phase.samples.items()}
            print(f"{name}: {json.dumps(summary)} errors={len(phase.errors)} server CPU "
                  f"{1000 * phase.server_cpu_s / max(1, total):.1f} ms/request; CPUs busy: server "
                  f"{phase.server_cpu_s / seconds:.2f}, client {phase.client_cpu_s / seconds:.2f}, PostgreSQL "
                  f"{phase.db_cpu_s / seconds:.2f}, other {phase.other_cpu_s / seconds:.2f}", flush=True)
            if phase.errors:
                break
        errors = [e for p in phases for e in p.errors]
        if errors:
            print(f"\nFAIL: {len(errors)} non-2xx answers or failed calls; nothing written. First ones:", file=sys.stderr)
            for e in errors[:10]:
                print(f"  {e[0]}: {e[1]} {e[2]} -> {e[3]} {e[4]!r}", file=sys.stderr)
            print(f"server log tail:\n{server.log_tail(2000)}", file=sys.stderr)
            return 1

        one, page, elig, access, mix = phases
        api_all = [ms for v in mix.samples.values() for ms in v]
        s = {
            "one": stats(one.samples[REQUEST_PAGE], seconds), "page": stats(page.samples[REQUEST_PAGE], seconds),
            "elig": stats(elig.samples[ELIGIBLE_PAGE], seconds), "access": stats(access.samples[ACCESS_PAGE], seconds),
            "api": stats(api_all, seconds), "api_elig": stats(mix.samples[API_ELIGIBILITY], seconds),
            "api_list": stats(mix.samples[API_LIST], seconds), "api_create": stats(mix.samples[API_CREATE], seconds),
        }
        cpu = {p.name: round(1000 * p.server_cpu_s / max(1, sum(len(v) for v in p.samples.values())), 1) for p in phases}
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
            "portal_errors": 0,
            "portal_users": n_users,
            "portal_seconds": seconds,
            "portal_think_ms_max": think_ms,
            "portal_database": vendor,
            "portal_db_conn_max_age": settings.DATABASES["default"]["CONN_MAX_AGE"],
            "portal_targets": counts["targets"],
        }
        results_merge(results)
        write_doc(s, cpu, phases, counts, n_users=n_users, seconds=seconds, warmup=warmup, think_ms=think_ms,
                  vendor=vendor, db_version=db_version, conn_max_age=settings.DATABASES["default"]["CONN_MAX_AGE"])
        print(json.dumps(results, indent=2))
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # cleanup must finish even on a second Ctrl-C
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if server:
            server.stop()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not have been set up
            pass
        drop()


def write_doc(s, cpu, phases, counts, *, n_users, seconds, warmup, think_ms, vendor, db_version, conn_max_age) -> None:
    import gunicorn

    other = max(p.other_cpu_s for p in phases) / seconds
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
    ]
    table = "\n".join(
        f"| {name} | {r['p50']} ms | {r['p95']} ms | {r['p99']} ms | {r['n']:,} | {r['rps']} | "
        f"{f'{c} ms' if c is not None else ''} | {target} |" for name, r, c, target in rows)
    db = f"SQLite {db_version} (WAL)" if vendor == "sqlite" else f"PostgreSQL {db_version}"
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
CPU time over the measured window divided by the requests answered in it.
""")


if __name__ == "__main__":
    sys.exit(main())
