"""Log-linear latency histograms, compatible with HdrHistogram.

Values are integer microseconds from 1 µs to one hour, kept to 3 significant digits, in the
same bucket layout as HdrHistogram(1, 3_600_000_000, 3). `record` inlines HdrHistogram's index
arithmetic because `hdrh.HdrHistogram.record_value` costs about 3 µs a call, which is too much
for a load generator that records two values per request. Encoding and decoding go through
`hdrh`, so payloads are the standard V2 compressed base64 form that every HdrHistogram tool
reads (runs stored before this module moved here decode unchanged), and merging two histograms
gives exactly the histogram of all their values. Percentiles follow `stats.percentile`'s rule
over the slots, a slot standing for its highest value (its lowest at percentile 0), as in hdrh.

Sparse recorders (query capture, the cache layer) keep only the slots they touch, as
{counts_index: count}, and read them with `sparse_percentiles`. The index functions also take the
half-count magnitude of a coarser HdrHistogram layout (`half_count_magnitude(digits)`) for
recorders that keep their slots in a store where each slot costs a field.
"""

from __future__ import annotations

import ctypes
import io
import math
import operator
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from itertools import accumulate

from hdrh.histogram import HdrHistogram

from stats.percentile import at_percentiles, rank_positions

LOWEST_TRACKABLE_US = 1
HIGHEST_TRACKABLE_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3

# Layout derived as HdrHistogram does for (1, 3_600_000_000, 3): 2048 sub-buckets, of which
# the upper half (1024) is new in each following bucket; 22 buckets cover one hour.
SUB_BUCKET_HALF_COUNT_MAGNITUDE = 10
_SUB_BUCKET_HALF_COUNT = 1 << SUB_BUCKET_HALF_COUNT_MAGNITUDE
SUB_BUCKET_MASK = (_SUB_BUCKET_HALF_COUNT << 1) - 1
BUCKET_SHIFT = SUB_BUCKET_HALF_COUNT_MAGNITUDE + 1
_BUCKET_COUNT = 22
COUNTS_LEN = (_BUCKET_COUNT + 1) * _SUB_BUCKET_HALF_COUNT

DEFAULT_PERCENTILES = (50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99)


def half_count_magnitude(significant_digits: int) -> int:
    """The sub-bucket half-count magnitude of HdrHistogram(1, ..., significant_digits)."""
    largest_single_unit = 2 * 10**significant_digits
    return max(math.ceil(math.log2(largest_single_unit)), 1) - 1


def counts_index(value_us: int, magnitude: int = SUB_BUCKET_HALF_COUNT_MAGNITUDE) -> int:
    """Index of the counts slot that holds `value_us` (0 <= value_us <= HIGHEST_TRACKABLE_US)."""
    bucket = (value_us | ((2 << magnitude) - 1)).bit_length() - magnitude - 1
    return (bucket << magnitude) + (value_us >> bucket)


def _bucket_of_index(index: int, magnitude: int) -> tuple[int, int]:
    half_count = 1 << magnitude
    bucket = (index >> magnitude) - 1
    sub_bucket = (index & (half_count - 1)) + half_count
    if bucket < 0:
        return 0, sub_bucket - half_count
    return bucket, sub_bucket


def lowest_equivalent(index: int, magnitude: int = SUB_BUCKET_HALF_COUNT_MAGNITUDE) -> int:
    """The smallest value that lands in counts slot `index`."""
    bucket, sub_bucket = _bucket_of_index(index, magnitude)
    return sub_bucket << bucket


def highest_equivalent(index: int, magnitude: int = SUB_BUCKET_HALF_COUNT_MAGNITUDE) -> int:
    """The largest value that lands in counts slot `index`."""
    bucket, sub_bucket = _bucket_of_index(index, magnitude)
    return (sub_bucket << bucket) + (1 << bucket) - 1


def slot_value(
    index: int, percentile: float, magnitude: int = SUB_BUCKET_HALF_COUNT_MAGNITUDE
) -> int:
    """The value a slot stands for at `percentile`: its highest, or its lowest at 0 (hdrh)."""
    if percentile:
        return highest_equivalent(index, magnitude)
    return lowest_equivalent(index, magnitude)


