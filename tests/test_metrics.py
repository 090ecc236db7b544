"""The metrics against a fixture store whose every figure was worked out by hand.

The window is the week [2026-11-01, 2026-11-08) UTC (7 days). In the store:

deployments (service, env, team, finished_at; commits shipped with their commit times)
  d1 api prod    payments  11-01 00:00 exactly at since: counts; no commits (first deploy)
  d2 api prod    payments  11-03 12:00 commits 11-03 00:00 (12h), 11-02 12:00 (24h)
  d3 api prod    payments  11-05 00:00 commits 11-04 00:00 (24h), 11-05 00:00:01 (after: 0)
  d4 api staging payments  11-06 00:00
  d5 web prod    edge      11-02 00:00 commit 11-01 00:00 (24h)
  d6 web prod    edge      11-08 00:00 exactly at until: outside
  d7 api prod    payments  10-31 23:59:59 before the window; commit 10-31 22:59:59
  d8 web prod    edge      11-04 00:00

incidents (services, env, team, started_at → finished_at)
  i1 api+web prod payments 11-02 00:00 → 11-02 01:00  two services; 1h
  i2 api     prod payments 10-31 00:00 → 11-01 12:00  opened before, resolved inside; 36h
  i3 api     prod payments 11-04 00:00 → open
  i4 db      prod data     11-03 00:00 → 11-03 00:30  a group with no deployments; 30m
  i5 web     prod edge     11-08 00:00 → open         starts exactly at until: outside
  i6 api     staging payments 10-20 00:00 → open      open for 19 days at until
  i7 (none)  prod payments 11-05 00:00 → 11-05 02:00  a team's incident, no service; 2h

incidents linked to the latest deployment finished at or before they started (no rule
applies: no deployment has a SHA or version, no commit a subject)
  i1 → d5 (web's 11-02 00:00 is later than api's d1), i3 → d2, i5 → d6, i7 → d3 (the
  team's latest in prod); i2, i4, i6: none before them
  failed in the window: d2 (not recovered: i3 open), d3 (recovered in 2h), d5 (in 1h);
  d6 failed at until: outside
"""

from __future__ import annotations

import functools
import random
import statistics
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import execute
from conftest import rows as stored_rows
from dora import levels, metrics
from dora.events import Deployment, Incident, build
from dora.gitmeta import Commit
from dora.store import open_store
from dora.timeparse import parse_timestamp, to_ns

SINCE = parse_timestamp("2026-11-01T00:00:00Z")
UNTIL = parse_timestamp("2026-11-08T00:00:00Z")
H, D = 3600.0, 86400.0


@pytest.fixture
def db_path(store_db):
    """Every test here runs on both engines."""
    return store_db


def at(text: str):
    return parse_timestamp(f"2026-{text}Z")


def event_id(name: str) -> str:
    return f"fixture-{name}".ljust(16, "0")


def build_fixture(path: Path) -> Path:
    def deployment(name, service, env, team, finished, commits=None):
        event = build(
            Deployment,
            {
                "id": event_id(name),
                "service": service,
                "env": env,
                "team": team,
                "started_at": at(finished),
                "finished_at": at(finished),
            },
        )
        shipped = None
        if commits is not None:
            shipped = [Commit(f"{name}{n}".ljust(40, "a"), at(c)) for n, c in enumerate(commits)]
        store.save(event, commits=shipped)

    def incident(name, services, env, team, started, finished=None):
        data = {"id": event_id(name), "services": services, "env": env, "team": team}
        data |= {"started_at": at(started), "finished_at": at(finished) if finished else None}
        store.save(build(Incident, data))

    with open_store(path) as store:
        deployment("d1", "api", "prod", "payments", "11-01T00:00:00", commits=[])
        deployment("d2", "api", "prod", "payments", "11-03T12:00", ["11-03T00:00", "11-02T12:00"])
        deployment(
            "d3", "api", "prod", "payments", "11-05T00:00", ["11-04T00:00", "11-05T00:00:01"]
        )
        deployment("d4", "api", "staging", "payments", "11-06T00:00")
        deployment("d5", "web", "prod", "edge", "11-02T00:00", ["11-01T00:00"])
        deployment("d6", "web", "prod", "edge", "11-08T00:00:00", ["11-07T00:00"])
        deployment("d7", "api", "prod", "payments", "10-31T23:59:59", ["10-31T22:59:59"])
        deployment("d8", "web", "prod", "edge", "11-04T00:00")
        incident("i1", ["api", "web"], "prod", "payments", "11-02T00:00", "11-02T01:00")
        incident("i2", ["api"], "prod", "payments", "10-31T00:00", "11-01T12:00")
        incident("i3", ["api"], "prod", "payments", "11-04T00:00")
        incident("i4", ["db"], "prod", "data", "11-03T00:00", "11-03T00:30")
        incident("i5", ["web"], "prod", "edge", "11-08T00:00:00")
        incident("i6", ["api"], "staging", "payments", "10-20T00:00")
        incident("i7", [], "prod", "payments", "11-05T00:00", "11-05T02:00")
    return path


