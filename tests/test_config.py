"""The config file and `dora config`: numbers where TOML gives them, every effective default,
and every invalid setting flagged in the words the commands use."""

from __future__ import annotations

import itertools
import re

import pytest

from dora.backends import datadog
from dora.config import Settings
from dora.errors import UsageError


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    """Write the config file: ``config_file('retry_budget = 60')``."""
    path = tmp_path / "c.toml"
    monkeypatch.setenv("DORA_CONFIG", str(path))

    def write(text: str):
        path.write_text(text + "\n")
        return path

    return write


def rows(stdout: str) -> dict[str, tuple[str, str]]:
    """Each setting's (value, source) in `dora config`'s output."""
    found = {}
    lines = stdout.splitlines()
    for n, line in enumerate(lines):
        if line and not line[0].isspace():
            parts = re.split(r"\s{2,}", line, maxsplit=2)
            if len(parts) == 2:  # a value too long for its column: on the lines under it
                name, source = parts
                under = itertools.takewhile(
                    lambda text: (
                        text.startswith(" ") and not text.strip().startswith(("note:", "error:"))
                    ),
                    lines[n + 1 :],
                )
                parts = [name, "".join(text.strip() for text in under), source]
            name, value, source = parts
            found[name] = (value, source)
    return found


def problems(stdout: str) -> dict[str, list[str]]:
    """What `dora config` says is wrong with each setting, each problem on one line."""
    found: dict[str, list[str]] = {}
    name = ""
    for line in stdout.splitlines():
        if line and not line[0].isspace():
            name = line.split("  ")[0]
        elif line.strip().startswith("error: "):
            found.setdefault(name, []).append(line.strip().removeprefix("error: "))
        elif name in found and re.match(r"\s{20}", line):  # a wrapped problem goes on
            found[name][-1] += " " + line.strip()
    return found


# --- the config file --------------------------------------------------------------------------


@pytest.mark.parametrize(("toml", "shown"), [("60", "60"), ("2.5", "2.5"), ('"45"', "45")])
def test_retry_budget_takes_a_toml_number_or_a_string(dora, config_file, toml, shown):
    config_file(f"retry_budget = {toml}")

    shows = dora("config")
    records = dora("deployment", "--service", "api", "--started-at", "-1m", "--skip-git")

    assert shows.exit_code == 0
    assert rows(shows.stdout)["retry_budget"] == (shown, "config file")
    assert records.exit_code == 0


def test_a_retry_budget_number_is_checked_as_a_string_one_is(dora, config_file, monkeypatch):
    config_file("retry_budget = 0.5")
    monkeypatch.setenv("DD_API_KEY", "k3y")

    result = dora(
        "deployment", "--service", "api", "--started-at", "-1m", "--skip-git",
        "--backend", "datadog",
    )  # fmt: skip

    assert (result.exit_code, result.stderr) == (
        2,
        "dora: error: 'retry_budget' in the config file: give a number of seconds from 1 to 3600\n",
    )


def test_the_default_site_is_the_datadog_backends():
    assert Settings(env={}).setting("site").value == datadog.DEFAULT_SITE


# --- dora config --------------------------------------------------------------------------------


def test_config_shows_every_effective_default(dora, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", "/home/you/.config")
    monkeypatch.setenv("XDG_DATA_HOME", "/home/you/.local/share")
    monkeypatch.delenv("DORA_DB")
    monkeypatch.setenv("COLUMNS", "80")

    result = dora("config")

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        "config file     /home/you/.config/dora/config.toml   default\n"
        "                note: not found; a config file is optional\n"
        "db              /home/you/.local/share/dora/dora.db  default\n"
        "service         -                                    unset\n"
        "env             -                                    unset\n"
        "team            -                                    unset\n"
        "backend         local                                default\n"
        "retry_budget    30                                   default\n"
        "benchmarks      2024                                 default\n"
        "link_window     none                                 default\n"
        "hotfix_pattern  (?i)\\bhotfix\\b                       default\n"
        "site            datadoghq.com                        default\n"
        "api_url         https://api.datadoghq.com            default (from site)\n"
        "api_key         -                                    unset\n"
        "app_key         -                                    unset\n"
    )


def test_config_derives_the_api_url_from_the_site(dora, monkeypatch):
    monkeypatch.setenv("DD_SITE", "datadoghq.eu")

    result = dora("config")

    assert rows(result.stdout)["site"] == ("datadoghq.eu", "env DD_SITE")
    assert rows(result.stdout)["api_url"] == ("https://api.datadoghq.eu", "default (from site)")


