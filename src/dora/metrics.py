"""DORA metrics from the store: aggregation queries turned into plain result objects.

Definitions (the README and ``dora metrics --help`` say the same):

* The window is half-open, ``[since, until)``, in UTC.
* A deployment counts when its ``finished_at`` is in the window; an incident (failure)
  counts when its ``started_at`` is.
* Change failure rate = failed deployments (``dora.verdicts``) / deployments of the same
  group; undefined (None) when the group has no deployments. Incidents / deployments is
  ``incidents_per_deployment``.
* Time to restore = ``finished_at - started_at`` of an incident resolved in the window
  (``finished_at`` in it): mean (MTTR), median and 90th percentile. Percentiles interpolate
  between the two nearest values, as PostgreSQL's ``percentile_cont`` does.
* Open incidents are never scored: those open at the end of the window (started before it,
  not resolved before it) are counted, with the age of the oldest at the window's end.
* Deployment frequency = deployments / days in the window.
* Lead time of a commit = ``finished_at`` of the deployment that shipped it - its commit
  time (never below zero); the median per group.
* An incident naming several services counts once in each service's group and once in the
  total.

The database counts and groups. What needs ranks is read in order from an index or sorted
here: a long window's median lead times are counted, then sought in the commits' index of
lead times (``_lead_times``); a short window's commits, and the window's times to restore
and recovery times, are sorted here (as many values as the window holds, never the
store's). The verdicts on failed deployments come a row each, placed in their group and
bucket as they come and let go (``verdicts.each_outcome``). Levels: ``dora.levels``.
"""

from __future__ import annotations

import bisect
import gc
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from dora import timeparse, verdicts
from dora.levels import (
    EDITIONS,
    LATEST,
    cfr_level,
    frequency_level,
    lead_time_level,
    restore_level,
)
from dora.verdicts import Outcome, Placed

if TYPE_CHECKING:
    from dora.store import Store

_DAY = 86400.0

#: The fields a report can be grouped and filtered by.
GROUP_FIELDS = ("service", "team", "env")
INTERVALS = ("day", "week", "month")


@dataclass
class Figures:
    """The numbers of one group (or the total) over one period."""

    days: float
    deployments: int = 0
    failures: int = 0  # incidents
    resolved_failures: int = 0
    open_failures: int = 0
    oldest_open_failure_age_seconds: float | None = None
    mttr_seconds: float | None = None
    median_time_to_restore_seconds: float | None = None
    p90_time_to_restore_seconds: float | None = None
    median_lead_time_seconds: float | None = None
    failed_deployments: int = 0
    recovered_failed_deployments: int = 0
    mean_recovery_time_seconds: float | None = None
    median_recovery_time_seconds: float | None = None
    p90_recovery_time_seconds: float | None = None
    unrecovered_failed_deployments: int = 0
    rework_deployments: int = 0
    #: the edition of the benchmarks levels come from (``EDITIONS``)
    benchmarks: str = field(default=LATEST, repr=False)

    @property
    def change_failure_rate(self) -> float | None:
        """Failed deployments / deployments (DORA 2024, Datadog today)."""
        return self.failed_deployments / self.deployments if self.deployments else None

    @property
    def incidents_per_deployment(self) -> float | None:
        """Incidents / deployments: Datadog's first change failure rate, by its own name."""
        return self.failures / self.deployments if self.deployments else None

    @property
    def deployment_rework_rate(self) -> float | None:
        """Deployments that remediated a failure / deployments."""
        return self.rework_deployments / self.deployments if self.deployments else None

    @property
    def deployment_frequency_per_day(self) -> float:
        return self.deployments / self.days

    def levels(self) -> dict[str, str | None]:
        """The performance level of each metric; times are judged by their medians, time
        to restore and recovery time by the same bounds."""
        edition = self.benchmarks
        return {
            "deployment_frequency": frequency_level(self.deployment_frequency_per_day),
            "lead_time": lead_time_level(self.median_lead_time_seconds),
            "change_failure_rate": cfr_level(self.change_failure_rate, edition),
            "time_to_restore": restore_level(self.median_time_to_restore_seconds, edition),
            "recovery_time": restore_level(self.median_recovery_time_seconds, edition),
        }

    def as_dict(self) -> dict[str, Any]:
        """The figures under their JSON names, in the documented order; no data is None."""
        return {
            "deployments": self.deployments,
            "failures": self.failures,
            "change_failure_rate": self.change_failure_rate,
            "resolved_failures": self.resolved_failures,
            "open_failures": self.open_failures,
            "oldest_open_failure_age_seconds": self.oldest_open_failure_age_seconds,
            "mttr_seconds": self.mttr_seconds,
            "median_time_to_restore_seconds": self.median_time_to_restore_seconds,
            "p90_time_to_restore_seconds": self.p90_time_to_restore_seconds,
            "deployment_frequency_per_day": self.deployment_frequency_per_day,
            "median_lead_time_seconds": self.median_lead_time_seconds,
            "failed_deployments": self.failed_deployments,
            "incidents_per_deployment": self.incidents_per_deployment,
            "recovered_failed_deployments": self.recovered_failed_deployments,
            "median_recovery_time_seconds": self.median_recovery_time_seconds,
            "mean_recovery_time_seconds": self.mean_recovery_time_seconds,
            "p90_recovery_time_seconds": self.p90_recovery_time_seconds,
            "unrecovered_failed_deployments": self.unrecovered_failed_deployments,
            "rework_deployments": self.rework_deployments,
            "deployment_rework_rate": self.deployment_rework_rate,
        }


