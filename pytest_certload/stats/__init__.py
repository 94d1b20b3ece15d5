"""Recording and statistics: raw samples in the hot path, exact percentiles at the end."""

from pytest_certload.stats.recorder import Recorder
from pytest_certload.stats.samples import PhaseSamples, SeriesKey, TagSet, tagset

__all__ = ["PhaseSamples", "Recorder", "SeriesKey", "TagSet", "tagset"]
