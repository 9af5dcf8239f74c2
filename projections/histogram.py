"""Log-spaced histograms of durations in seconds, with a fixed relative error (pure).

A value v >= MIN_SECS falls in bin k = 1 + floor(log_g(v / MIN_SECS)), which holds
[MIN_SECS * g**(k-1), MIN_SECS * g**k) with g = (1 + ERROR) / (1 - ERROR); values below
MIN_SECS (and negative ones: clock skew) fall in bin 0. A bin is read back as the value
that is ERROR away, relatively, from both of its ends (2 * low * g / (g + 1)), so every
value it holds is within ERROR of it; bin 0 reads back as 0 (within MIN_SECS).

Histograms are sparse: {bin: count}, stored as JSON objects with the bins as strings.
Merging is adding counts, so a histogram of a day is the sum of its hours' and the order
events were applied in changes nothing. About 45 bins cover each factor of 100: a millisecond
to a year is some 240 bins, of which a job fills few.
"""

import math
from collections.abc import Iterable, Mapping

# The largest relative error of a percentile read from a histogram (see percentile).
ERROR = 0.05
GROWTH = (1 + ERROR) / (1 - ERROR)
# Durations below this (a millisecond) count as 0.
MIN_SECS = 0.001

_LOG_GROWTH = math.log(GROWTH)

Histogram = dict[int, int]


def bin_of(seconds: float) -> int:
    """The bin that holds ``seconds``."""
    if not seconds >= MIN_SECS:  # also NaN
        return 0
    return 1 + math.floor(math.log(seconds / MIN_SECS) / _LOG_GROWTH)


def value_of(bin_index: int) -> float:
    """What a bin reads back as: within ERROR (relatively) of every value it holds."""
    if bin_index <= 0:
        return 0.0
    low = MIN_SECS * GROWTH ** (bin_index - 1)
    return 2 * low * GROWTH / (GROWTH + 1)


def add(histogram: Histogram, seconds: float, count: int = 1) -> None:
    index = bin_of(seconds)
    histogram[index] = histogram.get(index, 0) + count


def merge(into: Histogram, other: Mapping[int, int] | Mapping[str, int] | None) -> Histogram:
    """Add ``other``'s counts (bins as ints, or as the strings JSON keeps) into ``into``."""
    for index, count in (other or {}).items():
        key = int(index)
        into[key] = into.get(key, 0) + int(count)
    return into


def stored(histogram: Histogram) -> dict[str, int]:
    """The JSON form: bins as strings, in order (the same histogram, the same text)."""
    return {str(index): count for index, count in sorted(histogram.items()) if count}


def loaded(value: Mapping[str, int] | None) -> Histogram:
    return merge({}, value)


def total(histogram: Histogram) -> int:
    return sum(histogram.values())


def percentile(histogram: Histogram, share: float) -> float | None:
    """The nearest-rank percentile (as projections.health.percentile: the smallest value
    with ``share`` of them at or below), read from the bin that holds it: within ERROR of
    the exact one (or below MIN_SECS when that is). None when empty."""
    count = total(histogram)
    if count == 0:
        return None
    rank = max(1, math.ceil(share * count))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return value_of(index)
    raise AssertionError("unreachable: the ranks add up to the count")


def mean(histogram: Histogram) -> float | None:
    """The mean of the values, each read as its bin: within ERROR of the exact mean (each
    value is, and so is their sum), give or take MIN_SECS. None when empty."""
    count = total(histogram)
    if count == 0:
        return None
    return sum(value_of(index) * n for index, n in histogram.items()) / count


def of(values: Iterable[float]) -> Histogram:
    """A histogram of ``values`` (for tests and one-off reads)."""
    histogram: Histogram = {}
    for value in values:
        add(histogram, value)
    return histogram
