"""The request histogram's cheap observation and the sampled cache counts
(api/platform/metrics.py): they show in a scrape exactly what prometheus_client's own
`observe()` and `inc()` would have shown."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from api.platform.metrics import HTTP_DURATION, DurationSeries, SampledCount

DURATIONS = [0.0, 0.0004, 0.001, 0.0010001, 0.0025, 0.004, 0.01, 0.3, 1.0, 9.99, 10.0, 10.5, 600]
"""Inside, on and just past bucket bounds, and past the last one (+Inf)."""


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def histogram(registry: CollectorRegistry) -> Histogram:
    buckets = HTTP_DURATION._upper_bounds[:-1]  # the app's own bounds (+Inf is added)
    return Histogram("d_seconds", "d", ["route"], buckets=buckets, registry=registry)


def test_a_duration_series_records_what_observe_records() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference, series = histogram(theirs).labels("/x"), DurationSeries(histogram(ours).labels("/x"))
    for seconds in DURATIONS:
        reference.observe(seconds)
        series.observe(seconds)
    assert samples(ours) == samples(theirs)
    assert samples(ours)[("d_seconds_count", (("route", "/x"),))] == len(DURATIONS)


def test_sampled_counts_reach_the_counter_when_published_and_only_once() -> None:
    registry = CollectorRegistry()
    counter = Counter("lookups", "l", ["result"], registry=registry)
    hit = SampledCount(counter.labels("hit"))
    for _ in range(5):
        hit.inc()
    assert samples(registry)[("lookups_total", (("result", "hit"),))] == 0  # not yet published
    hit.publish()
    hit.publish()  # nothing new: nothing added
    assert samples(registry)[("lookups_total", (("result", "hit"),))] == 5
    hit.inc()
    hit.publish()
    assert samples(registry)[("lookups_total", (("result", "hit"),))] == 6