@pytest.fixture
def fixture_store(db_path: Path) -> Path:
    return build_fixture(db_path)


def figures(**given):
    """A group's expected figures: zero counts and no data unless given."""
    expected = {
        "deployments": 0,
        "failures": 0,
        "change_failure_rate": None,
        "resolved_failures": 0,
        "open_failures": 0,
        "oldest_open_failure_age_seconds": None,
        "mttr_seconds": None,
        "median_time_to_restore_seconds": None,
        "p90_time_to_restore_seconds": None,
        "deployment_frequency_per_day": 0.0,
        "median_lead_time_seconds": None,
        "failed_deployments": 0,
        "incidents_per_deployment": None,
        "recovered_failed_deployments": 0,
        "median_recovery_time_seconds": None,
        "mean_recovery_time_seconds": None,
        "p90_recovery_time_seconds": None,
        "unrecovered_failed_deployments": 0,
        "rework_deployments": 0,
        "deployment_rework_rate": None,
    }
    assert set(given) <= set(expected)
    return expected | given


def run(path: Path, **options):
    with open_store(path, create=False) as store:
        return metrics.report(store, SINCE, UNTIL, **options)


def rows(report: metrics.Report):
    return {row.key: row.figures.as_dict() for row in report.groups}


# By service, every figure of every group; the total counts i1 once.
API = figures(
    deployments=4,  # d1 (at since), d2, d3, d4; not d7 (before)
    failures=2,  # i1, i3; not i2 (started before) nor i6
    incidents_per_deployment=0.5,
    failed_deployments=2,  # d2 (i3), d3 (i7)
    change_failure_rate=0.5,
    recovered_failed_deployments=1,  # d3: i7 resolved 2h after it
    mean_recovery_time_seconds=2 * H,
    median_recovery_time_seconds=2 * H,
    p90_recovery_time_seconds=2 * H,
    unrecovered_failed_deployments=1,  # d2: i3 still open
    deployment_rework_rate=0.0,
    resolved_failures=2,  # i1 (1h), i2 (36h)
    open_failures=2,  # i3, i6
    oldest_open_failure_age_seconds=19 * D,  # i6, 10-20 → 11-08
    mttr_seconds=18.5 * H,
    median_time_to_restore_seconds=18.5 * H,
    p90_time_to_restore_seconds=117000.0,  # 1h + 0.9 * (36h - 1h) = 32.5h
    deployment_frequency_per_day=4 / 7,
    median_lead_time_seconds=18 * H,  # of 0, 12h, 24h, 24h
)
WEB = figures(
    deployments=2,  # d5, d8; not d6 (at until)
    failures=1,  # i1; not i5 (at until)
    incidents_per_deployment=0.5,
    failed_deployments=1,  # d5 (i1)
    change_failure_rate=0.5,
    recovered_failed_deployments=1,
    mean_recovery_time_seconds=H,
    median_recovery_time_seconds=H,
    p90_recovery_time_seconds=H,
    deployment_rework_rate=0.0,
    resolved_failures=1,
    mttr_seconds=H,
    median_time_to_restore_seconds=H,
    p90_time_to_restore_seconds=H,
    deployment_frequency_per_day=2 / 7,
    median_lead_time_seconds=D,
)
DB = figures(
    failures=1,
    resolved_failures=1,
    mttr_seconds=1800.0,
    median_time_to_restore_seconds=1800.0,
    p90_time_to_restore_seconds=1800.0,
)
NO_SERVICE = figures(
    failures=1,
    resolved_failures=1,
    mttr_seconds=2 * H,
    median_time_to_restore_seconds=2 * H,
    p90_time_to_restore_seconds=2 * H,
)
TOTAL = figures(
    deployments=6,
    failures=4,  # i1 (once), i3, i4, i7
    incidents_per_deployment=4 / 6,
    failed_deployments=3,  # d2, d3, d5
    change_failure_rate=0.5,
    recovered_failed_deployments=2,  # d5 1h, d3 2h
    mean_recovery_time_seconds=1.5 * H,
    median_recovery_time_seconds=1.5 * H,
    p90_recovery_time_seconds=1.9 * H,
    unrecovered_failed_deployments=1,
    deployment_rework_rate=0.0,
    resolved_failures=4,  # 30m, 1h, 2h, 36h
    open_failures=2,
    oldest_open_failure_age_seconds=19 * D,
    mttr_seconds=(1800 + H + 2 * H + 36 * H) / 4,
    median_time_to_restore_seconds=1.5 * H,  # between 1h and 2h
    p90_time_to_restore_seconds=92880.0,  # rank 2.7 of 4: 2h + 0.7 * 34h = 25.8h
    deployment_frequency_per_day=6 / 7,
    median_lead_time_seconds=D,  # of 0, 12h, 24h, 24h, 24h
)


