"""``dora report``: one self-contained HTML page, its figures, its charts, and the page as a
reader's browser shows it, offline."""

from __future__ import annotations

import html
import re
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import rows
from dora import levels, metrics
from dora.events import Deployment, Incident, build
from dora.gitmeta import Commit
from dora.report import STEPS, charts, data
from dora.report import make as make_report
from dora.store import open_store
from dora.timeparse import parse_timestamp

SINCE, UNTIL = "2026-11-02T00:00:00Z", "2026-11-23T00:00:00Z"
HOSTILE = "<script>alert(1)</script>"


def ident(name: str) -> str:
    return f"report-{name}".ljust(16, "0")


def store_of(path: Path | str) -> Path | str:
    """Three weeks of two services: deployments with commits, a rollback (v1 again: its
    predecessor v2 failed), incidents, one open; and a service with a hostile name."""
    start = parse_timestamp(SINCE)

    def deploy(name: str, service: str, day: float, version: str, leads: list[float]) -> None:
        finished = start + timedelta(days=day)
        event = build(
            Deployment,
            {"id": ident(name), "service": service, "env": "prod", "version": version,
             "started_at": finished, "finished_at": finished},
        )  # fmt: skip
        shipped = [
            Commit(f"{name}{n}".ljust(40, "c"), finished - timedelta(hours=lead))
            for n, lead in enumerate(leads)
        ]
        store.save(event, commits=shipped)

    def incident(name: str, service: str, day: float, hours: float | None) -> None:
        started = start + timedelta(days=day)
        finished = None if hours is None else started + timedelta(hours=hours)
        store.save(
            build(
                Incident,
                {
                    "id": ident(name),
                    "services": [service],
                    "env": "prod",
                    "started_at": started,
                    "finished_at": finished,
                },
            )
        )

    with open_store(path) as store:
        deploy("a1", "api", 0.5, "v1", [2, 5])
        deploy("a2", "api", 3.5, "v2", [1])
        deploy("a3", "api", 4.0, "v1", [])  # rollback: a2 failed, recovered in 12 hours
        deploy("a4", "api", 9.5, "v3", [30, 0.5, 3])
        deploy("a5", "api", 16.5, "v4", [72])
        deploy("w1", "web", 1.0, "1", [0.25])
        deploy("w2", "web", 8.0, "2", [6, 6])
        deploy("x1", HOSTILE, 2.0, "1", [1])
        incident("i1", "web", 8.5, 3.0)  # linked to w2: recovered in 15 hours
        incident("i2", "api", 17.0, None)  # linked to a5, still open
        incident("i3", "api", 10.0, 0.5)  # linked to a4: recovered in 12.5 hours
    return path


@pytest.fixture
def report_store(db_path: Path) -> Path:
    return store_of(db_path)


def test_a_report_is_written_with_a_headline_chart_and_spread_for_each_metric(
    dora, report_store, frozen_now
):
    result = dora("report", "--since", SINCE, "--until", UNTIL, "-o", "out.html")

    assert result.exit_code == 0, result.stderr
    page = Path("out.html").read_text()
    size = len(page.encode())
    assert result.stderr == f"Wrote the report to out.html ({size / 1024:,.0f} KiB).\n"
    assert result.stdout == ""
    headlines = re.findall(r'<article class="card"><h3>(.*?)</h3><p class="value">(.*?)</p>', page)
    assert headlines == [
        ("Deployment frequency", "0.38 a day"),
        ("Lead time for changes", "3h"),
        ("Change failure rate", "50.0%"),
        ("Failed deployment recovery time", "12h 30m"),
        ("Deployment rework rate", "12.5%"),
        ("Time to restore service", "1h 45m"),
    ]
    titles = re.findall(r'<svg role="img"[^>]*><title>(.*?)</title><desc>', page)
    assert titles == [
        "Deployment frequency",
        "Lead time for changes",
        "Change failure rate",
        "Failed deployment recovery time",
        "Deployment rework rate",
        "Time to restore service",
        "Lead time for changes",
        "Time to restore service",
        "Failed deployment recovery time",
    ]
    assert '<h2 id="trends">By day</h2>' in page  # 21 days: one point a day
    assert "Made by dora " in page
    assert " on 2026-11-24 12:00 UTC." in page


def test_a_day_without_deployments_is_a_frequency_of_zero_not_a_gap(dora, report_store):
    dora("report", "--since", SINCE, "--until", UNTIL, "-o", "out.html", "--no-events")
    descriptions = re.findall(r"<desc>(.*?)</desc>", Path("out.html").read_text())

    # the hostile-named service deployed on 1 of the 21 days and had nothing else: the
    # other 20 are points at 0
    assert f"{html.escape(HOSTILE)}: from 0.00 to 1.0, last 0.00." in descriptions[0]
    # lead time has no point where nothing shipped: web's values are its two days'
    assert "web: from 15m to 6h, last 6h" in descriptions[1]