def test_config_says_a_site_is_not_used_beside_an_api_url(dora, monkeypatch):
    monkeypatch.setenv("DD_SITE", "bogus.com")
    monkeypatch.setenv("DORA_API_URL", "http://127.0.0.1:8126")

    result = dora("config")

    assert result.exit_code == 0
    assert "site            bogus.com" in result.stdout
    assert "                note: not used: api_url is set\n" in result.stdout
    assert rows(result.stdout)["api_url"] == ("http://127.0.0.1:8126", "env DORA_API_URL")


def test_config_flags_a_bad_site_under_it_and_exits_1(dora, monkeypatch):
    monkeypatch.setenv("DD_SITE", "bogus.com")
    monkeypatch.setenv("COLUMNS", "80")

    result = dora("config")

    assert result.exit_code == 1
    assert result.stderr == "dora: error: 1 invalid setting: site\n"
    lines = result.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("site "))
    assert lines[at].split() == ["site", "bogus.com", "env", "DD_SITE"]
    assert lines[at + 1 : at + 5] == [
        "                error: 'bogus.com' is not a Datadog site; use one of",
        "                       datadoghq.com, us3.datadoghq.com, us5.datadoghq.com,",
        "                       datadoghq.eu, ap1.datadoghq.com, ap2.datadoghq.com,",
        "                       uk1.datadoghq.com",
    ]
    assert lines[at + 5].startswith("api_url ")


#: A setting made invalid, and where the commands say the bad value came from.
INVALID = [
    ("db", {"DORA_DB": "mysql://dora@db.example.com/dora"}, ""),
    ("service", {"DD_SERVICE": "api\nweb"}, "DD_SERVICE"),
    ("env", {"DD_ENV": "pr\tod"}, "DD_ENV"),
    ("team", {"DORA_TEAM": "pay\x01ments"}, "DORA_TEAM"),
    ("backend", {"DORA_BACKEND": "kafka"}, "DORA_BACKEND"),
    ("retry_budget", {"DORA_RETRY_BUDGET": "0"}, "DORA_RETRY_BUDGET"),
    ("retry_budget", {"DORA_RETRY_BUDGET": "soon"}, "DORA_RETRY_BUDGET"),
    ("site", {"DD_SITE": "bogus.com"}, "DD_SITE"),
    ("site", {"DATADOG_SITE": "ddog-gov.com"}, "DATADOG_SITE"),
    ("api_url", {"DORA_API_URL": "ftp://example.com"}, "DORA_API_URL"),
    ("api_key", {"DD_API_KEY": "has space"}, "DD_API_KEY"),
]


@pytest.mark.parametrize(
    ("setting", "env", "label"),
    INVALID,
    ids=[f"{s}-{next(iter(e.values()))!r}" for s, e, _ in INVALID],
)
def test_config_flags_an_invalid_setting_as_the_commands_refuse_it(
    dora, monkeypatch, setting, env, label
):
    for variable, value in {
        "DD_SERVICE": "api",
        "DORA_BACKEND": "datadog",
        "DD_API_KEY": "k3y",
        **env,
    }.items():
        monkeypatch.setenv(variable, value)
    refused = dora("deployment", "--started-at", "-1m", "--skip-git")
    assert refused.exit_code == 2  # the command refuses it...

    result = dora("config")

    # ... and dora config says why in the same words, under the setting
    said = refused.stderr.removeprefix("dora: error: ").removeprefix(f"{label}: ").strip()
    assert problems(result.stdout) == {setting: [said]}
    for line in result.stdout.splitlines():  # a value's control characters break no line
        assert line.startswith(" ") or line.split("  ")[0] in NAMES
    assert (result.exit_code, result.stderr) == (1, f"dora: error: 1 invalid setting: {setting}\n")


NAMES = {
    "config file", "db", "service", "env", "team", "backend", "retry_budget", "benchmarks",
    "link_window", "hotfix_pattern", "site", "api_url", "api_key", "app_key",
}  # fmt: skip

#: The settings of reports, made invalid, with what 'dora metrics' says of them.
INVALID_REPORT_SETTINGS = [
    (
        "benchmarks",
        {"DORA_BENCHMARKS": "2019"},
        "DORA_BENCHMARKS: '2019' is not an edition of the benchmarks; use 2024 or 2023",
    ),
    (
        "link_window",
        {"DORA_LINK_WINDOW": "a week"},
        "DORA_LINK_WINDOW: 'a week' is not a length of time above zero; write 7d, 12h, 90m or none",
    ),
    (
        "link_window",
        {"DORA_LINK_WINDOW": "0h"},
        "DORA_LINK_WINDOW: '0h' is not a length of time above zero; write 7d, 12h, 90m or none",
    ),
    (
        "hotfix_pattern",
        {"DORA_HOTFIX_PATTERN": "hotfix)"},
        "DORA_HOTFIX_PATTERN: 'hotfix)' is not a regular expression: unbalanced parenthesis "
        "at position 6",
    ),
]