def test_each_service_and_the_total_have_every_figure_right(fixture_store):
    report = run(fixture_store)

    assert report.group_by == ("service",)
    assert rows(report) == {("api",): API, ("web",): WEB, ("db",): DB, (None,): NO_SERVICE}
    assert list(rows(report)) == [("api",), ("db",), ("web",), (None,)]  # named, then none
    assert report.total.as_dict() == TOTAL


@pytest.mark.parametrize(
    ("benchmarks", "expected"),
    [
        (
            "2024",
            {
                "deployment_frequency": "high",  # 4 in 7 days: at least weekly, not daily
                "lead_time": "elite",  # 18h
                "change_failure_rate": "low",  # 50 %: above high's 20 %
                "time_to_restore": "high",  # median 18.5h: under a day
                "recovery_time": "high",  # median 2h: under a day
            },
        ),
        (
            "2023",
            {
                "deployment_frequency": "high",
                "lead_time": "elite",
                "change_failure_rate": "low",  # 50 %: above medium's 15 %
                "time_to_restore": "high",  # median 18.5h: under a day
                "recovery_time": "high",
            },
        ),
    ],
)
def test_levels_follow_the_chosen_benchmarks(fixture_store, benchmarks, expected):
    report = run(fixture_store, benchmarks=benchmarks)

    assert report.groups[0].figures.levels() == expected
    assert report.groups[1].figures.levels() == {  # db: no deployments
        "deployment_frequency": "low",
        "lead_time": None,
        "change_failure_rate": None,
        "time_to_restore": "elite",
        "recovery_time": None,
    }


@pytest.mark.parametrize(
    ("rate", "level"),
    [(0.0, "elite"), (0.05, "elite"), (0.0501, "high"), (0.10, "high"), (0.15, "medium"),
     (0.1501, "low"), (None, None)],
)  # fmt: skip
def test_change_failure_rate_levels_of_2023_include_their_upper_bound(rate, level):
    assert levels.cfr_level(rate, "2023") == level


