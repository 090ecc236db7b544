"""The Mermaid charts of ``dora metrics --format markdown --interval``: the exact text, what
names cannot do to it, and Mermaid itself parsing and drawing each chart in Chromium.

The store is the hand-checked fixture of test_metrics.py (the week of 2026-11-01)."""

from __future__ import annotations

import re

import pytest

from test_metrics import build_fixture

WEEK = ("--since", "2026-11-01T00:00:00Z", "--until", "2026-11-08T00:00:00Z")
CHARTS = ("--interval", "week", "--format", "markdown")
MONDAY = ("--since", "2026-11-23T00:00:00Z", "--until", "2026-11-30T00:00:00Z")  # one week

INIT = (
    '%%{init: {"xyChart": {"height": 320}, "themeVariables": {"xyChart": {"plotColorPalette": '
    '"#0969da, #d1242f, #1a7f37, #8250df"}}}}%%'
)

#: What a chart may be, line by line: a strict grammar of what dora writes, narrower than
#: Mermaid's (a string holds no quote, percent, hash, backtick, bracket or brace at all).
_STR = r'"[\w .\-_/:+()?\u2026]*"'
_NUM = r"\d+(?:\.\d{1,2})?"
_BLOCK = re.compile(
    "\n".join(
        [
            re.escape(INIT),
            "xychart-beta",
            f"  title {_STR}",
            f"  x-axis {_STR} \\[{_STR}(?:, {_STR})*\\]",
            rf'  y-axis "[a-z ]+ \((?:%|per (?:day|week|month)|minutes|hours|days)\)" 0 --> {_NUM}',
            f"(?:  line {_STR} \\[{_NUM}(?:, {_NUM})*\\]\n)+",
        ]
    )
)


@pytest.fixture
def fixture_store(db_path):
    return build_fixture(db_path)


def blocks(markdown: str) -> list[str]:
    """The text inside each ```mermaid fence."""
    return re.findall(r"^```mermaid\n(.*?)^```$", markdown, re.S | re.M)


def charts_section(markdown: str) -> list[str]:
    lines = markdown.splitlines()
    return lines[lines.index("#### Charts by week") :]


def test_trend_in_markdown_is_charted_after_its_table(dora, fixture_store):
    result = dora("metrics", *WEEK, "--by", "none", *CHARTS)

    assert result.exit_code == 0, result.stderr
    assert charts_section(result.stdout) == [
        "#### Charts by week",
        "",
        "One line: all events. A week without a value (n/a in the table) is drawn at 0.",
        "",
        "```mermaid",
        INIT,
        "xychart-beta",
        '  title "Deployments by week"',
        '  x-axis "week from (UTC)" ["2026-11-01", "2026-11-02"]',
        '  y-axis "deployments (per week)" 0 --> 5',
        '  line "all events" [1, 5]',
        "```",
        "",
        "```mermaid",
        INIT,
        "xychart-beta",
        '  title "Median lead time by week"',
        '  x-axis "week from (UTC)" ["2026-11-01", "2026-11-02"]',
        '  y-axis "median lead time (hours)" 0 --> 25',
        '  line "all events" [0, 24]',
        "```",
        "",
        "```mermaid",
        INIT,
        "xychart-beta",
        '  title "Change failure rate by week"',
        '  x-axis "week from (UTC)" ["2026-11-01", "2026-11-02"]',
        '  y-axis "change failure rate (%)" 0 --> 100',
        '  line "all events" [0, 60]',
        "```",
        "",
        "```mermaid",
        INIT,
        "xychart-beta",
        '  title "Median failed deployment recovery time by week"',
        '  x-axis "week from (UTC)" ["2026-11-01", "2026-11-02"]',
        '  y-axis "median recovery time (minutes)" 0 --> 100',
        '  line "all events" [0, 90]',
        "```",
        "",
        "```mermaid",
        INIT,
        "xychart-beta",
        '  title "Deployment rework rate by week"',
        '  x-axis "week from (UTC)" ["2026-11-01", "2026-11-02"]',
        '  y-axis "deployment rework rate (%)" 0 --> 1',
        '  line "all events" [0, 0]',
        "```",
        "",
        "```mermaid",
        INIT,
        "xychart-beta",
        '  title "Median time to restore by week"',
        '  x-axis "week from (UTC)" ["2026-11-01", "2026-11-02"]',
        '  y-axis "median time to restore (hours)" 0 --> 50',
        '  line "all events" [36, 1]',
        "```",
    ]


