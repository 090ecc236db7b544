"""Keeping the change-failure rules' effects (``dora.failures``) up to date in the store.

The store keeps each effect the rules find (``change_failures``: which deployment failed,
by which rule, shown by the arrival of which deployment), as deployments are written,
written once for both engines (``?`` placeholders, SQL both understand). Reports read
the effects, with the marks and the incidents linked to deployments, to give verdicts.

The effects of a deployment depend only on the deployments before it in its history
(service and env, in the order they finished). So a deployment recorded as the latest of
its history adds its own effects, found with a few indexed look-ups (``add``), and costs
the same however long the history; one recorded late, recorded again with other facts, or
moved to another service or env changes what follows it, and its histories are scanned
again whole (``rescan``). Either way the effects are those of the history as if every
deployment had been recorded in time order.

The hotfix rule's pattern is a setting, so the effects also depend on it: the store keeps
the pattern they were found with (``detection_settings``, m009). A store that has none
(made before m009: its deployments recorded before m006 have no effects at all) or another
(a command was given another pattern) has every history scanned again (``rescan_all``)
before a write or a report uses the effects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from dora import failures, timeparse
from dora.events import Deployment

if TYPE_CHECKING:
    from dora.store.sql import Connection, History

#: The facts of a deployment the rules read, besides its commits.
FACTS = "service, env, finished_at, commit_sha, version"

#: Commits that can matter to the default hotfix pattern: reverts, and subjects it can
#: match (a superset: the pattern itself is applied in Python).
_CANDIDATE_COMMITS = "(c.reverts IS NOT NULL OR LOWER(c.subject) LIKE '%hotfix%')"
#: ... and to any other pattern: reverts, and every subject (a regular expression gives no
#: safe prefilter in SQL in general).
_ANY_SUBJECT = "(c.reverts IS NOT NULL OR c.subject IS NOT NULL)"

#: The name of the hotfix pattern in ``detection_settings``.
HOTFIX_SETTING = "hotfix_pattern"


def _candidates(hotfix: str) -> str:
    """The condition on commits ``c`` that keeps those the rules can read with ``hotfix``."""
    return _CANDIDATE_COMMITS if hotfix == failures.HOTFIX else _ANY_SUBJECT


def stored_hotfix(db: Connection) -> str | None:
    """The hotfix pattern the store's effects were found with; None if it has none (a store
    from before m009, or one where no deployment was written since)."""
    row = db.execute(
        "SELECT value FROM detection_settings WHERE name = ?", (HOTFIX_SETTING,)
    ).fetchone()
    return None if row is None else str(row[0])


def rescan_all(
    db: Connection,
    hotfix: str,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Find the effects of every history again with ``hotfix``, and keep that pattern as the
    store's; return how many deployments were scanned. ``progress(done, total)`` hears the
    deployments scanned so far after each history. The caller's transaction must keep other
    writers out."""
    histories = [
        (service, env, n)
        for service, env, n in db.execute(
            "SELECT service, env, COUNT(*) FROM deployments GROUP BY service, env"
        )
    ]
    total: int = sum(int(n) for *_, n in histories)
    done = 0
    held = _holds_failures(db)  # once: what the first histories find is not to forget
    for service, env, n in sorted(histories, key=lambda h: (h[0], h[1] or "")):
        rescan(db, [(service, env)], hotfix=hotfix, held=held)
        done += n
        if progress is not None:
            progress(done, total)
    db.execute(
        "INSERT INTO detection_settings (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (HOTFIX_SETTING, hotfix),
    )
    return total


def is_latest(db: Connection, deployment: Deployment) -> bool:
    """Whether no deployment of ``deployment``'s history finished after it (by finish, then
    id): recording it adds to the end of its history."""
    env, params = same_env("env", deployment.env)
    later = db.execute(
        f"SELECT 1 FROM deployments WHERE service = ? AND {env} AND (finished_at, id) > (?, ?) "
        "LIMIT 1",
        (deployment.service, *params, timeparse.to_ns(deployment.finished_at), deployment.id),
    ).fetchone()
    return later is None


