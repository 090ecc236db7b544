"""Terminal layouts at 60, 80 and 120 columns, against golden files, and what they promise:
no line wider than the terminal, no word split, levels marked without colour, a two-line
title, and a line naming exactly what was left out.

The golden files in tests/golden/ hold each output exactly (stdout, then stderr after a
``--- stderr ---`` line), colour off. To write them again after a deliberate change, run
``DORA_UPDATE_GOLDEN=1 python -m pytest tests/test_layouts.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from test_metrics import build_fixture, event_id

GOLDEN = Path(__file__).parent / "golden"
WEEK = ("--since", "2026-11-01T00:00:00Z", "--until", "2026-11-08T00:00:00Z")
WIDTHS = (60, 80, 120)
#: Read once here: the tests' own environment is cleared of DORA_* variables.
UPDATE = os.environ.get("DORA_UPDATE_GOLDEN") == "1"
TEAM = "platform-infrastructure-reliability"

CASES = {
    "metrics-by-service": ("metrics", *WEEK),
    "metrics-by-team-env": ("metrics", *WEEK, "--by", "team,env"),
    "metrics-trend": ("metrics", *WEEK, "--by", "service", "--interval", "week"),
    "metrics-explain": ("metrics", *WEEK, "--service", "web", "--explain"),
    "incident-list": ("incident", "list"),
    "deployment-list": ("deployment", "list", "--limit", "0"),
    "deployment-show": ("deployment", "show", "deploy-checkout-2"),
    "incident-show": ("incident", "show", "incident-checkout-1"),
    "config": ("config",),
}


@pytest.fixture
def store(dora, db_path, frozen_now, monkeypatch):
    """The hand-checked week of test_metrics.py, and a service of a team with a long name
    whose second deployment failed (an incident named in words followed it)."""
    build_fixture(db_path)
    common = ("--service", "checkout-gateway", "--env", "prod", "--team", TEAM, "--skip-git")
    for id, version, finished in (
        ("deploy-checkout-1", "2026.11.2", "2026-11-02T09:00:00Z"),
        ("deploy-checkout-2", "2026.11.3-rc1", "2026-11-03T09:00:00Z"),
    ):
        result = dora(
            "deployment", *common, "--id", id, "--version", version,
            "--started-at", finished.replace("09:", "08:"), "--finished-at", finished,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
    result = dora(
        "incident", "open", *common[:6], "--id", "incident-checkout-1",
        "--name", "cart answers 500 after the deploy", "--severity", "SEV-2",
        "--started-at", "2026-11-03T10:00:00Z", "--finished-at", "2026-11-03T11:15:00Z",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    # dora config shows where its file is: a path that is the same on every machine
    monkeypatch.setenv("DORA_CONFIG", "dora.toml")
    Path("dora.toml").write_text('team = "payments"\n')
    return db_path


def run(dora, monkeypatch, width: int, *args: str) -> tuple[str, str]:
    monkeypatch.setenv("COLUMNS", str(width))
    result = dora(*args)
    assert result.exit_code == 0, result.stderr
    return result.stdout, result.stderr


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("case", CASES)
def test_each_table_matches_its_golden_file_and_fits(dora, store, monkeypatch, case, width):
    if case == "config":  # the store's path is the test's own: shown as it is set
        monkeypatch.setenv("DORA_DB", "dora.db")
    stdout, stderr = run(dora, monkeypatch, width, *CASES[case])
    text = f"{stdout}--- stderr ---\n{stderr}"
    path = GOLDEN / f"{case}-{width}.txt"
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()
    assert [line for line in stdout.splitlines() if len(line) > width] == []


@pytest.mark.parametrize("width", WIDTHS)
def test_no_header_or_value_is_split_mid_word(dora, store, monkeypatch, width):
    words = {
        "SERVICE", "DEPLOYS", "FAILED", "RECOVERY", "OPEN", "TEAM", "ENV", "NAME", "STATE",
        "AFFECTS", "VERSION", "payments", "checkout-gateway", TEAM,
    }  # fmt: skip
    for args in CASES.values():
        stdout, _ = run(dora, monkeypatch, width, *args)
        # a word folded in two leaves a piece of it (cut values end in '…', and are whole)
        pieces = {
            token
            for token in re.findall(r"[\w-]+…?", stdout)
            for word in words
            if token != word and len(token) > 1 and (word.startswith(token) or word.endswith(token))
        }
        assert pieces == set(), args
        assert not re.search(r"^\s*O\s*$", stdout, re.MULTILINE)


def test_a_team_name_too_long_for_60_columns_is_cut_with_an_ellipsis(dora, store, monkeypatch):
    stdout, stderr = run(dora, monkeypatch, 60, "metrics", *WEEK, "--by", "team,env")

    row = next(line for line in stdout.splitlines() if line.startswith("platform"))
    assert row.split()[0] == "platform-infrast…"
    assert stderr.startswith("Left out ")
    assert " and cut TEAM (…) to fit the terminal; --format json has all.\n" in " ".join(
        stderr.splitlines(keepends=True)
    ).replace("\n ", " ")
    assert all(len(line) <= 60 for line in stderr.splitlines())  # the note fits too


def test_levels_show_as_letters_without_colour(dora, store, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")

    stdout, _ = run(dora, monkeypatch, 120, "metrics", *WEEK)

    assert "\x1b[" not in stdout
    api = next(line for line in stdout.splitlines() if line.startswith("api "))
    assert api.split()[2:5] == ["0.57", "H", "18h"]  # frequency high, lead time elite
    assert "50.0% L" in api
    assert "Levels: E elite, H high, M medium, L low (DORA State of DevOps Report 2024, " in stdout


def test_the_title_gives_the_window_then_the_grouping_and_filters(dora, store, monkeypatch):
    stdout, _ = run(dora, monkeypatch, 200, "metrics", *WEEK, "--by", "team,env", "--env", "prod")

    assert stdout.splitlines()[:2] == [
        "DORA metrics, 2026-11-01 → 2026-11-08 UTC (7 days)",
        "Grouped by team and env; only env prod.",
    ]


def test_the_title_of_one_row_says_so(dora, store, monkeypatch):
    stdout, _ = run(dora, monkeypatch, 80, "metrics", *WEEK, "--by", "none")

    assert stdout.splitlines()[1] == "All events together."


def test_the_left_out_line_names_exactly_the_columns_dropped(dora, store, monkeypatch):
    _, at_80 = run(dora, monkeypatch, 80, "incident", "list")
    _, at_120 = run(dora, monkeypatch, 120, "incident", "list")
    _, trend = run(dora, monkeypatch, 60, "metrics", *WEEK, "--interval", "week")

    assert at_80 == (  # wrapped at the width, as the table is
        "Left out ENV, AFFECTS and cut NAME (…) to fit the terminal; --format json has\nall.\n"
    )
    assert at_120 == "Cut AFFECTS, NAME (…) to fit the terminal; --format json has all.\n"
    assert trend.splitlines()[-2:] == [  # wrapped at the table's width
        "Trend: left out MEDIAN RESTORE, RECOVERY, OPEN and cut",
        "SERVICE (…) to fit the terminal; --format json has all.",
    ]


def test_explain_wraps_at_spaces_under_a_hanging_indent(dora, store, monkeypatch):
    stdout, _ = run(dora, monkeypatch, 60, "metrics", *WEEK, "--service", "web", "--explain")

    text = stdout.splitlines()
    start = text.index("web: the events behind the numbers")
    assert text[start + 1 : start + 3] == [
        f"  deployment {event_id('d5')} finished 2026-11-02 00:00:00,",
        "    1 commit, lead time 1d",
    ]


def test_a_table_without_rows_is_its_heading():
    from dora import layout

    fitted = layout.fit_table([layout.Column("ID"), layout.Column("NAME", cut_to=8)], [], 20)

    assert [line.plain for line in fitted.lines] == ["ID  NAME"]
    assert layout.note(fitted) is None


def test_a_date_and_its_time_stay_on_one_line_when_wrapped():
    from dora import layout

    text = f"restored x in 1h (2026-11-02{layout.GLUE}00:00:00 to 2026-11-02{layout.GLUE}01:00:00)"

    assert layout.wrap(text, 30, "  ", "    ") == [
        "  restored x in 1h",
        "    (2026-11-02 00:00:00 to",
        "    2026-11-02 01:00:00)",
    ]
