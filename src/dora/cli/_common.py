"""Options and steps shared by the commands that record events."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from dora.cli._runtime import set_verbose, status
from dora.errors import DoraError, InvalidEvent, NotFound, StoreError, UsageError

if TYPE_CHECKING:  # the event models load pydantic: only commands that record pay for it
    from datetime import datetime

    from dora.backends.datadog import DatadogBackend, Endpoint
    from dora.backends.outbox import PushReport
    from dora.config import Settings
    from dora.events import Deliverable, Event
    from dora.fetching import ApiClient
    from dora.gitmeta import Commit
    from dora.pagerduty import PagerDutyClient
    from dora.store import Store
    from dora.store.base import Stored

#: How a time without Z or an offset is read: as local time by the commands that record what
#: happens now (``deployment``, ``incident open``, ``incident resolve``), as UTC by those that
#: read a window of the past (reports, imports, exports), like the report itself.
NAIVE_LOCAL = "a time without a zone is local time"
NAIVE_UTC = "a time without a zone is UTC"


def _time_forms(naive: str) -> str:
    return (
        f"ISO 8601 such as 2026-11-24T09:30:00Z ({naive}), Unix time in s, ms or ns, "
        "'now', or an offset such as -15m, -2h, -1d"
    )


#: The forms of a time option of a recording command, and of a window's (``window``).
TIME_FORMS = _time_forms(NAIVE_LOCAL)
WINDOW_TIME_FORMS = _time_forms(NAIVE_UTC)


def time_option(flag: str, help: str) -> Any:
    """An option that takes a time in any of ``TIME_FORMS`` (or ``WINDOW_TIME_FORMS``);
    ``help`` says which time, and how a time without a zone is read."""
    return typer.Option(flag, metavar="TIME", help=help, show_default=False)


def _verbose(value: bool) -> bool:
    set_verbose(value)
    return value


Verbose = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        help="Show debug lines, and a traceback on failure (also DORA_DEBUG=1).",
        callback=_verbose,
        is_eager=True,
    ),
]
Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="PATH|URL",
        help="The store: an SQLite file, or a postgresql:// URL (env DORA_DB).",
        show_default=False,
    ),
]
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print the JSON body that would be posted to the Datadog API; record nothing.",
    ),
]
Env = Annotated[
    str | None,
    typer.Option("--env", metavar="ENV", help="Environment, e.g. prod (env DD_ENV)."),
]
Team = Annotated[
    str | None, typer.Option("--team", metavar="TEAM", help="Owning team (env DORA_TEAM).")
]
EventId = Annotated[
    str | None,
    typer.Option(
        "--id",
        metavar="ID",
        help="Event id: 16-128 of A-Z a-z 0-9 . _ : - (default: a new ULID). "
        "Recording an id again updates that event.",
    ),
]
GitRepositoryUrl = Annotated[
    str | None,
    typer.Option(
        "--git-repository-url",
        metavar="URL",
        help="Repository URL (env DD_GIT_REPOSITORY_URL; default: CI variables, then "
        "git remote origin). Credentials are stripped.",
    ),
]
GitCommitSha = Annotated[
    str | None,
    typer.Option(
        "--git-commit-sha",
        metavar="SHA",
        help="Full commit SHA (env DD_GIT_COMMIT_SHA; default: CI variables, then git HEAD).",
    ),
]
SkipGit = Annotated[
    bool,
    typer.Option(
        "--skip-git",
        help="Look up no git data: only --git-repository-url and --git-commit-sha are "
        "recorded, and no commits (for lead time).",
    ),
]
Backend = Annotated[
    str | None,
    typer.Option(
        "--backend",
        metavar="local|datadog",
        help="Also send the event to Datadog's DORA API (env DORA_BACKEND; default local).",
        show_default=False,
    ),
]
HotfixPattern = Annotated[
    str | None,
    typer.Option(
        "--hotfix-pattern",
        metavar="REGEX",
        help="A deployment whose version or shipped commit's subject matches this Python "
        "regular expression is a hotfix (default '(?i)\\bhotfix\\b'; env "
        "DORA_HOTFIX_PATTERN). The store's change failures follow the latest pattern given.",
        show_default=False,
    ),
]
LinkWindow = Annotated[
    str | None,
    typer.Option(
        "--link-window",
        metavar="LENGTH",
        help="Link an incident only to a deployment that finished at most this long before "
        "it, such as 7d or 12h; none for no limit, the default (env DORA_LINK_WINDOW).",
        show_default=False,
    ),
]
Limit = Annotated[
    int,
    typer.Option(
        "--limit", "-L", min=0, max=1_000_000, metavar="N", help="Show at most N (0: all)."
    ),
]
CustomTags = Annotated[
    list[str] | None,
    typer.Option(
        "--custom-tags",
        metavar="KEY:VALUE",
        help="A custom tag; repeat for more (at most 100).",
        show_default=False,
    ),
]

#: The flag that sets each event field, for naming it in errors.
FLAGS = {
    "service": "--service",
    "services": "--service",
    "env": "--env",
    "team": "--team",
    "version": "--version",
    "id": "--id",
    "name": "--name",
    "severity": "--severity",
    "started_at": "--started-at",
    "finished_at": "--finished-at",
    "git.repository_url": "--git-repository-url",
    "git.commit_sha": "--git-commit-sha",
    "custom_tags": "--custom-tags",
}

E = TypeVar("E", bound="Event")
log = logging.getLogger("dora")


def filter_option(flag: str, help: str) -> Any:
    """A repeatable option that keeps only the events of the names given."""
    return typer.Option(flag, metavar="NAME", help=help, show_default=False)


ServiceFilter = Annotated[
    list[str] | None, filter_option("--service", "Only this service; repeat for several.")
]
TeamFilter = Annotated[list[str] | None, filter_option("--team", "Only this team; repeatable.")]
EnvFilter = Annotated[
    list[str] | None, filter_option("--env", "Only this environment; repeatable.")
]


def since_option(help: str) -> Any:
    """``--since``: a time in any of ``WINDOW_TIME_FORMS``, or a length before ``--until``."""
    return typer.Option("--since", metavar="TIME|DURATION", help=help, show_default=False)


def filters(**given: list[str] | None) -> tuple[tuple[str, ...], ...]:
    """The values of the filter options (``service=[...]``, ...) in order, checked."""
    for name, values in given.items():
        if any(not value.strip() for value in values or ()):
            raise UsageError(f"--{name}: must not be empty")
    return tuple(tuple(values or ()) for values in given.values())


def optional_window(
    since: str | None, until: str | None
) -> tuple[datetime | None, datetime | None]:
    """A window that may be open at either end: none given is everything; --since alone
    ends now; --until alone has no start."""
    if since is None and until is None:
        return None, None
    if since is None:
        assert until is not None  # noqa: S101 - narrowed above
        return None, window("30d", until)[1]
    return window(since, until)


def since_now(since: str) -> datetime:
    """The start of --since for a command without --until: a length before now such as
    30d, or a time (without a zone, UTC), read as ``window`` reads them."""
    return window(since, None, end_name="now")[0]


def window(
    since: str | None, until: str | None, *, end_name: str = "--until"
) -> tuple[datetime, datetime]:
    """The window [since, until) of --since (a length before --until such as 30d, the
    default, or a time) and --until (default now); a time without a zone is UTC here.
    ``end_name`` is what the messages call the end."""
    from datetime import timedelta

    from dora import timeparse

    label = end_name
    if until is None:
        end = timeparse.now()
    else:
        _has_unit("--until", until)
        end = parse_time("--until", until, naive_utc=True)
    if end > timeparse.LATEST:
        raise UsageError(f"--until: {until} is after the last time the store can hold (2262)")
    text = "30d" if since is None else since
    length = timeparse.parse_duration(text)
    if length is None:
        _has_unit("--since", text)
        start = parse_time("--since", text, naive_utc=True)
    elif not length:
        raise UsageError("--since: the window must not be empty")
    else:
        try:
            start = end - length
        except OverflowError:
            start = timeparse.EPOCH - timedelta(days=1)
        if start < timeparse.EPOCH:
            raise UsageError(f"--since: {text} before {label} reaches back before 1970")
    if start >= end:
        raise UsageError(
            f"--since: {timeparse.format_iso(start)} is not before {label} "
            f"({timeparse.format_iso(end)})"
        )
    return start, end


def _has_unit(flag: str, text: str) -> None:
    """A small bare number is a length without its unit, not a time in 1970."""
    if text.strip().isdigit() and int(text) < 10**9:
        raise UsageError(f"{flag}: '{text.strip()}' has no unit: write {text.strip()}d, w, h or m")


def existing_store(db: str | None) -> tuple[str, Store | None]:
    """Where the store is (``--db``, ``DORA_DB``, config, default), and the store if there
    is one: a command that only reads reports nothing rather than make an empty store."""
    from dora.config import Settings
    from dora.store import open_store

    where = Settings({"db": db}).get("db") or ""
    try:
        return where, open_store(where, create=False)
    except NotFound:
        return where, None


def parse_time(flag: str, value: str, *, naive_utc: bool = False) -> datetime:
    """A time option's value, or a usage error naming the flag."""
    from dora.timeparse import parse_timestamp

    try:
        return parse_timestamp(value, naive_utc=naive_utc)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


