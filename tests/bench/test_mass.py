"""The mass-expiry bench's pure helpers: the interleaved layout, the sizes, the batch count."""
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import mass  # noqa: E402  (bench/mass.py)


def test_interleaved_holds_every_pair_once_in_a_fixed_shuffled_order():
    """GIVEN 100 people and 100 groups WHEN laid out THEN each (person, group) pair comes once,
    not group by group, and the same seed gives the same order."""
    pairs = mass.interleaved(100, 100)
    assert len(pairs) == 10_000
    assert set(pairs) == {(u, g) for u in range(100) for g in range(100)}
    first_hundred_groups = {g for _, g in pairs[:100]}
    assert len(first_hundred_groups) > 10  # interleaved: the first rows span many groups
    assert pairs != sorted(pairs) and pairs != sorted(pairs, key=lambda p: (p[1], p[0]))
    assert pairs == mass.interleaved(100, 100)
    assert pairs != mass.interleaved(100, 100, seed=mass.SEED + 1)


def test_sizes_default_to_ten_thousand_and_read_the_variable(monkeypatch):
    monkeypatch.delenv(mass.SIZES_ENV, raising=False)
    assert mass.mass_sizes() == [10_000]
    monkeypatch.setenv(mass.SIZES_ENV, "10000, 30_000,10000,")
    assert mass.mass_sizes() == [10_000, 30_000]
    assert [mass.size_label(n) for n in (10_000, 30_000, 2_500)] == ["10k", "30k", "2.5k"]


@pytest.mark.parametrize("raw", ["", "0", "10050", "-100", ","])
def test_sizes_refuse_what_is_not_people_times_100_groups(raw):
    with pytest.raises(ValueError):
        mass.mass_sizes(raw)


def test_group_batches_counts_one_removal_per_group_and_timestamp():
    t1, t2 = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 1, 0, 0, 1, tzinfo=timezone.utc)
    rows = [("CN=A,OU=J", t1, True), ("cn=a,ou=j", t1, True), ("CN=A,OU=J", t2, True),
            ("CN=B,OU=J", t1, True), ("CN=B,OU=J", t2, False), ("CN=C,OU=J", None, False)]
    assert mass.group_batches(rows) == 3
