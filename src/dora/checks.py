"""Each setting, checked as the commands use it.

The checks turn a setting into what it configures (a backend's name, a retry policy, a
Datadog API endpoint) or raise a ``UsageError`` naming where the bad value came from: the
flag, the variable or the config file. Commands call them before doing any work;
``review`` calls every one of them for ``dora config``, to show which values are invalid
and why, with the very same words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from dora.errors import DoraError, InvalidEvent, UsageError

if TYPE_CHECKING:
    from dora.backends.datadog import Endpoint, RetryPolicy
    from dora.config import Setting, Settings

BACKENDS = ("local", "datadog")


def backend(settings: Settings) -> str:
    """Where events go besides the store: ``local`` (nowhere) or ``datadog``."""
    setting = settings.setting("backend")
    name = (setting.value or "local").lower()
    if name not in BACKENDS:
        raise UsageError(f"{setting.label}: '{name}' is not a backend; use local or datadog")
    return name


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry budget: a number of seconds from 1 to 3600."""
    from dora.backends.datadog import RetryPolicy

    setting = settings.setting("retry_budget")
    try:
        budget = float(setting.value or "30")
    except ValueError:
        budget = -1
    if not 1 <= budget <= 3600:  # also refuses nan and inf
        raise UsageError(f"{setting.label}: give a number of seconds from 1 to 3600")
    return RetryPolicy(budget=budget)


def benchmarks(settings: Settings) -> str:
    """The edition of DORA's benchmarks levels come from: 2024 (the default) or 2023."""
    from dora.levels import EDITIONS

    setting = settings.setting("benchmarks")
    edition = (setting.value or "2024").strip()
    if edition not in EDITIONS:
        raise UsageError(
            f"{setting.label}: '{edition}' is not an edition of the benchmarks; "
            f"use {' or '.join(sorted(EDITIONS, reverse=True))}"
        )
    return edition


def link_window(settings: Settings) -> timedelta | None:
    """The longest gap from a deployment's finish to the start of an incident linked to it:
    a length such as 7d, 12h or 90m, or ``none`` for no limit (the default)."""
    from dora.timeparse import parse_duration

    setting = settings.setting("link_window")
    text = (setting.value or "none").strip()
    if text.lower() == "none":
        return None
    length = parse_duration(text)
    if not length:
        raise UsageError(
            f"{setting.label}: '{text}' is not a length of time above zero; "
            "write 7d, 12h, 90m or none"
        )
    return length


def hotfix_pattern(settings: Settings) -> str:
    """The hotfix rule's pattern: a Python regular expression that a deployment's version,
    or the subject of a commit it shipped, matches when it is a hotfix (default
    ``(?i)\bhotfix\b``). One that matches an empty text would make every deployment a
    hotfix, and is refused."""
    import re

    from dora.failures import HOTFIX

    setting = settings.setting("hotfix_pattern")
    text = setting.value or HOTFIX
    try:
        compiled = re.compile(text)
    except re.error as exc:
        reason = " ".join(str(exc).split())
        raise UsageError(
            f"{setting.label}: '{text}' is not a regular expression: {reason}"
        ) from None
    if compiled.search(""):
        raise UsageError(
            f"{setting.label}: '{text}' matches an empty text, so every deployment would be "
            "a hotfix"
        )
    return text


def datadog_endpoint(settings: Settings, *, need_key: bool = True) -> Endpoint:
    """The Datadog API the settings name (site, api_url), with their API key."""
    return _endpoint(settings, ("site", "api_url", "api_key", "app_key"), need_key=need_key)