def running_percentiles(
    running: Sequence[int],
    percentiles: Iterable[float],
    first: int = 0,
    magnitude: int = SUB_BUCKET_HALF_COUNT_MAGNITUDE,
) -> dict[float, int | None]:
    """{percentile: value_us} of running counts of consecutive slots from slot `first` on;
    None where nothing was counted."""
    positions = rank_positions(running, percentiles)
    return {
        percentile: None if at is None else slot_value(first + at, percentile, magnitude)
        for percentile, at in positions.items()
    }


def sparse_percentiles(
    slots: Mapping[int, int],
    percentiles: Iterable[float],
    magnitude: int = SUB_BUCKET_HALF_COUNT_MAGNITUDE,
) -> dict[float, int | None]:
    """{percentile: value_us} of sparse {counts_index: count} slots (any order); None where
    nothing was counted."""
    indexes = at_percentiles(sorted(slots.items()), percentiles)
    return {
        percentile: None if index is None else slot_value(index, percentile, magnitude)
        for percentile, index in indexes.items()
    }


def _median_equivalent(index: int) -> int:
    bucket, sub_bucket = _bucket_of_index(index, SUB_BUCKET_HALF_COUNT_MAGNITUDE)
    return (sub_bucket << bucket) + ((1 << bucket) >> 1)


