#!/usr/bin/env python
"""Out-of-band member → removed: someone puts a member in a JIT group by hand; how long until it is gone.

About 30 members go in one at a time, each at a random instant (so the figure is not luck
of where the group watch's ticks fall), put in by a bare ldap3 client of their own, and an
independent ldap3 connection polls the DC until each is gone. Beside it, the floor: one bare
search + modify round trip (read the group, remove the member) on the same DC, the least
work any remover must do. The worker runs with its usual settings: the group watch every
JITAD_GROUP_WATCH_INTERVAL, the periodic reconcile every JITAD_RECONCILE_INTERVAL.

:func:`measure` is the part bench/run.py calls; ``python bench/out_of_band.py`` runs it alone
(a DC, a database and a worker of its own; inside the network namespace wrapper for tests).
"""
import os
import platform
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = int(os.environ.get("BENCH_OOB_N", "30"))
SEED = 30
TIMEOUT_S = 30.0
POLL_S = 0.01


def measure(*, dc, probe, tls, ou: str, n: int = SAMPLES) -> dict:
    """Put ``n`` members in a managed JIT group by hand and time each until the DC no longer lists it.

    ``dc`` is the bench's SambaDC, ``probe`` its independent ldap3 polling connection, ``ou`` an OU
    under the JIT OU. Django must be set up and a worker with its beat running. Writes its own
    section of docs/benchmarks.md; returns the figures for bench/results.json.
    """
    from django.conf import settings
    from django.db import connection
    from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, Connection, Server
    from ldap3.utils.conv import escape_filter_chars

    from harness import pct
    from jitad import directory
    from jitad.elevation.models import DirectoryCookie, Target

    with directory.connect() as d:
        group_dn = d.ensure_group(f"JIT-OOB-{uuid.uuid4().hex[:6]}-Admins", ou)
        floor_group = d.ensure_group(f"OOB-FLOOR-{uuid.uuid4().hex[:6]}", ou)  # no target names it: not watched
        people = [d.ensure_user(f"oob{uuid.uuid4().hex[:8]}", ou) for _ in range(n)]
    Target.objects.create(name=f"OOB{uuid.uuid4().hex[:6].upper()}", group_dn=group_dn)
    adder = Connection(Server(dc.ldaps_url, tls=tls), dc.admin_dn, dc.admin_password, auto_bind=True)

    def present(dn: str) -> bool:
        probe.search(group_dn, f"(member={escape_filter_chars(dn)})", BASE, attributes=["cn"])
        return bool(probe.entries)

    # The floor: what removing one member costs at the least, on the same DC: read the group, remove it.
    floor_ms = []
    for dn in people:
        adder.modify(floor_group, {"member": [(MODIFY_ADD, [dn])]})
        t0 = time.perf_counter()
        adder.search(floor_group, "(objectClass=group)", BASE, attributes=["member"])
        adder.modify(floor_group, {"member": [(MODIFY_DELETE, [dn])]})
        floor_ms.append((time.perf_counter() - t0) * 1000)

    # The watch has read the DC once since the target appeared (a start over checks the new group too).
    deadline = time.monotonic() + 60
    while not DirectoryCookie.objects.filter(current=True).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the group watch never read the DC: is JITAD_GROUP_WATCH_INTERVAL 0?")
        time.sleep(0.1)
    time.sleep(2 * max(settings.JITAD_GROUP_WATCH_INTERVAL, 0.5))

    rng = random.Random(SEED)
    removed_ms, missed = [], 0
    for dn in people:
        time.sleep(rng.uniform(0.1, 1.5))
        adder.modify(group_dn, {"member": [(MODIFY_ADD, [dn])]})
        added = time.perf_counter()  # the DC has acknowledged the add: from here the member holds the right
        while present(dn):
            if time.perf_counter() - added > TIMEOUT_S:
                missed += 1
                adder.modify(group_dn, {"member": [(MODIFY_DELETE, [dn])]})
                break
            time.sleep(POLL_S)
        else:
            removed_ms.append((time.perf_counter() - added) * 1000)
    adder.unbind()

    figures = {
        "out_of_band_removed_ms_p50": round(pct(removed_ms, 50), 1) if removed_ms else None,
        "out_of_band_removed_ms_p99": round(pct(removed_ms, 99), 1) if removed_ms else None,
        "out_of_band_missed": missed,
        "out_of_band_samples": n,
        "out_of_band_floor_ms_p50": round(pct(floor_ms, 50), 1),
        "out_of_band_floor_ms_p99": round(pct(floor_ms, 99), 1),
        "group_watch_interval_s": settings.JITAD_GROUP_WATCH_INTERVAL,
        "reconcile_interval_s": settings.JITAD_RECONCILE_INTERVAL,
        "out_of_band_setup": f"{connection.vendor}, broker {settings.CELERY_BROKER_URL.split('://')[0]}",
    }
    doc_write(figures)
    return figures


