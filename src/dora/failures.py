"""Change failures on deployments: which deployments failed, why, and what remediated them.

Pure functions over one service and environment's deployments in the order they finished
(``finished_at``, then id), as DORA (2024) and Datadog's change failure detection count
them: a change failure is a *deployment* that needed remediation, never an incident as
such. The rules, each naming the failed deployment and the deployment that remediated it:

* **rollback**: a deployment whose commit SHA (its version when it has no SHA) equals an
  earlier deployment's but not the one just before it is a rollback to that earlier
  deployment (the latest one of that SHA or version); the deployment right after the
  rollback's target is the change failure. ``V1 → V2 → V3 → V1``: V2 failed, the second
  V1 remediated it. Deploying the same version twice in a row is no rollback.
* **hotfix**: a deployment whose version, or the subject of a commit it shipped, matches
  the hotfix pattern (``HOTFIX``, case-insensitive ``hotfix`` as a word) rolls forward over
  the deployment just before it, which failed.
* **revert**: a deployment that ships a commit reverting another (git writes "This reverts
  commit SHA." in its message) rolls forward over the deployment that first shipped SHA.
* **manual**: ``dora deployment mark ID --failed`` marks a deployment failed, with the
  remediation it names (a deployment id, or the first later deployment of a version);
  ``--stable`` clears every rule's verdict on it. A mark overrides the rules.

Incidents link to deployments elsewhere (the store finds the deployment behind each); here
they are reasons given with the history (``Deployed.incidents``).

A deployment that remediates a failure that stands is *rework* (deployment rework rate).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

#: Datadog's default rollforward rule for hotfixes: the word, in any case.
HOTFIX = r"(?i)\bhotfix\b"

#: What ``git revert`` writes in the message of the commit it makes.
_REVERTS = re.compile(r"\bThis reverts commit ([0-9a-fA-F]{7,64})\b")

ROLLBACK, ROLLFORWARD = "rollback", "rollforward"


def reverted_sha(message: str) -> str | None:
    """The commit a commit message says it reverts (``This reverts commit SHA.``), lower
    case, or None."""
    found = _REVERTS.search(message)
    return found[1].lower() if found else None


@dataclass(frozen=True)
class Shipped:
    """A commit a deployment shipped, as the rules read it."""

    sha: str
    subject: str | None = None
    #: the commit this one reverts, when its message says so
    reverts: str | None = None


@dataclass(frozen=True)
class Mark:
    """``dora deployment mark``: failed (True) or stable (False), and for a failure the
    remediation it names: a deployment id, or a version whose next deployment it is."""

    failed: bool
    remediation_id: str | None = None
    remediation_version: str | None = None
    remediation_type: str | None = None
    #: made by the deployment's service, env and version: Datadog is told so too (``PATCH
    #: /api/v2/dora/deployments``), and marks the one of them that finished last
    by_version: bool = False


class Deployed(NamedTuple):
    """One deployment of the history, as the rules read it (a named tuple: made in about a
    quarter of the time a frozen dataclass takes, once per deployment of a history)."""

    id: str
    commit_sha: str | None = None
    version: str | None = None
    commits: tuple[Shipped, ...] = ()
    mark: Mark | None = None
    #: ids of the incidents linked to this deployment (the store links them)
    incidents: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a deployment failed: the rule, the deployment that remediated it (None for an
    incident or a mark that names none), and a line for people."""

    rule: str  # "rollback", "hotfix", "revert", "incident" or "manual"
    remediated_by: str | None
    remediation_type: str | None
    detail: str


@dataclass
class Verdict:
    """What the rules found about one deployment."""

    failed: bool = False
    reasons: list[Reason] = field(default_factory=list)
    #: a manual --stable mark cleared what the rules found
    cleared: bool = False
    #: the failures this deployment remediates, by id (it is rework when any stands)
    remediates: list[str] = field(default_factory=list)

    @property
    def remediations(self) -> list[tuple[str, str | None]]:
        """(deployment id, type) of each deployment that remediated this failure."""
        found = {r.remediated_by: r.remediation_type for r in self.reasons if r.remediated_by}
        return list(found.items())


@dataclass(frozen=True)
class Effect:
    """What the arrival of one deployment shows about an earlier one: that it failed, by
    which rule, remediated by the deployment that arrived."""

    failed: str
    rule: str  # "rollback", "hotfix" or "revert"
    remediated_by: str
    remediation_type: str  # "rollback" or "rollforward"
    detail: str


