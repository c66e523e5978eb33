"""The shortcuts that keep report_build fast give the answers of the plain computation they replace."""
import gc
import random

import pytest

from datetime import datetime, timedelta, timezone

from django.db import connection
from django.db.models import Q

from jitad.elevation.models import Grant, HostScan
from jitad.reports.selectors.kpis import approval, report_build
from jitad.reports.selectors.kpis.common import DURATION_EDGES, Epoch, gc_paused, histogram, percentile
from jitad.reports.selectors.kpis.intervals import first_scans, scanned_targets

from .rows import at, grant, person, scan, target


def test_approval_stats_and_histogram_match_rounding_every_value_first():
    """GIVEN raw seconds, many of them on or a hair either side of a bucket edge once rounded to a tenth
    WHEN the approval section's stats and histogram take them raw (rounding only what they pick)
    THEN they equal nearest-rank percentiles and bucket counts of the values rounded one by one."""
    rng = random.Random(15)
    edges = [e for e, _label in DURATION_EDGES[:-1]]
    values = [rng.uniform(0, 6 * 3600) for _ in range(3000)]
    values += [e + d for e in edges for d in (-0.05, -0.0500001, -0.0499999, -0.04, 0.0, 0.04, 0.05, 0.05000001)]
    values += [0.0, 0.05, 0.15, 0.25, 14399.95]
    rng.shuffle(values)
    rounded = sorted(round(v, 1) for v in values)
    assert approval._stats(values) == (percentile(rounded, 50), percentile(rounded, 95), rounded[-1])
    assert approval._histogram(values, DURATION_EDGES) == histogram(rounded, DURATION_EDGES)
    assert approval._stats([]) == (None, None, None)
    assert approval._histogram([], DURATION_EDGES) == histogram([], DURATION_EDGES)


def test_gc_paused_restores_the_collector_as_it_found_it():
    """GIVEN the collector on, or already off WHEN a computation runs under gc_paused, even one that fails
    THEN it is off meanwhile and afterwards exactly as before (never left off by the report)."""
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("a section failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.django_db
def test_report_build_leaves_the_collector_on():
    report_build(start=at(0), end=at(30))
    assert gc.isenabled()


@pytest.mark.django_db
def test_scanned_targets_are_the_targets_first_scans_dates():
    """GIVEN servers scanned successfully, one only by a failed scan, one only after the moment asked, one never
    WHEN utilisation asks which servers were scanned (an index probe per target)
    THEN it names exactly the targets first_scans dates, also when a filter narrows the targets."""
    ok_early, ok_twice, failed, late, never = (target(f"srv-{n}", tier=1 if n < 3 else 2) for n in range(5))
    scan(ok_early, when=at(1))
    scan(ok_twice, when=at(2))
    scan(ok_twice, when=at(5))
    HostScan.objects.create(target=failed, started_at=at(1), finished_at=at(1), ok=False, standing=0)
    scan(late, when=at(20))
    assert scanned_targets(at(10)) == set(first_scans(at(10))) == {ok_early.id, ok_twice.id}
    assert scanned_targets(at(30)) == set(first_scans(at(30))) == {ok_early.id, ok_twice.id, late.id}
    assert scanned_targets(at(10), q=Q(tier=2)) == set(first_scans(at(10), q=Q(target__tier=2))) == set()
    assert scanned_targets(at(30), q=Q(tier=2)) == set(first_scans(at(30), q=Q(target__tier=2))) == {late.id}
    assert never.id not in scanned_targets(at(30))


@pytest.mark.django_db
def test_epoch_on_postgresql_is_the_exact_seconds_correctly_rounded():
    """GIVEN activation times with odd microseconds, before and after 1970 and far ahead
    WHEN PostgreSQL computes their epoch (date_part, a double straight away, not EXTRACT's numeric)
    THEN each is the float Python's own datetime.timestamp() gives: the same figure either way."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite computes the epoch from the julian day (its own path, unchanged)")
    user, tgt = person(), target()
    moments = [datetime(2026, 12, 6, 3, 4, 5, 123457, tzinfo=timezone.utc),
               datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
               datetime(2038, 1, 19, 3, 14, 7, 654321, tzinfo=timezone.utc),
               datetime(2024, 2, 29, 23, 59, 59, 1, tzinfo=timezone.utc)]
    for m in moments:
        grant(user, tgt, activated=m, expires=m + timedelta(hours=1))
    got = sorted(Grant.objects.values_list(Epoch("activated_at"), flat=True))
    assert got == sorted(m.timestamp() for m in moments)
