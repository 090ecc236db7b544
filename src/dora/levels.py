"""DORA's performance levels: which level each metric's value reaches, by the edition of
DORA's benchmarks asked for, and each level's range of values (for charts).

Times are in seconds, rates are fractions, frequencies are deployments per day.
"""

from __future__ import annotations

#: The editions of DORA's benchmarks that levels can come from, the latest last.
EDITIONS = {
    "2023": "DORA State of DevOps Report 2023",
    "2024": "DORA State of DevOps Report 2024",
}
LATEST = "2024"
LEVELS = ("elite", "high", "medium", "low")

_HOUR, _DAY, _WEEK = 3600.0, 86400.0, 604800.0
_MONTH = 30 * _DAY


def cfr_level(rate: float | None, edition: str = LATEST) -> str | None:
    """2023: elite at most 5 %, high at most 10 %, medium at most 15 %, low above.

    2024: the report gives each level's typical rate, elite 5 %, high 20 %, medium 10 %,
    low 40 %, and medium's is lower than high's. A rate takes the best level, in the order
    elite, high, medium, low, whose typical rate it does not exceed: elite at most 5 %,
    high at most 20 %, low above. Any rate medium's 10 % admits, high's 20 % admits first,
    so medium is never given on change failure rate."""
    if rate is None:
        return None
    if edition == "2023":
        return (
            "elite" if rate <= 0.05 else "high" if rate <= 0.10 else
            "medium" if rate <= 0.15 else "low"
        )  # fmt: skip
    return "elite" if rate <= 0.05 else "high" if rate <= 0.20 else "low"


def restore_level(seconds: float | None, edition: str = LATEST) -> str | None:
    """2023: elite under an hour, high under a day, medium under a week, low above.

    2024 (failed deployment recovery time): elite under an hour, high under a day, medium
    under a day too, low 1 week to 1 month. By the same rule as the change failure rate (the
    best level whose bound it meets), elite under an hour, high under a day, low above:
    medium is never given."""
    if edition == "2023":
        return _under(seconds, _HOUR, _DAY, _WEEK)
    return _under(seconds, _HOUR, _DAY, _DAY)


def lead_time_level(seconds: float | None) -> str | None:
    """Elite under a day, high under a week, medium under a month (30 days), low above
    (2023 and 2024 alike)."""
    return _under(seconds, _DAY, _WEEK, _MONTH)


def frequency_level(per_day: float | None) -> str | None:
    """Elite more than once a day (on demand), high at least weekly, medium at least
    monthly (every 30 days), low less often (2023 and 2024 alike)."""
    if per_day is None:
        return None
    if per_day > 1:
        return "elite"
    return "high" if per_day >= 1 / 7 else "medium" if per_day >= 1 / 30 else "low"


def bands(metric: str, edition: str = LATEST) -> list[tuple[str, float, float]]:
    """The levels of ``metric`` (lead_time, recovery_time, time_to_restore,
    change_failure_rate or deployment_frequency) as ranges of its value, best first:
    (level, low, high), in seconds, a rate or deployments per day, the last one open
    (``inf``). The level functions above give each value its level; these are their
    bounds, for drawing (a test holds the two together). A level ``edition`` never gives
    (2024's medium on change failure rate and recovery time) has no band."""
    inf = float("inf")
    if metric == "lead_time":
        return [("elite", 0, _DAY), ("high", _DAY, _WEEK), ("medium", _WEEK, _MONTH),
                ("low", _MONTH, inf)]  # fmt: skip
    if metric in ("recovery_time", "time_to_restore"):
        if edition == "2023":
            return [("elite", 0, _HOUR), ("high", _HOUR, _DAY), ("medium", _DAY, _WEEK),
                    ("low", _WEEK, inf)]  # fmt: skip
        return [("elite", 0, _HOUR), ("high", _HOUR, _DAY), ("low", _DAY, inf)]
    if metric == "change_failure_rate":
        if edition == "2023":
            return [("elite", 0, 0.05), ("high", 0.05, 0.10), ("medium", 0.10, 0.15),
                    ("low", 0.15, inf)]  # fmt: skip
        return [("elite", 0, 0.05), ("high", 0.05, 0.20), ("low", 0.20, inf)]
    if metric == "deployment_frequency":
        return [("elite", 1, inf), ("high", 1 / 7, 1), ("medium", 1 / 30, 1 / 7),
                ("low", 0, 1 / 30)]  # fmt: skip
    raise ValueError(f"no levels for {metric!r}")


def _under(value: float | None, elite: float, high: float, medium: float) -> str | None:
    if value is None:
        return None
    return (
        "elite"
        if value < elite
        else "high"
        if value < high
        else "medium"
        if value < medium
        else "low"
    )