@contextmanager
def naming_fields(labels: dict[str, str] | None = None) -> Iterator[None]:
    """Turn an invalid event field into a usage error naming where the value came from: its
    flag, or the ``labels`` entry for a value read from elsewhere."""
    try:
        yield
    except InvalidEvent as exc:
        name = (labels or {}).get(exc.field) or FLAGS.get(exc.field, exc.field)
        raise UsageError(f"{name}: {exc.problem}") from None


def build_event(model: type[E], data: dict[str, Any], labels: dict[str, str] | None = None) -> E:
    """Validate the options into an event; a bad one is a usage error naming its source."""
    from dora.events import build

    with naming_fields(labels):
        event = build(model, data)
    return event  # noqa: RET504 - the context manager may turn the error into another


def setting_labels(settings: Settings, *names: str) -> dict[str, str]:
    """Error labels for event fields filled from settings (``DD_SERVICE``, config file...)."""
    return {name: settings.setting(name).label for name in names}


def build_with_git(
    model: type[E],
    data: dict[str, Any],
    *,
    labels: dict[str, str],
    repository_url: str | None,
    commit_sha: str | None,
    skip_git: bool,
) -> tuple[E, tuple[str, ...]]:
    """Validate the options, then fill in git data (unless skipped) and validate again.

    Checking the flags first means a typo fails fast, before git is asked anything. Returns
    the event and git's warnings, for ``record`` to show once the event is safely kept (a
    failure stays one line).
    """
    given = {"repository_url": repository_url, "commit_sha": commit_sha}
    git = None if repository_url is None and commit_sha is None else given
    event = build_event(model, {**data, "git": git}, labels)
    if skip_git:
        return event, ()
    from dora import gitmeta

    found = gitmeta.resolve(repository_url, commit_sha)
    if found.repository_url is not None or found.commit_sha is not None:
        git = {"repository_url": found.repository_url, "commit_sha": found.commit_sha}
        sources = {
            "git.repository_url": found.repository_url_source,
            "git.commit_sha": found.commit_sha_source,
        }
        named = {f: s for f, s in sources.items() if s and s not in ("flag", "git")}
        event = build_event(model, {**data, "git": git}, {**labels, **named})
    return event, found.warnings


