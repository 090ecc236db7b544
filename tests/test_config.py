"""The config file and `dora config`: numbers where TOML gives them."""

from __future__ import annotations

import pytest


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    """Write the config file: ``config_file('retry_budget = 60')``."""
    path = tmp_path / "c.toml"
    monkeypatch.setenv("DORA_CONFIG", str(path))

    def write(text: str):
        path.write_text(text + "\n")
        return path

    return write


# --- the config file --------------------------------------------------------------------------


@pytest.mark.parametrize(("toml", "shown"), [("60", "60"), ("2.5", "2.5"), ('"45"', "45")])
def test_retry_budget_takes_a_toml_number_or_a_string(dora, config_file, toml, shown):
    config_file(f"retry_budget = {toml}")

    shows = dora("config")
    records = dora("deployment", "--service", "api", "--started-at", "-1m", "--skip-git")

    assert shows.exit_code == 0
    assert f"retry_budget  {shown} " in shows.stdout
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