def doc_write(f: dict) -> None:
    """This part's section of docs/benchmarks.md."""
    from harness import cpu_model, doc_section_write

    samba = subprocess.run(["samba", "--version"], capture_output=True, text=True).stdout.strip()
    p50, p99 = f["out_of_band_removed_ms_p50"], f["out_of_band_removed_ms_p99"]
    doc_section_write("out-of-band", f"""## Out-of-band member → removed (bench/out_of_band.py)

Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} × {cpu_model()},
Python {platform.python_version()}, Samba {samba.removeprefix("Version ")}, database and broker
{f['out_of_band_setup']}; group watch every {f['group_watch_interval_s']} s, periodic reconcile every
{f['reconcile_interval_s']} s; the DC, the worker and the poller share the CPUs.

| measure | result | floor | target |
|---|---|---|---|
| member added by hand → gone from the DC, p50 | {p50} ms | {f['out_of_band_floor_ms_p50']} ms | |
| member added by hand → gone from the DC, p99 | {p99} ms | {f['out_of_band_floor_ms_p99']} ms | ≤ 2,000 ms |
| members not removed within {TIMEOUT_S:.0f} s | {f['out_of_band_missed']} of {f['out_of_band_samples']} | | 0 |

How: {f['out_of_band_samples']} AD users go into one managed JIT group one at a time, each after a
random pause of 0.1–1.5 s (fixed seed), put in by a bare ldap3 client (no jitad code); the time
runs from the DC's answer to that add until a separate ldap3 connection, polling every
{POLL_S * 1000:.0f} ms, no longer finds the member. It includes the wait for the next tick of the
group watch (the DC's DirSync change feed read by the elected scheduler's task), the task's trip
through the broker, the reconciler's check of that group and its removal (audit and alert
included). The floor is one bare search of the group and one `MODIFY_DELETE` of the member on
the same DC, in the same run: what any remover must spend once it knows. Most of the gap is
the wait for the watch's next tick (half an interval on average, a whole one at worst): a
shorter JITAD_GROUP_WATCH_INTERVAL buys a lower figure for one more DirSync read per tick.
""")


def main() -> int:
    """Run this part alone: a DC, a SQLite database and a worker of its own."""
    import ssl
    import tempfile

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    var = Path(os.environ.setdefault("JITAD_VAR_DIR", str(REPO / "var" / "bench-oob")))
    var.mkdir(parents=True, exist_ok=True)
    db = var / "oob.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    os.environ["JITAD_DATABASE_URL"] = f"sqlite:///{db}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jitad.settings")
    from tests.support.samba import SambaDC
    from tests.support.worker import CeleryWorker

    dc = SambaDC(Path(tempfile.mkdtemp(prefix="jitad-bench-oob-")))
    dc.provision()
    dc.start()
    os.environ.update(dc.settings_env())
    worker = None
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from ldap3 import Connection, Server, Tls

        from harness import results_merge
        from jitad import directory
        from jitad.celery import app

        call_command("migrate", "--noinput", verbosity=0)
        try:
            app.control.purge()
        except Exception:  # noqa: BLE001 - a fresh broker folder is fine
            pass
        worker = CeleryWorker(dict(os.environ, PYTHONPATH=str(REPO)), var / "logs")
        worker.start()
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=dc.ca_file, valid_names=[dc.tls_name])
        probe = Connection(Server(dc.ldaps_url, tls=tls), dc.admin_dn, dc.admin_password, auto_bind=True)
        ou = f"OU=bench-{uuid.uuid4().hex[:6]},{dc.jit_ou}"
        with directory.connect() as d:
            d.ensure_ou(dc.jit_ou)
            d.ensure_ou(ou)
        figures = measure(dc=dc, probe=probe, tls=tls, ou=ou)
        results_merge(figures)
        print(figures, flush=True)
        return 0
    finally:
        if worker:
            worker.stop()
        dc.stop()
        dc.release()


if __name__ == "__main__":
    sys.exit(main())
