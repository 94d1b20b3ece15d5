"""k6 duration strings ("30s", "5m", "1m30s", "500ms", "1h") and plain numbers of seconds."""

from __future__ import annotations

import math
import re

#: the engine's clock is int64 nanoseconds: the longest span it holds (~292 years), the shortest 1 ns
MAX_SECONDS = (2**63 - 1) / 1e9
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)", re.ASCII)
#: a plain number of seconds as text: no "inf", "nan", "1_000" or non-ASCII digits (float() takes those)
_SECONDS = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


class ExecutorOptionError(ValueError):
    """A scenario's executor options are wrong; the message names the option and the fix."""


def parse_duration(value: object, option: str = "duration", allow_zero: bool = False) -> float:
    """Seconds from a k6 duration string or a number of seconds.

    ``option`` names the option in the error message, so the pytest glue can report
    ``duration: '10x' is not a duration`` at collection instead of failing mid-run.
    """
    if isinstance(value, bool):
        raise ExecutorOptionError(
            f"{option}: {value!r} is not a duration; use seconds or a string like '30s'"
        )
    if isinstance(value, int | float):
        seconds = _float(value, option)
    elif isinstance(value, str):
        text = value.strip()
        seconds = _parse_text(text, option)
    else:
        raise ExecutorOptionError(
            f"{option}: {value!r} is not a duration; use seconds (a number) or a k6 string like '1m30s'"
        )
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ExecutorOptionError(f"{option}: {value!r} must be a positive duration (e.g. '30s')")
    if 0 < seconds < 1e-9 or seconds > MAX_SECONDS:
        raise ExecutorOptionError(
            f"{option}: {value!r} is {'shorter than 1ns' if seconds < 1 else 'longer than 292 years'}: "
            "outside the engine's clock (int64 nanoseconds)"
        )
    return seconds


def _float(value: int | float, option: str) -> float:
    """``float(value)``, an error naming the option for an int too large for a float."""
    try:
        return float(value)
    except OverflowError:
        raise ExecutorOptionError(f"{option}: {value!r} is too large for a duration") from None


def _parse_text(text: str, option: str) -> float:
    if _SECONDS.fullmatch(text):
        return float(text)  # "30" means 30 seconds, as a number would
    pos, total = 0, 0.0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            raise ExecutorOptionError(
                f"{option}: {text!r} is not a duration; use a k6 string such as '500ms', '30s', '5m' "
                "or '1m30s' (units h, m, s, ms, us, ns), or a number of seconds"
            )
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text:
        raise ExecutorOptionError(f"{option}: {text!r} is an empty duration; use e.g. '30s'")
    return total