def prepare(settings: Settings, *, dry_run: bool) -> tuple[Endpoint | None, DatadogBackend | None]:
    """Check the store and backend settings before git is asked or anything is written:
    the endpoint events go to besides the store (None: local backend), and the client that
    sends them (None as well for a dry run, which needs neither a store nor an API key).

    A missing API key is no reason to lose an event (a CI job given no secrets, such as a
    pull request from a fork): the client is made without one, the event is kept and
    queued, and ``send`` says that ``dora push`` will send it once a key is set. A
    malformed key is a usage error here, before anything is written."""
    if not dry_run:
        from dora.store import check_target

        check_target(settings.get("db") or "")
    endpoint = backend_endpoint(settings)
    sender = connect(settings, endpoint) if endpoint and not dry_run else None
    return endpoint, sender


def backend_endpoint(settings: Settings) -> Endpoint | None:
    """Where to send events besides the store: None for the local backend. Its API key may
    be missing (see ``prepare``); a malformed one is a usage error."""
    from dora import checks

    if checks.backend(settings) == "local":
        return None
    return checks.datadog_endpoint(settings, need_key=False)


def connect(settings: Settings, endpoint: Endpoint) -> DatadogBackend:
    """The client for ``endpoint``, made before anything is written, so that a bad retry
    budget, API URL or proxy setting is a usage error and not a half-done command."""
    import httpx

    from dora import checks
    from dora.backends.datadog import DatadogBackend

    policy = checks.retry_policy(settings)
    try:
        return DatadogBackend(endpoint, policy)
    except (ValueError, ImportError, httpx.InvalidURL) as exc:
        raise UsageError(
            f"cannot use {endpoint.base_url} as configured ({exc}); "
            "check DORA_API_URL and the proxy variables"
        ) from None


