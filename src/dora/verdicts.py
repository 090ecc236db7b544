"""What became of deployments, read from the store when a report is made: whether each
failed, why, which deployments remediated it, and when it recovered.

The store keeps what the rules found as deployments were recorded (``change_failures``) and
the marks people gave (``deployment_marks``); incidents are linked to deployments here, at
report time, so that a link always reflects every deployment recorded so far:

* an incident that names its deployment (``dora incident open --deployment``) is linked to
  it;
* any other is linked to the latest deployment that finished at or before the incident
  started, of one of the incident's services (of its team when it names no service), in
  the incident's env when it has one, and at most ``link_window`` before it when that is
  set. Ties (two deployments finished at the same instant) go to the greater id.

A deployment failed when a rule found it or an incident is linked to it, unless a mark says
otherwise (``failures.judge``). It recovered when the first of its remediation deployments
finished; with none, when the last of its linked incidents was resolved (never while one is
open). A deployment that remediates a failure that stands is *rework*.

Verdicts are those of everything recorded now: a rollback recorded today makes last week's
deployment a failure in last week's report too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from dora import failures, timeparse

if TYPE_CHECKING:
    from dora.store import Store


@dataclass(frozen=True, slots=True)
class Placed:
    """A deployment as reports place it: its group fields and when it finished (ns)."""

    id: str
    service: str
    team: str | None
    env: str | None
    finished_at: int

    def field(self, name: str) -> str | None:
        value: str | None = getattr(self, name)
        return value


@dataclass(frozen=True, slots=True)
class Linked:
    """An incident linked to a deployment; times in ns, ``finished_at`` None while open."""

    id: str
    started_at: int
    finished_at: int | None
    #: the incident names the deployment itself (``--deployment``)
    named: bool


@dataclass(slots=True)
class Outcome:
    """What became of one deployment that failed, was cleared by a mark, or has evidence:
    the evidence (the rules' reasons, linked incidents, a mark and the remediation it names),
    gathered first, then what follows from it (``settle``) and, judged when asked, the
    verdict."""

    deployment: Placed
    #: the incidents linked to it, by start (``outcomes``; ``each_outcome`` counts them)
    incidents: list[Linked] = field(default_factory=list)
    #: the deployments that remediated it, by id (those recorded)
    remediations: dict[str, Placed] = field(default_factory=dict)
    #: what the rules found
    reasons: list[failures.Reason] = field(default_factory=list)
    mark: failures.Mark | None = None
    #: the remediation its mark names, and its type
    named: str | None = None
    named_type: str | None = None
    #: how many incidents are linked to it, how many of them are open, and when the last
    #: of the others was resolved (ns): what its verdict needs of them
    linked: int = field(default=0, init=False)
    linked_open: int = field(default=0, init=False)
    last_resolved: int | None = field(default=None, init=False)
    #: whether it failed: ``verdict.failed``, known without writing out every reason
    failed: bool = field(default=False, init=False)
    #: the recorded deployments among ``verdict.remediations``
    remedies: list[Placed] = field(default_factory=list, init=False)
    #: when its recovery ended (ns): the first remediation's finish, else the last linked
    #: incident's resolution; None while not recovered, or when it did not fail
    recovered_at: int | None = field(default=None, init=False)
    _verdict: failures.Verdict | None = field(default=None, init=False, repr=False)

    @property
    def verdict(self) -> failures.Verdict:
        """The verdict, with a reason per linked incident (``failures.judge``), made the
        first time it is asked for."""
        if self._verdict is None:
            reasons = [
                failures.Reason("incident", None, None, _incident_detail(self.deployment, i))
                for i in self.incidents
            ]
            if self.linked > len(self.incidents):  # counted, not listed (``each_outcome``)
                count = self.linked - len(self.incidents)
                detail = f"{count} incident{'s' if count > 1 else ''} linked to it"
                reasons.append(failures.Reason("incident", None, None, detail))
            reasons += self.reasons
            self._verdict = failures.judge(reasons, self.mark, self.named, self.named_type)
        return self._verdict

    def link(self, incident: Linked) -> None:
        """Adds an incident linked to it."""
        self.incidents.append(incident)
        self.count_links(1, int(incident.finished_at is None), incident.finished_at)

    def count_links(self, linked: int, still_open: int, last_resolved: int | None) -> None:
        """Adds ``linked`` incidents linked to it, of which ``still_open`` are open and the
        others were resolved at ``last_resolved`` at the latest (the summary of ``link``)."""
        self.linked += linked
        self.linked_open += still_open
        if last_resolved is not None and (
            self.last_resolved is None or last_resolved > self.last_resolved
        ):
            self.last_resolved = last_resolved

    def settle(self) -> Outcome:
        """Works out ``failed``, ``remedies`` and ``recovered_at`` from the evidence, once it
        is all in (a report asks them of every failed deployment, several times)."""
        if len(self.incidents) > 1:
            self.incidents.sort(key=lambda i: (i.started_at, i.id))
        self.failed = (
            self.mark.failed if self.mark is not None else bool(self.reasons or self.linked)
        )
        if not self.failed:
            return self
        named = [self.named] if self.mark is not None and self.named is not None else []
        ids = named + [r.remediated_by for r in self.reasons if r.remediated_by is not None]
        if ids:
            self.remedies = [
                placed
                for remediation in (dict.fromkeys(ids) if len(ids) > 1 else ids)
                if (placed := self.remediations.get(remediation)) is not None
            ]
        if self.remedies:
            self.recovered_at = min(placed.finished_at for placed in self.remedies)
        elif self.linked and not self.linked_open:
            self.recovered_at = self.last_resolved
        return self

    @property
    def recovery_ns(self) -> int | None:
        """Recovery time: from the deployment's finish to its recovery (never below 0)."""
        end = self.recovered_at
        return None if end is None else max(0, end - self.deployment.finished_at)

    def unrecovered_at(self, moment: int) -> bool:
        """Whether, failed, it had finished before ``moment`` and not recovered by then."""
        if not self.failed or self.deployment.finished_at >= moment:
            return False
        end = self.recovered_at
        return end is None or end >= moment

    def rework(self) -> list[Placed]:
        """The recorded deployments that remediated this failure, if it stands."""
        return self.remedies


_PLACED = "d.id, d.service, d.team, d.env, d.finished_at"


def outcomes(
    store: Store, since: datetime, until: datetime, *, link_window: timedelta | None = None
) -> dict[str, Outcome]:
    """The outcome of every deployment that finished before ``until`` and can matter to a
    report of ``[since, until)`` or any part of it: it failed and finished in the window,
    recovered in it, was not recovered at some moment of it, or remediated a failure in it.
    (Others may be left out: a failure wholly before ``since`` is.) Each lists its linked
    incidents one by one (``Outcome.incidents``), as ``--explain`` shows them;
    ``each_outcome`` gives the same outcomes with the incidents counted, one at a time."""
    lo, hi = timeparse.to_ns(since), timeparse.to_ns(until)
    found = _judged(store, lo, hi, link_window=link_window, detail=True)

    def evidence(placed: Placed) -> Outcome:
        one = found.get(placed.id)
        if one is None:
            one = found[placed.id] = Outcome(placed)
        return one

    for incident, placed in links(
        store, _RELEVANT, (lo,), link_window=link_window, every_named=True
    ).items():
        if placed.finished_at < hi:
            evidence(placed).link(incident)
    for one in found.values():
        one.settle()
    return found


def each_outcome(
    store: Store, since: datetime, until: datetime, *, link_window: timedelta | None = None
) -> Iterator[Outcome]:
    """The outcomes of ``outcomes``, one at a time, each made as the database yields its
    linked incidents' counts and never kept: a report's memory does not grow with the
    failed deployments it counts. (Those the rules or a mark speak of, few, come last.)"""
    lo, hi = timeparse.to_ns(since), timeparse.to_ns(until)
    judged = _judged(store, lo, hi, link_window=link_window, detail=False)
    for row in _link_counts(
        store, _RELEVANT, (lo,), before=hi, link_window=link_window, every_named=True
    ):
        one = judged.get(row[0])
        if one is None:
            one = Outcome(Placed(*row[:5]))
            one.count_links(row[5], row[5] - row[6], row[7])
            yield one.settle()
        else:
            one.count_links(row[5], row[5] - row[6], row[7])
    for one in judged.values():
        yield one.settle()


#: the incidents whose links can matter to a report from a moment on (a parameter): those
#: that can end a recovery then or after (resolved since, or open); with them, every one
#: that names its deployment (few, and any of them may matter)
_RELEVANT = "(i.finished_at IS NULL OR i.finished_at >= ?)"


def _judged(
    store: Store, lo: int, hi: int, *, link_window: timedelta | None, detail: bool
) -> dict[str, Outcome]:
    """The deployments finished before ``hi`` that the rules or a mark speak of, with that
    evidence; for those a mark fails with no remediation recorded, also the incidents
    linked to them that were resolved before ``lo`` (a report leaves those out)."""
    found: dict[str, Outcome] = {}

    def evidence(placed: Placed) -> Outcome:
        one = found.get(placed.id)
        if one is None:
            one = found[placed.id] = Outcome(placed)
        return one

    # the rules' findings on every deployment before until: the first remediation of a
    # failure before since may be what ended it before since
    for row in store.rows(
        f"SELECT {_PLACED}, c.id, c.service, c.team, c.env, c.finished_at, "
        "f.rule, f.remediation_type, f.detail FROM change_failures f "
        "JOIN deployments d ON d.id = f.failed_id JOIN deployments c ON c.id = f.cause_id "
        "WHERE d.finished_at < ? ORDER BY d.id, c.finished_at, c.id, f.rule",
        (hi,),
    ):
        cause = Placed(*row[5:10])
        one = evidence(Placed(*row[:5]))
        one.reasons.append(failures.Reason(row[10], cause.id, row[11], row[12]))
        one.remediations[cause.id] = cause
    _add_marks(store, hi, evidence)
    # a failure a mark makes, with no remediation recorded, recovers when its incidents
    # end: those resolved before since too, or it would never recover
    marked = {
        key: one
        for key, one in found.items()
        if one.mark is not None and one.mark.failed and not one.remediations
    }
    if marked:
        earliest = min(one.deployment.finished_at for one in marked.values())
        resolved = "i.deployment_id IS NULL AND i.finished_at < ? AND i.started_at >= ?"
        if detail:
            for incident, placed in links(
                store, resolved, (lo, earliest), link_window=link_window
            ).items():
                if placed.id in marked:
                    marked[placed.id].link(incident)
        else:
            for row in _link_counts(
                store, resolved, (lo, earliest), before=hi, link_window=link_window
            ):
                if row[0] in marked:
                    marked[row[0]].count_links(row[5], row[5] - row[6], row[7])
    return found


def outcome(store: Store, deployment_id: str, *, link_window: timedelta | None = None) -> Outcome:
    """The outcome of one deployment (``dora deployment show``), with every incident
    linked to it."""
    row = next(
        iter(store.rows(f"SELECT {_PLACED} FROM deployments d WHERE d.id = ?", (deployment_id,))),
        None,
    )
    if row is None:
        raise LookupError(deployment_id)
    one = Outcome(Placed(*row))
    for cause_row in store.rows(
        "SELECT c.id, c.service, c.team, c.env, c.finished_at, f.rule, f.remediation_type, "
        "f.detail FROM change_failures f JOIN deployments c ON c.id = f.cause_id "
        "WHERE f.failed_id = ? ORDER BY c.finished_at, c.id, f.rule",
        (deployment_id,),
    ):
        cause = Placed(*cause_row[:5])
        one.reasons.append(failures.Reason(cause_row[5], cause.id, cause_row[6], cause_row[7]))
        one.remediations[cause.id] = cause

    def evidence(placed: Placed) -> Outcome:
        return one

    _add_marks(store, None, evidence, only=deployment_id)
    # the incidents that can link to it: started at or after it finished, of its service or
    # team (any other deployment they might link to is compared by the linking itself)
    candidates = (
        "i.started_at >= ? AND (i.deployment_id = ? OR i.team = ? OR EXISTS (SELECT 1 FROM "
        "incident_services f WHERE f.incident_id = i.id AND f.service = ?))"
    )
    placed = one.deployment
    params = (placed.finished_at, placed.id, placed.team, placed.service)
    for incident, linked in links(store, candidates, params, link_window=link_window).items():
        if linked.id == deployment_id:
            one.link(incident)
    for i, started, finished in store.rows(
        "SELECT i.id, i.started_at, i.finished_at FROM incidents i "
        "WHERE i.deployment_id = ? AND i.started_at < ?",
        (deployment_id, placed.finished_at),
    ):
        one.link(Linked(i, started, finished, True))
    return one.settle()


def links(
    store: Store,
    incidents: str,
    params: Sequence[Any],
    *,
    link_window: timedelta | None = None,
    every_named: bool = False,
) -> dict[Linked, Placed]:
    """The deployment each incident matching the condition ``incidents`` (on ``i``, with
    ``params``), or naming its deployment when ``every_named``, is linked to; incidents
    linked to none are left out."""
    return {
        Linked(row[0], row[1], row[2], bool(row[8])): Placed(*row[3:8])
        for sql, part in _link_parts(incidents, params, link_window, every_named=every_named)
        for row in store.rows(sql, part)
    }


def _link_counts(
    store: Store,
    incidents: str,
    params: Sequence[Any],
    *,
    before: int,
    link_window: timedelta | None = None,
    every_named: bool = False,
) -> Iterator[Sequence[Any]]:
    """What ``links`` finds, summed up per deployment that finished before ``before``: rows
    of (``Placed``'s fields, incidents linked, how many of them are resolved, the last
    resolution), a row kept per failed deployment as the links stream by."""
    counted: dict[str, list[Any]] = {}
    for sql, part in _link_parts(incidents, params, link_window, every_named=every_named):
        for _, _, finished, *placed, _ in store.rows(sql, part):
            if placed[4] >= before:
                continue
            found = counted.get(placed[0])
            if found is None:
                found = counted[placed[0]] = [*placed, 0, 0, None]
            found[5] += 1
            if finished is not None:
                found[6] += 1
                if found[7] is None or finished > found[7]:
                    found[7] = finished
    yield from counted.values()


def _link_parts(
    incidents: str,
    params: Sequence[Any],
    link_window: timedelta | None,
    *,
    every_named: bool,
) -> list[tuple[str, Sequence[Any]]]:
    """The queries that link incidents to deployments, with their parameters: those that
    name their deployment, then the others, whose links the store keeps (``store.links``).
    Each row is (incident, started, finished, ``Placed``'s fields, named), one per linked
    incident."""
    named = (
        "SELECT i.id AS incident, i.started_at AS started, i.finished_at AS finished, "
        "d.id AS did, d.service AS dservice, d.team AS dteam, d.env AS denv, "
        "d.finished_at AS dfin, 1 AS named FROM incidents i "
        "JOIN deployments d ON d.id = i.deployment_id "
        f"WHERE i.deployment_id IS NOT NULL AND {'1 = 1' if every_named else incidents}"
    )
    # no further than the window: the latest deployment is within it, or none is
    window = "l.finished_at >= i.started_at - ? AND " if link_window is not None else ""
    stored = (
        "SELECT i.id AS incident, i.started_at AS started, i.finished_at AS finished, "
        "l.deployment_id AS did, l.service AS dservice, l.team AS dteam, l.env AS denv, "
        "l.finished_at AS dfin, 0 AS named FROM incidents i "
        f"JOIN incident_links l ON l.incident_id = i.id WHERE {window}{incidents}"
    )
    gap = () if link_window is None else (int(link_window.total_seconds()) * 10**9,)
    return [(named, () if every_named else tuple(params)), (stored, (*gap, *params))]


def _add_marks(
    store: Store,
    before: int | None,
    evidence: Callable[[Placed], Outcome],
    *,
    only: str | None = None,
) -> None:
    """Each mark on a deployment finished before ``before`` (or on ``only``), with the
    deployment it names as remediation: by id, or the first deployment of its history
    with the named version after it."""
    # ``+``: read the few marks, then their deployments; never every deployment by finish
    where = "d.id = ?" if only is not None else "+d.finished_at < ?"
    for row in list(
        store.rows(
            f"SELECT {_PLACED}, m.failed, m.remediation_id, m.remediation_version, "
            "m.remediation_type, d.commit_sha, d.version FROM deployment_marks m "
            f"JOIN deployments d ON d.id = m.deployment_id WHERE {where}",
            (only if only is not None else before,),
        )
    ):
        placed = Placed(*row[:5])
        one = evidence(placed)
        failed, by_id, by_version, kind = row[5:9]
        one.mark = failures.Mark(bool(failed), by_id, by_version, kind)
        if not failed:
            continue
        remediation = _named(store, placed, by_id, by_version)
        if remediation is not None:
            one.remediations[remediation.id] = remediation
            one.named = remediation.id
            one.named_type = kind or (
                failures.ROLLBACK if _rolls_back(store, placed, remediation) else
                failures.ROLLFORWARD
            )  # fmt: skip
        elif by_id is not None:
            one.named = by_id  # not recorded here: named, never a recovery
            one.named_type = kind or failures.ROLLFORWARD


def _named(
    store: Store, placed: Placed, by_id: str | None, by_version: str | None
) -> Placed | None:
    if by_id is not None:
        sql, params = "d.id = ?", (by_id,)
    elif by_version is not None:
        env = "d.env IS NULL" if placed.env is None else "d.env = ?"
        sql = (
            f"d.service = ? AND {env} AND d.version = ? AND (d.finished_at > ? "
            "OR (d.finished_at = ? AND d.id > ?)) ORDER BY d.finished_at, d.id LIMIT 1"
        )
        params = (
            placed.service,
            *(() if placed.env is None else (placed.env,)),
            by_version,
            placed.finished_at,
            placed.finished_at,
            placed.id,
        )
    else:
        return None
    row = next(iter(store.rows(f"SELECT {_PLACED} FROM deployments d WHERE {sql}", params)), None)
    return None if row is None else Placed(*row)


def _rolls_back(store: Store, placed: Placed, remediation: Placed) -> bool:
    """Whether ``remediation`` deploys what a deployment before ``placed`` in its history
    deployed (its SHA, else its version): a rollback rather than a rollforward."""
    row = next(
        iter(
            store.rows(
                "SELECT d.commit_sha, d.version FROM deployments d WHERE d.id = ?",
                (remediation.id,),
            )
        ),
        None,
    )
    if row is None:
        return False
    key = failures.deployment_key(failures.Deployed(remediation.id, row[0], row[1]))
    if key is None:
        return False
    env = "d.env IS NULL" if placed.env is None else "d.env = ?"
    same = "d.commit_sha = ?" if key[0] == "sha" else "d.commit_sha IS NULL AND d.version = ?"
    value = key[1]
    found = store.rows(
        f"SELECT 1 FROM deployments d WHERE d.service = ? AND {env} AND "
        f"(d.finished_at < ? OR (d.finished_at = ? AND d.id < ?)) AND {same} LIMIT 1",
        (
            placed.service,
            *(() if placed.env is None else (placed.env,)),
            placed.finished_at,
            placed.finished_at,
            placed.id,
            value,
        ),
    )
    return next(iter(found), None) is not None


def _incident_detail(placed: Placed, incident: Linked) -> str:
    if incident.named:
        return f"incident {incident.id} names it as its cause"
    gap = timedelta(microseconds=max(0, incident.started_at - placed.finished_at) // 1000)
    return (
        f"incident {incident.id} started {timeparse.format_duration(gap)} after it finished "
        "(the latest deployment before it)"
    )