@pytest.mark.parametrize(
    ("rate", "level"),
    [(0.0, "elite"), (0.05, "elite"), (0.0501, "high"), (0.10, "high"), (0.15, "high"),
     (0.20, "high"), (0.2001, "low"), (0.40, "low"), (1.0, "low"), (None, None)],
)  # fmt: skip
def test_change_failure_rate_levels_of_2024_never_say_medium(rate, level):
    """2024's typical rates are elite 5 %, high 20 %, medium 10 %, low 40 %: a rate takes
    the best level whose rate it does not exceed, so 10 % is high, never medium."""
    assert levels.cfr_level(rate) == level
    assert levels.cfr_level(rate, "2024") == level


@pytest.mark.parametrize(
    ("seconds", "level"),
    [(3599, "elite"), (3600, "high"), (86399, "high"), (86400, "medium"), (604799, "medium"),
     (604800, "low"), (None, None)],
)  # fmt: skip
def test_time_to_restore_levels_of_2023_exclude_their_upper_bound(seconds, level):
    assert levels.restore_level(seconds, "2023") == level


@pytest.mark.parametrize(
    ("seconds", "level"),
    [(3599, "elite"), (3600, "high"), (86399, "high"), (86400, "low"), (604800, "low"),
     (None, None)],
)  # fmt: skip
def test_recovery_levels_of_2024_exclude_their_upper_bound(seconds, level):
    """2024: elite under an hour, high and medium both under a day, low above."""
    assert levels.restore_level(seconds) == level


@pytest.mark.parametrize(
    ("per_day", "level"),
    [(3.0, "elite"), (1.01, "elite"), (1.0, "high"), (1 / 7, "high"), (0.14, "medium"),
     (1 / 30, "medium"), (0.03, "low"), (0.0, "low")],
)  # fmt: skip
def test_deployment_frequency_levels(per_day, level):
    assert levels.frequency_level(per_day) == level


@pytest.mark.parametrize(
    ("seconds", "level"),
    [(86399, "elite"), (86400, "high"), (604800, "medium"), (30 * 86400, "low")],
)
def test_lead_time_levels(seconds, level):
    assert levels.lead_time_level(seconds) == level


def test_filters_combine_with_grouping(fixture_store):
    report = run(fixture_store, group_by=("team",), filters=metrics.Filters(envs=("prod",)))

    assert rows(report) == {
        ("data",): DB,
        ("edge",): figures(
            deployments=2,
            incidents_per_deployment=0.0,  # i1 is payments' incident...
            failed_deployments=1,  # ...linked to d5, edge's deployment
            change_failure_rate=0.5,
            recovered_failed_deployments=1,
            mean_recovery_time_seconds=H,
            median_recovery_time_seconds=H,
            p90_recovery_time_seconds=H,
            deployment_rework_rate=0.0,
            deployment_frequency_per_day=2 / 7,
            median_lead_time_seconds=D,
        ),
        ("payments",): figures(
            deployments=3,  # d1, d2, d3
            failures=3,  # i1, i3, i7
            incidents_per_deployment=1.0,
            failed_deployments=2,  # d2, d3
            change_failure_rate=2 / 3,
            recovered_failed_deployments=1,
            mean_recovery_time_seconds=2 * H,
            median_recovery_time_seconds=2 * H,
            p90_recovery_time_seconds=2 * H,
            unrecovered_failed_deployments=1,
            deployment_rework_rate=0.0,
            resolved_failures=3,  # i1 1h, i7 2h, i2 36h
            open_failures=1,  # i3; i6 is staging
            oldest_open_failure_age_seconds=4 * D,
            mttr_seconds=13 * H,
            median_time_to_restore_seconds=2 * H,
            p90_time_to_restore_seconds=105120.0,  # 2h + 0.8 * 34h = 29.2h
            deployment_frequency_per_day=3 / 7,
            median_lead_time_seconds=18 * H,
        ),
    }
    assert report.total.deployments == 5
    assert report.total.failures == 4
    assert report.total.incidents_per_deployment == 0.8
    assert report.total.change_failure_rate == 0.6
    assert report.total.open_failures == 1


def test_a_service_filter_keeps_only_that_service_of_a_shared_incident(fixture_store):
    report = run(fixture_store, filters=metrics.Filters(services=("web",)))

    assert rows(report) == {("web",): WEB}
    assert report.total.as_dict() == WEB


