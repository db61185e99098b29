"""One percentile rule, HdrHistogram's, for histograms, sparse slots and plain values."""

from __future__ import annotations

import doctest
import random

from hdrh.histogram import HdrHistogram

import stats
from stats import at_percentiles, percentile_of, rank
from stats.histogram import (
    HIGHEST_TRACKABLE_US,
    counts_index,
    half_count_magnitude,
    highest_equivalent,
    histogram_of,
    sparse_percentiles,
)


def test_the_rank_rounds_half_up_and_is_at_least_one() -> None:
    assert rank(50, 3) == 2  # 1.5 rounds up
    assert rank(95, 10) == 10  # 9.5 rounds up
    assert rank(99, 100) == 99
    assert rank(0, 100) == 1
    assert rank(100, 7) == 7
    assert rank(250, 7) == 7  # above 100 reads as 100


def test_it_takes_the_first_value_whose_running_count_reaches_the_rank() -> None:
    counted = [(1, 2), (5, 0), (7, 3), (9, 5)]
    assert at_percentiles(counted, [0, 20, 30, 50, 56, 100]) == {
        0: 1, 20: 1, 30: 7, 50: 7, 56: 9, 100: 9,
    }  # fmt: skip
    assert at_percentiles([], [50]) == {50: None}


def test_plain_values_follow_the_same_rule() -> None:
    assert percentile_of([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert percentile_of([4.0, 1.0, 3.0, 2.0], 99) == 4.0
    assert percentile_of([], 50) is None


def test_a_histogram_and_plain_values_agree_where_every_value_has_its_own_slot() -> None:
    rng = random.Random(7)
    values = [rng.randrange(0, 2048) for _ in range(1_001)]  # 1 µs slots below 2048 µs
    histogram = histogram_of(values)
    for percentile in (0.0, 1.0, 50.0, 95.0, 99.0, 99.9, 100.0):
        assert histogram.value_at_percentile(percentile) == percentile_of(values, percentile)


def test_sparse_slots_give_the_histograms_percentiles() -> None:
    rng = random.Random(8)
    values = [int(rng.lognormvariate(8, 1.5)) for _ in range(5_000)]
    slots: dict[int, int] = {}
    for value in values:
        index = counts_index(min(value, HIGHEST_TRACKABLE_US))
        slots[index] = slots.get(index, 0) + 1
    wanted = [0.0, 50.0, 95.0, 99.0, 100.0]
    assert sparse_percentiles(slots, wanted) == histogram_of(values).percentiles(wanted)
    assert sparse_percentiles({}, [95.0]) == {95.0: None}


def test_a_coarser_layout_is_hdrhistograms_for_fewer_digits() -> None:
    magnitude = half_count_magnitude(1)
    hdr = HdrHistogram(1, HIGHEST_TRACKABLE_US, 1)
    assert magnitude == hdr.sub_bucket_half_count_magnitude
    assert half_count_magnitude(3) == HdrHistogram(1, 10, 3).sub_bucket_half_count_magnitude
    for value in (0, 1, 15, 31, 32, 100, 5_000, 123_456, 3_600_000_000):
        index = counts_index(value, magnitude)
        assert index == hdr._counts_index_for(value)
        assert highest_equivalent(index, magnitude) == hdr.get_highest_equivalent_value(value)


def test_the_packages_examples_hold() -> None:
    assert doctest.testmod(stats).failed == 0