def _endpoint(settings: Settings, names: Iterable[str], *, need_key: bool) -> Endpoint:
    """``datadog.endpoint`` of the settings ``names`` only (one of them, to check just it)."""
    from dora.backends.datadog import endpoint

    # endpoint() reads variables: hand it each setting under the variable it came from, and
    # name a config-file value as such in errors
    env, labels = {}, {}
    for setting in (settings.setting(name) for name in names):
        if setting.value is None:
            continue
        variable = setting.source.removeprefix("env ")
        if variable not in setting.key.env:
            variable = setting.key.env[0]
            labels[variable] = setting.label
        env[variable] = setting.value
    return endpoint(env, need_key=need_key, labels=labels)


def _store(settings: Settings) -> None:
    from dora.store import check_target

    check_target(settings.get("db") or "")


def _event_field(name: str) -> Callable[[Settings], None]:
    """The check of a setting that fills in an event field (service, env, team): the
    event's own validation, on an incident that has nothing else to refuse."""

    def check(settings: Settings) -> None:
        from dora.events import Incident, build

        value = settings.get(name)
        if value is not None:
            field = {"services": [value]} if name == "service" else {name: value}
            build(Incident, {"team": "-", "started_at": "now", **field})

    return check


def _site(settings: Settings) -> None:
    if settings.get("api_url") is None:  # else the site is not used
        _endpoint(settings, ("site",), need_key=False)


def _api_url(settings: Settings) -> None:
    if settings.get("api_url") is not None:
        _endpoint(settings, ("api_url",), need_key=False)


def _api_key(settings: Settings) -> None:
    try:
        sends = backend(settings) == "datadog"
    except UsageError:
        sends = False  # that setting's own problem
    _endpoint(settings, ("api_key",), need_key=sends)


def _app_key(settings: Settings) -> None:
    _endpoint(settings, ("app_key",), need_key=False)  # only marks need one


#: The check of each setting, as the commands make it.
_CHECKS: dict[str, Callable[[Settings], object]] = {
    "db": _store,
    "service": _event_field("service"),
    "env": _event_field("env"),
    "team": _event_field("team"),
    "backend": backend,
    "retry_budget": retry_policy,
    "benchmarks": benchmarks,
    "link_window": link_window,
    "hotfix_pattern": hotfix_pattern,
    "site": _site,
    "api_url": _api_url,
    "api_key": _api_key,
    "app_key": _app_key,
}


@dataclass(frozen=True)
class Review:
    """A setting as ``dora config`` shows it: its value as it may be printed (``""`` for
    none), where it came from, what is wrong with it, and anything else worth knowing."""

    name: str
    shown: str
    source: str
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def review(settings: Settings) -> list[Review]:
    """The config file and every setting, each checked. ``settings`` should be lenient, so
    that one bad value in the config file does not hide the others."""
    problems = settings.file_problems
    found = settings.path.is_file()
    reviews = [
        Review(
            "config file",
            str(settings.path),
            settings.path_source,
            problems=tuple(p.message for p in problems if p.key is None),
            notes=() if found or problems else ("not found; a config file is optional",),
        )
    ]
    for setting in settings.all():
        name = setting.key.name
        wrong = [f"in the config file: {p.message}" for p in problems if p.key == name]
        if (problem := _problem(setting, _CHECKS[name], settings)) is not None:
            wrong.append(problem)
        shown, source = setting.shown(), setting.source
        notes: tuple[str, ...] = ()
        if name == "site" and settings.get("api_url") is not None:
            notes = ("not used: api_url is set",)
        elif name == "api_url" and setting.value is None:
            source = "default (from site)"
            if _problem(settings.setting("site"), _site, settings) is None:
                shown = _endpoint(settings, ("site",), need_key=False).base_url
        reviews.append(Review(name, shown, source, tuple(wrong), notes))
    return reviews


def _problem(
    setting: Setting, check: Callable[[Settings], object], settings: Settings
) -> str | None:
    """What ``check`` finds wrong, in its own words, without the name of where the value
    came from (shown beside it)."""
    try:
        check(settings)
    except InvalidEvent as exc:
        return exc.problem
    except DoraError as exc:
        return exc.message.removeprefix(f"{setting.label}: ")
    return None