def add(db: Connection, deployment: Deployment, *, hotfix: str = failures.HOTFIX) -> None:
    """Keep the effects of ``deployment``, the latest of its history, just written (with the
    commits it was credited with), as the rules find them with the pattern ``hotfix``."""
    env, params = same_env("env", deployment.env)
    history = (deployment.service, *params)
    where = f"service = ? AND {env}"
    finished = timeparse.to_ns(deployment.finished_at)

    def one(sql: str, values: Sequence[Any]) -> failures.Deployed | None:
        found = db.execute(f"SELECT id, commit_sha, version FROM deployments {sql}", values)
        row = found.fetchone()
        return None if row is None else failures.Deployed(row[0], row[1], row[2])

    before = f"WHERE {where} AND (finished_at, id) < (?, ?)"
    previous = one(
        f"{before} ORDER BY finished_at DESC, id DESC LIMIT 1", (*history, finished, deployment.id)
    )
    shipped = tuple(
        failures.Shipped(sha, subject, reverts)
        for sha, subject, reverts in db.execute(
            "SELECT c.sha, c.subject, c.reverts FROM deployment_commits c WHERE "
            f"c.deployment_id = ? AND {_candidates(hotfix)} ORDER BY c.committed_at DESC, c.sha",
            (deployment.id,),
        )
    )
    sha = deployment.git.commit_sha if deployment.git else None
    this = failures.Deployed(deployment.id, sha, deployment.version, shipped)
    target = after = None
    if (key := failures.deployment_key(this)) is not None:
        same = "commit_sha = ?" if key[0] == "sha" else "commit_sha IS NULL AND version = ?"
        # found through the index of its SHA or version (``+``, ``|| ''``: not along the
        # finish index, which would walk the whole history back when there is none)
        target_row = db.execute(
            f"SELECT id, commit_sha, version, finished_at FROM deployments WHERE {where} "
            f"AND {same} AND (+finished_at, id || '') < (?, ?) "
            "ORDER BY +finished_at DESC, id || '' DESC LIMIT 1",
            (*history, key[1], finished, deployment.id),
        ).fetchone()
        if target_row is not None:
            target = failures.Deployed(target_row[0], target_row[1], target_row[2])
            after = one(
                f"WHERE {where} AND (finished_at, id) > (?, ?) ORDER BY finished_at, id LIMIT 1",
                (*history, target_row[3], target_row[0]),
            )
    shippers = {}
    for commit in this.commits:
        if commit.reverts and commit.reverts not in shippers:
            shipper = _first_shipper(db, deployment, commit.reverts)
            if shipper is not None:
                shippers[commit.reverts] = shipper
    context = failures.Context(previous, target, after, shippers)
    _insert(db, failures.effects(this, context, hotfix=hotfix))


def rescan(
    db: Connection,
    histories: Iterable[History],
    *,
    hotfix: str = failures.HOTFIX,
    held: bool | None = None,
) -> None:
    """Find the effects of each of these histories again, from its first deployment, with
    the hotfix pattern ``hotfix``. ``held``: whether the store held any change failure
    before (None: look)."""
    # a store that holds no change failure has none to forget (a first backfill): reading
    # each history's ids again to delete nothing cost a fifth of the finding. (The caller
    # holds these histories: no one else writes their failures before this transaction ends.)
    if held is None:
        held = _holds_failures(db)
    for service, env in sorted(histories, key=lambda history: (history[0], history[1] or "")):
        condition, params = same_env("d.env", env)
        where = f"WHERE d.service = ? AND {condition}"
        shipped: dict[str, list[failures.Shipped]] = {}
        # from the commits' own service and env (m012): never a look per deployment
        shipped_here, _ = same_env("c.env", env)
        for deployment_id, sha, subject, reverts in db.execute(
            f"SELECT c.deployment_id, c.sha, c.subject, c.reverts FROM deployment_commits c "
            f"WHERE c.service = ? AND {shipped_here} AND {_candidates(hotfix)} "
            "ORDER BY c.deployment_id, c.committed_at DESC, c.sha",
            (service, *params),
        ):
            shipped.setdefault(deployment_id, []).append(failures.Shipped(sha, subject, reverts))
        reverted = {c.reverts for listed in shipped.values() for c in listed if c.reverts}
        history = [
            failures.Deployed(deployment_id, sha, version, tuple(shipped.get(deployment_id, ())))
            for deployment_id, sha, version in db.execute(
                f"SELECT d.id, d.commit_sha, d.version FROM deployments d {where} "
                "ORDER BY d.finished_at, d.id",
                (service, *params),
            )
        ]
        if reverted:  # a reverted commit is one of a deployment's shipped commits, any subject
            history = _with_shipped(db, history, reverted, where, (service, *params))
        if held:
            db.execute(
                "DELETE FROM change_failures WHERE cause_id IN "
                f"(SELECT d.id FROM deployments d {where})",
                (service, *params),
            )
        _insert(db, failures.scan(history, hotfix=hotfix))