def test_repeated_filters_take_any_of_their_values(fixture_store):
    report = run(fixture_store, filters=metrics.Filters(services=("web", "db")))

    assert rows(report) == {("db",): DB, ("web",): WEB}
    assert report.total.failures == 2  # i1 and i4


def test_a_service_filter_applies_when_grouping_by_something_else(fixture_store):
    report = run(fixture_store, group_by=("env",), filters=metrics.Filters(services=("web",)))

    assert rows(report) == {("prod",): WEB}


def test_grouping_by_two_fields(fixture_store):
    report = run(fixture_store, group_by=("service", "env"))

    assert list(rows(report)) == [
        ("api", "prod"),
        ("api", "staging"),
        ("db", "prod"),
        ("web", "prod"),
        (None, "prod"),
    ]
    staging = rows(report)[("api", "staging")]
    assert staging == figures(
        deployments=1,
        incidents_per_deployment=0.0,
        change_failure_rate=0.0,
        deployment_rework_rate=0.0,
        open_failures=1,
        oldest_open_failure_age_seconds=19 * D,
        deployment_frequency_per_day=1 / 7,
    )


def test_by_none_gives_one_row_equal_to_the_total(fixture_store):
    report = run(fixture_store, group_by=())

    assert rows(report) == {(): TOTAL}


def test_an_empty_store_reports_zeros_and_no_data(db_path):
    open_store(db_path).close()

    report = run(db_path)

    assert report.groups == []
    assert report.total.as_dict() == figures()


def test_a_trend_has_a_row_per_bucket_and_group(fixture_store):
    report = run(fixture_store, group_by=(), interval="day")

    days = [(row.start.day, row.figures.deployments, row.figures.failures) for row in report.trend]
    assert days == [(1, 1, 0), (2, 1, 1), (3, 1, 1), (4, 1, 1), (5, 1, 1), (6, 1, 0), (7, 0, 0)]
    open_at_end = [row.figures.open_failures for row in report.trend]
    assert open_at_end == [1, 1, 1, 2, 2, 2, 2]  # i6 throughout, i3 from the 4th
    assert report.trend[0].figures.resolved_failures == 1  # i2
    assert report.trend[0].figures.mttr_seconds == 36 * H


def test_trend_buckets_are_clipped_to_the_window():
    buckets = metrics.split(at("11-04T06:00"), at("11-20T00:00"), "week")

    assert buckets == [
        (at("11-04T06:00"), at("11-09T00:00")),  # Wednesday to Monday
        (at("11-09T00:00"), at("11-16T00:00")),
        (at("11-16T00:00"), at("11-20T00:00")),
    ]
    assert metrics.split(at("11-30T12:00"), parse_timestamp("2027-02-01T00:00Z"), "month") == [
        (at("11-30T12:00"), at("12-01T00:00")),
        (at("12-01T00:00"), parse_timestamp("2027-01-01T00:00Z")),
        (parse_timestamp("2027-01-01T00:00Z"), parse_timestamp("2027-02-01T00:00Z")),
    ]


def test_explain_lists_the_events_behind_each_group(fixture_store):
    report = run(fixture_store, explain=True)
    api = report.groups[0].evidence

    assert [d.id for d in api.deployments] == [event_id(n) for n in ("d1", "d2", "d3", "d4")]
    assert [
        (d.commits, d.shortest_lead_seconds, d.longest_lead_seconds) for d in api.deployments
    ] == [
        (0, None, None),
        (2, 12 * H, D),
        (2, 0.0, D),
        (0, None, None),
    ]
    assert [f.id for f in api.failures] == [event_id("i1"), event_id("i3")]
    assert [f.id for f in api.resolved] == [event_id("i2"), event_id("i1")]
    assert [(f.id, f.finished_at) for f in api.open] == [
        (event_id("i6"), None),
        (event_id("i3"), None),
    ]


