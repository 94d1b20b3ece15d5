"""k6 duration strings ("30s", "5m", "1m30s", "500ms", "1h") and plain numbers of seconds."""

from __future__ import annotations

import math
import re

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")


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
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        seconds = _parse_text(text, option)
    else:
        raise ExecutorOptionError(
            f"{option}: {value!r} is not a duration; use seconds (a number) or a k6 string like '1m30s'"
        )
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ExecutorOptionError(f"{option}: {value!r} must be a positive duration (e.g. '30s')")
    return seconds


def _parse_text(text: str, option: str) -> float:
    try:
        return float(text)  # "30" means 30 seconds, as a number would
    except ValueError:
        pass
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
        raise ExecutorOptionError(f"{option}: empty duration; use e.g. '30s'")
    return total
