"""Change-failure rules over one service and environment's deployments, by hand."""

from __future__ import annotations

import pytest

from dora.failures import Deployed, Mark, Shipped, detect, reverted_sha


def history(*versions: str) -> list[Deployed]:
    """Deployments d1, d2, ... of these versions (no SHA), in the order they finished."""
    return [Deployed(f"d{n}", version=version) for n, version in enumerate(versions, 1)]


def failed(verdicts) -> dict[str, list[str]]:
    """Failed deployment -> the rules that failed it."""
    return {
        deployment: [reason.rule for reason in verdict.reasons]
        for deployment, verdict in verdicts.items()
        if verdict.failed
    }


def rework(verdicts) -> dict[str, list[str]]:
    return {d: v.remediates for d, v in verdicts.items() if v.remediates}


def test_a_rollback_fails_the_deployment_after_its_target():
    verdicts = detect(history("v1", "v2", "v3", "v1"))

    assert failed(verdicts) == {"d2": ["rollback"]}
    [reason] = verdicts["d2"].reasons
    assert (reason.remediated_by, reason.remediation_type) == ("d4", "rollback")
    assert reason.detail == "rolled back by d4 to version v1, deployed by d1"
    assert rework(verdicts) == {"d4": ["d2"]}


def test_the_same_version_twice_in_a_row_is_no_rollback():
    assert detect(history("v1", "v1", "v2", "v2")) == {}


def test_a_rollback_goes_back_to_the_latest_deployment_of_that_version():
    verdicts = detect(history("v1", "v2", "v1", "v3", "v1"))

    assert failed(verdicts) == {"d2": ["rollback"], "d4": ["rollback"]}
    assert rework(verdicts) == {"d3": ["d2"], "d5": ["d4"]}


def test_a_commit_sha_is_compared_before_the_version():
    a, b = "a" * 40, "b" * 40
    deployments = [
        Deployed("d1", commit_sha=a, version="1.0"),
        Deployed("d2", commit_sha=b, version="1.0"),  # same version, another commit
        Deployed("d3", commit_sha=a.upper(), version="1.1"),  # back to commit a
    ]

    assert failed(detect(deployments)) == {"d2": ["rollback"]}


def test_deployments_without_sha_or_version_are_never_rollbacks():
    assert detect([Deployed("d1"), Deployed("d2"), Deployed("d3")]) == {}


@pytest.mark.parametrize("version", ["2.1-hotfix", "HOTFIX-2.1", "2.1 hotfix 3"])
def test_a_hotfix_version_rolls_forward_over_the_deployment_before(version):
    verdicts = detect(history("2.0", "2.1", version))

    assert failed(verdicts) == {"d2": ["hotfix"]}
    [reason] = verdicts["d2"].reasons
    assert (reason.remediated_by, reason.remediation_type) == ("d3", "rollforward")
    assert rework(verdicts) == {"d3": ["d2"]}


def test_hotfix_must_be_a_word():
    assert detect(history("2.0", "hotfixes-are-planned", "nothotfix")) == {}


def test_a_hotfix_commit_subject_rolls_forward_and_the_pattern_can_change():
    deployments = [
        Deployed("d1", version="1"),
        Deployed("d2", version="2"),
        Deployed("d3", version="3", commits=(Shipped("c" * 40, "fix: Hotfix for checkout"),)),
    ]

    assert failed(detect(deployments)) == {"d2": ["hotfix"]}
    assert detect(deployments, hotfix=r"(?i)\burgent\b") == {}


def test_a_first_deployment_that_is_a_hotfix_fails_nothing():
    assert detect(history("hotfix-1")) == {}


def test_a_revert_fails_the_deployment_that_first_shipped_the_commit():
    bad = "b" * 40
    deployments = [
        Deployed("d1", version="1", commits=(Shipped(bad, "feat: new cache"),)),
        Deployed("d2", version="2", commits=(Shipped("c" * 40, "docs"),)),
        Deployed("d3", version="3", commits=(Shipped("d" * 40, 'Revert "feat"', bad),)),
    ]

    verdicts = detect(deployments)

    assert failed(verdicts) == {"d1": ["revert"]}
    [reason] = verdicts["d1"].reasons
    assert (reason.remediated_by, reason.remediation_type) == ("d3", "rollforward")


def test_a_revert_naming_an_abbreviated_sha_still_finds_the_deployment():
    bad = "1234567" + "e" * 33
    deployments = [
        Deployed("d1", commits=(Shipped(bad),)),
        Deployed("d2", commits=(Shipped("f" * 40, "Revert", "1234567"),)),
    ]

    assert failed(detect(deployments)) == {"d1": ["revert"]}


def test_a_revert_of_a_commit_no_deployment_shipped_fails_nothing():
    deployments = [Deployed("d1"), Deployed("d2", commits=(Shipped("f" * 40, "R", "0" * 40),))]

    assert detect(deployments) == {}


def test_linked_incidents_fail_the_deployment_without_a_remediation():
    verdicts = detect([Deployed("d1"), Deployed("d2", incidents=("i1", "i2"))])

    assert failed(verdicts) == {"d2": ["incident", "incident"]}
    assert verdicts["d2"].remediations == []