def _holds_failures(db: Connection) -> bool:
    return db.execute("SELECT 1 FROM change_failures LIMIT 1").fetchone() is not None


def _with_shipped(
    db: Connection,
    history: list[failures.Deployed],
    reverted: set[str],
    where: str,
    params: Sequence[Any],
) -> list[failures.Deployed]:
    """``history`` with the commits that reverts name added to the deployments that shipped
    them, so that the revert rule finds the first of them."""
    extra: dict[str, list[failures.Shipped]] = {}
    for sha in sorted(reverted):
        low, high = _sha_range(sha)
        for deployment_id, found in db.execute(
            f"SELECT c.deployment_id, c.sha FROM deployments d JOIN deployment_commits c "
            f"ON c.deployment_id = d.id {where} AND c.sha >= ? AND c.sha < ?",
            (*params, low, high),
        ):
            extra.setdefault(deployment_id, []).append(failures.Shipped(found))
    return [
        failures.Deployed(
            d.id,
            d.commit_sha,
            d.version,
            d.commits + tuple(c for c in extra.get(d.id, ()) if c not in d.commits),
        )
        for d in history
    ]


def _first_shipper(
    db: Connection, deployment: Deployment, reverted: str
) -> failures.Deployed | None:
    """The deployment of ``deployment``'s history that first shipped the commit ``reverted``
    names (each commit is kept by the first deployment of a history that shipped it)."""
    env, params = same_env("d.env", deployment.env)
    low, high = _sha_range(reverted)
    row = db.execute(
        "SELECT d.id, d.commit_sha, d.version FROM deployment_commits c JOIN deployments d "
        f"ON d.id = c.deployment_id WHERE c.sha >= ? AND c.sha < ? AND d.service = ? AND {env} "
        "AND d.id != ? ORDER BY d.finished_at, d.id LIMIT 1",
        (low, high, deployment.service, *params, deployment.id),
    ).fetchone()
    return None if row is None else failures.Deployed(row[0], row[1], row[2])


def _sha_range(reverted: str) -> tuple[str, str]:
    """The SHAs a revert's ``reverted`` names, as a range (an abbreviation names every SHA
    it begins; SHAs are lower-case hex, so ``g`` comes after all of them)."""
    return (reverted, reverted + "\x01") if len(reverted) >= 40 else (reverted, reverted + "g")


def _insert(db: Connection, found: Sequence[failures.Effect]) -> None:
    if found:
        db.executemany(
            "INSERT INTO change_failures (cause_id, failed_id, rule, remediation_type, detail) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (cause_id, failed_id, rule) DO NOTHING",
            [(e.remediated_by, e.failed, e.rule, e.remediation_type, e.detail) for e in found],
        )


def same_env(column: str, env: str | None) -> tuple[str, tuple[str, ...]]:
    """A condition that ``column`` holds ``env`` (NULL for none), in a form both engines
    can answer from an index, and its parameters."""
    return (f"{column} IS NULL", ()) if env is None else (f"{column} = ?", (env,))
