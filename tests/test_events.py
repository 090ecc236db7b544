"""The two events and every rule they follow; the request body sent to Datadog."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from dora import timeparse
from dora.errors import InvalidEvent, UsageError
from dora.events import MAX_TAGS, Deployment, Incident, build, new_id

UTC = timezone.utc
NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)  # the frozen_now fixture's instant
START = "2026-11-24T10:00:00Z"
FINISH = "2026-11-24T11:00:00Z"
SHA = "0123456789abcdef0123456789abcdef01234567"
CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")

pytestmark = pytest.mark.usefixtures("frozen_now")


def deployment(**fields) -> Deployment:
    return build(
        Deployment, {"service": "api", "started_at": START, "finished_at": FINISH, **fields}
    )


def incident(**fields) -> Incident:
    return build(Incident, {"services": ["api"], "started_at": START, **fields})


def rejected(make, **fields) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as excinfo:
        make(**fields)
    return excinfo.value


# --- building -------------------------------------------------------------------------


def test_a_deployment_is_built_with_utc_datetimes():
    event = deployment(env="prod", version="1.2.3", team="core")

    assert event.service == "api"
    assert event.started_at == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert event.finished_at == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    assert (event.env, event.version, event.team) == ("prod", "1.2.3", "core")
    assert event.kind == "deployment"


def test_timestamps_accept_every_timeparse_form():
    event = deployment(started_at="-2h", finished_at="now")

    assert event.started_at == NOW - timedelta(hours=2)
    assert event.finished_at == NOW


@pytest.mark.parametrize(
    "value",
    [
        int(NOW.timestamp()) - 3600,
        (int(NOW.timestamp()) - 3600) * 10**9,
        float(int(NOW.timestamp()) - 3600),
        datetime(2026, 11, 24, 11, 0, tzinfo=UTC),
        datetime(2026, 11, 24, 12, 0, tzinfo=timezone(timedelta(hours=1))),
        datetime(2026, 11, 24, 11, 0),  # naive is local time, UTC in the isolated fixture
    ],
    ids=["unix-seconds", "unix-ns", "float", "aware", "other-zone", "naive"],
)
def test_timestamps_accept_numbers_and_datetimes(value):
    event = deployment(started_at=value, finished_at="now")

    assert event.started_at == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    assert event.started_at.utcoffset() == timedelta(0)


def test_an_incident_without_finish_is_open():
    event = incident(name="db down", severity="high")

    assert event.is_open
    assert event.finished_at is None
    assert event.kind == "incident"


def test_a_closed_incident_is_not_open():
    event = incident(finished_at="2026-11-24T11:20:00Z")

    assert not event.is_open


def test_none_values_are_left_out_so_defaults_apply():
    data = {"services": ["api"], "started_at": START, "finished_at": None, "id": None}

    event = build(Incident, {**data, "custom_tags": None})

    assert event.finished_at is None
    assert len(event.id) == 26
    assert event.custom_tags == []


def test_invalid_event_is_a_usage_error_naming_the_field():
    error = rejected(deployment, service="")

    assert isinstance(error, UsageError)
    assert error.exit_code == 2
    assert str(error) == "service: must not be empty"


def test_a_value_checked_before_is_checked_the_same_way_again():
    # free text, tags and repository URLs are remembered once checked (an import repeats
    # a few hundred of them): a bad one is refused every time, a good one kept the same
    for _ in range(2):
        assert str(rejected(deployment, service="api\x1b[2J")) == (
            "service: must be one line without control characters"
        )
        assert rejected(deployment, custom_tags=["env:prod", "oops"]).problem == (
            "'oops' is not a key:value tag"
        )
        event = deployment(
            service=" api ",
            custom_tags=[" env:prod ", "env:prod"],
            git={"repository_url": "https://user:s3cret@github.com/acme/api.git"},
        )
        assert event.service == "api"
        assert event.custom_tags == ["env:prod"]
        assert event.git is not None
        assert event.git.repository_url == "https://github.com/acme/api.git"


# --- start and finish -----------------------------------------------------------------


def test_start_equal_to_finish_is_accepted():
    event = deployment(started_at=START, finished_at=START)

    assert event.started_at == event.finished_at


def test_finish_before_start_is_rejected_on_finished_at():
    error = rejected(
        deployment, started_at="2026-11-24T10:00:00Z", finished_at="2026-11-24T09:00:00Z"
    )

    assert error.field == "finished_at"
    assert error.problem == "2026-11-24T09:00:00Z is before the start (2026-11-24T10:00:00Z)"


def test_an_incident_that_ends_before_it_starts_is_rejected():
    error = rejected(incident, finished_at="2026-11-24T09:59:59Z")

    assert error.field == "finished_at"


def test_a_deployment_needs_a_finish():
    error = rejected(deployment, finished_at=None)

    assert (error.field, error.problem) == ("finished_at", "required")


@pytest.mark.parametrize("field", ["started_at", "finished_at"])
@pytest.mark.parametrize(
    "value", ["2026-11-24T12:05:00Z", "2026-11-24T12:04:59Z", "2026-11-24T12:00:01Z", "now"]
)
def test_up_to_five_minutes_in_the_future_is_accepted(field, value):
    fields = {"started_at": "-1h", "finished_at": value, field: value}

    event = deployment(**fields)

    assert getattr(event, field) <= NOW + timedelta(minutes=5)


@pytest.mark.parametrize("field", ["started_at", "finished_at"])
def test_more_than_five_minutes_in_the_future_is_rejected(field):
    fields = {"started_at": START, "finished_at": FINISH, field: "2026-11-24T12:05:00.000001Z"}

    error = rejected(deployment, **fields)

    assert error.field == field
    assert error.problem == (
        "2026-11-24T12:05:00.000001Z is in the future (at most 5 minutes of clock skew is allowed)"
    )


def test_the_future_limit_follows_dora_clock(monkeypatch):
    monkeypatch.setattr(timeparse, "now", lambda: NOW + timedelta(days=1))

    event = deployment(started_at="2026-11-25T11:00:00Z", finished_at="2026-11-25T12:00:00Z")

    assert event.finished_at == NOW + timedelta(days=1)


@pytest.mark.parametrize("value", ["yesterday", "2026-02-30", "", "-5"])
def test_an_unreadable_timestamp_is_rejected_on_its_field(value):
    error = rejected(deployment, started_at=value)

    assert error.field == "started_at"
    assert timeparse.FORMS_HINT in error.problem or "not a valid date" in error.problem


# --- commit SHA -----------------------------------------------------------------------


@pytest.mark.parametrize("sha", ["a" * 40, "0" * 64, SHA, "A" * 40, "ABCDEF0123" * 4 + "ff"])
def test_a_full_commit_sha_is_accepted_in_lower_case(sha):
    event = deployment(git={"repository_url": "https://github.com/o/r.git", "commit_sha": sha})

    assert event.git.commit_sha == sha.lower()


@pytest.mark.parametrize("sha", ["a" * 39, "abc1234", "g" * 40, SHA[:-1] + "z", " " + SHA, ""])
def test_a_short_or_non_hex_sha_is_rejected(sha):
    error = rejected(deployment, git={"commit_sha": sha})

    assert error.field == "git.commit_sha"
    assert "40 or more hex" in error.problem


def test_an_unknown_git_field_is_rejected():
    error = rejected(deployment, git={"branch": "main"})

    assert (error.field, error.problem) == ("git.branch", "unknown field")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://gitlab-ci-token:glcbt-abc@gitlab.com/g/p.git", "https://gitlab.com/g/p.git"),
        ("https://ghp_SECRET@github.com/o/r.git", "https://github.com/o/r.git"),
        ("  https://github.com/o/r.git  ", "https://github.com/o/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
    ],
)
def test_git_url_credentials_are_stripped_by_validation(url, expected):
    event = deployment(git={"repository_url": url, "commit_sha": SHA})

    assert event.git.repository_url == expected
    assert "glcbt-abc" not in event.model_dump_json()
    assert "SECRET" not in str(event.api_body())


def test_a_blank_git_url_is_rejected():
    error = rejected(deployment, git={"repository_url": "  "})

    assert (error.field, error.problem) == ("git.repository_url", "must not be empty")


# --- custom tags ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag",
    ["team", "team:", ":core", " :core", "team: ", "", "  "],
    ids=["missing-colon", "empty-value", "empty-key", "blank-key", "blank-value", "empty", "blank"],
)
def test_a_tag_that_is_not_key_value_is_rejected(tag):
    error = rejected(deployment, custom_tags=["env:prod", tag])

    assert error.field == "custom_tags"
    assert error.problem == f"'{tag}' is not a key:value tag"


@pytest.mark.parametrize("tag", ["env:prod", "url:https://x.example.com:8443", "a:b:c", "k:v v"])
def test_a_key_value_tag_is_accepted(tag):
    assert deployment(custom_tags=[tag]).custom_tags == [tag]


def test_duplicate_tags_are_collapsed_in_order():
    event = deployment(custom_tags=["b:2", "a:1", "b:2", " a:1 ", "c:3"])

    assert event.custom_tags == ["b:2", "a:1", "c:3"]


def test_one_hundred_tags_are_accepted():
    tags = [f"k{i}:v" for i in range(MAX_TAGS)]

    assert deployment(custom_tags=tags).custom_tags == tags


def test_one_hundred_and_one_tags_are_rejected():
    error = rejected(deployment, custom_tags=[f"k{i}:v" for i in range(MAX_TAGS + 1)])

    assert error.field == "custom_tags"
    assert error.problem == "101 tags given; at most 100 are allowed"


def test_duplicates_do_not_count_toward_the_tag_limit():
    tags = [f"k{i}:v" for i in range(MAX_TAGS)] + ["k0:v", "k1:v"]

    assert len(deployment(custom_tags=tags).custom_tags) == MAX_TAGS


# --- ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_id",
    [
        "a" * 16,
        "b" * 128,
        "deploy-2026.11.24_09:30",
        "01J9ZQ5X8M3V7K2R4T6Y8W0A1B",
        "A.b_C:d-E0123456",
    ],
)
def test_a_valid_id_is_kept(event_id):
    assert deployment(id=event_id).id == event_id


@pytest.mark.parametrize(
    "event_id",
    [
        "a" * 15,
        "c" * 129,
        "deploy-2026-11-24!",
        "deploy 2026-11-24",
        "deploy/2026-11-24",
        "é" * 16,
        "",
    ],
    ids=["15-chars", "129-chars", "bang", "space", "slash", "non-ascii", "empty"],
)
def test_an_invalid_id_is_rejected(event_id):
    error = rejected(deployment, id=event_id)

    assert error.field == "id"
    assert error.problem == (
        f"'{event_id}' is not a valid id: use 16 to 128 characters of "
        "letters, digits, '.', '_', ':' and '-'"
    )


def test_a_generated_id_is_a_ulid():
    event_id = deployment().id

    assert len(event_id) == 26
    assert set(event_id) <= CROCKFORD
    assert event_id[0] in "01234567"  # 128 bits fit in 26 base-32 digits only so


def test_each_event_gets_its_own_id():
    assert len({deployment().id for _ in range(20)} | {incident().id for _ in range(20)}) == 40


def test_generated_ids_sort_by_creation_time():
    first = new_id()
    time.sleep(0.002)
    second = new_id()

    assert first < second
    assert first[:10] < second[:10]  # the first ten characters are the millisecond clock


# --- incidents ------------------------------------------------------------------------


def test_an_incident_needs_a_service_or_a_team():
    with pytest.raises(InvalidEvent) as excinfo:
        build(Incident, {"started_at": START})

    assert excinfo.value.field == "services"
    assert excinfo.value.problem == "name at least one service, or a team"


def test_an_empty_service_list_without_team_is_rejected():
    error = rejected(incident, services=[])

    assert error.field == "services"


def test_a_team_alone_is_enough_for_an_incident():
    event = build(Incident, {"team": "core", "started_at": START})

    assert event.services == []
    assert event.team == "core"
    assert "services" not in event.api_body()["data"]["attributes"]


def test_services_are_deduplicated_in_order():
    event = incident(services=["web", "api", "web", " api ", "db"])

    assert event.services == ["web", "api", "db"]


def test_a_blank_service_is_rejected():
    error = rejected(incident, services=["api", "  "])

    assert (error.field, error.problem) == ("services", "must not be empty")


# --- text fields and unknown fields ---------------------------------------------------


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (deployment, "service"),
        (deployment, "env"),
        (deployment, "version"),
        (deployment, "team"),
        (incident, "team"),
        (incident, "name"),
        (incident, "severity"),
    ],
)
@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_blank_strings_are_rejected(make, field, blank):
    error = rejected(make, **{field: blank})

    assert (error.field, error.problem) == (field, "must not be empty")


def test_text_is_trimmed():
    event = deployment(service="  api ", env=" prod\n")

    assert (event.service, event.env) == ("api", "prod")


@pytest.mark.parametrize(
    ("make", "field"),
    [(deployment, "colour"), (deployment, "services"), (incident, "service"), (incident, "kind")],
)
def test_an_unknown_field_is_rejected(make, field):
    error = rejected(make, **{field: "x"})

    assert (error.field, error.problem) == (field, "unknown field")


def test_a_missing_service_is_required():
    with pytest.raises(InvalidEvent) as excinfo:
        build(Deployment, {"started_at": START, "finished_at": FINISH})

    assert (excinfo.value.field, excinfo.value.problem) == ("service", "required")


# --- the API body ---------------------------------------------------------------------


def test_api_paths():
    assert Deployment.api_path == "/api/v2/dora/deployment"
    assert Incident.api_path == "/api/v2/dora/failure"


def test_a_deployment_body_holds_every_set_key_with_nanosecond_times():
    event = deployment(
        id="deploy-0000000001",
        env="prod",
        version="1.2.3",
        team="core",
        git={"repository_url": "https://github.com/o/r.git", "commit_sha": SHA},
        custom_tags=["a:1"],
    )

    assert event.api_body() == {
        "data": {
            "attributes": {
                "id": "deploy-0000000001",
                "service": "api",
                "team": "core",
                "env": "prod",
                "version": "1.2.3",
                "started_at": 1795514400 * 10**9,
                "finished_at": 1795518000 * 10**9,
                "git": {"repository_url": "https://github.com/o/r.git", "commit_sha": SHA},
                "custom_tags": ["a:1"],
            }
        }
    }


def test_the_body_leaves_out_what_is_not_set():
    event = deployment(id="deploy-0000000001")

    assert event.api_body() == {
        "data": {
            "attributes": {
                "id": "deploy-0000000001",
                "service": "api",
                "started_at": 1795514400 * 10**9,
                "finished_at": 1795518000 * 10**9,
            }
        }
    }


def test_an_open_incident_body_has_no_finish():
    event = incident(id="incident-00000001", name="db down", severity="SEV-1", team="core")

    assert event.api_body() == {
        "data": {
            "attributes": {
                "id": "incident-00000001",
                "services": ["api"],
                "team": "core",
                "name": "db down",
                "severity": "SEV-1",
                "started_at": 1795514400 * 10**9,
            }
        }
    }


def test_body_timestamps_are_integer_nanoseconds_exactly_as_given():
    event = deployment(started_at="2026-11-24T10:00:00.123456789Z")

    started = event.api_body()["data"]["attributes"]["started_at"]

    assert isinstance(started, int)
    assert started == 1795514400_123456789


def test_a_start_a_nanosecond_after_the_finish_is_refused():
    with pytest.raises(InvalidEvent) as raised:
        deployment(
            started_at="2026-11-24T10:00:00.000000002Z",
            finished_at="2026-11-24T10:00:00.000000001Z",
        )

    assert raised.value.field == "finished_at"


@pytest.mark.parametrize(
    "git",
    [
        {"repository_url": "https://github.com/o/r.git"},
        {"commit_sha": SHA},
        {},
    ],
    ids=["url-only", "sha-only", "neither"],
)
def test_git_is_left_out_of_the_body_unless_both_values_are_known(git):
    event = deployment(git=git)

    assert "git" not in event.api_body()["data"]["attributes"]


def test_the_body_keeps_git_in_the_stored_event_even_when_left_out():
    event = deployment(git={"commit_sha": SHA.upper()})

    assert event.git.commit_sha == SHA
    assert event.git.repository_url is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("env", "pr\nod"), ("service", "a\rpi"), ("version", "1.0\x1b[31m"), ("team", "a\tb")],
)
def test_free_text_must_be_one_line_without_control_characters(field, value):
    error = rejected(deployment, **{field: value})

    assert (error.field, error.problem) == (field, "must be one line without control characters")


def test_a_tag_must_be_one_line():
    error = rejected(deployment, custom_tags=["k:v\nx"])

    assert (error.field, error.problem) == (
        "custom_tags",
        "tags must be one line without control characters",
    )


def test_credentials_in_urls_inside_free_text_are_masked():
    event = build(
        Incident,
        {
            "services": ["api"],
            "started_at": "-1h",
            "name": "fetch https://bot:hunter2@example.com/x fails",
            "custom_tags": ["url:https://ghp_SECRET@github.com/o/r"],
        },
    )

    assert event.name == "fetch https://bot:***@example.com/x fails"
    assert event.custom_tags == ["url:https://***@github.com/o/r"]
