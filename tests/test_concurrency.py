"""Many processes recording into one new store at the same moment: nothing lost, nothing
locked; on both engines."""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import count, rows
from dora.store import open_store
from dora.store.migrations import MIGRATIONS
from test_e2e import dora_command

WRITER = """
import sys, time
from dora.events import Deployment, Incident, build
from dora.store import open_store

path, worker, n, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
while time.time() < start:  # all writers open the new store at the same moment
    time.sleep(0.001)
with open_store(path) as store:
    for i in range(n):
        store.save(build(Deployment, {
            "id": f"deploy-w{worker:02d}-{i:05d}", "service": f"svc-{worker}",
            "started_at": "-1h", "finished_at": "now",
        }))
        # every writer also updates one shared incident: upserts, never duplicates
        store.save(build(Incident, {
            "id": "incident-shared-0001", "services": [f"svc-{worker}"], "started_at": "-1h",
        }))
"""


def at_once(path, runs, *, timeout: float = 120) -> list[tuple[int, str]]:
    """Run each of ``runs`` (a script and its arguments after the store's path) as a
    process of its own, all starting their work at one moment (their last argument); the
    exit code and stderr of each."""
    start = time.time() + 1.0  # time to start and connect
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path), *map(str, args), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for script, *args in runs
    ]
    return [
        (p.returncode, err) for p, (_, err) in ((p, p.communicate(timeout=timeout)) for p in procs)
    ]


def test_writer_processes_lose_nothing_on_a_new_store(store_db):
    path = store_db
    workers, per_worker = 8, 60
    outcomes = at_once(path, [(WRITER, w, per_worker) for w in range(workers)])

    assert outcomes == [(0, "")] * workers
    assert count(path, "deployments") == workers * per_worker
    assert rows(path, "SELECT count(DISTINCT service) AS n FROM deployments") == [{"n": workers}]
    assert count(path, "incidents") == 1
    assert count(path, "incident_services") == 1
    assert [r["name"] for r in rows(path, "SELECT name FROM dora_migrations")] == [
        name for name, _ in MIGRATIONS
    ]


