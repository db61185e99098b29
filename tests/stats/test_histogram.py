from __future__ import annotations

import random

import pytest
from hdrh.histogram import HdrHistogram

from stats.histogram import (
    HIGHEST_TRACKABLE_US,
    Histogram,
    histogram_of,
    merge_all,
    read_interval_log,
    spectrum_levels,
    write_interval_log,
)


def latencies(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [int(rng.lognormvariate(8, 1.5)) for _ in range(n)] + [0, 1, 2047, 2048, 123_456_789]


def hdrh_of(values: list[int]) -> HdrHistogram:
    hdr = HdrHistogram(1, HIGHEST_TRACKABLE_US, 3)
    for value in values:
        hdr.record_value(value)
    return hdr


def test_it_fills_the_same_buckets_as_hdrh() -> None:
    values = latencies(20_000, 1)
    assert histogram_of(values).counts == list(hdrh_of(values).counts)


def test_it_computes_percentiles_and_moments_as_hdrh_does() -> None:
    values = latencies(20_000, 2)
    ours, theirs = histogram_of(values), hdrh_of(values)
    wanted = [0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0]
    assert ours.percentiles(wanted) == theirs.get_percentile_to_value_dict(wanted)
    for percentile in wanted:
        assert ours.value_at_percentile(percentile) == theirs.get_value_at_percentile(percentile)
    assert ours.min == theirs.get_min_value()
    assert ours.max == theirs.get_max_value()
    assert ours.total_count == theirs.get_total_count() == len(values)
    assert ours.mean == pytest.approx(theirs.get_mean_value(), rel=1e-12)
    assert ours.stddev == pytest.approx(theirs.get_stddev(), rel=1e-9)


def test_encoding_round_trips_through_hdrh() -> None:
    values = latencies(5_000, 3)
    ours = histogram_of(values)
    decoded_by_hdrh = HdrHistogram.decode(ours.encode())
    assert list(decoded_by_hdrh.counts) == ours.counts
    assert decoded_by_hdrh.get_total_count() == len(values)
    assert Histogram.decode(hdrh_of(values).encode()) == ours
    assert Histogram.decode(ours.encode()) == ours


def test_an_empty_histogram_encodes_and_reports_zeros() -> None:
    empty = Histogram()
    assert Histogram.decode(empty.encode()) == empty
    assert (empty.total_count, empty.min, empty.max, empty.mean) == (0, 0, 0, 0.0)
    assert empty.value_at_percentile(99) == 0
    assert empty.percentile_spectrum() == []
    assert empty.log_buckets() == []


def test_it_decodes_histograms_with_another_layout() -> None:
    other = HdrHistogram(1, 60_000_000, 2)
    for value in (100, 5_000, 5_000, 2_000_000):
        other.record_value(value)
    decoded = Histogram.decode(other.encode())
    assert decoded.total_count == 4
    assert decoded.value_at_percentile(50) == pytest.approx(5_000, rel=0.01)


def test_merging_shards_equals_one_histogram_of_all_values() -> None:
    values = latencies(9_000, 4)
    shards = [histogram_of(values[i::3]) for i in range(3)]
    merged = merge_all(Histogram.decode(shard.encode()) for shard in shards)
    assert merged == histogram_of(values)
    assert merged.percentiles([50, 99]) == histogram_of(values).percentiles([50, 99])


def test_out_of_range_values_are_clamped_and_counted() -> None:
    histogram = Histogram()
    histogram.record(HIGHEST_TRACKABLE_US * 10)
    histogram.record(-5)
    histogram.record(1_000)
    assert histogram.clamped == 2
    assert histogram.total_count == 3
    assert histogram.value_at_percentile(100) >= HIGHEST_TRACKABLE_US
    assert histogram.min == 0
    merged = Histogram().merge(histogram)
    assert merged.clamped == 2


def test_it_records_floats_as_whole_microseconds() -> None:
    histogram = Histogram()
    histogram.record(1500.7)
    assert histogram.total_count == 1
    assert histogram.max == 1500


def test_the_percentile_spectrum_runs_from_0_to_the_maximum() -> None:
    histogram = histogram_of(latencies(10_000, 5))
    points = histogram.percentile_spectrum()
    levels = [p for p, _ in points]
    assert levels[0] == 0.0 and levels[-2] == 99.999 and levels[-1] == 100.0
    assert levels == sorted(levels)
    assert [v for _, v in points] == sorted(v for _, v in points)
    assert points[-1][1] == histogram.max
    assert spectrum_levels(5)[:6] == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]


def test_log_buckets_are_contiguous_and_hold_every_count() -> None:
    histogram = histogram_of([1, 2, 3, 50, 900, 1_000, 1_100, 45_000])
    buckets = histogram.log_buckets(per_decade=10)
    assert sum(count for _, _, count in buckets) == 8
    for (_, upper, _), (lower, _, _) in zip(buckets, buckets[1:], strict=False):
        assert upper == lower
    assert all(lower < upper for lower, upper, _ in buckets)
    assert buckets[0][0] <= 1 and buckets[-1][1] > 45_000


def test_an_interval_log_has_the_hdrhistogram_layout() -> None:
    first, second = histogram_of([1_000, 2_000]), histogram_of([3_000_000])
    text = write_interval_log(
        [(0.0, 1.0, first.encode()), (1.0, 1.0, second.encode())], start_time_s=1_700_000_000.0
    )
    lines = text.splitlines()
    assert any(line.startswith("#[StartTime: 1700000000.000 ") for line in lines)
    legend = '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"'
    assert legend in lines
    assert lines[-1].startswith("1.000,1.000,3000.")
    rows = read_interval_log(text)
    assert [(start, length) for start, length, _ in rows] == [(0.0, 1.0), (1.0, 1.0)]
    assert rows[0][2] == first and rows[1][2] == second


# Encoded before the histogram moved into `stats`: runs stored then must decode, and the same
# values must encode to the same bytes.
STORED_VALUES = [1, 250, 250, 1_000, 2_047, 2_048, 12_345, 987_654, 3_600_000_000]
STORED = "HISTFAAAADZ4nJNpmSzMwMAgxgABzFCaEURcm7yEwf4DVIDpPTPLTW6m1QJMTN0aTI1pTJf3MDIBAPiJCms="


def test_histograms_stored_by_earlier_versions_decode_and_encode_the_same() -> None:
    assert Histogram.decode(STORED) == histogram_of(STORED_VALUES)
    assert histogram_of(STORED_VALUES).encode() == STORED
    assert Histogram.decode(STORED).percentiles((50, 95)) == {50: 2047, 95: 3_600_809_983}