def test_one_deployment_failed_by_several_rules_is_one_failure_with_every_reason():
    deployments = [
        Deployed("d1", version="1"),
        Deployed("d2", version="2", incidents=("i1",)),
        Deployed("d3", version="3-hotfix"),
        Deployed("d4", version="1"),
    ]

    verdicts = detect(deployments)

    assert failed(verdicts) == {"d2": ["incident", "hotfix", "rollback"]}  # as they came
    assert verdicts["d2"].remediations == [("d3", "rollforward"), ("d4", "rollback")]
    assert rework(verdicts) == {"d3": ["d2"], "d4": ["d2"]}


def test_a_stable_mark_clears_what_the_rules_found_and_its_remediation_is_no_rework():
    deployments = history("v1", "v2", "v3", "v1")
    deployments[1] = Deployed("d2", version="v2", mark=Mark(failed=False))

    verdicts = detect(deployments)

    assert failed(verdicts) == {}
    assert verdicts["d2"].cleared
    assert rework(verdicts) == {}


def test_a_failed_mark_names_its_remediation_by_id_or_by_version():
    by_id = history("1", "2", "3")
    by_id[0] = Deployed("d1", version="1", mark=Mark(True, remediation_id="d3"))
    by_version = history("1", "2", "3")
    by_version[0] = Deployed("d1", version="1", mark=Mark(True, remediation_version="2"))

    for deployments, remediation in ((by_id, "d3"), (by_version, "d2")):
        verdicts = detect(deployments)
        assert failed(verdicts) == {"d1": ["manual"]}
        assert verdicts["d1"].remediations == [(remediation, "rollforward")]
        assert rework(verdicts) == {remediation: ["d1"]}


def test_a_failed_mark_without_a_remediation_is_a_failure_not_yet_remediated():
    deployments = [Deployed("d1", mark=Mark(True)), Deployed("d2")]

    verdicts = detect(deployments)

    assert failed(verdicts) == {"d1": ["manual"]}
    assert verdicts["d1"].remediations == []


@pytest.mark.parametrize(
    ("message", "sha"),
    [
        ('Revert "x"\n\nThis reverts commit ' + "A" * 40 + ".", "a" * 40),
        ("This reverts commit 1234567.", "1234567"),
        ("Reverts nothing", None),
        ("This reverts commit xyz.", None),
    ],
)
def test_the_reverted_commit_is_read_from_the_message_git_writes(message, sha):
    assert reverted_sha(message) == sha


# --- the store keeps the rules' effects, whatever order deployments arrive in ---------------

import random  # noqa: E402

from conftest import rows  # noqa: E402
from dora import failures, timeparse  # noqa: E402
from dora.events import Deployment, build  # noqa: E402
from dora.gitmeta import Commit  # noqa: E402
from dora.store import open_store  # noqa: E402
from dora.store.base import stored  # noqa: E402


def random_history(seed: int, size: int = 12):
    """Deployments of api/prod with versions and SHAs that repeat, hotfixes, and commits
    that revert commits of earlier deployments: (event, commits, as the rules read it)."""
    rng = random.Random(seed)
    made = []
    shipped: list[str] = []
    for n in range(size):
        finished = 1_790_000_000 + n * 3600 + rng.choice([0, 0, 0, 1800])
        version = rng.choice(["1.0", "1.1", "1.2", "1.3-hotfix", None])
        sha = rng.choice([None, "a" * 40, "b" * 40, "c" * 40, f"{n:040x}"])
        commits = []
        for k in range(rng.randrange(3)):
            commit_sha = f"{(n + 1) * 1000 + k:040x}"
            reverts = rng.choice(shipped) if shipped and rng.random() < 0.3 else None
            subject = rng.choice(["feat: x", "Hotfix: y", "fix: z", 'Revert "x"'])
            at = timeparse.from_ns((finished - 600 - k) * 10**9)
            commits.append(
                Commit(commit_sha, at, subject, reverts[: rng.choice([7, 40])] if reverts else None)
            )
        shipped += [c.sha for c in commits]
        event = build(
            Deployment,
            {
                "id": f"deploy-random-{seed:03d}-{n:03d}",
                "service": "api",
                "env": "prod",
                "version": version,
                "started_at": timeparse.from_ns((finished - 60) * 10**9),
                "finished_at": timeparse.from_ns(finished * 10**9),
                "git": {"commit_sha": sha} if sha else None,
            },
        )
        made.append((event, commits))
    return made


def expected_effects(made) -> set[tuple[str, str, str, str]]:
    ordered = sorted(made, key=lambda item: (timeparse.to_ns(item[0].finished_at), item[0].id))
    history = [
        failures.Deployed(
            event.id,
            event.git.commit_sha if event.git else None,
            event.version,
            tuple(failures.Shipped(c.sha, c.subject, c.reverts) for c in commits),
        )
        for event, commits in ordered
    ]
    return {(e.remediated_by, e.failed, e.rule, e.detail) for e in failures.scan(history)}


