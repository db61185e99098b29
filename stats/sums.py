"""Sums of encoded latency histograms, in C.

Decoding each HdrHistogram payload into a new histogram and adding it costs about 0.5 ms (most
of it allocating a 188 KB counts array); the Queries page adds hundreds per view and the
roll-ups a million per week. `HistogramSum` decodes every payload into one reused array and
adds it to the total with hdrh's own C routines: about a tenth of that. Payloads of another
layout than ours take the slow, general path (Histogram.decode).
"""

from __future__ import annotations

import base64
import ctypes
import zlib
from array import array
from collections.abc import Iterable
from itertools import accumulate

from hdrh.codec import PayloadHeader, ext_header_size, payload_header_size
from pyhdrh import add_array, decode  # hdrh's C extension

from stats.histogram import (
    COUNTS_LEN,
    HIGHEST_TRACKABLE_US,
    LOWEST_TRACKABLE_US,
    SIGNIFICANT_DIGITS,
    Histogram,
    running_percentiles,
)

WORD_SIZE = 8
Counts = ctypes.c_uint64 * COUNTS_LEN


class HistogramSum:
    """Add encoded histograms with `add`; `histogram()` is their exact sum."""

    def __init__(self) -> None:
        self.total = Counts()
        self._scratch = Counts()
        self.added = 0
        self._slow: Histogram | None = None
        # The span of non-zero counts in `total`, as decoding reports it: percentiles read
        # only that span, not 188 KB.
        self._first = COUNTS_LEN
        self._last = -1

    def add(self, encoded: str) -> None:
        if not encoded:
            return
        self.added += 1
        data = zlib.decompress(base64.b64decode(encoded)[ext_header_size:])
        header = PayloadHeader.from_buffer_copy(data)
        if (
            header.lowest_trackable_value != LOWEST_TRACKABLE_US
            or header.highest_trackable_value != HIGHEST_TRACKABLE_US
            or header.significant_figures != SIGNIFICANT_DIGITS
            or header.normalizing_index_offset != 0
        ):
            self._slow = (self._slow or Histogram()).merge(Histogram.decode(encoded))
            return
        scratch = ctypes.addressof(self._scratch)
        found = decode(data, payload_header_size, scratch, COUNTS_LEN, WORD_SIZE)
        if found["total"]:
            self._first = min(self._first, found["min_nonzero_index"])
            self._last = max(self._last, found["max_nonzero_index"])
        add_array(ctypes.addressof(self.total), scratch, COUNTS_LEN, WORD_SIZE)
        ctypes.memset(scratch, 0, ctypes.sizeof(self._scratch))

    def add_all(self, encoded: Iterable[str]) -> HistogramSum:
        for text in encoded:
            self.add(text)
        return self

    def histogram(self) -> Histogram:
        histogram = Histogram()
        packed = array("Q")
        packed.frombytes(bytes(self.total))
        histogram.counts = packed.tolist()
        return histogram.merge(self._slow) if self._slow is not None else histogram

    def value_at_percentile(self, percentile: float) -> int | None:
        """Histogram.value_at_percentile of the sum, reading only the span of non-zero
        counts; None when the sum is empty."""
        if self._slow is not None:
            merged = self.histogram()
            return merged.value_at_percentile(percentile) if merged.total_count else None
        if self._last < self._first:
            return None
        first, size = self._first, (self._last - self._first + 1) * WORD_SIZE
        span = array("Q")
        span.frombytes(ctypes.string_at(ctypes.addressof(self.total) + first * WORD_SIZE, size))
        return running_percentiles(list(accumulate(span)), (percentile,), first)[percentile]

    def encoded(self) -> str:
        """The sum, encoded ("" when nothing was added)."""
        return self.histogram().encode() if self.added else ""
