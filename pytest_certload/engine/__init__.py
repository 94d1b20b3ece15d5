"""The load engine: lean HTTP/1.1 and HTTP/2 clients, k6-named executors, generator health, run_phase()."""

from pytest_certload.engine.durations import ExecutorOptionError, parse_duration
from pytest_certload.engine.health import GeneratorHealth
from pytest_certload.engine.http import HttpClient, Response, make_ssl_context
from pytest_certload.engine.http2 import Http2Client
from pytest_certload.engine.phase import PhaseMeasurement, run_phase, run_phase_async
from pytest_certload.engine.scenario import IterationContext, ScenarioRun
from pytest_certload.engine.spec import ExecutorSpec, Stage

__all__ = [
    "ExecutorOptionError",
    "ExecutorSpec",
    "GeneratorHealth",
    "Http2Client",
    "HttpClient",
    "IterationContext",
    "PhaseMeasurement",
    "Response",
    "ScenarioRun",
    "Stage",
    "make_ssl_context",
    "parse_duration",
    "run_phase",
    "run_phase_async",
]
