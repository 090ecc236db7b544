"""Every timestamp form dora accepts, and the ones it refuses."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import pytest

from dora import timeparse
from dora.timeparse import (
    FORMS_HINT,
    format_duration,
    format_iso,
    from_ns,
    from_unix,
    parse_timestamp,
    to_ns,
)

UTC = timezone.utc
NOON = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
NOON_UNIX = 1795521600  # 2026-11-24T12:00:00Z


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- now and relative offsets ---------------------------------------------------------


def test_now_is_an_aware_utc_datetime():
    moment = timeparse.now()

    assert moment.tzinfo is not None
    assert moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["now", "NOW", "  now  "])
def test_now_is_the_pinned_clock(frozen_now, text):
    assert parse_timestamp(text) == frozen_now


def test_now_counts_from_an_explicit_reference():
    reference = utc(2020, 1, 1, 8, 0)

    assert parse_timestamp("now", reference=reference) == reference
    assert parse_timestamp("-1h", reference=reference) == utc(2020, 1, 1, 7, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-30s", utc(2026, 11, 24, 11, 59, 30)),
        ("-15m", utc(2026, 11, 24, 11, 45)),
        ("-2h", utc(2026, 11, 24, 10, 0)),
        ("-1d", utc(2026, 11, 23, 12, 0)),
        ("-1w", utc(2026, 11, 17, 12, 0)),
        ("-90m", utc(2026, 11, 24, 10, 30)),
    ],
)
def test_a_relative_offset_counts_back_from_now(frozen_now, text, expected):
    assert parse_timestamp(text) == expected


# --- Unix time ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        str(NOON_UNIX),  # seconds
        str(NOON_UNIX * 10**3),  # milliseconds
        str(NOON_UNIX * 10**6),  # microseconds
        str(NOON_UNIX * 10**9),  # nanoseconds
    ],
    ids=["seconds", "milliseconds", "microseconds", "nanoseconds"],
)
def test_unix_time_unit_is_told_apart_by_magnitude(text):
    assert parse_timestamp(text) == NOON


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{NOON_UNIX}.5", NOON + timedelta(milliseconds=500)),
        (f"{NOON_UNIX}.000250", NOON + timedelta(microseconds=250)),
        (f"{NOON_UNIX * 1000}.5", NOON + timedelta(microseconds=500)),
    ],
)
def test_unix_time_may_be_a_decimal_number(text, expected):
    assert parse_timestamp(text) == expected


def test_unix_seconds_end_just_below_one_hundred_billion():
    epoch = timeparse.EPOCH

    assert parse_timestamp("99999999999") == epoch + timedelta(seconds=99_999_999_999)
    assert parse_timestamp("100000000000") == epoch + timedelta(milliseconds=100_000_000_000)


def test_from_unix_accepts_numbers_as_well_as_text():
    assert from_unix(NOON_UNIX) == NOON
    assert from_unix(NOON_UNIX * 10**9) == NOON
    assert from_unix(NOON_UNIX + 0.5) == NOON + timedelta(milliseconds=500)


def test_unix_time_below_zero_is_rejected():
    with pytest.raises(ValueError, match="before 1970"):
        from_unix(-1)


# --- ISO 8601 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-24T09:30:00Z", utc(2026, 11, 24, 9, 30)),
        ("2026-11-24t09:30:00z", utc(2026, 11, 24, 9, 30)),
        ("2026-11-24T09:30Z", utc(2026, 11, 24, 9, 30)),
        ("2026-11-24T09:30:00+01:00", utc(2026, 11, 24, 8, 30)),
        ("2026-11-24T09:30:00+0100", utc(2026, 11, 24, 8, 30)),
        ("2026-11-24T09:30:00+01", utc(2026, 11, 24, 8, 30)),
        ("2026-11-24T09:30-0530", utc(2026, 11, 24, 15, 0)),
        ("2026-11-24T09:30:00-05:30", utc(2026, 11, 24, 15, 0)),
        ("2026-11-24T00:30:00+01:00", utc(2026, 11, 23, 23, 30)),
        ("2026-11-24 09:30:00+01:00", utc(2026, 11, 24, 8, 30)),
        ("2026-11-24 09:30:00Z", utc(2026, 11, 24, 9, 30)),
    ],
)
def test_iso_8601_with_a_zone_is_read_in_that_zone(text, expected):
    result = parse_timestamp(text)

    assert result == expected
    assert result.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("fraction", "nanos"),
    [
        ("1", 100000000),
        ("12", 120000000),
        ("123", 123000000),
        ("1234", 123400000),
        ("12345", 123450000),
        ("123456", 123456000),
        ("1234567", 123456700),
        ("12345678", 123456780),
        ("123456789", 123456789),
        ("999999999", 999999999),
    ],
)
def test_fractional_seconds_are_kept_to_the_nanosecond(fraction, nanos):
    result = parse_timestamp(f"2026-11-24T09:30:00.{fraction}Z")

    assert to_ns(result) == to_ns(utc(2026, 11, 24, 9, 30, 0)) + nanos
    shown = f"{nanos // 1000:06d}" if nanos % 1000 == 0 else f"{nanos:09d}"
    assert format_iso(result) == f"2026-11-24T09:30:00.{shown}Z"


def test_a_comma_may_separate_fractional_seconds():
    assert parse_timestamp("2026-11-24T09:30:00,5Z") == utc(2026, 11, 24, 9, 30, 0, 500000)


def test_a_date_alone_is_local_midnight():
    # the isolated fixture runs every test with TZ=UTC
    assert parse_timestamp("2026-11-24") == utc(2026, 11, 24)


def test_a_space_may_separate_date_and_time():
    assert parse_timestamp("2026-11-24 09:30") == parse_timestamp("2026-11-24T09:30")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-07-01T12:00", utc(2026, 7, 1, 16, 0)),  # EDT, UTC-4
        ("2026-01-15T12:00", utc(2026, 1, 15, 17, 0)),  # EST, UTC-5
        ("2026-01-15 12:00:00.25", utc(2026, 1, 15, 17, 0, 0, 250000)),
        ("2026-01-15", utc(2026, 1, 15, 5, 0)),
    ],
)
def test_a_time_without_zone_is_local_time(monkeypatch, text, expected):
    with monkeypatch.context() as patch:
        patch.setenv("TZ", "America/New_York")
        time.tzset()
        try:
            result = parse_timestamp(text)
        finally:
            patch.undo()
            time.tzset()

    assert result == expected
    assert result.utcoffset() == timedelta(0)


def test_a_time_with_a_zone_ignores_the_local_zone(monkeypatch):
    with monkeypatch.context() as patch:
        patch.setenv("TZ", "America/New_York")
        time.tzset()
        try:
            result = parse_timestamp("2026-07-01T12:00Z")
        finally:
            patch.undo()
            time.tzset()

    assert result == utc(2026, 7, 1, 12, 0)


# --- invalid input --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "yesterday",
        "2026-13-01",
        "2026-02-30T00:00",
        "12:00",
        "-5",
        "+5m",
        "2026-11-24T25:00Z",
        "2026-11-24T09:60Z",
        "2026-11-24T09:30+24:00",
        "-1y",
        "1e10",
        "24/11/2026",
    ],
)
def test_an_unreadable_timestamp_raises_value_error_naming_the_forms(text):
    with pytest.raises(ValueError, match=f"{re.escape(FORMS_HINT)}|not a valid date"):
        parse_timestamp(text)


@pytest.mark.parametrize("text", ["", "yesterday", "12:00", "-5", "+5m"])
def test_an_unrecognised_form_lists_the_accepted_forms(text):
    with pytest.raises(ValueError, match=re.escape(FORMS_HINT)):
        parse_timestamp(text)


@pytest.mark.parametrize(
    "text", ["2026-13-01", "2026-02-30T00:00", "2026-11-24T25:00Z", "2026-11-24T09:30+24:00"]
)
def test_an_impossible_calendar_date_says_it_is_not_a_valid_date(text):
    with pytest.raises(ValueError, match="not a valid date") as excinfo:
        parse_timestamp(text)

    assert text in str(excinfo.value)


# --- nanoseconds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment",
    [
        timeparse.EPOCH,
        NOON,
        utc(2026, 11, 24, 9, 30, 0, 123456),
        utc(1999, 12, 31, 23, 59, 59, 999999),
    ],
)
def test_to_ns_and_from_ns_round_trip(moment):
    assert from_ns(to_ns(moment)) == moment


def test_to_ns_counts_integer_nanoseconds_since_the_epoch():
    assert to_ns(timeparse.EPOCH) == 0
    assert to_ns(NOON) == NOON_UNIX * 10**9
    assert to_ns(utc(2026, 11, 24, 12, 0, 0, 1)) == NOON_UNIX * 10**9 + 1000
    assert isinstance(to_ns(NOON), int)


def test_to_ns_converts_other_zones():
    plus_one = timezone(timedelta(hours=1))

    assert to_ns(datetime(2026, 11, 24, 13, 0, tzinfo=plus_one)) == NOON_UNIX * 10**9


def test_from_ns_keeps_digits_below_a_microsecond():
    ns = NOON_UNIX * 10**9 + 123_456_789

    assert from_ns(ns) > NOON + timedelta(microseconds=123456)
    assert from_ns(ns) < NOON + timedelta(microseconds=123457)
    assert from_ns(ns) == from_ns(ns)
    assert to_ns(from_ns(ns)) == ns
    assert format_iso(from_ns(ns)) == "2026-11-24T12:00:00.123456789Z"
    assert from_ns(ns - 789) == NOON + timedelta(microseconds=123456)  # no fraction: a datetime


@pytest.mark.parametrize(
    "text",
    ["2026-11-24T09:30:00.123456789Z", "1795426200123456789", "1795426200.123456789"],
)
def test_nanosecond_times_survive_copies_and_pickles(text):
    import copy
    import pickle

    moment = parse_timestamp(text)

    assert to_ns(copy.deepcopy(moment)) == to_ns(moment)
    assert to_ns(pickle.loads(pickle.dumps(moment))) == to_ns(moment)  # noqa: S301
    assert to_ns(moment) % 1000 == 789


# --- formatting -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (utc(2026, 11, 24, 9, 30), "2026-11-24T09:30:00Z"),
        (utc(2026, 11, 24, 9, 30, 0, 123456), "2026-11-24T09:30:00.123456Z"),
        (utc(2026, 11, 24, 9, 30, 0, 500000), "2026-11-24T09:30:00.500000Z"),
        (
            datetime(2026, 11, 24, 10, 30, tzinfo=timezone(timedelta(hours=1))),
            "2026-11-24T09:30:00Z",
        ),
    ],
)
def test_format_iso_shows_microseconds_only_when_there_are_some(moment, text):
    assert format_iso(moment) == text


def test_format_iso_output_parses_back_to_the_same_instant():
    moment = utc(2026, 11, 24, 9, 30, 0, 123456)

    assert parse_timestamp(format_iso(moment)) == moment


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=0), "0s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=59, milliseconds=999), "59s"),
        (timedelta(minutes=12), "12m"),
        (timedelta(minutes=12, seconds=59), "12m"),
        (timedelta(hours=3, minutes=20), "3h 20m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=3, seconds=30), "3h"),
        (timedelta(days=2, hours=4), "2d 4h"),
        (timedelta(days=2, hours=4, minutes=59), "2d 4h"),
        (timedelta(days=2), "2d"),
    ],
)
def test_format_duration_is_short_and_human(delta, text):
    assert format_duration(delta) == text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2026-03-08T02:30", "does not exist in local time"),  # clocks jump 02:00 -> 03:00
        ("2026-11-01T01:30", "occurs twice in local time"),  # clocks fall back 02:00 -> 01:00
    ],
)
def test_a_local_time_a_dst_change_skips_or_repeats_is_refused(monkeypatch, text, problem):
    with monkeypatch.context() as patch:
        patch.setenv("TZ", "America/New_York")
        time.tzset()
        try:
            with pytest.raises(ValueError, match=problem):
                parse_timestamp(text)
            assert parse_timestamp(text + "-04:00") is not None  # an offset settles it
        finally:
            patch.undo()
            time.tzset()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-100000d", "reaches back before 1970"),
        ("-99999999999999999999s", "reaches back before 1970"),
        ("0001-01-01T00:00+01:00", "is not a valid date and time"),
        ("1969-12-31T23:59:59Z", "is before 1970"),
        ("\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660", "is not a timestamp"),
        ("\uff12\uff10\uff12\uff16-11-20", "is not a timestamp"),
        ("2026-01-01T10:00+05:99", "is not a timestamp"),
        ("2025-01-01-05", "is not a timestamp"),  # an offset needs a time
    ],
)
def test_out_of_range_and_non_ascii_times_are_value_errors(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_timestamp(text)


# --- the common form, read without the general pattern ----------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-24T09:30:00Z",
        "2026-11-24T09:30:00.123Z",
        "2026-11-24T09:30:00.123456Z",
        "1970-01-01T00:00:00Z",
        "2024-02-29T23:59:59Z",
        "1969-12-31T23:59:59Z",
        "2026-02-30T09:00:00Z",
        "2025-02-29T09:00:00Z",
        "2026-11-24T24:00:00Z",
        "2026-11-24T09:60:00Z",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
    ],
)
def test_the_common_utc_form_reads_as_the_general_pattern_does(text):
    """``2026-11-24T09:30:00Z`` takes a quicker road; a leading space sends the same text
    down the general one. Both give the same time, or the same error."""

    def read(value: str) -> object:
        try:
            moment = parse_timestamp(value)
        except ValueError as exc:
            return str(exc).replace(value, text)
        return (type(moment), to_ns(moment))

    assert read(text) == read(f" {text}")