def test_no_charts_keeps_the_tables(dora, fixture_store):
    charted = dora("metrics", *WEEK, *CHARTS).stdout
    plain = dora("metrics", *WEEK, *CHARTS, "--no-charts").stdout

    assert "```mermaid" not in plain
    assert charted.startswith(plain.split("\n<details>")[0])
    assert charted.index("#### By week") < charted.index("#### Charts by week")


def test_markdown_without_interval_has_no_charts(dora, fixture_store):
    assert "mermaid" not in dora("metrics", *WEEK, "--format", "markdown").stdout


def test_each_group_is_a_line_named_by_colour(dora, fixture_store):
    result = dora("metrics", *WEEK, *CHARTS)

    text = result.stdout.splitlines()
    assert text[text.index("#### Charts by week") + 2] == (
        "One line per group: api blue, db red, web green, (none) purple. "
        "A week without a value (n/a in the table) is drawn at 0."
    )
    deployments = blocks(result.stdout)[0].splitlines()
    assert deployments[-4:] == [
        '  line "api" [1, 3]',
        '  line "db" [0, 0]',
        '  line "web" [0, 2]',
        '  line "(none)" [0, 0]',
    ]


def test_charts_draw_the_four_busiest_groups_and_count_the_rest(dora, db_path, frozen_now):
    for n, service in enumerate(["a", "b", "c", "d", "e", "f"]):
        for _ in range(1 + n % 3):
            result = dora("deployment", "--service", service, "--started-at", "-2h", "--skip-git")
            assert result.exit_code == 0, result.stderr

    result = dora("metrics", *MONDAY, *CHARTS)

    assert (
        "One line per group: b blue, c red, e green, f purple. The 4 groups with the most "
        "deployments are drawn; 2 more groups only in the tables."
    ) in result.stdout
    for block in blocks(result.stdout):
        assert [line.split(" [")[0] for line in block.splitlines() if "line " in line] == [
            '  line "b"', '  line "c"', '  line "e"', '  line "f"',
        ]  # fmt: skip


def test_metrics_without_any_value_get_no_chart(dora, db_path, frozen_now):
    assert dora("incident", "open", "--service", "api", "--started-at", "-1h").exit_code == 0

    result = dora("metrics", *MONDAY, "--by", "none", *CHARTS)

    assert (
        "No chart of median lead time, change failure rate, median failed deployment "
        "recovery time, deployment rework rate and median time to restore: no values."
    ) in result.stdout
    assert [block.splitlines()[2] for block in blocks(result.stdout)] == [
        '  title "Deployments by week"'
    ]


#: Names that would end a Mermaid string, open a directive or comment, an entity, a fence,
#: a link or a mention, if written as they are.
HOSTILE = [
    'x" ] line "y',
    "```",
    "a]b[c",
    "a-->b",
    "%%{init: {'theme': 'dark'}}%%",
    "%% comment",
    "@here",
    "#quot;#35;",
    "<img src=x onerror=alert(1)>",
]


def hostile_store(dora) -> None:
    for name in HOSTILE:
        result = dora("deployment", "--service", name, "--started-at", "-2h", "--skip-git")
        assert result.exit_code == 0, result.stderr


def charted_hostile(dora) -> list[str]:
    """The Markdown of the hostile names' charts, four names (a chart's most) at a time."""
    found = []
    for n in range(0, len(HOSTILE), 4):
        services = [arg for name in HOSTILE[n : n + 4] for arg in ("--service", name)]
        result = dora("metrics", *MONDAY, *services, *CHARTS)
        assert result.exit_code == 0, result.stderr
        found.append(result.stdout)
    return found


def test_names_cannot_break_out_of_a_chart(dora, db_path, frozen_now):
    hostile_store(dora)

    outputs = charted_hostile(dora)

    names = []
    for markdown in outputs:
        found = blocks(markdown)
        assert len(found) == 3  # deployments, CFR and rework: no times without commits
        for block in found:
            assert _BLOCK.fullmatch(block), block
        names += re.findall(r'^  line (".*") \[', found[0], re.M)
        assert markdown.count("```") == 2 * len(found)  # the fences dora wrote, no other
    assert sorted(names) == sorted(
        [
            '"x? ? line ?y"',
            '"???"',
            '"a?b?c"',
            '"a--?b"',
            '"???init: ??theme?: ?dark?????"',
            '"?? comment"',
            '"?here"',
            '"?quot??35?"',
            '"?img src?x onerror?alert(1)?"',
        ]
    )
    # the note is Markdown, escaped as the tables are: the mention is code, pinging nobody
    notes = [line for text in outputs for line in text.splitlines() if line.startswith("One ")]
    assert any("`@here`" in note for note in notes)
    assert any("\\`\\`\\`" in note for note in notes)