class Context(NamedTuple):
    """What the rules need to know of the deployments before one, in its history: the one
    just before; the latest earlier deployment of the same SHA or version (a rollback's
    target) and the one right after it; and, for each commit a shipped commit reverts
    (as the revert names it), the first deployment that shipped it. A store finds each with
    an index; ``scan`` keeps them as it goes, one for each deployment."""

    previous: Deployed | None = None
    rollback_target: Deployed | None = None
    after_target: Deployed | None = None
    shippers: Mapping[str, Deployed] = MappingProxyType({})


def effects(
    deployed: Deployed, context: Context, *, hotfix: str | re.Pattern[str] = HOTFIX
) -> list[Effect]:
    """The failures the arrival of ``deployed`` shows, in the order of the rules: the one
    place the rollback, hotfix and revert rules are written."""
    pattern = re.compile(hotfix) if isinstance(hotfix, str) else hotfix
    found: list[Effect] = []
    key, previous = deployment_key(deployed), context.previous
    # rollback: back to an earlier SHA or version, not the one just before
    if (
        key is not None
        and previous is not None
        and key != deployment_key(previous)
        and context.rollback_target is not None
        and context.after_target is not None
    ):
        found.append(
            Effect(
                context.after_target.id,
                "rollback",
                deployed.id,
                ROLLBACK,
                f"rolled back by {deployed.id} to {_shown(key)}, deployed by "
                f"{context.rollback_target.id}",
            )
        )
    # hotfix: a rollforward over the deployment just before
    if previous is not None and (why := _hotfix(deployed, pattern)):
        found.append(
            Effect(previous.id, "hotfix", deployed.id, ROLLFORWARD, f"{deployed.id} {why}")
        )
    # revert: a rollforward over the deployment that first shipped the reverted commit (one
    # effect on it however many of its commits are reverted: the first names it)
    reverted: set[str] = set()
    for commit in deployed.commits:
        shipper = context.shippers.get(commit.reverts) if commit.reverts else None
        if shipper is not None and shipper.id != deployed.id and shipper.id not in reverted:
            reverted.add(shipper.id)
            subject = f" ({commit.subject})" if commit.subject else ""
            found.append(
                Effect(
                    shipper.id,
                    "revert",
                    deployed.id,
                    ROLLFORWARD,
                    f"commit {(commit.reverts or '')[:12]} it shipped was reverted by "
                    f"{commit.sha[:12]}{subject}, shipped by {deployed.id}",
                )
            )
    return found


def scan(history: Sequence[Deployed], *, hotfix: str | re.Pattern[str] = HOTFIX) -> list[Effect]:
    """Every effect in ``history`` (one service and env, in the order the deployments
    finished), in that order: what a store keeps, deployment by deployment."""
    pattern = re.compile(hotfix) if isinstance(hotfix, str) else hotfix
    found: list[Effect] = []
    last_of_key: dict[tuple[str, str], int] = {}
    first_shipped: dict[str, int] = {}
    for n, deployed in enumerate(history):
        key = deployment_key(deployed)
        target = last_of_key.get(key) if key is not None else None
        shippers = {}
        for commit in deployed.commits:
            if (
                commit.reverts
                and (at := _first_shipping(first_shipped, commit.reverts)) is not None
            ):
                shippers[commit.reverts] = history[at]
        context = Context(
            previous=history[n - 1] if n else None,
            rollback_target=history[target] if target is not None else None,
            after_target=history[target + 1] if target is not None and target + 1 < n else None,
            shippers=shippers,
        )
        found += effects(deployed, context, hotfix=pattern)
        for commit in deployed.commits:
            first_shipped.setdefault(commit.sha.lower(), n)
        if key is not None:
            last_of_key[key] = n
    return found


