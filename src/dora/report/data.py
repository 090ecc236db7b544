"""What the HTML report shows beyond ``metrics.report``: the distribution of each duration
(lead times, times to restore, recovery times) over fixed bins, with its median and 90th
percentile, and the figures of the window before, for the headlines' changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from dora import metrics, timeparse, verdicts
from dora.store import Store

_MINUTE, _HOUR, _DAY = 60, 3600, 86400

#: The bins' lower edges, in seconds; the last bin is open. A duration falls in the bin of
#: the greatest edge at or below it. Chosen to tell DORA's level bounds apart (an hour, a
#: day, a week, a month).
EDGES: tuple[int, ...] = (
    0,
    10 * _MINUTE,
    _HOUR,
    4 * _HOUR,
    _DAY,
    3 * _DAY,
    7 * _DAY,
    30 * _DAY,
)


@dataclass(frozen=True)
class Distribution:
    """How one duration spreads over ``EDGES``'s bins, with its median and 90th percentile
    (seconds; None without values): as ``dora metrics`` gives them, interpolated."""

    title: str
    #: what is counted, plural: "commits", "incidents", "failed deployments"
    counted: str
    counts: tuple[int, ...]
    median: float | None
    p90: float | None

    @property
    def total(self) -> int:
        return sum(self.counts)


def _bin_case(value: str) -> str:
    """SQL for the bin (0-based) of the duration ``value`` (ns)."""
    whens = " ".join(f"WHEN {value} < {edge * 10**9} THEN {n}" for n, edge in enumerate(EDGES[1:]))
    return f"CASE {whens} ELSE {len(EDGES) - 1} END"


def _bin_of(seconds: float) -> int:
    n = 0
    for index, edge in enumerate(EDGES):
        if seconds >= edge:
            n = index
    return n


def distributions(
    store: Store,
    report: metrics.Report,
    *,
    link_window: timedelta | None = None,
) -> list[Distribution]:
    """Lead times (of the commits the window's deployments shipped), times to restore (of
    the incidents resolved in the window, each once) and recovery times (of the failed
    deployments whose recovery ended in the window), under ``report``'s filters; read in
    one snapshot of the store."""
    lo, hi = timeparse.to_ns(report.since), timeparse.to_ns(report.until)
    with store.snapshot():
        return [
            _lead_times(store, lo, hi, report),
            _restore_times(store, lo, hi, report),
            _recovery_times(store, report, link_window),
        ]


def _counts(rows: Sequence[Sequence[int]]) -> tuple[int, ...]:
    counts = [0] * len(EDGES)
    for n, count in rows:
        counts[int(n)] += int(count)
    return tuple(counts)


def _lead_times(store: Store, lo: int, hi: int, report: metrics.Report) -> Distribution:
    c = metrics.deployments_matching((), report.filters, alias="c")
    lead = "c.lead_time"
    source = (
        "FROM deployment_commits c "
        f"WHERE c.finished_at >= ? AND c.finished_at < ? AND {c.condition()}"
    )
    params = (lo, hi, *c.params)
    counts = _counts(
        store.aggregate(
            f"SELECT b, COUNT(*) FROM (SELECT {_bin_case(lead)} AS b {source}) AS x GROUP BY b",
            params,
        )
    )
    n = sum(counts)
    p90 = None
    if n:
        # the two values around the 90th percentile (0-based ranks), interpolated as the
        # report's percentiles are
        low, remainder = divmod(9 * (n - 1), 10)
        values = [
            row[0]
            for row in store.aggregate(
                f"SELECT {lead} AS v {source} ORDER BY v LIMIT 2 OFFSET {int(low)}", params
            )
        ]
        high = values[1] if remainder and len(values) > 1 else values[0]
        p90 = (values[0] * (10 - remainder) + high * remainder) / 10 / 1e9
    return Distribution(
        "Lead time for changes", "commits", counts, report.total.median_lead_time_seconds, p90
    )


def _restore_times(store: Store, lo: int, hi: int, report: metrics.Report) -> Distribution:
    i = metrics.incidents_matching((), report.filters)
    counts = _counts(
        store.aggregate(
            f"SELECT b, COUNT(*) FROM (SELECT {_bin_case('i.finished_at - i.started_at')} AS b "
            f"FROM incidents i{i.joins} WHERE i.finished_at >= ? AND i.finished_at < ? "
            f"AND {i.condition()}) AS x GROUP BY b",
            (lo, hi, *i.params),
        )
    )
    total = report.total
    return Distribution(
        "Time to restore service",
        "incidents",
        counts,
        total.median_time_to_restore_seconds,
        total.p90_time_to_restore_seconds,
    )


def _recovery_times(
    store: Store, report: metrics.Report, link_window: timedelta | None
) -> Distribution:
    lo, hi = timeparse.to_ns(report.since), timeparse.to_ns(report.until)
    counts = [0] * len(EDGES)
    for outcome in verdicts.each_outcome(
        store, report.since, report.until, link_window=link_window
    ):
        end = outcome.recovered_at
        if not outcome.failed or end is None or not lo <= end < hi:
            continue
        placed = outcome.deployment
        if not report.filters.admits(placed):
            continue
        counts[_bin_of(max(0, end - placed.finished_at) / 1e9)] += 1
    total = report.total
    return Distribution(
        "Failed deployment recovery time",
        "failed deployments",
        tuple(counts),
        total.median_recovery_time_seconds,
        total.p90_recovery_time_seconds,
    )


def previous(report: metrics.Report, store: Store | None) -> metrics.Figures:
    """The total figures of the window of the same length just before ``report``'s, with
    its filters, benchmarks and link window."""
    length = report.until - report.since
    before = metrics.report(
        store,
        report.since - length,
        report.since,
        group_by=(),
        filters=report.filters,
        benchmarks=report.benchmarks,
        link_window=report.link_window,
    )
    return before.total


def default_interval(since: datetime, until: datetime) -> str:
    """The trend's interval when none is given: days up to about two months, weeks up to
    about a year and a half, then months (some 8 to 80 points a chart)."""
    days = (until - since).total_seconds() / _DAY
    return "day" if days <= 62 else "week" if days <= 550 else "month"