#: The figure names, in output order (``as_dict``'s keys).
FIGURES = tuple(Figures(days=1).as_dict())

Key = tuple[str | None, ...]


@dataclass(frozen=True)
class Deployed:
    id: str
    finished_at: datetime
    commits: int
    shortest_lead_seconds: float | None
    longest_lead_seconds: float | None


@dataclass(frozen=True)
class Failure:
    id: str
    started_at: datetime
    finished_at: datetime | None


@dataclass
class Evidence:
    """The events behind a group's numbers, for ``--explain``."""

    deployments: list[Deployed] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)  # started in the window
    resolved: list[Failure] = field(default_factory=list)  # resolved in the window
    open: list[Failure] = field(default_factory=list)  # open at the window's end
    #: failed deployments that finished in the window
    failed: list[Outcome] = field(default_factory=list)
    #: failed deployments whose recovery ended in the window
    recovered: list[Outcome] = field(default_factory=list)
    #: failed deployments not recovered at the window's end
    unrecovered: list[Outcome] = field(default_factory=list)
    #: deployments finished in the window that remediated failures, with those failures
    rework: list[tuple[Placed, list[str]]] = field(default_factory=list)
    #: the events left out of the lists above by a cap (``report(explain_each=N)``)
    more: int = 0

    def keeps(self, items: list[Any], limit: int | None) -> bool:
        """Whether ``items``, one of the lists, takes one more under ``limit``; if not,
        the event is counted in ``more``."""
        if limit is None or len(items) < limit:
            return True
        self.more += 1
        return False


@dataclass
class Row:
    key: Key  # the values of the grouping fields, in --by order; None where events have none
    figures: Figures
    evidence: Evidence | None = None


@dataclass
class TrendRow:
    start: datetime
    end: datetime
    key: Key
    figures: Figures


@dataclass(frozen=True)
class Filters:
    services: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    envs: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, list[str]]:
        return {"service": list(self.services), "team": list(self.teams), "env": list(self.envs)}

    def admits(self, placed: Placed) -> bool:
        """Whether a deployment, by its service, team and env, passes these filters."""
        return all(
            not values or placed.field(name) in values
            for name, values in (("service", self.services), ("team", self.teams),
                                 ("env", self.envs))
        )  # fmt: skip


@dataclass
class Report:
    since: datetime
    until: datetime
    group_by: tuple[str, ...]
    filters: Filters
    groups: list[Row]
    total: Figures
    interval: str | None = None
    trend: list[TrendRow] = field(default_factory=list)
    benchmarks: str = LATEST
    link_window: timedelta | None = None

    @property
    def edition(self) -> str:
        """The title of the benchmarks the levels come from."""
        return EDITIONS[self.benchmarks]

    @property
    def days(self) -> float:
        return (self.until - self.since).total_seconds() / _DAY


def report(
    store: Store | None,
    since: datetime,
    until: datetime,
    *,
    group_by: Sequence[str] = ("service",),
    filters: Filters = Filters(),
    interval: str | None = None,
    explain: bool = False,
    benchmarks: str = LATEST,
    link_window: timedelta | None = None,
    explain_each: int | None = None,
) -> Report:
    """The metrics of ``[since, until)``, per group and in total, with a trend per
    ``interval`` bucket and the events behind each group's numbers if asked (at most
    ``explain_each`` of each kind a group, the others counted: ``Evidence.more``); levels
    from the ``benchmarks`` edition; incidents linked to deployments at most
    ``link_window`` before them (no limit: None). No store (nothing recorded yet) is a
    report of nothing."""
    if since >= until:
        raise ValueError("the window is empty: since must be before until")
    if benchmarks not in EDITIONS:
        raise ValueError(f"unknown benchmarks {benchmarks!r}")
    result = Report(
        since, until, tuple(group_by), filters, [], Figures(days=_days(since, until)), interval,
        benchmarks=benchmarks, link_window=link_window,
    )  # fmt: skip
    if store is None:
        _report(None, result, explain, explain_each)
        return result
    with store.snapshot():  # groups, total and trend from one state of the store
        _report(store, result, explain, explain_each)
    return result