def random_store(path: Path, seed: int) -> Path:
    """A store of random deployments and incidents over November, open ones among them."""
    rng = random.Random(seed)
    start = parse_timestamp("2026-11-01T00:00:00Z")
    services, teams, envs = ["api", "web", "db"], ["edge", "data", None], ["prod", "staging"]
    with open_store(path) as store:
        for n in range(60):
            finished = start + timedelta(
                minutes=rng.randrange(0, 20 * 24 * 60, rng.choice([1, 360]))
            )
            data = {"id": f"random-deployment-{n:04d}", "service": rng.choice(services)}
            data |= {"team": rng.choice(teams), "env": rng.choice(envs)}
            store.save(build(Deployment, {**data, "started_at": finished, "finished_at": finished}))
        for n in range(80):
            step = rng.choice([1, 360])  # often exactly on a bucket's boundary
            started = start + timedelta(minutes=rng.randrange(-5 * 24 * 60, 20 * 24 * 60, step))
            length = timedelta(minutes=rng.choice([0, 5, 90, 360, 720, 1440, 2880, 20160]))
            finished = started + length if rng.random() < 0.8 else None
            if finished is not None and finished > parse_timestamp("2026-11-23T00:00:00Z"):
                finished = None
            named = rng.sample(services, rng.choice([0, 1, 1, 2]))
            data = {"id": f"random-incident-{n:04d}", "services": named, "team": rng.choice(teams)}
            data |= {"env": rng.choice(envs), "started_at": started, "finished_at": finished}
            if not named and data["team"] is None:
                data["team"] = "edge"
            store.save(build(Incident, data))
    return path


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("interval", ["day", "week"])
@pytest.mark.parametrize("group_by", [("service",), ("team", "env"), ()])
def test_each_trend_row_equals_a_report_of_its_bucket(db_path, seed, interval, group_by):
    # The trend takes every bucket in one query per figure (and a sweep for open
    # incidents); a report of one bucket takes the plain path. They must agree.
    path = random_store(db_path, seed)
    since, until = parse_timestamp("2026-11-02T06:00:00Z"), parse_timestamp("2026-11-22T00:00:00Z")
    with open_store(path, create=False) as store:
        trend = metrics.report(store, since, until, group_by=group_by, interval=interval).trend
        assert trend
        for row in trend:
            alone = metrics.report(store, row.start, row.end, group_by=group_by)
            expected = {g.key: g.figures.as_dict() for g in alone.groups}
            got = row.figures.as_dict()
            assert got == expected.get(row.key, figures(deployment_frequency_per_day=0.0)), (
                row.start,
                row.key,
            )


def lead_time_store(db, seed: int):
    """Deployments over November, each shipping 0 to 4 commits of its own (unique SHAs, so
    each is credited to it), often at equal lead times, some dated after the deployment."""
    rng = random.Random(seed)
    start = parse_timestamp("2026-11-01T00:00:00Z")
    with open_store(db) as store:
        for n in range(90):
            finished = start + timedelta(hours=rng.randrange(0, 20 * 24, rng.choice([1, 6])))
            data = {"id": f"lead-time-deploy-{n:04d}", "service": rng.choice(["api", "web", "db"])}
            data |= {"team": rng.choice(["edge", "data", None]), "env": rng.choice(["prod", None])}
            data |= {"started_at": finished, "finished_at": finished}
            commits = [
                Commit(
                    f"{seed:02x}{n:04x}{k:02x}".ljust(40, "0"),
                    finished - timedelta(hours=rng.choice([-1, 0, 1, 1, 3, 24, 100])),
                )
                for k in range(rng.choice([0, 1, 2, 3, 4]))
            ]
            store.save(build(Deployment, data), commits=commits)
    return db


