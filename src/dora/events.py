"""The two events dora records, and every rule they must follow (in this one place).

Field names mirror the Datadog DORA Metrics API v2 request attributes, so an event can be
stored locally or posted unchanged (``api_body``). Timestamps accept every form in
``dora.timeparse`` and are held as aware UTC datetimes.

Rules:

* ``started_at <= finished_at``; neither more than ``CLOCK_SKEW`` in the future;
* ``git.commit_sha`` is 40 or more hexadecimal characters;
* ``custom_tags`` are ``key:value``, at most 100, each at most 200 characters;
* names are visible text on one line (``dora.text.hidden``: no control, bidirectional or
  other invisible format characters), no longer than Datadog takes them (``LIMITS``);
* ``id`` is 16 to 128 characters of ``[A-Za-z0-9._:-]``, and a new time-sortable
  ULID when not given;
* an incident names at least one service or a team.

A third thing goes to Datadog besides them: a ``DeploymentMark`` (``dora deployment mark``),
a correction of a deployment already sent, as Datadog's ``PATCH`` of it.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from dora import text, timeparse
from dora.errors import InvalidEvent
from dora.gitmeta import SHA_PATTERN
from dora.redact import scrub, strip_credentials

MAX_TAGS = 100
#: Datadog keeps a tag (``key:value``) to 200 characters: custom tags, and the env, team,
#: version and severity it indexes as tags (docs.datadoghq.com/getting_started/tagging).
MAX_TAG = 200
#: The longest value of each field, and why. A service is an APM service: Datadog's trace
#: agent cuts service names at 100 (MaxServiceLen, pkg/trace/traceutil/normalize.go).
#: Datadog documents no limit for a failure's name or a repository URL: 1,024 characters
#: (the longest summary PagerDuty's Events API takes) and 2,048 keep them readable lines.
LIMITS: dict[str, tuple[int, str]] = {
    "service": (100, "Datadog's limit for a service name"),
    "env": (MAX_TAG - len("env:"), "Datadog keeps a tag to 200 characters, 'env:' included"),
    "team": (MAX_TAG - len("team:"), "Datadog keeps a tag to 200 characters, 'team:' included"),
    "version": (
        MAX_TAG - len("version:"),
        "Datadog keeps a tag to 200 characters, 'version:' included",
    ),
    "severity": (
        MAX_TAG - len("severity:"),
        "Datadog keeps a tag to 200 characters, 'severity:' included",
    ),
    "name": (1024, "an incident's name is a line, not a report"),
    "repository_url": (2048, "the longest URL most git hosts serve"),
}
ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{16,128}")

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, 26 characters, sorts by time."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(reversed(chars))


def _invalid(problem: str, **context: Any) -> PydanticCustomError:
    return PydanticCustomError("dora", problem, context or None)


def _parse_time(value: Any) -> Any:
    """A time in any form ``dora.timeparse`` reads, or a datetime, as an aware UTC datetime
    no further in the future than the clock skew allows; anything else is left for pydantic
    to refuse."""
    if isinstance(value, str):
        try:
            moment = timeparse.parse_timestamp(value)
        except ValueError as exc:
            raise _invalid(str(exc)) from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            moment = timeparse.from_unix(value)
        except ValueError as exc:
            raise _invalid(str(exc)) from None
    elif isinstance(value, datetime):
        # naive means local, as on the command line
        moment = value if value.tzinfo is not None else value.astimezone()
    else:
        return value
    return _not_future(moment)


def _not_future(value: datetime) -> datetime:
    if value.tzinfo is not timeparse.UTC:
        value = value.astimezone(timeparse.UTC)
    if value > timeparse.now() + timeparse.CLOCK_SKEW:
        minutes = int(timeparse.CLOCK_SKEW.total_seconds() // 60)
        raise _invalid(
            f"{timeparse.format_iso(value)} is in the future "
            f"(at most {minutes} minutes of clock skew is allowed)"
        )
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _visible_only(value: str, *, tag: bool = False) -> None:
    """Refuse what is not seen but changes what is (``dora.text.hidden``)."""
    if _CONTROL.search(value):
        raise _invalid(f"{'tags ' * tag}must be one line without control characters")
    if (char := text.hidden(value)) is not None:
        raise _invalid(
            f"{'a tag ' * tag}holds {text.describe(char)}, which is not seen but changes "
            "what is: use visible text only"
        )


def _utf8(value: str) -> str:
    """Refuse text that cannot be written as UTF-8 (bytes the shell passed undecoded)."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid("must be UTF-8 text") from None
    return value


#: How many distinct values of free text, tags and repository URLs are remembered checked:
#: a backfill of 100,000 events names a few hundred services, envs, teams and repositories,
#: each checked once instead of each time (a third of an import's validation).
_REMEMBERED = 4096


@functools.lru_cache(maxsize=_REMEMBERED)
def _text(value: str) -> str:
    """Free text: trimmed, not empty, one line, and no credentials in any URL it quotes."""
    value = _utf8(value).strip()
    if not value:
        raise _invalid("must not be empty")
    _visible_only(value)
    return scrub(value)