@pytest.mark.parametrize(("setting", "env", "message"), INVALID_REPORT_SETTINGS)
def test_config_flags_an_invalid_report_setting_as_metrics_refuses_it(
    dora, monkeypatch, setting, env, message
):
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    refused = dora("metrics")
    assert (refused.exit_code, refused.stdout, refused.stderr) == (
        2,
        "",
        f"dora: error: {message}\n",
    )

    result = dora("config")

    label = next(iter(env))
    assert problems(result.stdout) == {setting: [message.removeprefix(f"{label}: ")]}
    assert (result.exit_code, result.stderr) == (1, f"dora: error: 1 invalid setting: {setting}\n")


def test_metrics_names_the_flag_of_a_bad_report_setting(dora):
    result = dora("metrics", "--benchmarks", "2025")

    assert (result.exit_code, result.stderr) == (
        2,
        "dora: error: --benchmarks: '2025' is not an edition of the benchmarks; use 2024 or 2023\n",
    )


def test_config_flags_a_missing_api_key_for_the_datadog_backend(dora, monkeypatch):
    monkeypatch.setenv("DORA_BACKEND", "datadog")
    with pytest.raises(UsageError) as needed:
        datadog.endpoint({}, need_key=True)

    result = dora("config")

    assert problems(result.stdout) == {"api_key": [needed.value.message]}
    assert result.exit_code == 1


def test_config_flags_bad_values_in_the_config_file_beside_their_setting(dora, config_file):
    config_file('service = 3\nretry_budget = true\nenv = "pr\\nod"\nteam = "payments"')

    result = dora("config")

    assert problems(result.stdout) == {
        "service": ["in the config file: 'service' must be a string in quotes"],
        "env": ["must be one line without control characters"],
        "retry_budget": [
            "in the config file: 'retry_budget' must be a number of seconds, such as 60, not true"
        ],
    }
    assert rows(result.stdout)["service"] == ("-", "unset")  # the file's value is not taken
    assert rows(result.stdout)["retry_budget"] == ("30", "default")
    assert rows(result.stdout)["team"] == ("payments", "config file")
    assert (result.exit_code, result.stderr) == (
        1,
        "dora: error: 3 invalid settings: service, env, retry_budget\n",
    )


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ("service = ", "invalid TOML: "),
        ("colour = 'red'", "unknown setting 'colour' (known: "),
        ("api_key = 'k3y'", "'api_key' is a secret; set DATADOG_API_KEY or DD_API_KEY instead"),
    ],
)
def test_config_flags_a_config_file_it_cannot_use(dora, config_file, toml, problem):
    path = config_file(toml)
    refused = dora("deployment", "--service", "api", "--started-at", "-1m", "--skip-git")

    result = dora("config")

    assert rows(result.stdout)["config file"] == (str(path), "env DORA_CONFIG")
    (said,) = problems(result.stdout)["config file"]
    assert said.startswith(problem)
    assert refused.stderr.startswith(f"dora: error: config file {path}: {said[:30]}")
    assert (result.exit_code, result.stderr) == (1, "dora: error: 1 invalid setting: config file\n")
    assert "k3y" not in result.stdout


def test_config_fits_80_columns_without_colour_and_keeps_long_values_whole(
    dora, monkeypatch, tmp_path
):
    store = tmp_path / ("a-long-directory-name-" * 6) / "dora.db"
    monkeypatch.setenv("DORA_DB", str(store))
    monkeypatch.setenv("DD_SITE", "bogus.com")
    monkeypatch.setenv("DD_API_KEY", "k3y-value")
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")

    result = dora("config")

    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "\x1b" not in result.stdout
    at = next(i for i, line in enumerate(lines) if line.startswith("db "))
    assert lines[at].split() == ["db", "env", "DORA_DB"]  # the value on lines of its own
    rest = [line.strip() for line in lines[at + 1 :]]
    rest = rest[: next(i for i, line in enumerate(lines[at + 1 :]) if not line.startswith(" "))]
    assert "".join(rest) == str(store)  # cut, not shortened
    assert rows(result.stdout)["api_key"] == ("***", "env DD_API_KEY")
    assert "k3y-value" not in result.stdout + result.stderr
