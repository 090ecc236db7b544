"""Change failures on deployments, end to end: events in the store, figures out of a report.

First a fixture small enough to check by hand, with every rule of README's "How a
deployment fails"; then random histories checked against a reference written here.

The fixture's window is the week [2026-11-01, 2026-11-08) UTC. Deployments (service, env,
team; version, SHA, commits) and incidents, in time order:

  api prod (payments), by version without SHA
    a1 V1  11-01 00:00
    a2 V2  11-01 06:00  failed: a4 rolls back to V1 (a1), a2 is right after it; 9h
    a3 V3  11-01 12:00  no rule; marked failed, remediation "the next V1" = a4; 3h
    a4 V1  11-01 15:00  the rollback: rework (of a2 and a3, counted once)
  api staging (payments), by SHA (versions do not matter once there is a SHA)
    s1 A 1.0  11-02 00:00
    s2 B 1.0  11-02 01:00  failed: s3 rolls back to A; 1h (same version as s1: no matter)
    s3 A 1.1  11-02 02:00  the rollback: rework
    s4 C 1.2  11-02 04:00  s5 rolls back to A (s3), s4 right after it; cleared: --stable
    s5 A 1.3  11-02 05:00  a rollback of a failure that does not stand: no rework
  web prod (edge)
    w1 1.3.0         11-03 00:00
    w2 1.4.0         11-03 02:00  failed: w3 is a hotfix version; 2h
    w3 1.4.1-hotfix  11-03 04:00  rework
    w4 1.5.0         11-03 08:00  failed: w5 ships a "Hotfix: ..." commit; 4h
    w5 1.5.1         11-03 12:00  rework
  worker prod (data)
    k1 3.0  11-04 00:00  ships X; failed: k3 reverts X; 6h
    k2 3.1  11-04 03:00  ships Y
    k3 3.2  11-04 06:00  ships Z, which reverts X: rework
  search (discovery), no version or SHA: only incidents fail them
    q1 prod     11-05 00:00  failed: i1 and i3; recovered when the later ends, i3 at 08:00: 8h
    q2 staging  11-05 02:00  failed: i2 (no env: links across envs); open: unrecovered
    i1 search prod      11-05 03:00 -> 05:00  latest search prod deployment before: q1
    i3 search prod      11-05 03:30 -> 08:00  q1 too
    i2 search (no env)  11-05 04:00 -> open   latest search deployment of any env: q2
  billing prod (ledger)
    b1 11-06 00:00  failed: i5 names it; recovered at i5's end, 20:00: 20h
    b2 11-06 10:00  failed: i4; 3h
    i4 team ledger, no service, no env  11-06 12:00 -> 13:00  the team's latest: b2
    i5 billing prod, names b1           11-06 14:00 -> 20:00  named: b1, not b2 (latest)
  cron prod (ops)
    c1 11-06 00:00  failed by i6 only without a link window; 37h
    i6 cron prod  11-07 12:00 -> 13:00  36h after c1: a 1-day link window leaves it unlinked

Recovery times, hours: s2 1, w2 2, a3 3, b2 3, w4 4, k1 6, q1 8, a2 9, b1 20 (and c1 37
without a window); every recovery ends in the window.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from dora import failures, metrics, verdicts
from dora.events import Deployment, Incident, build
from dora.gitmeta import Commit
from dora.store import Store, open_store
from dora.store.base import stored
from dora.timeparse import from_ns, parse_timestamp, to_ns

SINCE = parse_timestamp("2026-11-01T00:00:00Z")
UNTIL = parse_timestamp("2026-11-08T00:00:00Z")
H = 3600.0
A, B, C = "a" * 40, "b" * 40, "c" * 40
X, Y, Z = "1" * 40, "2" * 40, "3" * 40

#: The figures of change failures (and the deployments they are shares of).
KEYS = (
    "deployments",
    "failed_deployments",
    "change_failure_rate",
    "recovered_failed_deployments",
    "median_recovery_time_seconds",
    "mean_recovery_time_seconds",
    "p90_recovery_time_seconds",
    "unrecovered_failed_deployments",
    "rework_deployments",
    "deployment_rework_rate",
)


def mark(
    store: Store,
    deployment_id: str,
    failed: bool,
    remediation_id: str | None = None,
    remediation_version: str | None = None,
    remediation_type: str | None = None,
) -> None:
    """``dora deployment mark``: the store's own ``save_mark``."""
    store.save_mark(
        deployment_id,
        failures.Mark(failed, remediation_id, remediation_version, remediation_type),
    )


def at(text: str):
    return parse_timestamp(f"2026-{text}Z")


