"""Recording and statistics: raw samples in the hot path, exact percentiles at the end."""

from pytest_certload.stats.recorder import Recorder
from pytest_certload.stats.result import PhaseResult, SeriesKey, TagSet, tagset

__all__ = ["PhaseResult", "Recorder", "SeriesKey", "TagSet", "tagset"]
