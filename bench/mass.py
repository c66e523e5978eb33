"""The mass expiry: N grants over 100 groups ending in the same instant, beside the floor.

The floor and jitad's wave run one after the other on the same DC in the same run: the
floor is a bare ldap3 connection (no jitad code) removing the same memberships with one
MODIFY_DELETE per group carrying all its values. The grant rows are inserted in a shuffled
(interleaved) order with a fixed seed, and the people have e-mail, as real ones do, so a
figure cannot be luck of insertion order or of notices skipped.

Used by bench/run.py. Nothing here touches Django at import time.
"""
import os
import random
import time
from datetime import timedelta

from harness import machine_busy_seconds  # bench/harness.py, beside this file

GROUPS = 100  # sizes scale the users: grants = users x 100 groups
SEED = 18
SIZES_ENV = "JITAD_BENCH_MASS_SIZES"
MAIL_DOMAIN = "jitad.test"
GROUP_PREFIX = "JIT-MASS-"


def mass_sizes(raw: str | None = None) -> list[int]:
    """The wave sizes (grants) to run, from JITAD_BENCH_MASS_SIZES ("10000,30000"); default 10,000."""
    raw = os.environ.get(SIZES_ENV, "10000") if raw is None else raw
    sizes = []
    for part in raw.replace("_", "").split(","):
        if not part.strip():
            continue
        n = int(part)
        if n <= 0 or n % GROUPS:
            raise ValueError(f"{SIZES_ENV}: {n} is not a positive multiple of {GROUPS} (users x {GROUPS} groups)")
        if n not in sizes:
            sizes.append(n)
    if not sizes:
        raise ValueError(f"{SIZES_ENV} names no size")
    return sizes


def size_label(n: int) -> str:
    """The key part for a size: 10000 -> "10k", 2500 -> "2.5k"."""
    return f"{n / 1000:g}k"


def interleaved(n_users: int, n_groups: int, seed: int = SEED) -> list[tuple[int, int]]:
    """Every (user, group) pair once, shuffled with a fixed seed: the order the rows are inserted in."""
    pairs = [(u, g) for u in range(n_users) for g in range(n_groups)]
    random.Random(seed).shuffle(pairs)
    return pairs


def group_batches(rows) -> int:
    """How many removals jitad sent, from the wave's grant rows: (group_dn, revoked_at, membership_removed).

    Grants revoked by one per-group removal share their ``revoked_at`` (one timestamp per
    batch), so each distinct (group, revoked_at) among the removed ones is one MODIFY_DELETE
    (more only where the DC refused a batch and it went member by member).
    """
    return len({(group.lower(), at) for group, at, removed in rows if removed})


def nonempty_groups(conn, base_dn: str, prefix: str) -> set[str]:
    """The groups named ``prefix*`` under ``base_dn`` that still have a member (one search)."""
    from ldap3 import SUBTREE
    from ldap3.utils.conv import escape_filter_chars

    conn.search(base_dn, f"(&(objectClass=group)(cn={escape_filter_chars(prefix)}*)(member=*))", SUBTREE,
                attributes=["cn"])
    return {e["dn"].lower() for e in conn.response if e.get("type") == "searchResEntry"}


def _modify(conn, dn: str, change) -> None:
    if not conn.modify(dn, {"member": [change]}):
        raise RuntimeError(f"modify {dn}: {conn.result}")


def members_add(conn, members: dict[str, list[str]]) -> None:
    """Put the members in, one MODIFY_ADD per group (untimed set-up)."""
    from ldap3 import MODIFY_ADD

    for group_dn, dns in members.items():
        _modify(conn, group_dn, (MODIFY_ADD, dns))


def floor_remove(conn, members: dict[str, list[str]]) -> float:
    """The floor: one MODIFY_DELETE per group carrying all its values; seconds from the first
    request sent to the last answer read."""
    from ldap3 import MODIFY_DELETE

    t0 = time.perf_counter()
    for group_dn, dns in members.items():
        _modify(conn, group_dn, (MODIFY_DELETE, dns))
    return time.perf_counter() - t0