def _report(
    store: Store | None, result: Report, explain: bool, explain_each: int | None = None
) -> None:
    since, until, group_by, filters = result.since, result.until, result.group_by, result.filters
    window = [(since, until)]
    groups = _Table(window, result.benchmarks)
    # the total is the groups' own figures when there is one group of everything
    total = _Table(window, result.benchmarks) if group_by else groups
    tables = [(group_by, groups)] + ([((), total)] if total is not groups else [])
    buckets = split(since, until, result.interval) if result.interval is not None else []
    per_bucket = _Table(buckets, result.benchmarks)
    if buckets:
        tables.append((group_by, per_bucket))
    outcomes: dict[str, Outcome] = {}
    if store is not None:
        with _pause_gc():  # a report of many failed deployments makes many small objects
            if explain:  # every one kept, and its incidents listed, to be shown
                outcomes = verdicts.outcomes(store, since, until, link_window=result.link_window)
                _failed_deployments(outcomes.values(), filters, tables)
            else:  # placed as they come, and let go
                stream = verdicts.each_outcome(store, since, until, link_window=result.link_window)
                _failed_deployments(stream, filters, tables)
        _figures(store, window, group_by, filters, groups)
        if total is not groups:  # every deployment is in one group: the total is their sum
            deployed = sum(figures.deployments for figures in groups.found.values())
            _figures(store, window, (), filters, total, deployments=deployed)
        _lead_times(
            store, window, group_by, filters, groups, total if total is not groups else None
        )
        if buckets:
            _figures(store, buckets, group_by, filters, per_bucket)
            _lead_times(store, buckets, group_by, filters, per_bucket)
    if (figures := total.found.get((0, ()))) is not None:
        result.total = replace(figures)
    result.total.benchmarks = result.benchmarks
    result.groups = [
        Row(key, figures) for (_, key), figures in sorted(groups.found.items(), key=_order)
    ]
    for row in result.groups:  # each group's series together, oldest bucket first
        for n, (start, end) in enumerate(buckets):
            figures = per_bucket.found.get((n, row.key)) or Figures(
                days=_days(start, end), benchmarks=result.benchmarks
            )
            result.trend.append(TrendRow(start, end, row.key, figures))
    if explain:
        found = _evidence(store, since, until, group_by, filters, explain_each) if store else {}
        _failure_evidence(found, outcomes, since, until, group_by, filters, explain_each)
        for row in result.groups:
            row.evidence = found.get(row.key, Evidence())


