"""HistogramSum adds encoded histograms exactly as decoding and merging each one does."""

from __future__ import annotations

import random

from hdrh.histogram import HdrHistogram

from loadtests.engine.histograms import Histogram, histogram_of, merge_all
from queryopt.histsum import HistogramSum


def test_it_sums_exactly_what_decoding_and_merging_gives() -> None:
    encoded = [
        histogram_of([1_000] * 95 + [200_000] * 5).encode(),
        histogram_of([1, 7, 3_600_000_000]).encode(),
        "",
        histogram_of(list(range(1, 50_000, 7))).encode(),
    ]
    summed = HistogramSum().add_all(encoded)
    expected = merge_all(Histogram.decode(text) for text in encoded if text)
    assert summed.added == 3
    assert summed.histogram() == expected
    assert Histogram.decode(summed.encoded()) == expected


def test_it_takes_another_layout_by_the_general_path() -> None:
    foreign = HdrHistogram(1, 60_000_000, 2)
    for value in (150, 2_500, 2_500, 90_000):
        foreign.record_value(value)
    ours = histogram_of([150, 2_500])
    summed = HistogramSum().add_all([ours.encode(), foreign.encode().decode()])
    expected = ours.copy().merge(Histogram.decode(foreign.encode()))
    assert summed.histogram() == expected
    assert summed.histogram().total_count == 6


def test_nothing_added_is_no_histogram() -> None:
    assert HistogramSum().add_all(["", ""]).encoded() == ""


def test_its_percentiles_are_the_engines() -> None:
    rng = random.Random(18)
    for case in range(40):
        values = [int(rng.lognormvariate(6 + case % 7, 1.2)) + 1 for _ in range(1 + case * 13)]
        chunks = [values[i : i + 17] for i in range(0, len(values), 17)]
        summed = HistogramSum().add_all(histogram_of(chunk).encode() for chunk in chunks)
        merged = histogram_of(values)
        for percentile in (0.0, 50.0, 95.0, 99.0, 99.9, 100.0):
            assert summed.value_at_percentile(percentile) == merged.value_at_percentile(percentile)
    assert HistogramSum().value_at_percentile(95.0) is None