def _limited(field: str, then: Callable[[str], str] | None = None) -> AfterValidator:
    """Free text (``_text``) for ``field``, its length checked first (``LIMITS``), then
    given to ``then``; remembered, like ``_text``, for the values seen."""
    limit, why = LIMITS[field]

    @functools.lru_cache(maxsize=_REMEMBERED)
    def check(value: str) -> str:
        if (length := len(value.strip())) > limit:
            raise _invalid(f"is {length:,} characters long; at most {limit:,} ({why})")
        value = _text(value)
        return value if then is None else then(value)

    return AfterValidator(check)


def _check_id(value: str) -> str:
    if not ID_PATTERN.fullmatch(_utf8(value)):
        raise _invalid(
            f"'{value}' is not a valid id: use 16 to 128 characters of "
            "letters, digits, '.', '_', ':' and '-'"
        )
    return value


def _check_sha(value: str) -> str:
    if not SHA_PATTERN.fullmatch(_utf8(value)):
        raise _invalid(f"'{value}' is not a full commit SHA: expected 40 or more hex characters")
    return value.lower()


def _check_tags(tags: list[str]) -> list[str]:
    seen = dict.fromkeys(map(_tag, tags))
    if len(seen) > MAX_TAGS:
        raise _invalid(f"{len(seen)} tags given; at most {MAX_TAGS} are allowed")
    return list(seen)


@functools.lru_cache(maxsize=_REMEMBERED)
def _tag(tag: str) -> str:
    """One tag, checked: a visible ``key:value`` of at most ``MAX_TAG`` characters; trimmed,
    with credentials in any URL it quotes masked."""
    _utf8(tag)
    key, colon, value = tag.partition(":")
    if len(tag.strip()) > MAX_TAG:
        raise _invalid(
            f"a tag is {len(tag.strip()):,} characters long; at most {MAX_TAG} "
            "(Datadog keeps a tag to 200 characters)"
        )
    _visible_only(tag, tag=True)
    if not colon or not key.strip() or not value.strip():
        raise _invalid(f"'{scrub(tag)}' is not a key:value tag")
    return scrub(tag.strip())


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


Timestamp = Annotated[datetime, BeforeValidator(_parse_time)]
Text = Annotated[str, AfterValidator(_text)]
ServiceName = Annotated[str, _limited("service")]
EventId = Annotated[str, AfterValidator(_check_id)]
CommitSha = Annotated[str, AfterValidator(_check_sha)]
RepositoryUrl = Annotated[str, _limited("repository_url", strip_credentials)]
Tags = Annotated[list[str], AfterValidator(_check_tags)]


