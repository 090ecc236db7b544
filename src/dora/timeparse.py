"""Every timestamp form dora accepts, turned into an aware UTC datetime.

Accepted forms:

* ``now``
* a relative offset into the past: ``-30s``, ``-15m``, ``-2h``, ``-1d``, ``-1w``
* Unix time as an integer or decimal number, its unit told apart by magnitude:
  seconds (below 1e11), milliseconds (below 1e14), microseconds (below 1e17),
  nanoseconds above that
* ISO 8601: ``2026-11-24``, ``2026-11-24T09:30``, ``2026-11-24T09:30:00.123Z``,
  ``2026-11-24 09:30:00+01:00``. A time without ``Z`` or an offset is local time,
  as GNU ``date`` reads it.

Inside dora every time is an aware UTC datetime; the store and Datadog's API take integer
nanoseconds. Python datetimes hold microseconds, so a time given to the nanosecond (a
9-digit ISO fraction, Unix nanoseconds) is an ``Instant``: a datetime that also keeps the
nanoseconds past its microsecond, compares by them, and gives them back to ``to_ns`` and
``format_iso``. Nothing the user gave is cut.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, SupportsIndex

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: How far into the future a timestamp may lie, for clocks that disagree.
CLOCK_SKEW = timedelta(minutes=5)

FORMS_HINT = (
    "use ISO 8601 (2026-11-24T09:30:00Z), Unix time in s, ms or ns, 'now', "
    "or an offset such as -15m"
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RELATIVE = re.compile(r"-\s*([0-9]+)\s*([smhdw])")
_DURATION = re.compile(r"([0-9]+)\s*([smhdw])")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]{1,9}))?)?"
    r"\s*(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<oh>[0-9]{2}):?(?P<om>[0-5][0-9])?)?)?"
)


#: The form most times arrive in (files, CI variables, exports): read without the general
#: pattern. A fraction of 3 or 6 digits is what ``datetime.fromisoformat`` reads everywhere.
_PLAIN_UTC = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{3}){0,2}Z"
)


def _plain_utc(text: str) -> datetime:
    """A time of ``_PLAIN_UTC``'s form (Python reads its ``Z`` from 3.11 on)."""
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


if sys.version_info >= (3, 11):
    _plain_utc = datetime.fromisoformat  # the same, its Z read at once


class Instant(datetime):
    """An aware UTC datetime exact to the nanosecond: ``nanosecond`` (1 to 999) is what lies
    past its ``microsecond``. Made only by ``from_ns`` (and so by every parser here) for a
    time that has such nanoseconds; every other time stays a plain datetime.

    Comparisons and hashing count the nanoseconds; arithmetic and ``replace`` give times
    without them (as displays and windows need no more); pickling and copying keep them.
    """

    #: The class's value is what an Instant made by datetime's own arithmetic has.
    nanosecond: int = 0

    def __new__(cls, *args: Any, nanosecond: int = 0, **kwargs: Any) -> Instant:
        self = super().__new__(cls, *args, **kwargs)
        self.nanosecond = nanosecond
        return self

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return from_ns, (to_ns(self),)

    def __repr__(self) -> str:
        return f"timeparse.from_ns({to_ns(self)})"

    def __hash__(self) -> int:
        return hash((datetime.__hash__(self), self.nanosecond))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, datetime):
            return NotImplemented
        return datetime.__eq__(self, other) and self.nanosecond == _nanosecond(other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, datetime):
            return NotImplemented
        return datetime.__lt__(self, other) or (
            datetime.__eq__(self, other) and self.nanosecond < _nanosecond(other)
        )

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, datetime):
            return NotImplemented
        return datetime.__gt__(self, other) or (
            datetime.__eq__(self, other) and self.nanosecond > _nanosecond(other)
        )

    def __le__(self, other: object) -> bool:
        result = self.__gt__(other)
        return result if result is NotImplemented else not result

    def __ge__(self, other: object) -> bool:
        result = self.__lt__(other)
        return result if result is NotImplemented else not result


def _nanosecond(moment: datetime) -> int:
    return moment.nanosecond if isinstance(moment, Instant) else 0


def now() -> datetime:
    """The current time, aware and in UTC. Tests patch this one function."""
    return datetime.now(UTC)


def parse_timestamp(
    text: str, *, reference: datetime | None = None, naive_utc: bool = False
) -> datetime:
    """Read one timestamp in any accepted form; raise ``ValueError`` naming the forms.

    ``reference`` is the "now" that ``now`` and relative offsets count from. With
    ``naive_utc``, an ISO time without a zone is UTC rather than local time (for reports,
    whose windows and buckets are UTC).
    """
    if _PLAIN_UTC.fullmatch(text) and text >= "1970":
        try:
            return _plain_utc(text)
        except ValueError:
            pass  # no such day or hour: the general reading below says why
    value = text.strip()
    if not value:
        raise ValueError(f"empty timestamp: {FORMS_HINT}")
    if value.lower() == "now":
        return reference or now()
    if match := _RELATIVE.fullmatch(value):
        amount, unit = int(match[1]), match[2]
        try:
            moment = (reference or now()) - timedelta(seconds=amount * _UNITS[unit])
        except OverflowError:
            moment = EPOCH - timedelta(days=1)
        if moment < EPOCH:
            raise ValueError(f"'{text}' reaches back before 1970")
        return moment
    if _NUMBER.fullmatch(value):
        return from_unix(value)
    if match := _ISO.fullmatch(value):
        return _from_iso(match, value, naive_utc=naive_utc)
    raise ValueError(f"'{text}' is not a timestamp: {FORMS_HINT}")