def detect(
    history: Sequence[Deployed], *, hotfix: str | re.Pattern[str] = HOTFIX
) -> dict[str, Verdict]:
    """The verdict on each deployment of ``history`` (one service and env, in the order
    the deployments finished) that failed, was cleared, or remediates a failure: the rules'
    effects, linked incidents, then manual marks over both. A deployment missing from the
    answer neither failed nor remediated anything."""
    verdicts: dict[str, Verdict] = {}
    position = {deployed.id: n for n, deployed in enumerate(history)}
    causes: dict[str, list[tuple[int, Reason]]] = {}
    for effect in scan(history, hotfix=hotfix):
        reason = Reason(effect.rule, effect.remediated_by, effect.remediation_type, effect.detail)
        causes.setdefault(effect.failed, []).append((position[effect.remediated_by], reason))
    for n, deployed in enumerate(history):
        for incident in deployed.incidents:
            reason = Reason("incident", None, None, f"incident {incident} followed it")
            causes.setdefault(deployed.id, []).append((n, reason))
    for failed_id, found in causes.items():
        verdicts[failed_id] = judge([reason for _, reason in sorted(found, key=lambda i: i[0])])
    for n, deployed in enumerate(history):
        if (mark := deployed.mark) is not None:
            remediation = _named_remediation(history, position, n, mark)
            kind = mark.remediation_type
            if kind is None and remediation is not None:
                back = _is_rollback_to(history, n, remediation)
                kind = ROLLBACK if back else ROLLFORWARD
            reasons = verdicts.get(deployed.id, Verdict()).reasons
            verdicts[deployed.id] = judge(reasons, mark, remediation, kind)
    for failed_id, verdict in list(verdicts.items()):
        if verdict.failed:
            for remediation, _ in verdict.remediations:
                verdicts.setdefault(remediation, Verdict()).remediates.append(failed_id)
    return verdicts


def judge(
    reasons: Sequence[Reason],
    mark: Mark | None = None,
    remediation: str | None = None,
    remediation_type: str | None = None,
) -> Verdict:
    """The verdict on a deployment from what the rules and incidents found (``reasons``, as
    they came) and its manual mark, which overrides them: ``--stable`` clears a failure,
    ``--failed`` makes one, remediated by ``remediation`` (the deployment the mark names,
    found by id or version) of ``remediation_type``."""
    verdict = Verdict(failed=bool(reasons), reasons=list(dict.fromkeys(reasons)))
    if mark is None:
        return verdict
    if not mark.failed:
        verdict.cleared, verdict.failed = verdict.failed, False
        return verdict
    verdict.failed = True
    detail = "marked failed by hand"
    if remediation is not None:
        detail += f", remediated by {remediation}"
    verdict.reasons.insert(0, Reason("manual", remediation, remediation_type, detail))
    return verdict


def _named_remediation(
    history: Sequence[Deployed], position: dict[str, int], n: int, mark: Mark
) -> str | None:
    """The deployment a --failed mark names as its remediation: by id, or the first
    deployment of the version after the failed one (as Datadog reads a version)."""
    if mark.remediation_id is not None:
        return mark.remediation_id
    if mark.remediation_version is not None:
        return next((d.id for d in history[n + 1 :] if d.version == mark.remediation_version), None)
    return None


def _is_rollback_to(history: Sequence[Deployed], n: int, remediation: str) -> bool:
    """Whether the deployment ``remediation`` deploys what was deployed before ``n``."""
    later = next((d for d in history[n + 1 :] if d.id == remediation), None)
    key = deployment_key(later) if later is not None else None
    return key is not None and any(deployment_key(d) == key for d in history[:n])


def deployment_key(deployed: Deployed) -> tuple[str, str] | None:
    """What a rollback compares: the commit SHA, else the version, else nothing."""
    if deployed.commit_sha:
        return ("sha", deployed.commit_sha.lower())
    if deployed.version:
        return ("version", deployed.version)
    return None


def _shown(key: tuple[str, str]) -> str:
    kind, value = key
    return f"commit {value[:12]}" if kind == "sha" else f"version {value}"


def _hotfix(deployed: Deployed, pattern: re.Pattern[str]) -> str | None:
    """Why ``deployed`` is a hotfix (its version, or a commit's subject), or None."""
    if deployed.version and pattern.search(deployed.version):
        return f"is a hotfix (version {deployed.version})"
    for commit in deployed.commits:
        if commit.subject and pattern.search(commit.subject):
            return f"shipped hotfix commit {commit.sha[:12]} ({commit.subject})"
    return None


def _first_shipping(first_shipped: dict[str, int], reverted: str) -> int | None:
    """The position of the deployment that first shipped ``reverted`` (a full SHA, or the
    abbreviation a hand-written revert message may give)."""
    if (found := first_shipped.get(reverted)) is not None:
        return found
    matches = [n for sha, n in first_shipped.items() if _names(reverted, sha)]
    return min(matches) if matches else None


def _names(reverted: str, sha: str) -> bool:
    """Whether a revert naming ``reverted`` (a full SHA, or the abbreviation a hand-written
    message may give) names the commit ``sha``."""
    return sha.lower().startswith(reverted) if len(reverted) < 40 else sha.lower() == reverted
