"""What the load parts of the bench share: a database of their own, gunicorn, keep-alive
clients, closed-loop load phases, CPU accounting and the report helpers.

Used by bench/portal.py, bench/admin.py and bench/reports.py (and the report helpers by bench/run.py).
Nothing here touches Django at import time.
"""
import http.client
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results.json"
DOC = REPO / "docs" / "benchmarks.md"
DOC_HEADER = """# Benchmarks

Written by `make bench` (bench/run.py, bench/portal.py, bench/admin.py, bench/reports.py); do not edit by hand. Targets from ARCHITECTURE.md.
"""
GUNICORN_WORKERS, GUNICORN_THREADS = 2, 4


# -- report helpers --------------------------------------------------------------------------
def pct(values, p):
    """Nearest-rank percentile (every part of the bench uses this one)."""
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
def database_prepare(var: Path, part: str):
    """A fresh database URL for this part of the bench, and how to drop it afterwards.

    SQLite (or nothing configured): var/<part>.sqlite3. PostgreSQL: a database of our own
    (BENCH_<PART>_DB, default jitad_bench_<part>) on the server JITAD_DATABASE_URL names,
    so nobody else's database is touched.
    """
    url = os.environ.get("JITAD_DATABASE_URL", "")
    if not url or url.startswith("sqlite"):
        db = var / f"{part}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{db}", lambda: None
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql", "psql"):
        raise SystemExit(f"the bench supports SQLite and PostgreSQL, not {parts.scheme}")
    import psycopg
    from psycopg import sql

    name = os.environ.get(f"BENCH_{part.upper()}_DB", f"jitad_bench_{part}")
    admin = urlunsplit(("postgresql", parts.netloc, "/postgres", parts.query, ""))

    def drop():
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    drop()
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, "")), drop


def database_version(connection) -> str:
    """The database and its version, for the report: ``PostgreSQL 15.20``, ``SQLite 3.40.1 (WAL)``."""
    if connection.vendor == "postgresql":
        v = connection.connection.info.server_version
        return f"PostgreSQL {v // 10000}.{v % 10000}"
    import sqlite3

    return f"SQLite {sqlite3.sqlite_version} (WAL)"


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

    def __enter__(self) -> "Server":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        ignore_interrupts()
        self.stop()

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


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of every process in process group ``pgid`` (and the children they reaped), from /proc."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                total += sum(int(x) for x in fields[11:15])
        except (OSError, IndexError, ValueError):
            continue
    return total / tick


def postgres_cpu(database: str | None = None) -> dict[int, int]:
    """CPU ticks of PostgreSQL processes, by pid: every one on the machine, or only the backends
    serving ``database`` (so that other work on the same server is not counted as ours). The
    postmaster's ticks include its reaped children (with CONN_MAX_AGE=0 each request has a
    backend of its own), so with ``database`` set, persistent connections are assumed. Autovacuum's
    workers name the database too but serve no client: they are not counted with ``database`` set
    (a phase that happens to meet one would carry the whole table's vacuum)."""
    ticks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            if text[text.index("(") + 1:text.rindex(")")] != "postgres":
                continue
            if database:
                title = (stat.parent / "cmdline").read_bytes().decode(errors="replace")
                if f" {database} " not in title or "autovacuum" in title:
                    continue
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
              think_s: float, seed: int, database: str | None = None) -> Phase:
    """Each (client, next_call) pair in a thread of its own for ``warmup`` + ``seconds``; samples
    from the last ``seconds`` only. CPU: the server's, ours, PostgreSQL's (see ``postgres_cpu``)
    and everything else on the machine, over the measured window."""
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
        s0, c0, d0, m0 = cpu_seconds(pids), time.process_time(), postgres_cpu(database), machine_busy_seconds()
        time.sleep(max(0.0, phase.end - time.monotonic()))
        s1, c1, d1, m1 = cpu_seconds(pids), time.process_time(), postgres_cpu(database), machine_busy_seconds()
        phase.server_cpu_s, phase.client_cpu_s = s1 - s0, c1 - c0
        phase.db_cpu_s = postgres_cpu_seconds(d0, d1)
        phase.other_cpu_s = max(0.0, (m1 - m0) - phase.server_cpu_s - phase.client_cpu_s - phase.db_cpu_s)
        for t in threads:
            t.join(90)
    finally:
        stop.set()
    return phase


def stats(samples: list[float], seconds: float) -> dict:
    """p50/p95/p99 (ms, rounded), count and rate of one label's samples over ``seconds``."""
    if not samples:
        return {"p50": None, "p95": None, "p99": None, "n": 0, "rps": 0.0}
    return {"p50": round(pct(samples, 50), 1), "p95": round(pct(samples, 95), 1), "p99": round(pct(samples, 99), 1),
            "n": len(samples), "rps": round(len(samples) / seconds, 1)}



# -- the process ---------------------------------------------------------------------------
def _interrupt(signum, frame):
    raise KeyboardInterrupt


def ignore_interrupts() -> None:
    """Cleanup must finish even on a second Ctrl-C or SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@contextmanager
def bench_django(part: str):
    """Django set up on a fresh, migrated database of this part's own; yields the var directory.

    No worker runs in a load part: anything enqueued stays in our own directory, never on a
    shared broker. A killed part (SIGTERM) still stops its server and drops its database.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    sys.path.insert(0, str(REPO))
    var = Path(os.environ.setdefault("JITAD_VAR_DIR", str(REPO / "var" / "bench")))
    var.mkdir(parents=True, exist_ok=True)
    url, drop = database_prepare(var, part)
    os.environ["JITAD_DATABASE_URL"] = url
    os.environ["CELERY_BROKER_URL"] = "jitadfs://"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jitad.settings")
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", "--noinput", verbosity=0)
        yield var
    finally:
        ignore_interrupts()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not have been set up
            pass
        drop()


def server_env() -> dict:
    """The environment gunicorn runs in: ours (the part's database), with the repository importable."""
    return dict(os.environ, PYTHONPATH=str(REPO))