def test_concurrent_dora_commands_all_record(store_db):
    path = store_db
    runs = 12
    procs = [
        subprocess.Popen(
            [
                *dora_command(),
                "deployment",
                "--service",
                f"svc-{i}",
                "--started-at",
                "-5m",
                "--skip-git",
                "--db",
                str(path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(runs)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    results = [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]

    assert [code for code, _, _ in results] == [0] * runs, results
    assert not any("locked" in err for _, _, err in results)
    ids = {out.strip() for _, out, _ in results}
    assert {r["id"] for r in rows(path, "SELECT id FROM deployments")} == ids
    assert len(ids) == runs


def test_of_concurrent_resolves_exactly_one_wins(store_db):
    path = store_db
    opened = subprocess.run(
        [
            *dora_command(),
            "incident",
            "open",
            "--service",
            "api",
            "--started-at",
            "-1h",
            "--skip-git",
            "--db",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    incident_id = opened.stdout.strip()
    runs = 6
    procs = [
        subprocess.Popen(
            [*dora_command(), "incident", "resolve", incident_id, "--db", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(runs)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)

    assert codes == [0] + [1] * (runs - 1), outputs
    losers = [err for p, (_, err) in zip(procs, outputs, strict=True) if p.returncode]
    assert all(f"incident {incident_id} is already resolved" in err for err in losers)


SHIPPER = """
import sys, time
from datetime import datetime, timedelta, timezone
from dora.events import Deployment, build
from dora.gitmeta import Commit
from dora.store import open_store

path, worker, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ROUNDS = 4
base = datetime(2026, 11, 1, tzinfo=timezone.utc)
shared = [Commit(f"{n:040x}", base) for n in range(2000)]
own = [Commit(f"{worker + 1:02x}".ljust(40, "f"), base)]
with open_store(path) as store:
    for round in range(ROUNDS):  # a service each round, every writer at the same moment
        while time.time() < start + round * 0.5:
            time.sleep(0.001)
        store.save(
            build(Deployment, {
                "id": f"deploy-r{round}-w{worker:02d}-0000", "service": f"api-{round}",
                "env": "prod", "started_at": base,
                "finished_at": base + timedelta(minutes=worker + 1),
            }),
            commits=[*shared, *own],
        )
"""


def test_writers_shipping_the_same_commits_at_once_credit_each_commit_once(store_db):
    open_store(store_db).close()
    workers = 8
    outcomes = at_once(store_db, [(SHIPPER, w) for w in range(workers)], timeout=60)

    assert outcomes == [(0, "")] * workers
    credited = rows(
        store_db,
        "SELECT deployment_id, count(*) AS n FROM deployment_commits "
        "GROUP BY deployment_id ORDER BY deployment_id",
    )
    # of each service, the first deployment (by finish) keeps the 2000 shared commits; each
    # keeps its own
    assert credited == [
        {"deployment_id": f"deploy-r{r}-w{w:02d}-0000", "n": 2001 if w == 0 else 1}
        for r in range(4)
        for w in range(workers)
    ]


PATTERN_WRITER = """
import sys, time
from dora.events import Deployment, build
from dora.store import open_store

path, worker, n, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
while time.time() < start:
    time.sleep(0.001)
with open_store(path) as store:  # names no pattern: follows the store's
    for i in range(n):
        version = f"1.{i}" + ("-hotfix" if i % 3 == 1 else "-urgent" if i % 3 == 2 else "")
        at = 1_790_000_000 + i * 60
        store.save(build(Deployment, {
            "id": f"deploy-p{worker:02d}-{i:05d}", "service": f"svc-{worker}", "env": "prod",
            "version": version, "started_at": at - 10, "finished_at": at,
        }))
"""

PATTERN_SWITCHER = """
import sys, time
from dora.store import open_store

path, worker, n, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
while time.time() < start:
    time.sleep(0.001)
for i in range(n):
    with open_store(path) as store:
        store.use_hotfix(r"(?i)\\burgent\\b" if (i + worker) % 2 else r"(?i)\\bhotfix\\b")
    time.sleep(0.01)
"""


def test_writers_and_pattern_changes_at_once_leave_the_effects_of_the_kept_pattern(store_db):
    from dora import failures

    path = store_db
    open_store(path).close()
    scripts = [(PATTERN_WRITER, w, 40) for w in range(4)] + [
        (PATTERN_SWITCHER, w, 8) for w in (0, 1)
    ]
    outcomes = at_once(path, scripts)

    assert outcomes == [(0, "")] * len(scripts)
    [kept] = rows(path, "SELECT value FROM detection_settings")
    expected = set()
    for w in range(4):
        history = [
            failures.Deployed(r["id"], None, r["version"])
            for r in rows(
                path,
                "SELECT id, version FROM deployments WHERE service = ? ORDER BY finished_at, id",
                (f"svc-{w}",),
            )
        ]
        expected |= {
            (e.failed, e.remediated_by) for e in failures.scan(history, hotfix=kept["value"])
        }
    stored = {(r["failed_id"], r["cause_id"]) for r in rows(path, "SELECT * FROM change_failures")}
    assert stored == expected
    assert len(expected) == 4 * 13


LINK_WRITER = """
import sys, time
from dora.events import Deployment, Incident, build
from dora.store import open_store

path, worker, n, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
while time.time() < start:
    time.sleep(0.001)
with open_store(path) as store:
    for i in range(n):
        # deployments and incidents of one service, interleaved in time, recorded at once
        # by different writers in an order of their own (a backfill beside an on-call);
        # writers 0 and 4, 2 and 6 record deployments that finish at the same instants
        at = 1_790_000_000 + (i * 4 + worker % 4) * 60
        if worker % 2:
            store.save(build(Incident, {
                "id": f"incident-l{worker:02d}-{i:05d}", "services": ["svc-shared"],
                "env": "prod", "started_at": at + 30, "finished_at": at + 90,
            }))
        else:
            store.save(build(Deployment, {
                "id": f"deploy-l{worker:02d}-{i:05d}", "service": "svc-shared",
                "env": "prod", "started_at": at - 10, "finished_at": at,
            }))
"""


def test_writers_of_incidents_and_deployments_at_once_keep_every_link(store_db):
    # each incident's link is kept by the writes: with writers of both at once, every
    # incident ends linked to the latest deployment before it, as if written one by one
    open_store(store_db).close()
    workers, per_worker = 8, 40
    outcomes = at_once(store_db, [(LINK_WRITER, w, per_worker) for w in range(workers)])

    assert outcomes == [(0, "")] * workers
    deployments = rows(store_db, "SELECT id, finished_at FROM deployments")
    expected = {}
    for incident in rows(store_db, "SELECT id, started_at FROM incidents"):
        before = [
            (d["finished_at"], d["id"])
            for d in deployments
            if d["finished_at"] <= incident["started_at"]
        ]
        if before:
            expected[incident["id"]] = max(before)[1]
    kept = {
        r["incident_id"]: r["deployment_id"]
        for r in rows(store_db, "SELECT incident_id, deployment_id FROM incident_links")
    }
    assert len(expected) == workers // 2 * per_worker  # a deployment before each
    assert kept == expected