def test_the_page_fetches_nothing_and_runs_no_script(dora, report_store, frozen_now):
    dora("report", "--since", SINCE, "--until", UNTIL, "-o", "out.html")
    page = Path("out.html").read_text()

    assert "<script" not in page.lower()
    # what the page refers to is inside it (clip paths and markers, by #id)
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!#)|@import|url\((?!#)""", page, re.I)
    # the only addresses are the SVG and XLink namespaces, which are names, not fetched
    assert set(re.findall(r"https?://[^\s\"'<>)]+", page)) == {
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/1999/xlink",
    }


def test_text_from_the_store_is_escaped_everywhere(dora, report_store, frozen_now):
    dora("report", "--since", SINCE, "--until", UNTIL, "-o", "out.html")
    page = Path("out.html").read_text()

    assert HOSTILE not in page
    assert html.escape(HOSTILE) in page


def test_the_same_store_gives_the_same_bytes(dora, report_store, frozen_now):
    dora("report", "--since", SINCE, "--until", UNTIL, "-o", "one.html")
    dora("report", "--since", SINCE, "--until", UNTIL, "-o", "two.html")

    assert Path("one.html").read_bytes() == Path("two.html").read_bytes()


def test_dash_writes_the_page_to_standard_output_and_says_nothing(dora, report_store, frozen_now):
    result = dora("report", "--since", SINCE, "--until", UNTIL, "-o", "-", "--no-events")

    assert result.exit_code == 0
    assert result.stdout.startswith("<!doctype html>\n")
    assert result.stdout.endswith("</html>\n")
    assert "The events behind the numbers" not in result.stdout
    assert result.stderr == ""


def test_events_are_folded_in_by_default(dora, report_store, frozen_now):
    dora("report", "--since", SINCE, "--until", UNTIL, "-o", "out.html", "--by", "none")
    page = Path("out.html").read_text()

    assert '<section aria-labelledby="events">' in page
    assert "<details><summary>all events: 23 events</summary>" in page
    assert f"<li>failed {ident('a2')} finished 2026-11-05 12:00:00: rolled back by" in page


def test_a_directory_as_output_is_a_usage_error_before_any_work(dora, report_store, tmp_path):
    result = dora("report", "-o", str(tmp_path))

    assert result.exit_code == 2
    assert result.stderr == f"dora: error: --output: {tmp_path} is a directory\n"


def test_without_matplotlib_the_report_says_how_to_install_it(dora, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)

    result = dora("report", "-o", "out.html")

    assert result.exit_code == 1
    assert result.stderr == (
        "dora: error: dora report draws its charts with matplotlib: pip install 'dora[report]'\n"
    )
    assert not Path("out.html").exists()


def test_a_report_of_an_empty_store_is_written_and_says_so(dora, frozen_now, db_path):
    result = dora("report", "-o", "out.html")

    assert result.exit_code == 0
    assert result.stderr.startswith(f"Nothing has been recorded in {db_path} yet.\n")
    assert Path("out.html").read_text().count('<svg role="img"') == 9
    assert not db_path.exists()


def test_each_spread_counts_what_its_figure_counts(store_db):
    report_store = store_of(store_db)  # on each engine
    since, until = parse_timestamp(SINCE), parse_timestamp(UNTIL)
    with open_store(report_store, create=False) as store:
        report = metrics.report(store, since, until, group_by=())
        lead, restore, recovery = data.distributions(store, report)

    total = report.total
    commits = rows(report_store, "SELECT committed_at FROM deployment_commits")
    assert lead.total == len(commits) == 11
    assert restore.total == total.resolved_failures == 2
    assert recovery.total == total.recovered_failed_deployments == 3
    assert (lead.median, restore.median, recovery.median) == (
        total.median_lead_time_seconds,
        total.median_time_to_restore_seconds,
        total.median_recovery_time_seconds,
    )
    # lead times, in hours: 0.25, 0.5, 1, 1, 2, 3, 5, 6, 6, 30, 72 (the hostile service's
    # commit included); the 90th percentile of 11 is the 10th of them, exactly
    assert lead.p90 == 30 * 3600
    assert lead.counts == (0, 2, 4, 3, 1, 1, 0, 0)
    assert recovery.counts == (0, 0, 0, 3, 0, 0, 0, 0)