def connect_pagerduty(settings: Settings) -> PagerDutyClient:
    """The PagerDuty client of ``PAGERDUTY_TOKEN`` and ``PAGERDUTY_API_URL``, with the retry
    budget of the settings; a bad value is a usage error before anything is asked."""
    import os

    import httpx

    from dora import checks, pagerduty

    where = pagerduty.account(os.environ)
    policy = checks.retry_policy(settings)
    try:
        return pagerduty.PagerDutyClient(where, policy)
    except (ValueError, ImportError, httpx.InvalidURL) as exc:
        raise UsageError(
            f"cannot use {where.base_url} as configured ({exc}); "
            "check PAGERDUTY_API_URL and the proxy variables"
        ) from None


def connect_source(settings: Settings, source: Any) -> ApiClient:
    """The client of a fetch source (``dora.github``...), from its variables and with the
    retry budget of the settings; a bad value is a usage error before anything is asked."""
    import os

    import httpx

    from dora import checks, fetching

    where = fetching.account(source.API, os.environ)
    try:
        client: ApiClient = source.client(os.environ, policy=checks.retry_policy(settings))
    except (ValueError, ImportError, httpx.InvalidURL) as exc:
        raise UsageError(
            f"cannot use {where.base_url} as configured ({exc}); "
            f"check {source.API.url_variable} and the proxy variables"
        ) from None
    return client


def record(
    event: Event,
    settings: Settings,
    *,
    summary: str,
    dry_run: bool,
    endpoint: Endpoint | None = None,
    backend: DatadogBackend | None = None,
    warnings: tuple[str, ...] = (),
    list_commits: bool = False,
    hotfix: str | None = None,
) -> None:
    """Keep ``event`` in the store (queued for ``endpoint`` if there is one), say so, print
    its id, then send it; for a dry run, print the request body instead.

    ``summary`` is the status line's subject: ``Recorded deployment ID (api, env prod)``.
    With ``list_commits``, git is asked which commits a deployment ships, for lead time.
    ``hotfix`` is the hotfix pattern the store's change failures are to follow.
    """
    if dry_run:
        from dora import render

        render.api_body(event, sys.stdout)
        _warn(warnings)
        target = f"{endpoint.base_url}{event.api_path}" if endpoint else event.api_path
        status(f"Dry run: this body would be posted to {target}; nothing was recorded.")
        return
    from dora.store import open_store

    with open_store(settings.get("db") or "") as store:
        if hotfix is not None:
            use_hotfix(store, hotfix)
        commits, warning = shipped_commits(store, event, look=list_commits)
        warnings += (warning,) if warning else ()
        store.save(event, queue=backend is not None, commits=commits)
        _warn(warnings)
        status(f"{summary} in {store.location}")
        print_then_send(event.id, None if backend is None else lambda: send(store, event, backend))


