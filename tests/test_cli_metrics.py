"""``dora metrics`` as a user runs it: options, errors, and every format parsed back.

The store is the hand-checked fixture of test_metrics.py (the week of 2026-11-01)."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path

import pytest

from conftest import FIXED_NOW, execute
from dora import metrics
from test_metrics import API, DB, NO_SERVICE, TOTAL, WEB, build_fixture, event_id, figures

FIXTURES = Path(__file__).parent / "fixtures"
WEEK = ("--since", "2026-11-01T00:00:00Z", "--until", "2026-11-08T00:00:00Z")

API_LEVELS = {
    "deployment_frequency": "high",
    "lead_time": "elite",
    "change_failure_rate": "low",
    "time_to_restore": "high",
    "recovery_time": "high",
}


@pytest.fixture
def db_path(store_db):
    """Every test here runs on both engines."""
    return store_db


@pytest.fixture
def fixture_store(db_path):
    return build_fixture(db_path)


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def test_json_is_the_documented_contract(dora, fixture_store):
    result = dora("metrics", *WEEK, "--format", "json")

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    data = json.loads(result.stdout)
    assert list(data) == [
        "since", "until", "group_by", "filters", "levels_from", "benchmarks",
        "link_window_seconds", "groups", "total",
    ]  # fmt: skip
    assert data["since"] == "2026-11-01T00:00:00Z"
    assert data["until"] == "2026-11-08T00:00:00Z"
    assert data["group_by"] == ["service"]
    assert data["filters"] == {"service": [], "team": [], "env": []}
    assert data["levels_from"] == "DORA State of DevOps Report 2024"
    assert (data["benchmarks"], data["link_window_seconds"]) == ("2024", None)
    groups = {group["service"]: group for group in data["groups"]}
    assert [group["service"] for group in data["groups"]] == ["api", "db", "web", None]
    for service, expected in (("api", API), ("db", DB), ("web", WEB), (None, NO_SERVICE)):
        levels = groups[service].pop("levels")
        assert groups[service] == {"service": service, **expected}
        assert set(levels) == set(API_LEVELS)
    assert list(groups["api"]) == ["service", *metrics.FIGURES]
    assert data["total"].pop("levels") == {
        "deployment_frequency": "high",
        "lead_time": "high",
        "change_failure_rate": "low",
        "time_to_restore": "high",
        "recovery_time": "high",  # median 1h 30m
    }
    assert data["total"] == TOTAL


def test_json_levels_of_a_group(dora, fixture_store):
    data = json.loads(dora("metrics", *WEEK, "--format", "json").stdout)

    assert data["groups"][0]["levels"] == API_LEVELS
    assert data["groups"][1]["levels"]["change_failure_rate"] is None  # db: no deployments


def test_csv_parses_back_to_the_same_figures(dora, fixture_store):
    result = dora("metrics", *WEEK, "--format", "csv", "--by", "service,env")

    assert result.exit_code == 0, result.stderr
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(table[0]) == [
        "row", "start", "end", "service", "env", *metrics.FIGURES,
        "deployment_frequency_level", "lead_time_level", "change_failure_rate_level",
        "time_to_restore_level", "recovery_time_level",
    ]  # fmt: skip
    assert [(r["row"], r["service"], r["env"]) for r in table] == [
        ("group", "api", "prod"),
        ("group", "api", "staging"),
        ("group", "db", "prod"),
        ("group", "web", "prod"),
        ("group", "", "prod"),
        ("total", "", ""),
    ]

    counts = {
        "deployments", "failures", "resolved_failures", "open_failures", "failed_deployments",
        "recovered_failed_deployments", "unrecovered_failed_deployments", "rework_deployments",
    }  # fmt: skip

    def parsed(row: dict[str, str]) -> dict[str, object]:
        def value(name: str, text: str) -> object:
            if text == "":
                return None
            return int(text) if name in counts else float(text)

        return {name: value(name, row[name]) for name in metrics.FIGURES}

    assert parsed(table[-1]) == TOTAL
    assert parsed(table[2]) == DB
    assert table[2]["change_failure_rate"] == ""  # no deployments: empty, never 0
    assert table[2]["change_failure_rate_level"] == ""
    assert table[-1]["change_failure_rate_level"] == "low"
    assert (table[-1]["start"], table[-1]["end"]) == (
        "2026-11-01T00:00:00Z",
        "2026-11-08T00:00:00Z",
    )


def test_markdown_is_a_table_for_the_step_summary(dora, fixture_store):
    result = dora("metrics", *WEEK, "--format", "markdown")

    assert result.exit_code == 0, result.stderr
    assert lines(result.stdout) == [
        "### DORA metrics, 2026-11-01 → 2026-11-08 UTC (7 days), by service",
        "",
        "| service | deploys | per day | lead time | failed | CFR | recovery | rework "
        "| incidents | restored | MTTR | TTR median | TTR p90 | open (oldest) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| api | 4 | 0.57 _high_ | 18h _elite_ | 2 | 50.0% _low_ | 2h _high_ | 0.0% | 2 | 2 "
        "| 18h 30m | 18h 30m _high_ | 1d 8h | 2 (19d) |",
        "| db | 0 | 0.00 _low_ | n/a | 0 | n/a | n/a | n/a | 1 | 1 | 30m | 30m _elite_ | 30m | 0 |",
        "| web | 2 | 0.29 _high_ | 1d _high_ | 1 | 50.0% _low_ | 1h _high_ | 0.0% | 1 | 1 | 1h "
        "| 1h _high_ | 1h | 0 |",
        "| (none) | 0 | 0.00 _low_ | n/a | 0 | n/a | n/a | n/a | 1 | 1 | 2h | 2h _high_ | 2h | 0 |",
        "| **total** | **6** | **0.86 _high_** | **1d _high_** | **3** | **50.0% _low_** "
        "| **1h 30m _high_** | **0.0%** | **4** | **4** | **9h 52m** | **1h 30m _high_** "
        "| **1d 1h** | **2 (19d)** |",
        "",
        "2 incidents open at the end of the window; the oldest for 19d. Failed: failed "
        "deployments; CFR: their share of deployments; recovery: their median recovery time; "
        "rework: the share of deployments that remediated one. TTR: time to restore from "
        "incidents; MTTR: its mean. Levels (DORA State of DevOps Report 2024, from medians) "
        "in italics.",
    ]
    # parsed back: every row has as many cells as the header
    table = [line for line in lines(result.stdout) if line.startswith("|")]
    assert {len(line.split(" | ")) for line in table if not line.startswith("|---")} == {14}


def test_the_table_shows_every_figure_with_a_total(dora, fixture_store):
    result = dora("metrics", *WEEK)

    assert result.exit_code == 0, result.stderr
    # a golden file: the report exactly as a 120-column terminal shows it
    expected = (FIXTURES / "metrics-table.txt").read_text()
    assert "\n".join(lines(result.stdout)) + "\n" == expected


def test_a_narrow_terminal_drops_the_secondary_columns_and_says_so(
    dora, fixture_store, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "80")

    result = dora("metrics", *WEEK)

    assert result.exit_code == 0, result.stderr
    assert max(len(line) for line in lines(result.stdout)) <= 80
    assert lines(result.stdout)[3].split() == [
        "SERVICE", "DEPLOYS", "DAY", "TIME", "FAILED", "CFR", "RECOVERY", "REWORK", "(OLDEST)",
    ]  # fmt: skip
    assert result.stderr == (  # wrapped at the width, as the table is
        "Left out TTR P90, MTTR, RESTORED, INCIDENTS, TTR MEDIAN to fit the terminal;\n"
        "--format json has all.\n"
    )


def test_levels_are_coloured_on_a_terminal(fixture_store):
    out = io.StringIO()
    with open_fixture(fixture_store) as store:
        report = metrics.report(store, *WINDOW)
    from dora import render

    render.metrics_table(report, out, color=True)

    api = out.getvalue().splitlines()[4]
    assert re.search("\x1b\\[31m *50.0% L\x1b\\[0m", api)  # CFR low: red
    assert re.search("\x1b\\[1;32m *18h E\x1b\\[0m", api)  # lead time elite: bold green
    assert re.search("\x1b\\[32m *0.57 H\x1b\\[0m", api)  # frequency high: green


def open_fixture(path):
    from dora.store import open_store

    return open_store(path, create=False)


WINDOW = (
    metrics.timeparse.parse_timestamp("2026-11-01T00:00:00Z"),
    metrics.timeparse.parse_timestamp("2026-11-08T00:00:00Z"),
)
WINDOW_NS = tuple(metrics.timeparse.to_ns(moment) for moment in WINDOW)


def test_filters_and_grouping_from_the_command_line(dora, fixture_store):
    result = dora("metrics", *WEEK, "--by", "TEAM", "--env", "prod", "--format", "json")

    data = json.loads(result.stdout)
    assert data["group_by"] == ["team"]
    assert data["filters"] == {"service": [], "team": [], "env": ["prod"]}
    assert [
        (g["team"], g["deployments"], g["failures"], g["failed_deployments"])
        for g in data["groups"]
    ] == [
        ("data", 0, 1, 0),
        ("edge", 2, 0, 1),  # d5, which payments' i1 followed
        ("payments", 3, 3, 2),
    ]
    assert data["total"]["change_failure_rate"] == 0.6
    assert data["total"]["incidents_per_deployment"] == 0.8


def test_repeated_service_filters_and_by_none(dora, fixture_store):
    result = dora(
        "metrics", *WEEK, "--service", "web", "--service", "db", "--by", "none", "--format", "json"
    )

    data = json.loads(result.stdout)
    assert data["group_by"] == []
    assert [g["failures"] for g in data["groups"]] == [2]
    assert data["total"]["failures"] == 2


def test_the_default_window_is_the_30_days_before_now(dora, fixture_store, frozen_now):
    data = json.loads(dora("metrics", "--format", "json").stdout)

    assert (data["since"], data["until"]) == ("2026-10-25T12:00:00Z", "2026-11-24T12:00:00Z")
    assert FIXED_NOW.isoformat().startswith("2026-11-24T12:00")


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("12w", "2026-09-01T00:00:00Z"),
        ("6h", "2026-11-23T18:00:00Z"),
        ("90m", "2026-11-23T22:30:00Z"),
        ("2026-10-01", "2026-10-01T00:00:00Z"),
        ("-2d", "2026-11-22T12:00:00Z"),  # an offset counts from now, not from --until
    ],
)
def test_since_takes_a_length_before_until_or_a_time(dora, db_path, frozen_now, since, expected):
    result = dora(
        "metrics", "--since", since, "--until", "2026-11-24T00:00:00Z", "--format", "json"
    )

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["since"] == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--since", "2026-11-08T00:00Z", "--until", "2026-11-01T00:00Z"),
            "--since: 2026-11-08T00:00:00Z is not before --until (2026-11-01T00:00:00Z)",
        ),
        (
            ("--since", "2026-11-01T00:00Z", "--until", "2026-11-01T00:00Z"),
            "--since: 2026-11-01T00:00:00Z is not before --until (2026-11-01T00:00:00Z)",
        ),
        (("--since", "0d"), "--since: the window must not be empty"),
        (("--since", "30000w"), "--since: 30000w before --until reaches back before 1970"),
        (
            ("--since", "99999999999w"),
            "--since: 99999999999w before --until reaches back before 1970",
        ),
        (("--since", "30"), "--since: '30' has no unit: write 30d, w, h or m"),
        (("--until", "7"), "--until: '7' has no unit: write 7d, w, h or m"),
        (
            ("--until", "2300-01-01T00:00:00Z"),
            "--until: 2300-01-01T00:00:00Z is after the last time the store can hold (2262)",
        ),
        (("--since", "yesterday"), "--since: 'yesterday' is not a timestamp: use ISO 8601"),
        (("--until", "soon"), "--until: 'soon' is not a timestamp: use ISO 8601"),
        (("--by", "region"), "--by: 'region' is not a field; use service, team, env or none"),
        (
            ("--by", "service,"),
            "--by: 'an empty name' is not a field; use service, team, env or none",
        ),
        (("--by", "env,env"), "--by: 'env,env' names a field twice"),
        (("--service", " "), "--service: must not be empty"),
        (("--env", ""), "--env: must not be empty"),
        (
            ("--explain", "--format", "csv"),
            "--explain: not available with --format csv; use json or markdown",
        ),
    ],
)
def test_bad_options_are_one_line_usage_errors(dora, db_path, frozen_now, args, message):
    result = dora("metrics", *args)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"dora: error: {message}")
    assert len(result.stderr.splitlines()) <= 2
    assert not db_path.exists()


def test_an_unknown_interval_or_format_is_a_usage_error(dora, db_path):
    assert dora("metrics", "--interval", "hour").exit_code == 2
    assert dora("metrics", "--format", "yaml").exit_code == 2


def test_a_missing_store_reports_nothing_and_creates_nothing(dora, db_path, frozen_now):
    result = dora("metrics", "--format", "json")

    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["groups"] == []
    assert data["total"] == {
        **figures(),
        "levels": {**dict.fromkeys(API_LEVELS), "deployment_frequency": "low"},
    }
    assert result.stderr == f"Nothing has been recorded in {db_path} yet.\n"
    assert not db_path.exists()


def test_a_window_without_events_says_so_on_stderr(dora, fixture_store):
    result = dora("metrics", "--since", "2026-01-01", "--until", "2026-02-01", "--format", "csv")

    assert result.exit_code == 0
    assert [line.split(",")[0] for line in result.stdout.splitlines()] == ["row", "total"]
    assert result.stderr == "No deployments or incidents in this window.\n"


def test_a_file_that_is_not_dora_is_a_one_line_failure(dora, tmp_path):
    path = tmp_path / "other.db"
    path.write_text("not a database")

    result = dora("metrics", "--db", str(path))

    assert result.exit_code == 1
    assert result.stderr == (
        f"dora: error: {path} is not a dora database (not an SQLite file); left untouched\n"
    )


def test_interval_adds_a_trend_to_json(dora, fixture_store):
    data = json.loads(
        dora("metrics", *WEEK, "--by", "none", "--interval", "day", "--format", "json").stdout
    )

    assert data["interval"] == "day"
    assert [(t["start"][:10], t["end"][:10], t["deployments"]) for t in data["trend"]] == [
        ("2026-11-01", "2026-11-02", 1),
        ("2026-11-02", "2026-11-03", 1),
        ("2026-11-03", "2026-11-04", 1),
        ("2026-11-04", "2026-11-05", 1),
        ("2026-11-05", "2026-11-06", 1),
        ("2026-11-06", "2026-11-07", 1),
        ("2026-11-07", "2026-11-08", 0),
    ]
    assert data["trend"][0]["deployment_frequency_per_day"] == 1.0
    assert data["trend"][6]["change_failure_rate"] is None


def test_interval_in_the_table_draws_a_bar_per_metric(dora, fixture_store):
    result = dora("metrics", *WEEK, "--service", "web", "--interval", "day")

    trend = lines(result.stdout)[lines(result.stdout).index("By day") :]
    assert trend[1].split() == ["LEAD", "MEDIAN"]
    assert trend[2].split() == [
        "DAY", "SERVICE", "DEPLOYS", "TIME", "FAILED", "CFR", "RECOVERY", "RESTORE", "OPEN",
    ]  # fmt: skip
    assert trend[3].split() == ["2026-11-01", "web", "0", "n/a", "0", "n/a", "n/a", "n/a", "0"]
    assert trend[4].split() == [
        "2026-11-02", "1", "█", "1d", "█", "1", "█", "100.0%", "█", "1h", "█", "1h", "█", "0",
    ]  # fmt: skip
    assert trend[6].split() == ["2026-11-04", "1", "█", "n/a", "0", "0.0%", "n/a", "n/a", "0"]


def test_interval_in_csv_adds_trend_rows(dora, fixture_store):
    result = dora("metrics", *WEEK, "--by", "none", "--interval", "week", "--format", "csv")

    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["row"], r["start"], r["end"], r["deployments"]) for r in table] == [
        ("total", "2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z", "6"),
        ("trend", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "1"),  # Sunday
        ("trend", "2026-11-02T00:00:00Z", "2026-11-08T00:00:00Z", "5"),  # Monday on
    ]


def test_interval_in_markdown_adds_a_second_table(dora, fixture_store):
    result = dora("metrics", *WEEK, "--by", "none", "--interval", "week", "--format", "markdown")

    text = lines(result.stdout)
    start = text.index("#### By week")
    assert text[start + 2] == (
        "| week | deploys | per day | lead time | failed | CFR | recovery | rework | incidents "
        "| restored | MTTR | TTR median | TTR p90 | open (oldest) |"
    )
    assert text[start + 4].startswith(
        "| 2026-11-01 | 1 | 1.0 _high_ | n/a | 0 | 0.0% _elite_ | n/a | 0.0% | 0 | 1 |"
    )
    assert text[start + 5].startswith(
        "| 2026-11-02 | 5 | 0.83 _high_ | 1d _high_ | 3 | 60.0% _low_ | 1h 30m _high_ | 0.0% |"
    )


def test_explain_lists_the_events_under_each_group(dora, fixture_store):
    result = dora("metrics", *WEEK, "--service", "web", "--explain")

    text = lines(result.stdout)
    start = text.index("web: the events behind the numbers")
    assert text[start + 1 :] == [
        f"  deployment {event_id('d5')} finished 2026-11-02 00:00:00, 1 commit, lead time 1d",
        f"  deployment {event_id('d8')} finished 2026-11-04 00:00:00, no commits recorded",
        f"  failure {event_id('i1')} started 2026-11-02 00:00:00, resolved 2026-11-02 01:00:00",
        f"  restored {event_id('i1')} in 1h (2026-11-02 00:00:00 to 2026-11-02 01:00:00)",
        f"  failed {event_id('d5')} finished 2026-11-02 00:00:00: incident {event_id('i1')} "
        "started 0s after it finished (the",
        "    latest deployment before it)",  # wrapped at a space, under a hanging indent
        f"  recovered {event_id('d5')} in 1h (at 2026-11-02 01:00:00)",
    ]


def test_explain_in_json_gives_ids_and_times(dora, fixture_store):
    data = json.loads(dora("metrics", *WEEK, "--explain", "--format", "json").stdout)

    api = data["groups"][0]["explain"]
    assert [d["id"] for d in api["deployments"]] == [event_id(n) for n in ("d1", "d2", "d3", "d4")]
    assert api["deployments"][1] == {
        "id": event_id("d2"),
        "finished_at": "2026-11-03T12:00:00Z",
        "commits": 2,
        "shortest_lead_time_seconds": 43200.0,
        "longest_lead_time_seconds": 86400.0,
    }
    assert api["open"] == [
        {"id": event_id("i6"), "started_at": "2026-10-20T00:00:00Z", "finished_at": None},
        {"id": event_id("i3"), "started_at": "2026-11-04T00:00:00Z", "finished_at": None},
    ]
    assert "explain" not in data["total"]


def test_explain_in_markdown_folds_each_group(dora, fixture_store):
    result = dora("metrics", *WEEK, "--service", "db", "--explain", "--format", "markdown")

    text = lines(result.stdout)
    start = text.index("<details><summary>db: the events behind the numbers</summary>")
    assert text[start + 2 : start + 4] == [
        f"- failure {event_id('i4')} started 2026-11-03 00:00:00, resolved 2026-11-03 00:30:00",
        f"- restored {event_id('i4')} in 30m (2026-11-03 00:00:00 to 2026-11-03 00:30:00)",
    ]
    assert text[-1] == "</details>"


def test_markdown_escapes_names_that_would_break_the_table(dora, db_path):
    assert (
        dora("deployment", "--service", "a|b_c", "--started-at", "-1h", "--skip-git").exit_code == 0
    )

    result = dora("metrics", "--format", "markdown")

    assert "| a\\|b\\_c | 1 |" in result.stdout


@pytest.mark.parametrize("format", ["table", "markdown"])
def test_by_none_shows_the_total_as_the_one_row(dora, fixture_store, format):
    result = dora("metrics", *WEEK, "--by", "none", "--interval", "day", "--format", format)

    assert result.exit_code == 0, result.stderr
    total = [line for line in lines(result.stdout) if "total" in line]
    assert len(total) == 1
    if format == "table":
        assert total[0].split()[:3] == ["total", "6", "0.86"]
    else:
        assert total[0].startswith("| **total** | **6** | **0.86 _high_** |")
    assert "2026-11-07" in result.stdout  # the trend's last day


def test_times_without_a_zone_are_utc_in_a_report(dora, db_path, monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()

    result = dora("metrics", "--since", "2026-10-01", "--until", "2026-12-01", "--format", "json")

    data = json.loads(result.stdout)
    assert (data["since"], data["until"]) == ("2026-10-01T00:00:00Z", "2026-12-01T00:00:00Z")


def test_open_incidents_age_no_further_than_now(dora, fixture_store, frozen_now):
    result = dora(
        "metrics", "--since", "2026-11-01T00:00:00Z", "--until", "2027-11-08T00:00:00Z",
        "--format", "json",
    )  # fmt: skip

    api = json.loads(result.stdout)["groups"][0]
    assert api["open_failures"] == 2
    assert api["oldest_open_failure_age_seconds"] == 35.5 * 86400  # 10-20 to now, 11-24 12:00


def test_a_report_reads_one_state_of_a_store_written_meanwhile(fixture_store, monkeypatch):
    written = []

    with open_fixture(fixture_store) as store:
        original = type(store).aggregate

        def aggregate_then_a_write(self, sql, params=()):
            found = original(self, sql, params)
            if not written:  # another CI job records a deployment after the first query
                execute(
                    fixture_store,
                    "INSERT INTO deployments (id, service, started_at, finished_at, recorded_at) "
                    "VALUES ('late-deployment-0001', 'api', ?, ?, 0)",
                    (WINDOW_NS[0] + 1, WINDOW_NS[0] + 1),
                )
                written.append(True)
            return found

        monkeypatch.setattr(type(store), "aggregate", aggregate_then_a_write)
        report = metrics.report(store, *WINDOW)

    assert written
    assert sum(row.figures.deployments for row in report.groups) == report.total.deployments == 6


def test_csv_cells_a_spreadsheet_would_run_are_plain_text(dora, db_path):
    for team in ("=HYPERLINK(1)", "@acme/payments"):
        assert dora("incident", "open", "--team", team, "--skip-git").exit_code == 0

    result = dora("metrics", "--format", "csv", "--by", "team")

    teams = [row["team"] for row in csv.DictReader(io.StringIO(result.stdout))]
    assert teams == ["'=HYPERLINK(1)", "'@acme/payments", ""]


def test_markdown_names_are_escaped_in_tables_and_summaries(dora, db_path):
    assert dora("incident", "open", "--team", "a&lt;b_c", "--skip-git").exit_code == 0

    result = dora("metrics", "--format", "markdown", "--by", "team", "--explain")

    assert "| a&amp;lt;b\\_c | 0 |" in result.stdout
    assert (
        "<details><summary>a&amp;lt;b_c: the events behind the numbers</summary>" in result.stdout
    )


def test_a_table_written_to_a_file_has_every_column(dora, fixture_store, monkeypatch):
    monkeypatch.delenv("COLUMNS")

    result = dora("metrics", *WEEK)

    assert lines(result.stdout)[3].split() == [
        "SERVICE", "DEPLOYS", "DAY", "TIME", "FAILED", "CFR", "RECOVERY", "REWORK", "INCIDENTS",
        "RESTORED", "MTTR", "MEDIAN", "P90", "(OLDEST)",
    ]  # fmt: skip
    assert result.stderr == ""


def test_month_buckets_are_labelled_by_month(dora, fixture_store):
    result = dora(
        "metrics", "--since", "2026-10-15", "--until", "2026-12-01", "--interval", "month",
        "--by", "none",
    )  # fmt: skip

    days = [
        line.split()[0]
        for line in lines(result.stdout)[lines(result.stdout).index("By month") + 3 :]
    ]
    assert days == ["2026-10-15", "2026-11"]


def test_a_rare_deployment_still_shows_a_frequency(dora, db_path):
    assert (
        dora("deployment", "--service", "api", "--started-at", "-1h", "--skip-git").exit_code == 0
    )

    result = dora("metrics", "--since", "365d")

    assert lines(result.stdout)[4].split()[:4] == ["api", "1", "0.003", "L"]


# --- what a store written before the checks may hold is shown, not obeyed -------------------


@pytest.fixture
def spoofed(fixture_store):
    """The fixture with names a store written before dora refused them may hold: a
    right-to-left override in a service, mentions as names."""
    execute(
        fixture_store, "UPDATE deployments SET service = ? WHERE service = ?", ("we\u202eb", "web")
    )
    execute(
        fixture_store,
        "UPDATE incident_services SET service = ? WHERE service = ?",
        ("we\u202eb", "web"),
    )
    execute(fixture_store, "UPDATE deployments SET service = ? WHERE service = ?", ("@here", "api"))
    execute(
        fixture_store,
        "UPDATE incident_services SET service = ? WHERE service = ?",
        ("@here", "api"),
    )
    execute(fixture_store, "UPDATE deployments SET team = ?", ("@acme/on-call",))
    return fixture_store


def test_hidden_characters_are_shown_in_every_format_people_read(dora, spoofed):
    outputs = {
        "table": dora("metrics", *WEEK).stdout,
        "markdown": dora("metrics", *WEEK, "--format", "markdown").stdout,
        "csv": dora("metrics", *WEEK, "--format", "csv").stdout,
    }

    shown = {"table": "we<U+202E>b", "markdown": "we\\<U+202E\\>b", "csv": "we<U+202E>b"}
    for fmt, text in outputs.items():
        assert "\u202e" not in text, fmt
        assert shown[fmt] in text, fmt


def test_markdown_turns_mentions_into_code_so_nobody_is_notified(dora, spoofed):
    by_service = dora("metrics", *WEEK, "--format", "markdown").stdout
    by_team = dora("metrics", *WEEK, "--by", "team", "--format", "markdown").stdout

    assert "| `@here` |" in by_service
    assert "| `@acme/on-call` |" in by_team
    assert re.search(r"(?<!`)@(here|acme)", by_service + by_team) is None