class GitInfo(BaseModel):
    """Where the event's code lives. Datadog needs both values; either may be unknown here."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    repository_url: RepositoryUrl | None = None
    commit_sha: CommitSha | None = None


class Event(BaseModel):
    """What deployments and incidents share."""

    # defer_build: a schema is built on first use, so a run pays only for the models it uses
    model_config = ConfigDict(extra="forbid", defer_build=True)

    kind: ClassVar[str]
    api_path: ClassVar[str]
    api_method: ClassVar[str] = "POST"

    id: EventId = Field(default_factory=new_id)
    started_at: Timestamp
    finished_at: Timestamp | None = None
    env: Annotated[str, _limited("env")] | None = None
    version: Annotated[str, _limited("version")] | None = None
    team: Annotated[str, _limited("team")] | None = None
    git: GitInfo | None = None
    custom_tags: Tags = Field(default_factory=list)

    @model_validator(mode="after")
    def _start_before_finish(self) -> Event:
        if self.finished_at is not None and self.started_at > self.finished_at:
            raise _invalid(
                "{finish} is before the start ({start})",
                field="finished_at",
                start=timeparse.format_iso(self.started_at),
                finish=timeparse.format_iso(self.finished_at),
            )
        return self

    def api_body(self) -> dict[str, Any]:
        """The exact request body for Datadog's ``POST {api_path}``.

        Only the keys that are set; integer nanosecond timestamps; ``git`` only when both
        of its values are known, since Datadog requires both.
        """
        attributes: dict[str, Any] = {}
        for name in _API_ORDER:
            value = getattr(self, name, None)
            if value is None or value == []:
                continue
            if isinstance(value, datetime):
                value = timeparse.to_ns(value)
            elif isinstance(value, GitInfo):
                if value.repository_url is None or value.commit_sha is None:
                    continue
                value = value.model_dump()
            attributes[name] = value
        return {"data": {"attributes": attributes}}


class Deployment(Event):
    kind: ClassVar[str] = "deployment"
    api_path: ClassVar[str] = "/api/v2/dora/deployment"

    service: ServiceName
    # Required here; the command line fills in "now" when no finish is given.
    finished_at: Timestamp


class Incident(Event):
    """An incident; Datadog calls it a failure. No ``finished_at`` means still open."""

    kind: ClassVar[str] = "incident"
    api_path: ClassVar[str] = "/api/v2/dora/failure"

    services: Annotated[list[ServiceName], AfterValidator(_dedupe)] = Field(default_factory=list)
    name: Annotated[str, _limited("name")] | None = None
    severity: Annotated[str, _limited("severity")] | None = None
    #: the deployment that caused it, when known (dora's own: Datadog's API has no such field)
    deployment_id: EventId | None = None

    @model_validator(mode="after")
    def _has_owner(self) -> Incident:
        if not self.services and self.team is None:
            raise _invalid("name at least one service, or a team", field="services")
        return self

    @property
    def is_open(self) -> bool:
        return self.finished_at is None


_API_ORDER = (
    "id", "service", "services", "team", "env", "version", "name", "severity",
    "started_at", "finished_at", "git", "custom_tags",
)  # fmt: skip

E = TypeVar("E", bound=Event)


@dataclass(frozen=True)
class DeploymentMark:
    """A deployment marked failed or stable by hand, as Datadog is told of it: ``PATCH
    /api/v2/dora/deployments/{id}`` (``DORADeploymentPatchRequest``). In the outbox it is
    kept under the deployment's id with kind ``mark``: a newer mark replaces a pending one.

    ``remediation_type`` is what is sent: the one given, or the one found from the history
    (the store finds it, as reports do); Datadog needs one with any remediation."""

    kind: ClassVar[str] = "mark"
    api_method: ClassVar[str] = "PATCH"

    id: str
    failed: bool
    remediation_id: str | None = None
    remediation_version: str | None = None
    remediation_type: str | None = None
    #: (service, env, version): sent by them, not by id (``PATCH /api/v2/dora/deployments``,
    #: ``DORADeploymentPatchByVersionRequest``, in preview at Datadog)
    by_version: tuple[str, str, str] | None = None

    @property
    def api_path(self) -> str:
        if self.by_version is not None:
            return "/api/v2/dora/deployments"
        return f"/api/v2/dora/deployments/{self.id}"

    def api_body(self) -> dict[str, Any]:
        """The exact request body: ``remediation`` only when one is named, by id or by
        version (never both, as Datadog requires)."""
        attributes: dict[str, Any] = {"change_failure": self.failed}
        if self.remediation_id is not None or self.remediation_version is not None:
            remediation: dict[str, Any] = (
                {"id": self.remediation_id}
                if self.remediation_id is not None
                else {"version": self.remediation_version}
            )
            if self.remediation_type is not None:
                remediation["type"] = self.remediation_type
            attributes["remediation"] = remediation
        if self.by_version is not None:
            service, env, version = self.by_version
            attributes.update(service=service, env=env, version=version)
            return {"data": {"type": "dora_deployment_patch_request", "attributes": attributes}}
        return {
            "data": {
                "id": self.id,
                "type": "dora_deployment_patch_request",
                "attributes": attributes,
            }
        }


#: The outbox kinds of deletions, by the kind of event deleted.
DELETION_KINDS = {"deployment": "deployment_deletion", "incident": "incident_deletion"}


@dataclass(frozen=True)
class Deletion:
    """An event deleted from the store, for Datadog to delete as well: ``DELETE
    /api/v2/dora/deployment/{id}`` or ``/api/v2/dora/failure/{id}`` (singular, as Datadog
    spells them), which need an application key. In the outbox under the event's id with
    kind ``deployment_deletion`` or ``incident_deletion``."""

    api_method: ClassVar[str] = "DELETE"

    kind: str
    id: str

    @property
    def of(self) -> str:
        """The kind of event deleted: ``deployment`` or ``incident``."""
        return self.kind.removesuffix("_deletion")

    @property
    def api_path(self) -> str:
        return f"/api/v2/dora/{'deployment' if self.of == 'deployment' else 'failure'}/{self.id}"

    def api_body(self) -> None:
        """A deletion has no body."""

    @classmethod
    def of_event(cls, kind: str, event_id: str) -> Deletion:
        return cls(DELETION_KINDS[kind], event_id)


#: What the outbox holds and a backend sends.
Deliverable = Event | DeploymentMark | Deletion


def build(model: type[E], data: dict[str, Any]) -> E:
    """Validate ``data`` into ``model``; raise ``InvalidEvent`` naming the first bad field.

    Keys whose value is ``None`` are left out, so an unset option never overrides a default.
    """
    try:
        return model.model_validate({k: v for k, v in data.items() if v is not None})
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        ctx = error.get("ctx") or {}
        path = [str(part) for part in error["loc"] if not isinstance(part, int)]
        field = ".".join(path) or str(ctx.get("field", ""))
        problem = error["msg"]
        if error["type"] == "missing":
            problem = "required"
        elif error["type"] == "extra_forbidden":
            problem = "unknown field"
        raise InvalidEvent(field, problem) from None