class Histogram:
    """Counts of integer microsecond values in HdrHistogram's (1 µs, 1 h, 3 digits) layout.

    Values above one hour are recorded as one hour and counted in `clamped`; negative values
    are recorded as 0 and counted there too.
    """

    __slots__ = ("counts", "clamped")

    def __init__(self) -> None:
        self.counts: list[int] = [0] * COUNTS_LEN
        self.clamped = 0

    # -- recording -------------------------------------------------------------------------

    def record(self, value_us: int) -> None:
        """Count one value (integer microseconds)."""
        if 0 <= value_us <= HIGHEST_TRACKABLE_US:
            try:
                bucket = (value_us | SUB_BUCKET_MASK).bit_length() - BUCKET_SHIFT
            except TypeError:  # a float: the slow path keeps the fast one free of int() calls
                self.record(int(value_us))
                return
            self.counts[(bucket << SUB_BUCKET_HALF_COUNT_MAGNITUDE) + (value_us >> bucket)] += 1
        else:
            self.record_count(value_us, 1)

    def record_count(self, value_us: int, count: int) -> None:
        """Count `count` occurrences of one value."""
        value_us = int(value_us)
        if value_us > HIGHEST_TRACKABLE_US:
            value_us = HIGHEST_TRACKABLE_US
            self.clamped += count
        elif value_us < 0:
            value_us = 0
            self.clamped += count
        self.counts[counts_index(value_us)] += count

    def merge(self, other: Histogram) -> Histogram:
        """Add every count of `other` to this histogram (exact); returns self."""
        # In place: the load engine holds on to `counts` lists while it records.
        self.counts[:] = map(operator.add, self.counts, other.counts)
        self.clamped += other.clamped
        return self

    add = merge

    def copy(self) -> Histogram:
        twin = Histogram()
        twin.counts = self.counts.copy()
        twin.clamped = self.clamped
        return twin

    def reset(self) -> None:
        self.counts = [0] * COUNTS_LEN
        self.clamped = 0

    # -- statistics ------------------------------------------------------------------------

    @property
    def total_count(self) -> int:
        return sum(self.counts)

    def __len__(self) -> int:
        return self.total_count

    def _nonzero(self) -> list[tuple[int, int]]:
        return [(index, count) for index, count in enumerate(self.counts) if count]

    @property
    def min(self) -> int:
        """Lowest recorded value, to the histogram's resolution (0 when empty)."""
        first = self._first_nonzero_index()
        return lowest_equivalent(first) if first > 0 else 0

    def _first_nonzero_index(self) -> int:
        for index, count in enumerate(self.counts):
            if count:
                return index
        return -1

    @property
    def max(self) -> int:
        """Highest recorded value, to the histogram's resolution (0 when empty)."""
        last = self._last_nonzero_index()
        return highest_equivalent(last) if last > 0 else 0

    def _last_nonzero_index(self) -> int:
        counts = self.counts
        for index in range(COUNTS_LEN - 1, -1, -1):
            if counts[index]:
                return index
        return -1

    @property
    def mean(self) -> float:
        """Mean of the recorded values (each taken at the middle of its slot, as hdrh does)."""
        nonzero = self._nonzero()
        total = sum(count for _, count in nonzero)
        if not total:
            return 0.0
        return sum(count * _median_equivalent(index) for index, count in nonzero) / total

    @property
    def stddev(self) -> float:
        nonzero = self._nonzero()
        total = sum(count for _, count in nonzero)
        if not total:
            return 0.0
        mean = self.mean
        squares = sum(count * (_median_equivalent(index) - mean) ** 2 for index, count in nonzero)
        return math.sqrt(squares / total)

    def value_at_percentile(self, percentile: float) -> int:
        """The value at `percentile` (0..100), computed exactly as HdrHistogram does."""
        return self.percentiles([percentile])[percentile]

    def percentiles(self, percentiles: Iterable[float] = DEFAULT_PERCENTILES) -> dict[float, int]:
        """Values at several percentiles in one pass: {percentile: value_us} (0 when empty)."""
        values = running_percentiles(list(accumulate(self.counts)), sorted(set(percentiles)))
        return {percentile: value or 0 for percentile, value in values.items()}

    def percentile_spectrum(
        self, ticks_per_half_distance: int = 5, up_to: float = 99.999
    ) -> list[tuple[float, int]]:
        """(percentile, value_us) points for an HdrHistogram percentile plot.

        Points run from 0 to `up_to`, `ticks_per_half_distance` of them in each halving of the
        distance to 100 (0..50, 50..75, 75..87.5, ...), then the maximum at 100.
        """
        if not self.total_count:
            return []
        levels = spectrum_levels(ticks_per_half_distance, up_to)
        values = self.percentiles(levels)
        points = [(level, values[level]) for level in levels]
        points.append((100.0, self.max))
        return points

    def log_buckets(self, per_decade: int = 10) -> list[tuple[int, int, int]]:
        """(lower_us, upper_us, count) per log-scale bucket, for a distribution chart.

        Upper edges are 10 ** (k / per_decade) microseconds, rounded up to whole microseconds
        (so the narrowest buckets at the low end are one microsecond wide); a bucket holds
        values v with lower <= v < upper. Buckets run without gaps from the one holding the
        smallest value to the one holding the largest.
        """
        nonzero = self._nonzero()
        if not nonzero:
            return []
        top = highest_equivalent(nonzero[-1][0]) + 1
        edges = _log_edges(per_decade, top)
        counts = [0] * (len(edges) - 1)
        for index, count in nonzero:
            # A slot is narrower than a bucket beyond the first few microseconds, so placing
            # it by its lowest value puts nearly every count in the bucket it belongs to.
            counts[bisect_right(edges, lowest_equivalent(index)) - 1] += count
        first = next(i for i, count in enumerate(counts) if count)
        last = max(i for i, count in enumerate(counts) if count)
        return [(edges[i], edges[i + 1], counts[i]) for i in range(first, last + 1)]

    # -- interchange -----------------------------------------------------------------------

    def to_hdrh(self) -> HdrHistogram:
        """An `hdrh.HdrHistogram` holding the same counts."""
        hdr = HdrHistogram(LOWEST_TRACKABLE_US, HIGHEST_TRACKABLE_US, SIGNIFICANT_DIGITS)
        first, last = self._first_nonzero_index(), self._last_nonzero_index()
        if last < 0:
            return hdr
        # hdrh keeps native 64-bit counters; one memmove beats 23,552 ctypes item writes.
        packed = array("Q", self.counts)
        ctypes.memmove(hdr.counts, packed.buffer_info()[0], len(packed) * packed.itemsize)
        hdr.set_internal_tacking_values(first, last, sum(self.counts))
        return hdr

    def encode(self) -> str:
        """The standard HdrHistogram V2 compressed payload, base64 (what `hdrh` decodes)."""
        hdr = self.to_hdrh()
        try:
            return hdr.encode().decode("ascii")
        finally:
            _release(hdr)

    @classmethod
    def decode(cls, encoded: str | bytes) -> Histogram:
        """A histogram from an HdrHistogram V2 compressed base64 payload.

        Payloads with another layout (range or precision) are re-recorded value by value, so
        any HdrHistogram tool's output can be merged with ours.
        """
        hdr = HdrHistogram.decode(encoded)
        try:
            return cls.from_hdrh(hdr)
        finally:
            _release(hdr)

    @classmethod
    def from_hdrh(cls, hdr: HdrHistogram) -> Histogram:
        histogram = cls()
        same_layout = (
            hdr.counts_len == COUNTS_LEN
            and hdr.unit_magnitude == 0
            and hdr.sub_bucket_half_count_magnitude == SUB_BUCKET_HALF_COUNT_MAGNITUDE
        )
        if same_layout:
            packed = array("Q")
            packed.frombytes(bytes(hdr.counts))
            histogram.counts = packed.tolist()
            return histogram
        for index in range(hdr.counts_len):
            count = hdr.counts[index]
            if count:
                histogram.record_count(hdr.get_value_from_index(index), count)
        return histogram

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return self.counts == other.counts and self.clamped == other.clamped

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Histogram n={self.total_count} max={self.max}us>"