def lead_times_by_hand(db, group_by, buckets):
    """The median lead time of each (bucket, group) and of each bucket in all, from the
    stored rows, in Python."""
    values: dict = {}
    with open_store(db, create=False) as store:
        for service, team, env, finished, committed in store.rows(
            "SELECT d.service, d.team, d.env, d.finished_at, c.committed_at "
            "FROM deployments d JOIN deployment_commits c ON c.deployment_id = d.id"
        ):
            fields = {"service": service, "team": team, "env": env}
            for n, (lo, hi) in enumerate(buckets):
                if to_ns(lo) <= finished < to_ns(hi):
                    lead = max(0, finished - committed)
                    values.setdefault((n, tuple(fields[g] for g in group_by)), []).append(lead)
                    values.setdefault((n, None), []).append(lead)
    return {key: statistics.median(found) / 1e9 for key, found in values.items()}


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("group_by", [("service",), ("team", "env"), ("env", "service"), ()])
@pytest.mark.parametrize("seek_share", [0.0, 2.0], ids=["sought", "sorted"])
def test_median_lead_times_equal_the_stored_rows_by_hand_on_each_engine(
    store_db, seed, group_by, seek_share, monkeypatch
):
    # a median is sought in the index of lead times (a long window, grouped by service or
    # not at all) or read and sorted (a short one): both must give the exact middle values,
    # from each commit's stored lead time, on each engine
    monkeypatch.setattr(metrics, "SEEK_SHARE", seek_share)
    db = lead_time_store(store_db, seed)
    since, until = parse_timestamp("2026-11-02T00:00:00Z"), parse_timestamp("2026-11-19T00:00:00Z")
    buckets = metrics.split(since, until, "week")
    with open_store(db, create=False) as store:
        plain = metrics.report(store, since, until, group_by=group_by)
        trend = metrics.report(store, since, until, group_by=group_by, interval="week").trend
    expected = lead_times_by_hand(db, group_by, [(since, until)])
    got = {(0, g.key): g.figures.median_lead_time_seconds for g in plain.groups}
    got[0, None] = plain.total.median_lead_time_seconds
    assert {key: value for key, value in got.items() if value is not None} == expected
    expected = lead_times_by_hand(db, group_by, buckets)
    got = {
        (buckets.index((row.start, row.end)), row.key): row.figures.median_lead_time_seconds
        for row in trend
        if row.figures.median_lead_time_seconds is not None
    }
    assert got == {key: value for key, value in expected.items() if key[1] is not None}


def test_a_deployment_recorded_again_without_commits_moves_their_lead_times(store_db):
    # each commit keeps its deployment's service, team, env and finish beside its lead time:
    # recorded again (other fields, no commits given), they follow the deployment
    db = lead_time_store(store_db, 5)
    with open_store(db) as store:
        moved = store.deployments_by_prefix("lead-time-deploy-0007", 1)[0]
        later = moved.finished_at + timedelta(days=2)
        data = {"id": moved.id, "service": "billing", "team": "money", "env": "staging"}
        data |= {"started_at": later, "finished_at": later}
        store.save(build(Deployment, data))
    since, until = parse_timestamp("2026-11-02T00:00:00Z"), parse_timestamp("2026-11-30T00:00:00Z")
    for group_by in [("service",), ("team", "env")]:
        with open_store(db, create=False) as store:
            report = metrics.report(store, since, until, group_by=group_by)
        got = {(0, g.key): g.figures.median_lead_time_seconds for g in report.groups}
        got[0, None] = report.total.median_lead_time_seconds
        expected = lead_times_by_hand(db, group_by, [(since, until)])
        assert {key: value for key, value in got.items() if value is not None} == expected
        moved_key = ("billing",) if group_by == ("service",) else ("money", "staging")
        assert got[0, moved_key] is not None  # the moved deployment has commits


def make_store_at(store_db, monkeypatch, applied: int) -> None:
    """An empty store made by a dora that knew its first ``applied`` migrations only."""
    from dora.store import migrations, postgres

    with monkeypatch.context() as patch:
        patch.setattr(postgres, "MIGRATIONS", postgres.MIGRATIONS[:applied])
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:applied])
        patch.setattr(
            migrations, "migrate",
            functools.partial(migrations.migrate, migrations=migrations.MIGRATIONS[:applied]),
        )  # fmt: skip
        open_store(store_db).close()


