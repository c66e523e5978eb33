"""The shortcuts that keep report_build fast give the answers of the plain computation they replace."""
import gc
import random

import pytest

from jitad.reports.selectors.kpis import approval, report_build
from jitad.reports.selectors.kpis.common import DURATION_EDGES, gc_paused, histogram, percentile

from .rows import at


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