def _release(hdr: HdrHistogram) -> None:
    # An hdrh histogram and its encoder point at each other, so its 188 KB counts array
    # waits for the cyclic garbage collector; a load run encoding two a second would grow
    # by megabytes before a full collection. Breaking the cycle frees it at once.
    hdr.encoder = None


def _log_edges(per_decade: int, top: int) -> list[int]:
    edges = [0, 1]
    step = 1
    while edges[-1] < top:
        edge = math.ceil(10 ** (step / per_decade) - 1e-9)
        step += 1
        if edge > edges[-1]:
            edges.append(edge)
    return edges


def spectrum_levels(ticks_per_half_distance: int = 5, up_to: float = 99.999) -> list[float]:
    """Percentile levels of an HdrHistogram percentile plot, 0 up to `up_to`."""
    levels: list[float] = []
    half_distance = 50.0
    base = 0.0
    while base <= up_to and half_distance > 1e-9:
        step = half_distance / ticks_per_half_distance
        for tick in range(ticks_per_half_distance):
            level = round(base + tick * step, 6)
            if level > up_to:
                break
            levels.append(level)
        base += half_distance
        half_distance /= 2
    if levels[-1] < up_to:
        levels.append(up_to)
    return levels


def merge_all(histograms: Iterable[Histogram]) -> Histogram:
    """One histogram holding the counts of all of them."""
    merged = Histogram()
    for histogram in histograms:
        merged.merge(histogram)
    return merged


def write_interval_log(
    intervals: Iterable[tuple[float, float, str]],
    *,
    start_time_s: float = 0.0,
    max_value_unit_ratio: float = 1000.0,
    comment: str = "",
) -> str:
    """An HdrHistogram interval log (.hlog) from (start_s, length_s, encoded) rows.

    Start times are seconds relative to `start_time_s` (seconds since the epoch), as
    HistogramLogProcessor and HdrHistogram's plotters expect. Interval_Max is the interval's
    maximum divided by `max_value_unit_ratio` (1000: microseconds shown as milliseconds).
    """
    out = io.StringIO()
    if comment:
        out.write(f"#{comment}\n")
    out.write("#[Histogram log format version 1.3]\n")
    stamp = datetime.fromtimestamp(start_time_s, tz=UTC).isoformat(sep=" ")
    out.write(f"#[StartTime: {start_time_s:.3f} (seconds since epoch), {stamp}]\n")
    out.write('"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n')
    for start_s, length_s, encoded in intervals:
        # hdrh knows the maximum straight after decoding; no need to rebuild our counts.
        hdr = HdrHistogram.decode(encoded)
        maximum = hdr.get_max_value() / max_value_unit_ratio
        _release(hdr)
        out.write(f"{start_s:.3f},{length_s:.3f},{maximum:.3f},{encoded}\n")
    return out.getvalue()


def read_interval_log(text: str) -> list[tuple[float, float, Histogram]]:
    """(start_s, length_s, histogram) rows of an interval log written by write_interval_log."""
    rows = []
    for line in text.splitlines():
        if not line or line.startswith("#") or line.startswith('"'):
            continue
        parts = line.split(",")
        if parts[0].startswith("Tag="):
            parts = parts[1:]
        rows.append((float(parts[0]), float(parts[1]), Histogram.decode(parts[3])))
    return rows


def histogram_of(values: Sequence[int]) -> Histogram:
    """A histogram of the given values (for tests and small data)."""
    histogram = Histogram()
    for value in values:
        histogram.record(value)
    return histogram