@contextmanager
def _pause_gc() -> Iterator[None]:
    """The cycle collector off for a while: the objects made meanwhile hold no cycles, and
    collecting again and again as they pile up took a third of the time they took to make."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _Table:
    """The figures of each (bucket, key), made when first asked for."""

    def __init__(self, buckets: Sequence[tuple[datetime, datetime]], benchmarks: str) -> None:
        self.found: dict[tuple[int, Key], Figures] = {}
        self.days = [_days(lo, hi) for lo, hi in buckets]
        self.benchmarks = benchmarks
        #: each bucket's bounds (ns)
        self.starts = [timeparse.to_ns(lo) for lo, _ in buckets]
        self.ends = [timeparse.to_ns(hi) for _, hi in buckets]

    def bucket(self, moment: int) -> int | None:
        """The bucket ``moment`` (ns) falls in, if any."""
        n = bisect.bisect_right(self.starts, moment) - 1
        return n if n >= 0 and moment < self.ends[n] else None

    def __call__(self, bucket: int, key: Key) -> Figures:
        figures = self.found.get((bucket, key))
        if figures is None:
            figures = self.found[bucket, key] = Figures(
                days=self.days[bucket], benchmarks=self.benchmarks
            )
        return figures


def split(since: datetime, until: datetime, interval: str) -> list[tuple[datetime, datetime]]:
    """``[since, until)`` cut at UTC midnights, Mondays or first days of months."""
    since, until = since.astimezone(timeparse.UTC), until.astimezone(timeparse.UTC)
    start = since.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "week":
        start -= timedelta(days=start.weekday())
    elif interval == "month":
        start = start.replace(day=1)
    elif interval != "day":
        raise ValueError(f"unknown interval {interval!r}")
    buckets = []
    while start < until:
        if interval == "day":
            end = start + timedelta(days=1)
        elif interval == "week":
            end = start + timedelta(weeks=1)
        else:
            end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
        buckets.append((max(start, since), min(end, until)))
        start = end
    return buckets


def _days(since: datetime, until: datetime) -> float:
    return (until - since).total_seconds() / _DAY


def _order(item: tuple[tuple[int, Key], Any]) -> tuple[Any, ...]:
    (bucket, key), _ = item
    return (bucket, *((value is None, value or "") for value in key))


# The SQL. Buckets are a VALUES list of integer literals (made here, never from input), so
# that one query covers every bucket of a trend and each bucket uses the time indexes.
# Incidents open at a bucket's end are found from the finish side (still open, or finished
# after it; the unary + keeps the planner off the start index), which for the usual window,
# one that ends about now, reads the few open and recent incidents, not the whole history.


@dataclass(frozen=True)
class Source:
    """Rows of one table, grouped and filtered: ``FROM``-clause joins, key expressions,
    ``WHERE`` conditions and their parameters."""

    joins: str
    keys: tuple[str, ...]
    where: tuple[str, ...]
    params: tuple[str, ...]

    def key_list(self) -> str:
        """``, key1, key2``: the keys after a leading column."""
        return "".join(f", {key}" for key in self.keys)

    def condition(self) -> str:
        return " AND ".join(self.where) if self.where else "1 = 1"


def _marks(values: Sequence[str]) -> str:
    return ", ".join("?" * len(values))


def deployments_matching(group_by: Sequence[str], filters: Filters, alias: str = "d") -> Source:
    """Deployments (``alias`` ``d``), or the commits they shipped (``c``: each commit has its
    deployment's service, team and env)."""
    where: list[str] = []
    params: list[str] = []
    for column, values in (
        ("service", filters.services),
        ("team", filters.teams),
        ("env", filters.envs),
    ):
        if values:
            where.append(f"{alias}.{column} IN ({_marks(values)})")
            params.extend(values)
    return Source("", tuple(f"{alias}.{name}" for name in group_by), tuple(where), tuple(params))


def incidents_matching(group_by: Sequence[str], filters: Filters) -> Source:
    """By service, an incident is one row per service it names (none: one row, no service)."""
    joins, where, params = "", [], list[str]()
    by_service = "service" in group_by
    if by_service:
        joins = " LEFT JOIN incident_services s ON s.incident_id = i.id"
    if filters.services:
        if by_service:
            where.append(f"s.service IN ({_marks(filters.services)})")
        else:
            where.append(
                "EXISTS (SELECT 1 FROM incident_services f WHERE f.incident_id = i.id "
                f"AND f.service IN ({_marks(filters.services)}))"
            )
        params.extend(filters.services)
    for column, values in (("team", filters.teams), ("env", filters.envs)):
        if values:
            where.append(f"i.{column} IN ({_marks(values)})")
            params.extend(values)
    keys = tuple("s.service" if name == "service" else f"i.{name}" for name in group_by)
    return Source(joins, keys, tuple(where), tuple(params))


def _buckets(buckets: Sequence[tuple[datetime, datetime]]) -> str:
    values = ", ".join(
        f"({n}, {timeparse.to_ns(lo)}, {timeparse.to_ns(hi)})" for n, (lo, hi) in enumerate(buckets)
    )
    return f"WITH b (bucket, lo, hi) AS (VALUES {values}) "


def _figures(
    store: Store,
    buckets: Sequence[tuple[datetime, datetime]],
    group_by: Sequence[str],
    filters: Filters,
    figures: _Table,
    *,
    deployments: int | None = None,
) -> None:
    """The figures the database aggregates, per bucket and group, into ``figures``, but for
    the lead time (``_lead_times``); the number of ``deployments`` of a one-bucket table,
    if known, is not counted again."""
    cte = _buckets(buckets)
    now = timeparse.to_ns(timeparse.now())
    d, i = deployments_matching(group_by, filters), incidents_matching(group_by, filters)
    dkeys, ikeys = d.key_list(), i.key_list()

    if deployments is not None:
        counts: Sequence[Sequence[Any]] = [(0, deployments)] if deployments else []
    elif (
        len(buckets) == 1
        and group_by[:1] in (("service",), ("team",))
        and _wide(store, "deployments", *buckets[0])
    ):
        # most of the store: counted in the order of an index by the first key (service or
        # team, with the finish), not found by time and sorted into groups (7 times slower)
        counts = store.aggregate(
            f"SELECT 0{dkeys}, COUNT(*) FROM deployments d WHERE +d.finished_at >= ? "
            f"AND +d.finished_at < ? AND {d.condition()} GROUP BY {dkeys[2:]}",
            (*map(timeparse.to_ns, buckets[0]), *d.params),
        )
    else:
        counts = store.aggregate(
            f"{cte}SELECT b.bucket{dkeys}, COUNT(*) FROM b JOIN deployments d "
            f"ON d.finished_at >= b.lo AND d.finished_at < b.hi WHERE {d.condition()} "
            f"GROUP BY b.bucket{dkeys}",
            d.params,
        )
    for bucket, *key, count in counts:
        figures(bucket, tuple(key)).deployments = count

    for bucket, *key, count in store.aggregate(
        f"{cte}SELECT b.bucket{ikeys}, COUNT(*) FROM b JOIN incidents i "
        f"ON i.started_at >= b.lo AND i.started_at < b.hi{i.joins} WHERE {i.condition()} "
        f"GROUP BY b.bucket{ikeys}",
        i.params,
    ):
        figures(bucket, tuple(key)).failures = count

    # times to restore, sorted here per bucket and group: the window functions that ranked
    # them in the database took 3 to 5 times as long
    restored: dict[tuple[int, Key], list[int]] = defaultdict(list)
    with _pause_gc():
        for row in store.rows(
            f"{cte}SELECT b.bucket{ikeys}, i.finished_at - i.started_at FROM b JOIN incidents i "
            f"ON i.finished_at >= b.lo AND i.finished_at < b.hi{i.joins} WHERE {i.condition()}",
            i.params,
        ):
            restored[row[0], tuple(row[1:-1])].append(row[-1])
        for (bucket, group), values in restored.items():
            one = figures(bucket, group)
            (
                one.resolved_failures,
                one.mttr_seconds,
                one.median_time_to_restore_seconds,
                one.p90_time_to_restore_seconds,
            ) = _summary(values)

    ends = [timeparse.to_ns(end) for _, end in buckets]
    for bucket, group, count, oldest in _open_at_ends(store, cte, ends, i):
        one = figures(bucket, group)
        one.open_failures = count
        end = min(ends[bucket], now)  # no age beyond now
        one.oldest_open_failure_age_seconds = max(0, end - oldest) / 1e9


#: A bucket of at least this share of the time the store's commits span is read in order
#: of lead time, each median counted then sought; a shorter one is read whole and sorted.
SEEK_SHARE = 1 / 8


def _wide(store: Store, table: str, since: datetime, until: datetime) -> bool:
    """Whether ``[since, until)`` spans ``SEEK_SHARE`` of the time between the first and the
    last finish in ``table`` (deployments, or their commits), or more: whether a report of
    it reads much of the table."""
    first, last = _span(store, table)
    if first is None:
        return False
    return _covers((first, last), timeparse.to_ns(since), timeparse.to_ns(until))


def _covers(span: tuple[int, int], lo: int, hi: int) -> bool:
    """Whether ``[lo, hi)`` (ns) spans ``SEEK_SHARE`` of ``span`` (a first finish and just
    after the last), or more."""
    first, last = span
    start, end = max(lo, first), min(hi, last)
    return end > start and end - start >= (last - first) * SEEK_SHARE


def _span(store: Store, table: str) -> tuple[int | None, int]:
    """The first finish in ``table`` and just after its last (ns); (None, 0) if empty."""
    # one extreme a query: so each is read from one end of an index
    ((first,),) = store.aggregate(f"SELECT MIN(finished_at) FROM {table}")
    ((last,),) = store.aggregate(f"SELECT MAX(finished_at) FROM {table}")
    return (None, 0) if first is None else (first, last + 1)


def _lead_times(
    store: Store,
    buckets: Sequence[tuple[datetime, datetime]],
    group_by: Sequence[str],
    filters: Filters,
    figures: _Table,
    total: _Table | None = None,
) -> None:
    """The median lead time of each bucket and group, into ``figures``; and of each bucket
    in all, into ``total``, if given.

    Each commit carries its lead time and its deployment's fields (m012), so that a median
    reads one table's indexes.

    Each bucket is a query or a few, cut from the indexes by its bounds: one query for
    every bucket sorted all their commits together, to disk (2.5 s against 1.8 s for a
    weekly trend of 3 million commits, on PostgreSQL).

    On an engine with ordered-set aggregates (PostgreSQL), a bucket's groups and total come
    from one query (``percentile_disc``, grouping sets), each group sorted on its own
    (``_ordered``).

    On another (SQLite), a bucket spanning ``SEEK_SHARE`` of the time the store's commits
    span, or more, is counted per group, then each median is sought in the order of lead
    time (``LIMIT 2 OFFSET (n - 1) / 2``): half of each group's index entries are stepped
    over, none sorted. A shorter bucket, or one grouped without the service (there is no
    index of lead times by team or env), has its commits read and sorted here: the cost
    and memory of a report stay in proportion to its window, not to the store."""
    c = deployments_matching(group_by, filters, alias="c")
    first, last = _span(store, "deployment_commits")
    if first is None:
        return
    seekable = not group_by or "service" in group_by
    for n, (start, end) in enumerate(buckets):
        lo, hi = max(timeparse.to_ns(start), first), min(timeparse.to_ns(end), last)
        if lo >= hi:
            continue
        if store.ordered_sets:
            _ordered(store, (n, lo, hi), c, figures, total, (first, last))
        elif seekable and _covers((first, last), lo, hi):
            _sought(store, (n, lo, hi), group_by, c, figures, total)
        else:
            _sorted(store, (n, lo, hi), c, figures, total)


def _ordered(
    store: Store,
    bucket: tuple[int, int, int],
    c: Source,
    figures: _Table,
    total: _Table | None,
    span: tuple[int, int],
) -> None:
    """The medians of a bucket's groups (and total, if ``total``), by ordered-set
    aggregates: ``percentile_disc`` at 0.5 is the value at 1-based row ceil(0.5 n), the
    lower middle, row (n - 1) // 2 counted from 0; just above 0.5, the upper one, n // 2
    (as long as n * 1e-12 < 0.5: 500 billion commits).

    Each group's commits come in order from the index by service. Over most of the store,
    the total's median (or the one group's, ungrouped) is then sought in the index of lead
    times; sorting every commit at once took longer (1.4 s against 0.6 s for 3 million)."""
    n, lo, hi = bucket
    window = f"c.finished_at >= ? AND c.finished_at < ? AND {c.condition()}"
    params = (lo, hi, *c.params)
    wide = _covers(span, lo, hi)
    if not c.keys and wide:  # one group, most of the store: seek it
        ((count,),) = store.aggregate(
            f"SELECT COUNT(*) FROM deployment_commits c WHERE {window}", params
        )
        if count:
            figures(n, ()).median_lead_time_seconds = _seek(store, window, params, count)
        return
    keys = ", ".join(c.keys)
    total_sought = bool(c.keys) and total is not None and wide
    grouped, whole = keys, "0"
    if total is not None and c.keys and not total_sought:  # a last column tells them apart
        whole = f"GROUPING({keys})"
        grouped = f"GROUPING SETS (({keys}), ())"
    rows = store.aggregate(
        f"SELECT {', '.join(c.keys)}{', ' if keys else ''}COUNT(*), "
        "percentile_disc(CAST(ARRAY[0.5, 0.500000000001] AS DOUBLE PRECISION[])) "
        f"WITHIN GROUP (ORDER BY c.lead_time), {whole} FROM deployment_commits c "
        f"WHERE {window}{f' GROUP BY {grouped}' if grouped else ''}",
        params,
    )
    for row in rows:
        key, (count, middle, in_all) = tuple(row[:-3]), row[-3:]
        if not count:
            continue
        low = (count - 1) // 2
        median = _percentile({low: middle[0], low + 1: middle[1]}, count, 5) / 1e9
        if in_all:
            assert total is not None  # noqa: S101 - only asked for with a total
            total(n, ()).median_lead_time_seconds = median
        else:
            figures(n, key).median_lead_time_seconds = median
    if total_sought and total is not None and (everything := sum(row[-3] for row in rows)):
        # the window's bounds as they are: PostgreSQL then reads the index of lead times in
        # order, half of it (0.36 s on 3 million commits); with SQLite's "+" to keep it off
        # the index of times it misjudged how many rows they keep, and sorted them all (1.1 s)
        total(n, ()).median_lead_time_seconds = _seek(store, window, params, everything)


def _sorted(
    store: Store, bucket: tuple[int, int, int], c: Source, figures: _Table, total: _Table | None
) -> None:
    """The medians of a bucket's commits, read whole and sorted here."""
    n, lo, hi = bucket
    groups: dict[Key, list[int]] = defaultdict(list)
    with _pause_gc():
        for row in store.rows(
            f"SELECT {''.join(f'{k}, ' for k in c.keys)}c.lead_time FROM deployment_commits c "
            f"WHERE c.finished_at >= ? AND c.finished_at < ? AND {c.condition()}",
            (lo, hi, *c.params),
        ):
            groups[tuple(row[:-1])].append(row[-1])
        for key, leads in groups.items():
            leads.sort()
            figures(n, key).median_lead_time_seconds = _percentile(leads, len(leads), 5) / 1e9
        if total is not None and groups:
            every = sorted(lead for leads in groups.values() for lead in leads)
            total(n, ()).median_lead_time_seconds = _percentile(every, len(every), 5) / 1e9


def _sought(
    store: Store,
    bucket: tuple[int, int, int],
    group_by: Sequence[str],
    c: Source,
    figures: _Table,
    total: _Table | None,
) -> None:
    """The medians of a bucket's commits, counted per group, then each sought in the index
    of lead times (by service when grouped by it: it leads ``group_by``'s equalities)."""
    n, lo, hi = bucket
    # +finished_at: the window is a filter here, not the way in (the planner would read
    # the window's rows in time order, and sort them)
    window = f"+c.finished_at >= ? AND +c.finished_at < ? AND {c.condition()}"
    params = (lo, hi, *c.params)
    keys = ", ".join(c.keys)
    counts = store.aggregate(
        f"SELECT {keys}{', ' if keys else ''}COUNT(*) FROM deployment_commits c "
        f"WHERE {window}{f' GROUP BY {keys}' if keys else ''}",
        params,
    )
    # service first among the equalities: it leads the index
    order = sorted(range(len(c.keys)), key=lambda at: c.keys[at] != "c.service")
    for *key, count in counts:
        if not count:
            continue
        same, values = [], []
        for at in order:
            if key[at] is None:
                same.append(f"{c.keys[at]} IS NULL")
            else:
                same.append(f"{c.keys[at]} = ?")
                values.append(key[at])
        figures(n, tuple(key)).median_lead_time_seconds = _seek(
            store, " AND ".join([*same, window]), (*values, *params), count
        )
    if group_by and total is not None and (everything := sum(row[-1] for row in counts)):
        total(n, ()).median_lead_time_seconds = _seek(store, window, params, everything)


def _seek(store: Store, where: str, params: Sequence[Any], count: int) -> float:
    """The median lead time (s) of the ``count`` commits ``where`` picks out, from the two
    middle ones in order of lead time."""
    low = (count - 1) // 2
    values = [
        row[0]
        for row in store.aggregate(
            f"SELECT c.lead_time FROM deployment_commits c WHERE {where} "
            f"ORDER BY c.lead_time LIMIT 2 OFFSET {int(low)}",
            params,
        )
    ]
    return _percentile({low: values[0], low + 1: values[-1]}, count, 5) / 1e9


def _key_of(fields: Sequence[str]) -> Callable[[Placed], Key]:
    """A deployment's key when grouped by ``fields``: its values of them."""
    if not fields:
        return lambda placed: ()
    get: Callable[[Placed], Any] = attrgetter(*fields)
    if len(fields) == 1:
        return lambda placed: (get(placed),)
    return get  # a tuple of the values already


def _failed_deployments(
    outcomes: Iterable[Outcome],
    filters: Filters,
    tables: Sequence[tuple[Sequence[str], _Table]],
) -> None:
    """The failed deployments (by their finish), recovery times (by the recovery's end),
    failed deployments not recovered at each bucket's end, and rework deployments (by their
    finish) of each bucket and group, from the outcomes of the window's deployments: into
    each table, grouped by its fields and cut into its buckets, in one pass over them (so
    that they can stream by, each let go once placed)."""

    filtered = bool(filters.services or filters.teams or filters.envs)
    getters = [_key_of(group_by) for group_by, _ in tables]

    def keys(placed: Placed) -> list[Key] | None:
        """The key of ``placed`` in each table; None when the filters leave it out."""
        if filtered and not filters.admits(placed):
            return None
        return [get(placed) for get in getters]

    count = len(tables)
    times: list[dict[tuple[int, Key], list[int]]] = [defaultdict(list) for _ in tables]
    # per key, +1 where a span of bucket ends at which it is unrecovered starts, -1 after
    spans: list[dict[Key, list[int]]] = [{} for _ in tables]
    rework: list[dict[tuple[int, Key], set[str]]] = [defaultdict(set) for _ in tables]
    for outcome in outcomes:
        for placed in outcome.rework():
            if (found := keys(placed)) is not None:
                for t in range(count):
                    if (n := tables[t][1].bucket(placed.finished_at)) is not None:
                        rework[t][n, found[t]].add(placed.id)
        if not outcome.failed or (found := keys(outcome.deployment)) is None:
            continue
        finished = outcome.deployment.finished_at
        end = outcome.recovered_at
        for t in range(count):
            group, table = found[t], tables[t][1]
            if (n := table.bucket(finished)) is not None:
                table(n, group).failed_deployments += 1
            if end is not None and (n := table.bucket(end)) is not None:
                times[t][n, group].append(max(0, end - finished))
            # not recovered at a bucket's end: finished before it, recovered at or after it
            ends = table.ends
            first = bisect.bisect_right(ends, finished)
            last = len(ends) - 1 if end is None else bisect.bisect_right(ends, end) - 1
            if first <= last:
                deltas = spans[t].setdefault(group, [0] * (len(ends) + 1))
                deltas[first] += 1
                deltas[last + 1] -= 1
    for t, (_, table) in enumerate(tables):
        for (n, group), values in times[t].items():
            one = table(n, group)
            (
                one.recovered_failed_deployments,
                one.mean_recovery_time_seconds,
                one.median_recovery_time_seconds,
                one.p90_recovery_time_seconds,
            ) = _summary(values)
        for group, deltas in spans[t].items():
            unrecovered = 0
            for n in range(len(table.ends)):
                unrecovered += deltas[n]
                if unrecovered:
                    table(n, group).unrecovered_failed_deployments = unrecovered
        for (n, group), ids in rework[t].items():
            table(n, group).rework_deployments = len(ids)


def _open_at_ends(
    store: Store, cte: str, ends: list[int], i: Source
) -> Iterable[tuple[int, Key, int, int]]:
    """(bucket, key, count, oldest start) of the incidents open at each bucket's end.

    One bucket is one query. For a trend, asking that of every bucket would read the
    incidents resolved after each bucket's end again and again; instead the incidents open
    at some bucket's end stream by, oldest first, and each marks the buckets it spans.
    """
    if len(ends) == 1:
        for bucket, *values, count, start in store.aggregate(
            f"{cte}SELECT b.bucket{i.key_list()}, COUNT(*), MIN(i.started_at) FROM b "
            "JOIN incidents i ON +i.started_at < b.hi "
            f"AND (i.finished_at IS NULL OR i.finished_at >= b.hi){i.joins} "
            f"WHERE {i.condition()} GROUP BY b.bucket{i.key_list()}",
            i.params,
        ):
            yield bucket, tuple(values), count, start
        return
    width = len(ends)
    spans: dict[Key, list[int]] = {}  # +1 where a span starts, -1 after it ends
    oldest: dict[Key, list[int | None]] = {}
    unset: dict[Key, list[int]] = {}  # the next bucket with no oldest yet, from each
    for *key_values, started, finished in store.rows(
        f"SELECT {', '.join(i.keys) or '0'}, i.started_at, i.finished_at FROM incidents i{i.joins} "
        f"WHERE +i.started_at < ? AND (i.finished_at IS NULL OR i.finished_at >= ?) "
        f"AND {i.condition()} ORDER BY +i.started_at",
        (ends[-1], ends[0], *i.params),
    ):
        key = tuple(key_values) if i.keys else ()
        first = bisect.bisect_right(ends, started)  # open at ends[k] when started < ends[k]
        last = width - 1 if finished is None else bisect.bisect_right(ends, finished) - 1
        if first > last:
            continue
        if key not in spans:
            spans[key], oldest[key] = [0] * (width + 1), [None] * width
            unset[key] = list(range(width + 1))
        spans[key][first] += 1
        spans[key][last + 1] -= 1
        nexts, bucket = unset[key], _next_unset(unset[key], first)
        while bucket <= last:  # the first incident to span a bucket is its oldest
            oldest[key][bucket] = started
            nexts[bucket] = bucket + 1
            bucket = _next_unset(nexts, bucket + 1)
    for key, deltas in spans.items():
        count = 0
        for bucket in range(width):
            count += deltas[bucket]
            if count:
                yield bucket, key, count, oldest[key][bucket] or 0


def _next_unset(nexts: list[int], bucket: int) -> int:
    """The first bucket from ``bucket`` on without an oldest incident (path-halving find)."""
    while nexts[bucket] != bucket:
        nexts[bucket] = nexts[nexts[bucket]]
        bucket = nexts[bucket]
    return bucket


def _summary(values: list[int]) -> tuple[int, float, float, float]:
    """How many ``values`` (times, ns) there are, and their mean, median and 90th percentile
    in seconds (the mean of their exact sum); sorts ``values``."""
    values.sort()
    n = len(values)
    return (
        n,
        sum(values) / n / 1e9,
        _percentile(values, n, 5) / 1e9,
        _percentile(values, n, 9) / 1e9,
    )


def _percentile(ranked: Mapping[int, int] | Sequence[int], n: int, tenths: int) -> float:
    """The ``tenths``/10 percentile of ``n`` sorted values of which ``ranked`` holds the two
    around it, interpolated linearly (``percentile_cont``)."""
    position = tenths * (n - 1)
    low, remainder = divmod(position, 10)
    high = low + (1 if remainder else 0)
    return (ranked[low] * (10 - remainder) + ranked[high] * remainder) / 10


def _evidence(
    store: Store,
    since: datetime,
    until: datetime,
    group_by: Sequence[str],
    filters: Filters,
    limit: int | None = None,
) -> dict[Key, Evidence]:
    found: dict[Key, Evidence] = defaultdict(Evidence)
    lo, hi = timeparse.to_ns(since), timeparse.to_ns(until)
    d, i = deployments_matching(group_by, filters), incidents_matching(group_by, filters)
    width = len(group_by)
    dkeys, ikeys = d.key_list(), i.key_list()
    lead = "d.finished_at - c.committed_at"
    for row in store.rows(
        f"SELECT d.id{dkeys}, d.finished_at, COUNT(c.sha), MIN({lead}), MAX({lead}) "
        f"FROM deployments d LEFT JOIN deployment_commits c ON c.deployment_id = d.id "
        f"WHERE d.finished_at >= ? AND d.finished_at < ? AND {d.condition()} "
        f"GROUP BY d.id{dkeys}, d.finished_at ORDER BY d.finished_at, d.id",
        (lo, hi, *d.params),
    ):
        key, (finished, commits, shortest, longest) = tuple(row[1 : 1 + width]), row[1 + width :]
        evidence = found[key]
        if not evidence.keeps(evidence.deployments, limit):
            continue
        evidence.deployments.append(
            Deployed(
                row[0],
                timeparse.from_ns(finished),
                commits,
                None if shortest is None else max(0, shortest) / 1e9,
                None if longest is None else max(0, longest) / 1e9,
            )
        )
    lists = (
        ("failures", "i.started_at >= ? AND i.started_at < ?", (lo, hi)),
        ("resolved", "i.finished_at >= ? AND i.finished_at < ?", (lo, hi)),
        ("open", "+i.started_at < ? AND (i.finished_at IS NULL OR i.finished_at >= ?)", (hi, hi)),
    )
    for name, condition, window in lists:
        for row in store.rows(
            f"SELECT i.id{ikeys}, i.started_at, i.finished_at FROM incidents i{i.joins} "
            f"WHERE {condition} AND {i.condition()} ORDER BY i.started_at, i.id",
            (*window, *i.params),
        ):
            key, (started, finished) = tuple(row[1 : 1 + width]), row[1 + width :]
            if name == "open":
                finished = None  # open at the window's end, whatever happened after it
            kept: list[Failure] = getattr(found[key], name)
            if not found[key].keeps(kept, limit):
                continue
            kept.append(
                Failure(
                    row[0],
                    timeparse.from_ns(started),
                    None if finished is None else timeparse.from_ns(finished),
                )
            )
    return found


def _failure_evidence(
    found: dict[Key, Evidence],
    outcomes: Mapping[str, Outcome],
    since: datetime,
    until: datetime,
    group_by: Sequence[str],
    filters: Filters,
    limit: int | None = None,
) -> None:
    """The failed deployments, recoveries and rework behind each group's numbers (at most
    ``limit`` of each a group)."""
    lo, hi = timeparse.to_ns(since), timeparse.to_ns(until)

    def key(placed: Placed) -> Key | None:
        if not filters.admits(placed):
            return None
        return tuple(placed.field(name) for name in group_by)

    rework: dict[str, tuple[Placed, list[str]]] = {}
    for outcome in sorted(
        outcomes.values(), key=lambda o: (o.deployment.finished_at, o.deployment.id)
    ):
        for placed in outcome.rework():
            if lo <= placed.finished_at < hi and key(placed) is not None:
                rework.setdefault(placed.id, (placed, []))[1].append(outcome.deployment.id)
        group = key(outcome.deployment)
        if not outcome.failed or group is None:
            continue
        evidence = found[group]
        if lo <= outcome.deployment.finished_at < hi and evidence.keeps(evidence.failed, limit):
            evidence.failed.append(outcome)
        end = outcome.recovered_at
        if end is not None and lo <= end < hi and evidence.keeps(evidence.recovered, limit):
            evidence.recovered.append(outcome)
        if outcome.unrecovered_at(hi) and evidence.keeps(evidence.unrecovered, limit):
            evidence.unrecovered.append(outcome)
    for placed, remediates in sorted(rework.values(), key=lambda r: (r[0].finished_at, r[0].id)):
        group = key(placed)
        assert group is not None  # noqa: S101 - filtered above
        if found[group].keeps(found[group].rework, limit):
            found[group].rework.append((placed, remediates))