def print_then_send(event_id: str, deliver: Callable[[], None] | None) -> None:
    """Print the id (the caller's, whatever delivery does next), then ``deliver``; a stdout
    closed or full does not stop the sending, and is raised after it."""
    unwritten = None
    try:
        print(event_id, flush=True)
    except OSError as exc:
        unwritten = exc
    if deliver is not None:
        deliver()
    if unwritten is not None:
        raise unwritten


def shipped_commits(
    store: Store, event: Event, *, look: bool
) -> tuple[list[Commit] | None, str | None]:
    """The commits a deployment ships since the previous deployment of its service and env,
    asking git in the working directory if ``look``, and a warning. None leaves the commits
    already stored (for an event recorded again) as they are; a deployment without a commit
    SHA ships none that are known."""
    from dora import gitmeta
    from dora.events import Deployment

    if not isinstance(event, Deployment):
        return None, None
    if event.git is None or not event.git.commit_sha:
        return [], None
    if not look:
        return None, None
    previous = store.previous_commit(event)
    return gitmeta.shipped_commits(
        event.git.commit_sha,
        previous.sha if previous else None,
        repository_url=event.git.repository_url,
        previous_repository_url=previous.repository_url if previous else None,
    )


def save_all(
    settings: Settings,
    items: Iterable[Stored],
    *,
    source: str,
    backend: DatadogBackend | None = None,
    total: int | None = None,
    hotfix: str | None = None,
) -> None:
    """Keep many events in the store in one transaction (all or none), say what changed,
    then, with a backend, deliver those of them still waiting in the outbox. On a terminal,
    a progress bar counts the events written (of ``total``, how many ``items`` holds).
    ``hotfix`` is the hotfix pattern the store's change failures are to follow (None: the
    store's own)."""
    from dora.cli._runtime import Progress
    from dora.store import open_store

    keys: set[tuple[str, str]] = set()

    def noting(items: Iterable[Stored]) -> Iterator[Stored]:
        for item in items:
            keys.add((item.kind, item.id))  # only to deliver them: memory grows with it
            yield item

    with open_store(settings.get("db") or "") as store:
        if hotfix is not None:
            use_hotfix(store, hotfix)
        with Progress("Writing", total) as bar:
            saved = store.save_many(
                noting(items) if backend is not None else items,
                queue=backend is not None,
                progress=bar.update,
            )
        status(
            f"Imported {_events(saved.total)} from {source} into {store.location}: "
            f"{saved.new:,} new, {saved.updated:,} updated, {saved.unchanged:,} unchanged."
        )
        if backend is not None and keys:
            deliver_all(store, backend, keys)


#: Deployments from which finding every change failure again shows a progress bar.
_LARGE = 20_000


def use_hotfix(store: Store, pattern: str, *, reading: bool = False) -> None:
    """Have the store's change failures follow the hotfix pattern ``pattern`` (a checked
    setting): when it kept them for another, or for none, they are all found again, with a
    progress bar on a terminal for a large store, and a line saying so when the pattern
    changed. A command that only ``reading`` (a report) goes on with a warning when the
    store cannot be written (a read-only role or file): it reports what the store has."""
    import contextlib

    from dora.cli._runtime import Progress

    with contextlib.ExitStack() as stack:
        bar: Progress | None = None

        def tell(done: int, total: int) -> None:
            nonlocal bar
            if bar is None and total >= _LARGE:
                bar = stack.enter_context(Progress("Finding change failures", total))
            if bar is not None:
                bar.update(done, total)

        try:
            done = store.use_hotfix(pattern, progress=tell)
        except StoreError as exc:
            if not reading:
                raise
            log.warning(
                "%s; change failures are reported as the store keeps them, which may not be "
                "with hotfix pattern '%s'",
                exc.message,
                pattern,
            )
            return
    if done is None or not done.deployments:
        return
    if done.previous is None:  # a store from before the pattern was kept: found once
        log.debug("found the change failures of %s deployments", f"{done.deployments:,}")
        return
    status(
        f"Change failures found again with hotfix pattern '{pattern}' (the store had "
        f"'{done.previous}'): {done.deployments:,} deployment{'s' * (done.deployments != 1)}."
    )