def ident(name: str) -> str:
    return f"fixture-{name}".ljust(16, "0")


def deployment(name, service, env, team, finished, version=None, sha=None, commits=()):
    """A deployment event with the commits it shipped ((sha, subject, reverts) each)."""
    event = build(
        Deployment,
        {
            "id": ident(name),
            "service": service,
            "env": env,
            "team": team,
            "version": version,
            "started_at": at(finished),
            "finished_at": at(finished),
            "git": {"commit_sha": sha} if sha else None,
        },
    )
    shipped = [Commit(c_sha, at(finished), subject, reverts) for c_sha, subject, reverts in commits]
    return event, shipped


def incident(name, services, env, team, started, finished=None, deployment_id=None):
    data = {"id": ident(name), "services": services, "env": env, "team": team}
    data |= {"started_at": at(started), "finished_at": at(finished) if finished else None}
    data["deployment_id"] = ident(deployment_id) if deployment_id else None
    return build(Incident, data), None


HOTFIX_COMMIT = [("4" * 40, "Hotfix: checkout totals", None)]
FEATURE = [(X, "feat: batch queue", None)]
FIX = [(Y, "fix: retry", None)]
REVERT = [(Z, 'Revert "feat: batch queue"', X)]  # git revert's message names X

FIXTURE = [
    deployment("a1", "api", "prod", "payments", "11-01T00:00", "V1"),
    deployment("a2", "api", "prod", "payments", "11-01T06:00", "V2"),
    deployment("a3", "api", "prod", "payments", "11-01T12:00", "V3"),
    deployment("a4", "api", "prod", "payments", "11-01T15:00", "V1"),
    deployment("s1", "api", "staging", "payments", "11-02T00:00", "1.0", A),
    deployment("s2", "api", "staging", "payments", "11-02T01:00", "1.0", B),
    deployment("s3", "api", "staging", "payments", "11-02T02:00", "1.1", A),
    deployment("s4", "api", "staging", "payments", "11-02T04:00", "1.2", C),
    deployment("s5", "api", "staging", "payments", "11-02T05:00", "1.3", A),
    deployment("w1", "web", "prod", "edge", "11-03T00:00", "1.3.0"),
    deployment("w2", "web", "prod", "edge", "11-03T02:00", "1.4.0"),
    deployment("w3", "web", "prod", "edge", "11-03T04:00", "1.4.1-hotfix"),
    deployment("w4", "web", "prod", "edge", "11-03T08:00", "1.5.0"),
    deployment("w5", "web", "prod", "edge", "11-03T12:00", "1.5.1", commits=HOTFIX_COMMIT),
    deployment("k1", "worker", "prod", "data", "11-04T00:00", "3.0", commits=FEATURE),
    deployment("k2", "worker", "prod", "data", "11-04T03:00", "3.1", commits=FIX),
    deployment("k3", "worker", "prod", "data", "11-04T06:00", "3.2", commits=REVERT),
    deployment("q1", "search", "prod", "discovery", "11-05T00:00"),
    deployment("q2", "search", "staging", "discovery", "11-05T02:00"),
    incident("i1", ["search"], "prod", None, "11-05T03:00", "11-05T05:00"),
    incident("i3", ["search"], "prod", None, "11-05T03:30", "11-05T08:00"),
    incident("i2", ["search"], None, None, "11-05T04:00"),
    deployment("b1", "billing", "prod", "ledger", "11-06T00:00"),
    deployment("b2", "billing", "prod", "ledger", "11-06T10:00"),
    incident("i4", [], None, "ledger", "11-06T12:00", "11-06T13:00"),
    incident("i5", ["billing"], "prod", None, "11-06T14:00", "11-06T20:00", deployment_id="b1"),
    deployment("c1", "cron", "prod", "ops", "11-06T00:00"),
    incident("i6", ["cron"], "prod", None, "11-07T12:00", "11-07T13:00"),
]


def record(path: Path, order: str) -> None:
    """The fixture in time order, shuffled or reversed; then the marks."""
    events = list(FIXTURE)
    if order == "shuffled":
        random.Random(7).shuffle(events)
    elif order == "reversed":
        events.reverse()
    with open_store(path) as store:
        for event, commits in events:
            store.save(event, commits=commits)
        mark(store, ident("a3"), True, remediation_version="V1")  # no rule failed a3
        mark(store, ident("s4"), False)  # clears the rollback's verdict on s4