def test_quoted_names_keep_letters_digits_and_plain_punctuation():
    from dora.mermaid import _quoted

    assert _quoted("payments-api_v2.eu/west (main):1+1") == '"payments-api_v2.eu/west (main):1+1"'
    assert _quoted("café 東京") == '"café 東京"'
    assert _quoted('a"b%c#d`e[f]g{h}i;j<k>l@m') == '"a?b?c?d?e?f?g?h?i?j?k?l?m"'
    assert _quoted("x" * 50) == '"' + "x" * 39 + '\u2026"'


@pytest.mark.parametrize(
    ("kind", "peak", "unit"),
    [
        ("seconds", 7199, ("minutes", 60.0)),
        ("seconds", 7200, ("hours", 3600.0)),
        ("seconds", 172800, ("days", 86400.0)),
        ("rate", 0.5, ("%", 0.01)),
        ("count", 3, ("per week", 1.0)),
    ],
)
def test_times_are_drawn_in_minutes_hours_or_days_by_their_peak(kind, peak, unit):
    from dora.mermaid import _unit

    assert _unit(kind, peak, "week") == unit


@pytest.mark.parametrize(
    ("peak", "top"), [(0, 1), (0.3, 0.5), (1, 1), (3, 5), (24, 25), (60, 100), (66.67, 100)]
)
def test_the_y_axis_runs_from_0_to_a_round_number(peak, top):
    from dora.mermaid import _nice

    assert _nice(peak) == top


def _drawn(browser, mermaid_js, markdown: str) -> list[dict]:
    """Each chart of ``markdown`` parsed and drawn by Mermaid in an offline page: its
    title, its texts and, per line, its colour and number of points."""
    context = browser.new_context(offline=True)
    try:
        page = context.new_page()
        page.set_content("<!doctype html><html><body></body></html>")
        page.add_script_tag(path=str(mermaid_js))
        page.evaluate("mermaid.initialize({startOnLoad: false})")
        found = []
        for n, code in enumerate(blocks(markdown)):
            found.append(
                page.evaluate(
                    """async ([id, code]) => {
                        const parsed = await mermaid.parse(code);
                        const {svg} = await mermaid.render(id, code);
                        const doc = new DOMParser().parseFromString(svg, "image/svg+xml");
                        return {
                            parsed: parsed.diagramType,
                            root: doc.documentElement.tagName,
                            texts: [...doc.querySelectorAll("text")].map(t => t.textContent),
                            lines: [...doc.querySelectorAll("[class*=line-plot] path")].map(
                                (p) => [p.getAttribute("stroke"),
                                    p.getAttribute("d").split("L").length]
                            ),
                        };
                    }""",
                    [f"chart{n}", code],
                )
            )
        return found
    finally:
        context.close()


COLOURS = ["#0969da", "#d1242f", "#1a7f37", "#8250df"]


def test_mermaid_parses_and_draws_every_chart(dora, fixture_store, browser, mermaid_js):
    result = dora("metrics", *WEEK, *CHARTS)

    drawn = _drawn(browser, mermaid_js, result.stdout)

    assert [chart["texts"][0] for chart in drawn] == [
        "Deployments by week",
        "Median lead time by week",
        "Change failure rate by week",
        "Median failed deployment recovery time by week",
        "Deployment rework rate by week",
        "Median time to restore by week",
    ]
    for chart in drawn:
        assert chart["parsed"] == "xychart"
        assert chart["root"] == "svg"
        assert chart["lines"] == [[colour, 2] for colour in COLOURS]  # 4 groups, 2 weeks
        assert "week from (UTC)" in chart["texts"]
        assert {"2026-11-01", "2026-11-02"} <= set(chart["texts"])
    assert "median lead time (hours)" in drawn[1]["texts"]


def test_mermaid_draws_hostile_names_as_plain_text(dora, db_path, frozen_now, browser, mermaid_js):
    hostile_store(dora)

    for markdown in charted_hostile(dora):
        drawn = _drawn(browser, mermaid_js, markdown)

        assert len(drawn) == 3
        for chart in drawn:
            assert chart["parsed"] == "xychart"
            lines = len(blocks(markdown)[0].splitlines()) - 5
            assert chart["lines"] == [[colour, 1] for colour in COLOURS[:lines]]  # our theme


def test_readme_shows_a_chart_as_dora_writes_it(dora, fixture_store):
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    shown = blocks(readme.split("````markdown\n", 1)[1].split("````", 1)[0])

    assert shown == blocks(dora("metrics", *WEEK, "--by", "none", *CHARTS).stdout)[1:2]