def deliver_all(store: Store, backend: DatadogBackend, keys: set[tuple[str, str]]) -> None:
    """Send the events of ``keys`` that are waiting in the outbox; the rest stays for
    'dora push'."""
    from dora.backends import outbox
    from dora.cli._runtime import Progress

    kept = f"the events not sent are kept in {store.location}; 'dora push' will send them"
    try:
        with backend:
            if not backend.has_key:
                waiting = [i for i in store.undelivered() if (i.event.kind, i.event.id) in keys]
                if waiting:
                    raise DoraError(no_key(f"the {_events(len(waiting))} are", "them", store))
                return
            with Progress("Sending") as bar:
                report = outbox.push(store, backend, only=keys, progress=bar.update)
    except StoreError as lost:  # the store lost while sending: what was not sent is kept
        raise DoraError(f"{lost.message}\n{kept}") from lost
    except KeyboardInterrupt:
        status(kept)
        raise
    for event, exc in report.failed[:5]:
        log.warning("%s %s: %s", event.kind, event.id, exc.message)
    sent = len(report.delivered)
    if line := others_line(report):
        status(line)
    if report.remaining:
        raise DoraError(
            f"sent {_events(sent)} to {backend.endpoint.base_url}; {report.remaining} remain "
            f"in {store.location}, 'dora push' will try them again"
        )
    status(f"Sent {_events(sent)} to {backend.endpoint.base_url}.")


def _events(n: int) -> str:
    return f"{n:,} event{'s' * (n != 1)}"


def others_line(report: PushReport) -> str | None:
    """What other senders running at the same time did with the events of this push (they
    are theirs, not failures of this one), or None when there were none."""
    parts = []
    if report.delivered_elsewhere:
        parts.append(f"{_events(len(report.delivered_elsewhere))} delivered")
    if report.busy:
        parts.append(f"{_events(len(report.busy))} being sent now")
    if not parts:
        return None
    return f"Left to another 'dora push' running at the same time: {' and '.join(parts)}."


def send(store: Store, event: Event, backend: DatadogBackend) -> None:
    """Deliver an event that is already in the outbox; a failure says it is kept."""
    with backend:
        if not backend.has_key:
            raise DoraError(no_key(f"the {event.kind} is", "it", store))
        # a store that fails mid-delivery (a lost connection) has the event still pending:
        # it was kept before anything was sent
        kept = f"the {event.kind} is kept in {store.location}; 'dora push' will send it"
        deliver_one(store, backend, event, kept)


def deliver_one(store: Store, backend: DatadogBackend, event: Deliverable, kept: str) -> None:
    """Deliver one event of the outbox with ``backend`` (open), and say so; a failure, or
    Ctrl-C, says ``kept`` (what is left in the store for 'dora push')."""
    code = deliver_or_keep(store, backend, event, kept)
    if code is None:
        status(f"A 'dora push' running now is sending {event.kind} {event.id}.")
    else:
        status(f"Sent {event.kind} {event.id} to {backend.url(event)} ({code})")


def deliver_or_keep(
    store: Store, backend: DatadogBackend, event: Deliverable, kept: str
) -> int | None:
    """``outbox.deliver``: the status Datadog answered (None: another sender has it); a
    failure, or Ctrl-C, says ``kept`` (what is left in the store for 'dora push')."""
    from dora.backends.datadog import DeliveryError
    from dora.backends.outbox import deliver

    try:
        return deliver(store, backend, event)
    except (DeliveryError, StoreError) as exc:
        raise DoraError(f"{exc.message}\n{kept}") from exc
    except KeyboardInterrupt:
        status(kept)
        raise


def no_key(kept: str, it: str, store: Store) -> str:
    """One line for events kept and queued but not sent, for want of an API key."""
    from dora.backends.datadog import NO_KEY

    return f"{NO_KEY}: {kept} kept in {store.location}; 'dora push' will send {it} once one is"


def _warn(warnings: tuple[str, ...]) -> None:
    for warning in warnings:
        log.warning("%s", warning)


def describe(service: str | None, env: str | None) -> str:
    parts = [service] if service else []
    if env:
        parts.append(f"env {env}")
    return ", ".join(parts)