def figures(deployments: int, recoveries: Sequence[float] = (), **given):
    """The expected change-failure figures of a group: its deployments, the recovery times
    (hours) of the failures it recovered in the window, and the counts given."""
    hours = sorted(recoveries)
    n = len(hours)
    expected = {
        "deployments": deployments,
        "failed_deployments": 0,
        "recovered_failed_deployments": n,
        "median_recovery_time_seconds": _percentile(hours, 0.5) * H if n else None,
        "mean_recovery_time_seconds": sum(hours) / n * H if n else None,
        "p90_recovery_time_seconds": _percentile(hours, 0.9) * H if n else None,
        "unrecovered_failed_deployments": 0,
        "rework_deployments": 0,
    } | given
    if deployments:  # no rate at all for a group without deployments
        expected["change_failure_rate"] = expected["failed_deployments"] / deployments
        expected["deployment_rework_rate"] = expected["rework_deployments"] / deployments
    else:
        expected["change_failure_rate"] = expected["deployment_rework_rate"] = None
    return {key: pytest.approx(expected[key]) for key in KEYS}


def _percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between the two nearest ranks (``percentile_cont``)."""
    position = fraction * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def chosen(figures_: metrics.Figures) -> dict:
    found = figures_.as_dict()
    return {key: found[key] for key in KEYS}


# The expected figures, by service, with no link window.
EXPECTED = {
    # a2 (rollback, 9h), a3 (mark, 3h), s2 (rollback by SHA, 1h); not s4 (--stable).
    # Rework: a4 (remediates a2 and a3: once) and s3; not s5 (its failure was cleared).
    "api": figures(9, [9, 3, 1], failed_deployments=3, rework_deployments=2),
    # w2 (hotfix version, 2h), w4 (hotfix commit subject, 4h); rework w3, w5
    "web": figures(5, [2, 4], failed_deployments=2, rework_deployments=2),
    # k1 (revert, 6h); rework k3
    "worker": figures(3, [6], failed_deployments=1, rework_deployments=1),
    # q1 (i1, i3: the later end, 8h); q2 (i2, open): unrecovered
    "search": figures(2, [8], failed_deployments=2, unrecovered_failed_deployments=1),
    # b1 (i5 names it, 20h), b2 (i4, the team's, 3h)
    "billing": figures(2, [20, 3], failed_deployments=2),
    # c1 (i6, 37h after it finished)
    "cron": figures(1, [37], failed_deployments=1),
    # i4, the team's incident with no service, has a group of its own without deployments
    None: figures(0),
}
TOTAL = figures(
    22,
    [9, 3, 1, 2, 4, 6, 8, 20, 3, 37],
    failed_deployments=11,
    unrecovered_failed_deployments=1,
    rework_deployments=5,
)
# With a 1-day link window, i6 (36h after c1) links to nothing: c1 did not fail.
WINDOWED = EXPECTED | {"cron": figures(1)}
WINDOWED_TOTAL = figures(
    22,
    [9, 3, 1, 2, 4, 6, 8, 20, 3],
    failed_deployments=10,
    unrecovered_failed_deployments=1,
    rework_deployments=5,
)


def test_the_hand_checked_figures_are_what_they_say():
    # the expectations, worked out once more by hand, so that a slip in `figures` shows
    assert TOTAL["failed_deployments"] == 11
    assert TOTAL["change_failure_rate"] == 0.5
    assert TOTAL["median_recovery_time_seconds"] == 5 * H  # (4h + 6h) / 2
    assert TOTAL["mean_recovery_time_seconds"] == 9.3 * H  # 93h / 10
    assert TOTAL["p90_recovery_time_seconds"] == 21.7 * H  # 20h + 0.1 * (37h - 20h)
    assert WINDOWED_TOTAL["median_recovery_time_seconds"] == 4 * H  # 1 2 3 3 [4] 6 8 9 20
    assert WINDOWED_TOTAL["p90_recovery_time_seconds"] == 11.2 * H  # 9h + 0.2 * 11h
    assert EXPECTED["api"]["p90_recovery_time_seconds"] == 7.8 * H  # 3h + 0.8 * 6h
    assert TOTAL["deployment_rework_rate"] == 5 / 22


@pytest.mark.parametrize("order", ["in time", "shuffled", "reversed"])
def test_every_rule_gives_the_hand_checked_figures_in_any_arrival_order(store_db, order):
    record(store_db, order)

    with open_store(store_db, create=False) as store:
        plain = metrics.report(store, SINCE, UNTIL)
        windowed = metrics.report(store, SINCE, UNTIL, link_window=timedelta(days=1))

    assert chosen(plain.total) == TOTAL
    assert {row.key[0]: chosen(row.figures) for row in plain.groups} == EXPECTED
    assert chosen(windowed.total) == WINDOWED_TOTAL
    assert {row.key[0]: chosen(row.figures) for row in windowed.groups} == WINDOWED


def test_each_fixture_deployment_fails_by_the_rule_the_docstring_gives(store_db):
    record(store_db, "shuffled")

    with open_store(store_db, create=False) as store:
        found = {}
        for event, _ in FIXTURE:
            if isinstance(event, Deployment):
                outcome = verdicts.outcome(store, event.id)
                rules = [(r.rule, r.remediated_by) for r in outcome.verdict.reasons]
                found[event.id[8:10]] = (rules, outcome.verdict.cleared)

    failed = {name: rules for name, (rules, _) in found.items() if rules}
    assert failed == {
        "a2": [("rollback", ident("a4"))],
        "a3": [("manual", ident("a4"))],
        "s2": [("rollback", ident("s3"))],
        "s4": [("rollback", ident("s5"))],  # found by the rule, then cleared
        "w2": [("hotfix", ident("w3"))],
        "w4": [("hotfix", ident("w5"))],
        "k1": [("revert", ident("k3"))],
        "q1": [("incident", None), ("incident", None)],  # i1, i3
        "q2": [("incident", None)],  # i2
        "b1": [("incident", None)],  # i5, named
        "b2": [("incident", None)],  # i4, the team's
        "c1": [("incident", None)],  # i6
    }
    assert [name for name, (_, cleared) in found.items() if cleared] == ["s4"]


def test_a_failure_marked_by_hand_recovers_when_its_incidents_ended_even_before_the_window(
    store_db,
):
    # m1 is marked failed, naming no remediation: it recovers when its incidents end, as a
    # failure found by incidents does. j1 ended before the window: m1 was recovered all
    # through it, not an unrecovered failure at its end.
    with open_store(store_db) as store:
        for event, commits in (
            deployment("m1", "api", "prod", "payments", "10-30T00:00"),
            incident("j1", ["api"], "prod", None, "10-30T01:00", "10-30T02:00"),
        ):
            store.save(event, commits=commits)
        mark(store, ident("m1"), True)
        report = metrics.report(store, SINCE, UNTIL, group_by=())

    assert report.total.unrecovered_failed_deployments == 0
    assert report.total.recovered_failed_deployments == 0  # recovered before the window


def test_an_incident_links_to_a_deployment_finished_at_the_instant_it_started(store_db):
    # t1 and t2 finish at the instant i7 starts: "at or before" it, and of the two the
    # greater id, t2, is the one linked; t3 finishes a second after: not before it
    with open_store(store_db) as store:
        for event, commits in (
            deployment("t1", "api", "prod", "payments", "11-02T00:00"),
            deployment("t2", "api", "prod", "payments", "11-02T00:00"),
            deployment("t3", "api", "prod", "payments", "11-02T00:00:01"),
            incident("i7", ["api"], "prod", None, "11-02T00:00", "11-02T01:00"),
        ):
            store.save(event, commits=commits)
        report = metrics.report(store, SINCE, UNTIL, group_by=())
        linked = {
            name: verdicts.outcome(store, ident(name)).verdict.failed for name in ("t1", "t2", "t3")
        }

    assert linked == {"t1": False, "t2": True, "t3": False}
    assert chosen(report.total) == figures(3, [1], failed_deployments=1)


def test_a_deployment_recorded_after_an_incident_takes_its_link(store_db):
    # the link is kept in the store: a deployment recorded later (a backfill) that finished
    # at the instant the incident started takes the link from the one before it; recorded
    # again under another service, it gives the link back
    with open_store(store_db) as store:
        for event, commits in (
            deployment("b1", "api", "prod", "payments", "11-02T00:00"),
            incident("i9", ["api"], "prod", None, "11-02T06:00", "11-02T07:00"),
            deployment("b2", "api", "prod", "payments", "11-02T06:00"),
        ):
            store.save(event, commits=commits)
        first = {name: verdicts.outcome(store, ident(name)).verdict.failed for name in ("b1", "b2")}
        moved, commits = deployment("b2", "web", "prod", "payments", "11-02T06:00")
        store.save(moved, commits=commits)
        then = {name: verdicts.outcome(store, ident(name)).verdict.failed for name in ("b1", "b2")}
        report = metrics.report(store, SINCE, UNTIL, group_by=())

    assert first == {"b1": False, "b2": True}
    assert then == {"b1": True, "b2": False}
    assert report.total.failed_deployments == 1


def test_an_incident_of_a_team_links_to_a_deployment_of_the_team_recorded_later(store_db):
    # no service named: the team's latest deployment, in the incident's env, whenever it
    # is recorded; an import (several events at once) relinks as single writes do
    with open_store(store_db) as store:
        store.save(incident("i10", [], "prod", "payments", "11-02T06:00", "11-02T07:00")[0])
        store.save_many(
            [
                stored(*deployment("c1", "api", "prod", "payments", "11-02T05:00")),
                stored(*deployment("c2", "web", "prod", "payments", "11-02T05:30")),
                stored(*deployment("c3", "web", "staging", "payments", "11-02T05:45")),
            ]
        )
        linked = {
            name: verdicts.outcome(store, ident(name)).verdict.failed for name in ("c1", "c2", "c3")
        }

    assert linked == {"c1": False, "c2": True, "c3": False}


def test_an_incident_naming_an_unrecorded_deployment_links_once_it_is_recorded(store_db):
    # n1 is named but not recorded yet: the incident links to nothing, not to the latest
    # deployment before it (n0); once n1 arrives (late, from a backfill), it links to n1,
    # however long before the incident it finished (the link window is for guesses)
    window = timedelta(hours=1)
    with open_store(store_db) as store:
        for event, commits in (
            deployment("n0", "api", "prod", "payments", "11-03T00:00"),
            incident("i8", ["api"], "prod", None, "11-03T06:00", "11-03T07:00", "n1"),
        ):
            store.save(event, commits=commits)
        before = metrics.report(store, SINCE, UNTIL, group_by=(), link_window=window)
        late, _ = deployment("n1", "api", "prod", "payments", "11-02T00:00")
        store.save(late)
        after = metrics.report(store, SINCE, UNTIL, group_by=(), link_window=window)
        failed = {
            name: verdicts.outcome(store, ident(name)).verdict.failed for name in ("n0", "n1")
        }

    assert chosen(before.total) == figures(1)
    assert chosen(after.total) == figures(2, [31], failed_deployments=1)
    assert (before.total.failures, after.total.failures) == (1, 1)
    assert failed == {"n0": False, "n1": True}


# --- random histories against a reference written here ----------------------------------

SERVICES = {"api": "payments", "jobs": "payments", "web": "edge"}  # service -> team
ENVS = ("prod", "staging", None)
#: The grid events are placed on: 3 hours apart, from 2 days before the window to 2 after,
#: so that deployments tie and some events fall outside the window.
GRID = 3 * 3600 * 10**9
FIRST = to_ns(SINCE) - 16 * GRID
STEPS = 16 + 56 + 16


#: Any deployment with a SHA.
_ANY = {"service": "x", "started_at": SINCE, "finished_at": SINCE, "git": {"commit_sha": A}}

#: The figures that add up over groups and days.
COUNTED = (
    "deployments",
    "failed_deployments",
    "recovered_failed_deployments",
    "rework_deployments",
)


def random_events(seed: int):
    """Deployments (with their commits), incidents and marks of several services and envs,
    drawn so that rollbacks, hotfixes, reverts and incidents of every kind happen."""
    rng = random.Random(seed)
    deployments: list[tuple[Deployment, list[Commit]]] = []
    shipped: list[str] = []
    for n in range(rng.randrange(12, 28)):
        service = rng.choice(list(SERVICES))
        finished = FIRST + rng.randrange(STEPS) * GRID
        commits = []
        for _ in range(rng.choice([0, 0, 1, 2])):
            sha = f"{rng.getrandbits(160):040x}"
            reverts = None
            if shipped and rng.random() < 0.25:
                reverts = rng.choice(shipped)[: rng.choice([7, 40])]
            subject = rng.choice(["feat: x", "fix: y", "Hotfix: z", "chore"])
            commits.append(Commit(sha, from_ns(finished - GRID), subject, reverts))
        shipped += [c.sha for c in commits]
        sha = rng.choice([None, None, A, B, C])
        event = build(
            Deployment,
            {
                "id": f"random-{seed:03d}-dep-{n:03d}",
                "service": service,
                "team": SERVICES[service],
                "env": rng.choice(ENVS),
                "version": rng.choice(["1", "2", "3", "3.1-hotfix", None]),
                "started_at": from_ns(finished - GRID),
                "finished_at": from_ns(finished),
                "git": {"commit_sha": sha} if sha else None,
            },
        )
        deployments.append((event, commits))
    incidents = []
    for n in range(rng.randrange(4, 14)):
        services = rng.sample(list(SERVICES), rng.choice([0, 1, 1, 2]))
        started = FIRST + rng.randrange(STEPS) * GRID + rng.choice([0, GRID // 2])
        finished = None if rng.random() < 0.25 else started + rng.randrange(1, 30) * GRID // 4
        named = None
        if rng.random() < 0.2:  # names a deployment that finished before it started
            before = [e for e, _ in deployments if to_ns(e.finished_at) <= started]
            named = rng.choice(before).id if before else None
        data = {
            "id": f"random-{seed:03d}-inc-{n:03d}",
            "services": services,
            "team": rng.choice(sorted(set(SERVICES.values()))) if not services else None,
            "env": rng.choice(ENVS),
            "started_at": from_ns(started),
            "finished_at": from_ns(finished) if finished is not None else None,
            "deployment_id": named,
        }
        incidents.append(build(Incident, data))
    marks = []
    # most on early deployments, whose incidents may all have ended before the window
    early = [item for item in deployments if item[0].finished_at < SINCE] or deployments
    targets = {rng.choice(rng.choice([early, early, deployments]))[0].id for _ in range(5)}
    for event, _ in deployments:
        if event.id not in targets:
            continue
        later = [
            e.id
            for e, _ in deployments
            if (e.service, e.env) == (event.service, event.env)
            and e.finished_at > event.finished_at
        ]
        kind = rng.choice(["stable", "failed", "by id", "by version"])
        if kind == "stable":
            marks.append((event.id, False, None, None))
        elif kind == "by id" and later:
            marks.append((event.id, True, rng.choice(later), None))
        elif kind == "by version":
            marks.append((event.id, True, None, rng.choice(["1", "2", "3"])))
        else:
            marks.append((event.id, True, None, None))
    return deployments, incidents, marks


def linked(deployments, incidents, window: timedelta | None) -> dict[str, list[Incident]]:
    """The incidents linked to each deployment, by README's rule: the one an incident
    names, else the latest deployment (by finish, then id) finished at or before it started,
    of one of its services (of its team when it names none), in its env when it has one,
    and at most ``window`` before it when one is given."""
    found: dict[str, list[Incident]] = {}
    for incident in incidents:
        if incident.deployment_id is not None:
            found.setdefault(incident.deployment_id, []).append(incident)
            continue
        started = to_ns(incident.started_at)
        candidates = [
            (to_ns(d.finished_at), d.id)
            for d, _ in deployments
            if to_ns(d.finished_at) <= started
            and (d.service in incident.services if incident.services else d.team == incident.team)
            and (incident.env is None or d.env == incident.env)
            and (window is None or started - to_ns(d.finished_at) <= window.total_seconds() * 1e9)
        ]
        if candidates:
            found.setdefault(max(candidates)[1], []).append(incident)
    return found


def reference(deployments, incidents, marks, window: timedelta | None) -> dict:
    """Each deployment's fate, worked out from the events with ``failures.detect`` per
    history and the definitions of README: whether it failed, when it recovered (ns, None
    while not), and the recorded deployments that remediated it."""
    links = linked(deployments, incidents, window)
    marked = {m[0]: failures.Mark(m[1], m[2], m[3]) for m in marks}
    finish = {d.id: to_ns(d.finished_at) for d, _ in deployments}
    histories: dict[tuple[str, str | None], list[tuple[Deployment, list[Commit]]]] = {}
    for item in deployments:
        histories.setdefault((item[0].service, item[0].env), []).append(item)
    fates = {d.id: (False, None, []) for d, _ in deployments}
    for history in histories.values():
        history.sort(key=lambda item: (to_ns(item[0].finished_at), item[0].id))
        deployed = [
            failures.Deployed(
                d.id,
                d.git.commit_sha if d.git else None,
                d.version,
                tuple(failures.Shipped(c.sha, c.subject, c.reverts) for c in commits),
                marked.get(d.id),
                tuple(i.id for i in links.get(d.id, ())),
            )
            for d, commits in history
        ]
        for deployment_id, verdict in failures.detect(deployed).items():
            if not verdict.failed:
                continue
            remediations = [r for r, _ in verdict.remediations if r in finish]
            ends = [i.finished_at for i in links.get(deployment_id, ())]
            if remediations:
                end = min(finish[r] for r in remediations)
            elif ends and None not in ends:
                end = max(to_ns(e) for e in ends if e is not None)
            else:
                end = None
            fates[deployment_id] = (True, end, remediations)
    return fates


def expected_total(deployments, incidents, marks, window: timedelta | None) -> dict:
    """The change-failure figures of the report of [SINCE, UNTIL) (none without
    deployments in it), from the ``reference`` fates."""
    finish = {d.id: to_ns(d.finished_at) for d, _ in deployments}
    lo, hi = to_ns(SINCE), to_ns(UNTIL)
    failed = unrecovered = 0
    recoveries: list[int] = []
    rework: set[str] = set()
    for deployment_id, (fails, end, remediations) in reference(
        deployments, incidents, marks, window
    ).items():
        if not fails:
            continue
        finished = finish[deployment_id]
        rework |= {r for r in remediations if lo <= finish[r] < hi}
        failed += lo <= finished < hi
        if end is not None and lo <= end < hi:
            recoveries.append(max(0, end - finished))
        unrecovered += finished < hi and (end is None or end >= hi)
    count = sum(lo <= f < hi for f in finish.values())
    if not count:
        return {}
    hours = sorted(r / 3600e9 for r in recoveries)
    return figures(
        count,
        hours,
        failed_deployments=failed,
        unrecovered_failed_deployments=unrecovered,
        rework_deployments=len(rework),
    )


@pytest.mark.parametrize("seed", range(30))
def test_random_histories_give_the_figures_of_the_reference(store_db, seed):
    deployments, incidents, marks = random_events(seed)
    rng = random.Random(-seed)
    window = rng.choice([None, timedelta(hours=rng.choice([2, 12, 48]))])
    arrival = rng.sample(
        [*deployments, *((i, None) for i in incidents)], len(deployments) + len(incidents)
    )
    # some deployments are first recorded with other facts (env, version, SHA, finish,
    # commits) and corrected later: the corrected history is what counts
    for event, commits in rng.sample(deployments, len(deployments) // 5):
        finished = from_ns(FIRST + rng.randrange(STEPS) * GRID)
        wrong = event.model_copy(
            update={
                "env": rng.choice(ENVS),
                "version": rng.choice(["1", "2", "3.1-hotfix", None]),
                "git": None if event.git else build(Deployment, _ANY).git,
                "started_at": finished,
                "finished_at": finished,
            }
        )
        shipped = rng.choice(
            [None, [], [Commit(f"{rng.getrandbits(160):040x}", finished, "Hotfix")]]
        )
        arrival.insert(rng.randrange(arrival.index((event, commits)) + 1), (wrong, shipped))

    with open_store(store_db) as store:
        if seed % 2:  # an import
            store.save_many(stored(e, c) for e, c in arrival)
        else:
            for event, commits in arrival:
                store.save(event, commits=commits)
        for deployment_id, failed, by_id, by_version in marks:
            mark(store, deployment_id, failed, by_id, by_version)
        report = metrics.report(store, SINCE, UNTIL, group_by=(), link_window=window)
        split = metrics.report(
            store, SINCE, UNTIL, group_by=("service", "env"), interval="day", link_window=window
        )
        # --explain lists each incident, where a plain report has the database count them
        explained = metrics.report(
            store, SINCE, UNTIL, group_by=("service", "env"), link_window=window, explain=True
        )
        shown = {  # as `dora deployment show` tells each one's fate
            event.id: verdicts.outcome(store, event.id, link_window=window)
            for event, _ in deployments
        }

    expected = expected_total(deployments, incidents, marks, window)
    if expected:
        assert chosen(report.total) == expected
    # each deployment is in one group and finishes (or recovers) in one day: the groups and
    # the days add up to the total, and the last days' unrecovered are the total's
    for name in COUNTED:
        assert sum(getattr(row.figures, name) for row in split.groups) == getattr(
            report.total, name
        )
        assert sum(getattr(row.figures, name) for row in split.trend) == getattr(report.total, name)
    last = max(row.start for row in split.trend)
    unrecovered = report.total.unrecovered_failed_deployments
    assert sum(row.figures.unrecovered_failed_deployments for row in split.groups) == unrecovered
    assert (
        sum(row.figures.unrecovered_failed_deployments for row in split.trend if row.start == last)
        == unrecovered
    )
    assert [(row.key, row.figures) for row in explained.groups] == [
        (row.key, row.figures) for row in split.groups
    ]
    assert explained.total == split.total
    fates = reference(deployments, incidents, marks, window)
    assert {key: (o.verdict.failed, o.recovered_at) for key, o in shown.items()} == {
        key: (fails, end) for key, (fails, end, _) in fates.items()
    }


def _relisting(seed: int):
    """``random_events`` where deployments also list commits others shipped (as a roll
    forward after a rollback lists the commits since the deployment before it)."""
    deployments, incidents, marks = random_events(seed)
    rng = random.Random(seed)
    pool = [commit for _, commits in deployments for commit in commits]
    relisted = [
        (
            event,
            list(dict.fromkeys([*commits, *rng.sample(pool, min(len(pool), rng.randrange(3)))])),
        )
        for event, commits in deployments
    ]
    return relisted, incidents, marks


@pytest.mark.parametrize("seed", range(10))
def test_commits_listed_again_give_the_same_verdicts_in_any_arrival_order(tmp_path, seed):
    # a commit counts for the first deployment of its history that shipped it; which one
    # that is must not depend on the order deployments were recorded in
    deployments, incidents, marks = _relisting(seed)
    in_time = sorted(deployments, key=lambda item: (item[0].finished_at, item[0].id))
    found = []
    for n, order in enumerate((in_time, random.Random(seed).sample(in_time, len(in_time)))):
        with open_store(tmp_path / f"{n}.db") as store:
            for event, commits in [*order, *((i, None) for i in incidents)]:
                store.save(event, commits=commits)
            for deployment_id, failed, by_id, by_version in marks:
                mark(store, deployment_id, failed, by_id, by_version)
            total = chosen(metrics.report(store, SINCE, UNTIL, group_by=()).total)
            fates = {
                event.id: verdicts.outcome(store, event.id).verdict.reasons
                for event, _ in deployments
            }
        found.append((total, fates))

    assert found[0] == found[1]


# --- deleting events --------------------------------------------------------------------


def _without(deployments, incidents, marks, gone: set[str]):
    """The events as if those of ``gone`` had never been recorded: each deleted deployment's
    commits shipped by the next one of its history that stays (none if none does), marks on
    it dropped, incidents that named it naming none."""
    kept = []
    carried: dict[tuple, list[Commit]] = {}
    for event, commits in sorted(deployments, key=lambda d: (d[0].finished_at, d[0].id)):
        history = (event.service, event.env)
        if event.id in gone:
            carried.setdefault(history, []).extend(commits)
        else:
            kept.append((event, [*commits, *carried.pop(history, [])]))
    staying = [
        incident.model_copy(update={"deployment_id": None})
        if incident.deployment_id in gone
        else incident
        for incident in incidents
        if incident.id not in gone
    ]
    return kept, staying, [m for m in marks if m[0] not in gone]


@pytest.mark.parametrize("seed", range(12))
def test_deleting_events_leaves_the_store_as_if_they_had_never_been_recorded(store_db, seed):
    deployments, incidents, marks = random_events(seed)
    rng = random.Random(seed)
    gone = {e.id for e, _ in rng.sample(deployments, len(deployments) // 3)}
    gone |= {i.id for i in rng.sample(incidents, len(incidents) // 4)}
    window = rng.choice([None, timedelta(hours=12)])

    def seen(store: Store) -> tuple:
        report = metrics.report(
            store, SINCE, UNTIL, group_by=("service", "env"), interval="day", link_window=window
        )
        fates = {
            event.id: verdicts.outcome(store, event.id, link_window=window)
            for event, _ in deployments
            if event.id not in gone
        }
        lead = sorted(
            store.rows("SELECT deployment_id, sha, finished_at, lead_time FROM deployment_commits")
        )
        named = sorted(store.rows("SELECT id, deployment_id FROM incidents"))
        return report.total, [(r.key, r.figures) for r in report.groups], fates, lead, named

    with open_store(store_db) as store:
        for event, commits in rng.sample(deployments, len(deployments)):
            store.save(event, commits=commits)
        for event in incidents:
            store.save(event)
        for deployment_id, failed, by_id, by_version in marks:
            mark(store, deployment_id, failed, by_id, by_version)
        in_order = [e.id for e, _ in deployments if e.id in gone]
        deleted = store.delete("deployment", [*in_order, "never-recorded-0001"])
        assert deleted.ids == in_order
        assert store.delete("incident", sorted(i.id for i in incidents if i.id in gone)).ids
        after = seen(store)
        left = [tuple(row) for row in store.rows("SELECT id FROM deployments ORDER BY id")]

    reference_db = Path(str(store_db)) if isinstance(store_db, Path) else None
    kept, staying, kept_marks = _without(deployments, incidents, marks, gone)
    with open_store(reference_db.with_name("reference.db") if reference_db else store_db) as ref:
        if reference_db is None:  # the same PostgreSQL schema, emptied
            ref.delete("deployment", [e.id for e, _ in deployments])
            ref.delete("incident", [i.id for i in incidents])
        for event, commits in kept:
            ref.save(event, commits=commits)
        for event in staying:
            ref.save(event)
        for deployment_id, failed, by_id, by_version in kept_marks:
            mark(ref, deployment_id, failed, by_id, by_version)
        expected = seen(ref)

    assert left == sorted((e.id,) for e, _ in kept)
    assert after == expected