def test_a_store_from_before_stored_lead_times_has_them_filled_on_upgrade(store_db, monkeypatch):
    # a store left at m011 kept each commit's time only: the upgrade gives every commit its
    # deployment's fields and its lead time, and the medians are those of the rows by hand
    make_store_at(store_db, monkeypatch, 11)
    start = to_ns(parse_timestamp("2026-11-03T00:00:00Z"))
    hour = 3600 * 10**9
    for n, (service, team, env) in enumerate([("api", "edge", "prod"), ("web", None, None)] * 3):
        finished = start + n * 7 * hour
        execute(
            store_db,
            "INSERT INTO deployments (id, service, team, env, started_at, finished_at, "
            "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (f"deploy-m011-{n}", service, team, env, finished, finished, finished),
        )
        for k, lead in enumerate([n * hour, -hour, 2 * n * hour][: 1 + n % 3]):
            execute(
                store_db,
                "INSERT INTO deployment_commits (deployment_id, sha, committed_at) "
                "VALUES (?, ?, ?)",
                (f"deploy-m011-{n}", f"{n:02x}{k:02x}".ljust(40, "0"), finished - lead),
            )

    since, until = parse_timestamp("2026-11-02T00:00:00Z"), parse_timestamp("2026-11-30T00:00:00Z")
    with open_store(store_db) as store:
        report = metrics.report(store, since, until, group_by=("service",))

    stored = stored_rows(
        store_db,
        "SELECT c.service, c.team, c.env, c.finished_at, c.lead_time, d.finished_at AS fin, "
        "c.committed_at FROM deployment_commits c JOIN deployments d ON d.id = c.deployment_id",
    )
    assert len(stored) == 12
    for row in stored:
        assert row["finished_at"] == row["fin"]
        assert row["lead_time"] == max(0, row["fin"] - row["committed_at"])
    assert {(r["service"], r["team"], r["env"]) for r in stored} == {
        ("api", "edge", "prod"), ("web", None, None)
    }  # fmt: skip
    expected = lead_times_by_hand(store_db, ("service",), [(since, until)])
    got = {(0, g.key): g.figures.median_lead_time_seconds for g in report.groups}
    assert got | {(0, None): report.total.median_lead_time_seconds} == expected


def test_a_store_from_before_kept_links_has_them_found_on_upgrade(store_db, monkeypatch):
    # a store left at m013 found links at report time: the upgrade finds each incident's
    # link once (by service and env; by team, any env, for an incident with no service)
    from dora import verdicts

    make_store_at(store_db, monkeypatch, 13)
    hour = 3600 * 10**9
    noon = to_ns(parse_timestamp("2026-11-03T12:00:00Z"))
    for name, service, env, finished in (
        ("m013-d1", "api", "prod", noon - 2 * hour),
        ("m013-d2", "api", "prod", noon - hour),
        ("m013-d3", "web", "staging", noon - hour // 2),
        ("m013-d4", "api", "prod", noon + hour),
    ):
        execute(
            store_db,
            "INSERT INTO deployments (id, service, team, env, started_at, finished_at, "
            "recorded_at) VALUES (?, ?, 'payments', ?, ?, ?, ?)",
            (name, service, env, finished, finished, finished),
        )
    for name, env, service in (("m013-i1", "prod", "api"), ("m013-i2", None, None)):
        execute(
            store_db,
            "INSERT INTO incidents (id, name, env, team, started_at, finished_at, recorded_at) "
            "VALUES (?, 'down', ?, 'payments', ?, ?, ?)",
            (name, env, noon, noon + hour, noon),
        )
        if service is not None:
            execute(
                store_db,
                "INSERT INTO incident_services (incident_id, service, position) VALUES (?, ?, 0)",
                (name, service),
            )

    with open_store(store_db) as store:
        failed = {
            name: verdicts.outcome(store, name).verdict.failed
            for name in ("m013-d1", "m013-d2", "m013-d3", "m013-d4")
        }

    assert failed == {"m013-d1": False, "m013-d2": True, "m013-d3": True, "m013-d4": False}
    assert stored_rows(
        store_db, "SELECT incident_id, deployment_id FROM incident_links ORDER BY incident_id"
    ) == [
        {"incident_id": "m013-i1", "deployment_id": "m013-d2"},
        {"incident_id": "m013-i2", "deployment_id": "m013-d3"},
    ]