def is_relative(text: str) -> bool:
    """Whether ``text`` is a time relative to now (``now``, ``-2h``), which means another
    moment each time it is read."""
    if text[:1].isdigit():  # the common case: a time itself
        return False
    value = text.strip()
    return value.lower() == "now" or _RELATIVE.fullmatch(value) is not None


def parse_duration(text: str) -> timedelta | None:
    """A length of time such as ``30d``, ``12w``, ``6h``, ``90m`` (minutes) or ``45s``; None
    when ``text`` has not that form."""
    if not (match := _DURATION.fullmatch(text.strip())):
        return None
    try:
        return timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    except OverflowError:
        return timedelta.max


def from_unix(value: str | int | float) -> datetime:
    """Unix time in seconds, milliseconds, microseconds or nanoseconds, by magnitude."""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"'{value}' is not a timestamp: {FORMS_HINT}") from None
    if not number.is_finite():  # NaN and infinities, which JSON readers accept
        raise ValueError(f"'{value}' is not a timestamp: {FORMS_HINT}")
    if number < 0:
        raise ValueError(f"'{value}' is before 1970: {FORMS_HINT}")
    if number < 10**11:
        ns = number * 10**9
    elif number < 10**14:
        ns = number * 10**6
    elif number < 10**17:
        ns = number * 10**3
    else:
        ns = number
    try:
        return from_ns(int(ns))
    except OverflowError:
        raise ValueError(f"'{value}' is out of range") from None


def _from_iso(match: re.Match[str], text: str, *, naive_utc: bool = False) -> datetime:
    year, month, day, hour, minute, second, fraction = match.group(1, 2, 3, 4, 5, 6, 7)
    digits = (fraction or "0").ljust(9, "0")
    micro, nano = int(digits[:6]), int(digits[6:])
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0),
            int(second or 0), micro,
        )  # fmt: skip
        if match["utc"]:
            moment = moment.replace(tzinfo=UTC)
        elif match["sign"]:
            offset = timedelta(hours=int(match["oh"]), minutes=int(match["om"] or 0))
            if offset >= timedelta(hours=24):
                raise ValueError("offset out of range")
            moment = moment.replace(tzinfo=timezone(-offset if match["sign"] == "-" else offset))
        else:
            moment = moment.replace(tzinfo=UTC) if naive_utc else _local(moment, text)
        moment = moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"'{text}' is not a valid date and time ({exc})") from None
    except ValueError as exc:
        if str(exc).startswith(f"'{text}'"):
            raise
        raise ValueError(f"'{text}' is not a valid date and time ({exc})") from None
    if moment < EPOCH:
        raise ValueError(f"'{text}' is before 1970")
    return from_ns(to_ns(moment) + nano) if nano else moment


def _local(naive: datetime, text: str) -> datetime:
    """``naive`` read as local time; a time that a DST change skips or repeats is refused
    rather than guessed."""
    first, second = naive.replace(fold=0).astimezone(), naive.replace(fold=1).astimezone()
    if first.utcoffset() != second.utcoffset():
        exists = first.replace(tzinfo=None) == naive or second.replace(tzinfo=None) == naive
        problem = "occurs twice" if exists else "does not exist"
        raise ValueError(
            f"'{text}' {problem} in local time (a daylight-saving change); add Z or an offset"
        )
    return first


#: The last moment an integer nanosecond timestamp (the store's) can hold: 2262-04-11.
LATEST = EPOCH + timedelta(microseconds=(2**63 - 1) // 1000)


def to_ns(moment: datetime) -> int:
    """Integer nanoseconds since the Unix epoch (the store's and Datadog's unit)."""
    delta = moment - EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 10**6 + delta.microseconds
    return micros * 1000 + _nanosecond(moment)


def from_ns(ns: int) -> datetime:
    """The aware UTC datetime for integer nanoseconds since the Unix epoch: an ``Instant``
    when they do not fall on a whole microsecond."""
    moment = EPOCH + timedelta(microseconds=ns // 1000)
    if not ns % 1000:
        return moment
    return Instant(
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
        moment.microsecond, tzinfo=UTC, nanosecond=ns % 1000,
    )  # fmt: skip


def format_iso(moment: datetime) -> str:
    """``2026-11-24T09:30:00Z``, with the fraction only when there is one: 6 digits, or 9
    for a time exact to the nanosecond."""
    if isinstance(moment, Instant) and moment.nanosecond:  # made by from_ns: UTC
        fraction = moment.microsecond * 1000 + moment.nanosecond
        return f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}.{fraction:09d}Z"
    moment = moment.astimezone(UTC)
    spec = "%Y-%m-%dT%H:%M:%S.%fZ" if moment.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return moment.strftime(spec)


def format_duration(delta: timedelta) -> str:
    """A short human duration: ``45s``, ``12m``, ``3h 20m``, ``2d 4h``; never negative (a
    start within the allowed clock skew may lie a little ahead of now)."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"