def stored_effects(db) -> set[tuple[str, str, str, str]]:
    return {
        (r["cause_id"], r["failed_id"], r["rule"], r["detail"])
        for r in rows(db, "SELECT * FROM change_failures")
    }


@pytest.mark.parametrize("seed", range(12))
def test_the_store_keeps_the_effects_of_the_history_in_time_order(store_db, seed):
    made = random_history(seed)
    arrival = random.Random(seed).sample(made, len(made))  # late, early, in any order

    with open_store(store_db) as store:
        for event, commits in arrival:
            store.save(event, commits=commits)

    assert stored_effects(store_db) == expected_effects(made)


@pytest.mark.parametrize("seed", range(4))
def test_an_import_keeps_the_same_effects(store_db, seed):
    made = random_history(seed)

    with open_store(store_db) as store:
        store.save_many(stored(e, c) for e, c in random.Random(seed).sample(made, len(made)))

    assert stored_effects(store_db) == expected_effects(made)


def test_recording_in_time_order_takes_the_quick_way_with_the_same_effects(store_db):
    made = random_history(99, size=30)

    with open_store(store_db) as store:
        for event, commits in sorted(made, key=lambda item: item[0].finished_at):
            store.save(event, commits=commits)

    assert stored_effects(store_db) == expected_effects(made)
    assert stored_effects(store_db)  # the history has some failures to find


# --- the hotfix pattern is a setting: the store keeps the one its effects were found with ---


def release(n: int, version: str, subject: str = "feat: x") -> tuple[Deployment, list[Commit]]:
    finished = 1_790_000_000 + n * 3600
    event = build(
        Deployment,
        {
            "id": f"deploy-pattern-{n:03d}",
            "service": "api",
            "env": "prod",
            "version": version,
            "started_at": timeparse.from_ns((finished - 60) * 10**9),
            "finished_at": timeparse.from_ns(finished * 10**9),
            "git": {"commit_sha": f"{n:040x}"},
        },
    )
    commit = Commit(f"{n + 100:040x}", timeparse.from_ns((finished - 600) * 10**9), subject)
    return event, [commit]


def failed_ids(db) -> set[str]:
    return {r["failed_id"] for r in rows(db, "SELECT failed_id FROM change_failures")}


def test_another_hotfix_pattern_finds_every_history_again_and_is_kept(store_db):
    made = [release(1, "1.0"), release(2, "1.1"), release(3, "1.2", "urgent: fix checkout")]

    with open_store(store_db) as store:
        for event, commits in made:
            store.save(event, commits=commits)
        assert failed_ids(store_db) == set()
        done = store.use_hotfix(r"(?i)\burgent\b")
        assert store.use_hotfix(r"(?i)\burgent\b") is None  # kept: nothing to do again

    assert done is not None
    assert (done.previous, done.deployments) == (failures.HOTFIX, 3)
    assert failed_ids(store_db) == {"deploy-pattern-002"}
    assert rows(store_db, "SELECT * FROM detection_settings") == [
        {"name": "hotfix_pattern", "value": r"(?i)\burgent\b"}
    ]
    with open_store(store_db) as store:  # a writer that names no pattern follows the store's
        event, commits = release(4, "1.3", "urgent: again")
        store.save(event, commits=commits)
    assert failed_ids(store_db) == {"deploy-pattern-002", "deploy-pattern-003"}


def test_a_write_with_another_pattern_finds_the_effects_again_first(store_db):
    with open_store(store_db) as store:
        store.use_hotfix(r"(?i)\burgent\b")
        for event, commits in [release(1, "1.0"), release(2, "1.1", "urgent: y")]:
            store.save(event, commits=commits)
    assert failed_ids(store_db) == {"deploy-pattern-001"}

    with open_store(store_db) as other:  # another writer, given the default pattern
        other.hotfix = failures.HOTFIX
        event, commits = release(3, "1.2-hotfix")
        other.save(event, commits=commits)

    assert failed_ids(store_db) == {"deploy-pattern-002"}
    assert rows(store_db, "SELECT value FROM detection_settings")[0]["value"] == failures.HOTFIX


@pytest.mark.parametrize("seed", range(4))
def test_any_pattern_keeps_the_effects_of_the_history_in_time_order(store_db, seed):
    made = random_history(seed)
    pattern = r"(?i)^fix\b"  # matches none of what the default prefilter keeps

    with open_store(store_db) as store:
        store.use_hotfix(pattern)
        for event, commits in random.Random(seed).sample(made, len(made)):
            store.save(event, commits=commits)

    ordered = sorted(made, key=lambda item: (timeparse.to_ns(item[0].finished_at), item[0].id))
    history = [
        failures.Deployed(
            event.id,
            event.git.commit_sha if event.git else None,
            event.version,
            tuple(failures.Shipped(c.sha, c.subject, c.reverts) for c in commits),
        )
        for event, commits in ordered
    ]
    expected = {
        (e.remediated_by, e.failed, e.rule, e.detail)
        for e in failures.scan(history, hotfix=pattern)
    }
    assert stored_effects(store_db) == expected