def people_ensure(d, ou: str, n: int) -> list[str]:
    """AD users mu0..mu<n-1> with e-mail (as the demo seed makes people), and their Django
    users with the same address; returns their DNs. Existing ones are kept."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    dns = [d.ensure_user(f"mu{i}", ou, display_name=f"Mass User {i}", mail=f"mu{i}@{MAIL_DOMAIN}",
                         upn_suffix=MAIL_DOMAIN) for i in range(n)]
    have = set(User.objects.filter(username__startswith="mu").values_list("username", flat=True))
    User.objects.bulk_create([User(username=f"mu{i}", email=f"mu{i}@{MAIL_DOMAIN}", first_name="Mass",
                                   last_name=f"User {i}") for i in range(n) if f"mu{i}" not in have])
    return dns


def groups_ensure(d, ou: str) -> list[str]:
    """The 100 JIT groups of the waves; returns their DNs."""
    return [d.ensure_group(f"{GROUP_PREFIX}{j:03d}", ou) for j in range(GROUPS)]


QUIET_CPUS = 0.25  # the machine is quiet when all its processes together use less than this many CPUs


def machine_quiet(*, most: float = 90.0) -> float:
    """Wait (at most ``most`` seconds) until the whole machine used under QUIET_CPUS for a second; returns
    the seconds waited. Floor and wave then start from the same calm."""
    started = time.time()
    while time.time() - started < most:
        before = machine_busy_seconds()
        time.sleep(1.0)
        if machine_busy_seconds() - before < QUIET_CPUS:
            break
    return time.time() - started


def wave(n: int, *, ou: str, user_dns: list[str], targets: list, policy, probe, floor_conn,
         timeout: float, variant: str = "", cpu=None) -> dict:
    """The floor, then one wave of ``n`` grants over the 100 targets expiring together.

    The grant rows go in first (ending in an hour), so the memberships the floor adds and
    removes are backed and the reconciler leaves them alone; then the floor's bare client
    adds and removes them (the removal timed), the members go back in, and every grant's
    end is set to the same instant. ``probe`` polls the DC (one search per 50 ms for the
    groups still holding a member). ``variant`` names a variant of the wave in its keys
    (``mass_expiry_10k_no_mail_s``); ``cpu()``, if given, returns the CPU seconds used so far
    by each part ({"dc": ..., "workers": ..., "db": ...}), read at the expiry and when the
    last member is gone. Returns this size's flat keys, and whether jitad finished the wave
    (a wave left running would disturb the next one).
    """
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from jitad.elevation.models import AccessRequest, Grant

    User = get_user_model()
    n_users = n // GROUPS
    dns = user_dns[:n_users]
    people = {u.username: u for u in User.objects.filter(username__in=[f"mu{i}" for i in range(n_users)])}
    members = {t.group_dn: list(dns) for t in targets}

    # Requests and grants in one shuffled order: ids do not follow groups.
    pairs = interleaved(n_users, len(targets))
    now = timezone.now()
    started = now - timedelta(minutes=59)
    reqs = AccessRequest.objects.bulk_create(
        [AccessRequest(requester=people[f"mu{u}"], target=targets[g], policy=policy, duration_minutes=60,
                       state=AccessRequest.State.APPROVED, created_at=started, decided_at=started) for u, g in pairs],
        batch_size=2000)
    grants = Grant.objects.bulk_create(
        [Grant(request=r, user=r.requester, target=r.target, group_dn=r.target.group_dn, user_dn=dns[u],
               state=Grant.State.ACTIVE, created_at=started, activated_at=started, expiry_warned_at=started,
               expires_at=now + timedelta(hours=1)) for r, (u, _) in zip(reqs, pairs)],
        batch_size=2000)
    assert all(g.id for g in grants), "the database did not return the new grants' ids"
    # The rows came in an instant, not over the hour a real database would have seen them arrive in
    # (and analysed them meanwhile): refresh the planner's statistics, as autovacuum would have.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    wave_grants = Grant.objects.filter(target__in=targets, created_at=started)

    # The floor: the same memberships in (untimed), then removed by the bare client (timed).
    members_add(floor_conn, members)
    # The additions wake jitad's group watch, which reads every changed group back (about a
    # second), and an earlier wave may leave work behind (autovacuum after 100,000 updates): timing
    # the floor meanwhile would time the DC busy with them too (a 10k floor of 49 s once).
    time.sleep(5)
    quiet_s = machine_quiet()
    floor_s = floor_remove(floor_conn, members)
    floor_left = sum(len(_members(probe, g)) for g in members)

    # jitad's wave: the members back in, every grant ending at the same instant, on a machine as quiet.
    members_add(probe, members)
    time.sleep(5)
    quiet_s += machine_quiet()
    expires = timezone.now() + timedelta(seconds=3)
    wave_grants.update(expires_at=expires)
    while time.time() < expires.timestamp():
        time.sleep(0.005)
    cpu_before, busy_before = (cpu() if cpu else {}), machine_busy_seconds()
    deadline = time.time() + timeout
    remaining = nonempty_groups(probe, ou, GROUP_PREFIX)
    while remaining and time.time() < deadline:
        time.sleep(0.05)
        remaining = nonempty_groups(probe, ou, GROUP_PREFIX)
    done_at = time.time()
    jitad_s = done_at - expires.timestamp() if not remaining else None
    cpu_used = {part: round(t - cpu_before[part], 2) for part, t in (cpu() if cpu else {}).items()}
    busy = round(machine_busy_seconds() - busy_before, 2)

    # The rows are marked revoked just after their members are gone: give the last ones a moment.
    settle = time.time() + 15
    while (left := wave_grants.exclude(state=Grant.State.REVOKED).count()) and jitad_s is not None \
            and time.time() < settle:
        time.sleep(0.2)
    rows = list(wave_grants.values_list("group_dn", "revoked_at", "membership_removed"))
    revoked = [at for _, at, _ in rows if at is not None]
    members_left = sum(len(_members(probe, g)) for g in members)

    k = size_label(n) + variant
    return {
        **{f"mass_expiry_{k}_cpu_{part}_s": t for part, t in cpu_used.items()},
        f"mass_expiry_{k}_cpu_machine_s": busy,
        f"mass_expiry_{k}_s": round(jitad_s, 2) if jitad_s is not None else None,
        f"mass_expiry_{k}_floor_s": round(floor_s, 2),
        f"mass_expiry_{k}_ratio": round(jitad_s / floor_s, 2) if jitad_s is not None else None,
        f"mass_expiry_{k}_s_per_1k": round(jitad_s / n * 1000, 3) if jitad_s is not None else None,
        f"mass_expiry_{k}_floor_s_per_1k": round(floor_s / n * 1000, 3),
        f"mass_expiry_{k}_recorded_s": round(max(revoked).timestamp() - expires.timestamp(), 2) if revoked else None,
        f"mass_expiry_{k}_timeout_s": round(timeout),
        f"mass_expiry_{k}_ldap_modifies": group_batches(rows),
        f"mass_expiry_{k}_floor_ldap_modifies": len(members),
        f"mass_expiry_{k}_grants_not_revoked": left,
        f"mass_expiry_{k}_quiet_wait_s": round(quiet_s, 1),
        f"mass_expiry_{k}_members_left": members_left,
        f"mass_expiry_{k}_floor_members_left": floor_left,
    }, jitad_s is not None and not left


def _members(conn, group_dn: str) -> list[str]:
    from ldap3 import BASE

    conn.search(group_dn, "(objectClass=group)", BASE, attributes=["member"])
    return list(conn.response[0]["attributes"].get("member") or [])