@pytest.mark.parametrize("edition", ["2023", "2024"])
@pytest.mark.parametrize(
    "metric", ["lead_time", "recovery_time", "time_to_restore", "change_failure_rate",
               "deployment_frequency"],
)  # fmt: skip
def test_the_bands_drawn_are_the_levels_given(metric, edition):
    judge = {
        "lead_time": lambda v: levels.lead_time_level(v),
        "recovery_time": lambda v: levels.restore_level(v, edition),
        "time_to_restore": lambda v: levels.restore_level(v, edition),
        "change_failure_rate": lambda v: levels.cfr_level(v, edition),
        "deployment_frequency": lambda v: levels.frequency_level(v),
    }[metric]
    for level, lo, hi in levels.bands(metric, edition):
        inside = lo * 2 if hi == float("inf") else (lo + hi) / 2
        assert judge(inside) == level, (level, lo, hi)
    found = [level for level, _, _ in levels.bands(metric, edition)]
    given = {judge(v) for v in [0, 1e-9, 0.01, 0.07, 0.12, 0.3, 0.5, 2, 100, 5000, 90000,
                                 400000, 900000, 4e6, 1e9]}  # fmt: skip
    assert given <= set(found)


def test_a_chart_has_its_title_and_description_for_screen_readers():
    svg = charts.trend(
        "Lead time",
        [parse_timestamp("2026-11-02T00:00:00Z"), parse_timestamp("2026-11-03T00:00:00Z")],
        [charts.Series("api & <web>", [3600.0, None]), charts.Series("db", [None, 60.0])],
        unit=charts.Unit("hours", 3600),
        axis="median lead time", description="api: 1 hour <then none>",
    )  # fmt: skip

    assert svg.startswith('<svg role="img" width="100%"')
    assert "<title>Lead time</title><desc>api: 1 hour &lt;then none&gt;</desc>" in svg
    assert "api &amp; &lt;web&gt;" in svg


def test_the_library_makes_the_page_without_the_command(report_store, frozen_now):
    steps: list[int] = []
    with open_store(report_store, create=False) as store:
        page = make_report(
            store, parse_timestamp(SINCE), parse_timestamp(UNTIL), group_by=("service",),
            interval="week", events=False, progress=lambda: steps.append(1),
        )  # fmt: skip

    assert '<h2 id="trends">By week</h2>' in page
    assert page.count('<svg role="img"') == 9
    assert len(steps) == STEPS


# --- the page as a reader's browser shows it ----------------------------------------------


def test_the_report_opens_offline_with_every_chart_drawn(
    dora, report_store, frozen_now, browser, tmp_path
):
    dora("report", "--since", SINCE, "--until", UNTIL, "-o", "out.html")
    path = Path("out.html").resolve()
    context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    requests: list[str] = []
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))

    page.goto(path.as_uri())
    drawn = page.evaluate(
        """() => [...document.querySelectorAll('figure svg')].map(svg => {
            const box = svg.getBoundingClientRect();
            return [svg.querySelector('title').textContent, Math.round(box.width),
                    Math.round(box.height), svg.querySelectorAll('path, rect, use').length];
        })"""
    )
    headers = page.evaluate("[...document.querySelectorAll('thead th[scope=col]')].length")
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    context.close()

    assert problems == []
    assert requests == [path.as_uri()]
    assert len(drawn) == 9
    for title, width, height, marks in drawn:
        assert width > 300, title
        assert height > 100, title
        assert marks > 10, title  # axes, ticks, bars or lines: a chart, not an empty box
    assert headers == 1 + 13  # the group's column, and one per figure
    assert (tmp_path / "report.png").stat().st_size > 50_000


def test_a_cap_on_the_events_of_each_kind_keeps_the_first_and_counts_the_rest(report_store):
    since, until = parse_timestamp(SINCE), parse_timestamp(UNTIL)
    with open_store(report_store, create=False) as store:
        every = metrics.report(store, since, until, group_by=(), explain=True)
        capped = metrics.report(store, since, until, group_by=(), explain=True, explain_each=1)

    whole, few = every.groups[0].evidence, capped.groups[0].evidence
    assert whole is not None
    assert few is not None
    kinds = ("deployments", "failures", "resolved", "open", "failed", "recovered",
             "unrecovered", "rework")  # fmt: skip
    assert [len(getattr(whole, kind)) for kind in kinds] == [8, 3, 2, 1, 4, 3, 1, 1]
    assert [getattr(few, kind) for kind in kinds] == [getattr(whole, kind)[:1] for kind in kinds]
    assert (whole.more, few.more) == (0, 23 - 8)
    assert capped.total == every.total  # the figures do not depend on what is listed
