"""``dora report``: the metrics of a window as one self-contained HTML page, with charts.

The figures are ``metrics.report``'s (the same window, grouping, filters, benchmarks and
link window as ``dora metrics``), with a trend per interval, the figures of the window just
before it for the headlines' changes, and the distribution of each duration
(``report.data``). The charts are drawn by matplotlib (``report.charts``, imported only
here: the ``report`` extra) and the page is put together by ``report.page``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from dora import levels, metrics, render, timeparse
from dora.metrics import Figures, Filters
from dora.report import data, page
from dora.store import Store

if TYPE_CHECKING:
    from dora.report.charts import Series, Unit

__all__ = ["STEPS", "make"]

#: No filter: every event.
_EVERYTHING = Filters()


@dataclass(frozen=True)
class _Metric:
    title: str
    axis: str
    value: Callable[[Figures], float | None]
    #: "time" (seconds), "rate" (a share) or "count" (as it is)
    kind: str
    #: the levels drawn behind it (``levels.bands``), if it has any
    bands: str | None


#: The steps ``make`` reports: the figures, the window before, the spreads, each chart.
STEPS = 3 + 6 + 3

_TRENDS = (
    _Metric("Deployment frequency", "deployments a day",
            lambda f: f.deployment_frequency_per_day, "count", "deployment_frequency"),
    _Metric("Lead time for changes", "median lead time",
            lambda f: f.median_lead_time_seconds, "time", "lead_time"),
    _Metric("Change failure rate", "failed deployments",
            lambda f: f.change_failure_rate, "rate", "change_failure_rate"),
    _Metric("Failed deployment recovery time", "median recovery time",
            lambda f: f.median_recovery_time_seconds, "time", "recovery_time"),
    _Metric("Deployment rework rate", "rework deployments",
            lambda f: f.deployment_rework_rate, "rate", None),
    _Metric("Time to restore service", "median time to restore",
            lambda f: f.median_time_to_restore_seconds, "time", "time_to_restore"),
)  # fmt: skip


def make(
    store: Store | None,
    since: datetime,
    until: datetime,
    *,
    group_by: tuple[str, ...] = ("service",),
    filters: Filters = _EVERYTHING,
    interval: str | None = None,
    benchmarks: str = levels.LATEST,
    link_window: timedelta | None = None,
    events: bool = True,
    made_at: datetime | None = None,
    progress: Callable[[], None] | None = None,
) -> str:
    """The HTML page of the report of ``[since, until)``; ``interval`` None chooses one by
    the window's length (``data.default_interval``); ``events``: fold in the events behind
    each group's figures. No store is a report of nothing. ``progress()`` hears each of
    ``STEPS`` steps done."""
    from dora.report import charts

    step = progress or (lambda: None)

    interval = interval or data.default_interval(since, until)
    report = metrics.report(
        store, since, until, group_by=group_by, filters=filters, interval=interval,
        explain=events, benchmarks=benchmarks, link_window=link_window,
        explain_each=page.EACH_KIND,
    )  # fmt: skip
    step()
    before = data.previous(report, store)
    step()
    days = render._days_text(report.days)
    keys, note = page.chosen(report)
    starts = [start for start, _ in metrics.split(since, until, interval)]
    found = {(row.start, row.key): row.figures for row in report.trend}
    trends = []
    for metric in _TRENDS:
        series = [
            # the trend has every group's every bucket (empty ones too)
            charts.Series(page.key_name(key), [metric.value(found[s, key]) for s in starts])
            for key in keys
        ]
        present = [v for one in series for v in one.values if v is not None]
        unit = _unit(metric, max(present, default=0.0))
        svg = charts.trend(
            metric.title, starts, series, unit=unit, axis=metric.axis,
            bands=levels.bands(metric.bands, report.benchmarks) if metric.bands else (),
            percent=metric.kind == "rate",
            description=_describe(metric, series, interval),
        )  # fmt: skip
        caption = f"By {interval}, UTC; no point where there was nothing to measure."
        if metric.bands:
            caption += f" Bands: the {report.benchmarks} levels."
        trends.append((svg, caption))
        step()
    spread = (
        data.distributions(store, report, link_window=link_window)
        if store is not None
        else _nothing(report)
    )
    step()
    histograms = []
    for one in spread:
        svg = charts.histogram(one, description=_describe_spread(one))
        caption = (
            f"{one.total:,} {one.counted} in the window; the lines mark the median and the "
            "90th percentile."
        )
        histograms.append((svg, caption))
        step()
    return page.page(
        report,
        headlines=page.headlines(report.total, before, days),
        trends=trends,
        trend_note=note,
        distributions=histograms,
        made_at=made_at or timeparse.now(),
    )


def _unit(metric: _Metric, peak: float) -> Unit:
    from dora.report import charts

    if metric.kind == "time":
        return charts.time_unit(peak)
    return charts.Unit("", 1.0)


def _describe(metric: _Metric, series: list[Series], interval: str) -> str:
    """What a chart shows, in words, for a reader who cannot see it."""
    parts = []
    for one in series:
        values = [v for v in one.values if v is not None]
        if not values:
            parts.append(f"{one.name}: no values")
            continue
        low, high, last = (_said(metric, v) for v in (min(values), max(values), values[-1]))
        parts.append(f"{one.name}: from {low} to {high}, last {last}")
    return f"{metric.title} by {interval}. " + ("; ".join(parts) or "No values.") + "."


def _said(metric: _Metric, value: float) -> str:
    if metric.kind == "time":
        return render._seconds(value)
    if metric.kind == "rate":
        return render._rate(value)
    return render._per_day(value)


def _describe_spread(one: data.Distribution) -> str:
    from dora.report import charts

    bins = ", ".join(
        f"{charts._bin_label(n)}: {count}" for n, count in enumerate(one.counts) if count
    )
    median = render._seconds(one.median)
    p90 = render._seconds(one.p90)
    return (
        f"{one.title}: {one.total} {one.counted} by duration ({bins or 'none'}); "
        f"median {median}, 90th percentile {p90}."
    )


def _nothing(report: metrics.Report) -> list[data.Distribution]:
    zero = (0,) * len(data.EDGES)
    return [
        data.Distribution("Lead time for changes", "commits", zero, None, None),
        data.Distribution("Time to restore service", "incidents", zero, None, None),
        data.Distribution(
            "Failed deployment recovery time", "failed deployments", zero, None, None
        ),
    ]
