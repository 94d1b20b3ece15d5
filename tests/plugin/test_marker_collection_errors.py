"""Bad ``certload`` markers through pytest itself: a collection error naming the test and the value.

The fast, exhaustive layer is test_properties_marker_options.py (Hypothesis on the parsing
functions); this is the slow end-to-end check for representative cases of every kind of bad value,
all in one inner session: each module fails to collect, naming the test id and the value as
written; pytest stops before anything runs (with --collect-only and in a real run); no traceback.
"""

from __future__ import annotations

import pytest

ARRIVAL = 'executor="constant-arrival-rate", rate=5, duration="10s", pre_allocated_vus=2'
RAMPING = 'executor="ramping-arrival-rate", pre_allocated_vus=2'
#: test module -> (marker options, text the collection error must show)
BAD_MARKERS = {
    "rate_nan": (
        'executor="constant-arrival-rate", rate=float("nan"), duration="10s", pre_allocated_vus=2',
        "nan",
    ),
    "vus_huge": ('executor="constant-vus", vus=10**12, duration="10s"', "1000000000000"),
    "duration_text": ('executor="constant-vus", vus=1, duration="1_0"', "'1_0'"),
    "stage_text": (f'{RAMPING}, stages=["5s"]', "stages[0]: '5s'"),
    "two_spellings": (f'{ARRIVAL}, timeUnit="1s", time_unit="1m"', "timeUnit='1s' and time_unit='1m'"),
    "percentile": (f'{ARRIVAL}, thresholds={{"http_req_duration": ["p(101)<5"]}}', "'p(101)<5'"),
    "delay": (
        f'{ARRIVAL}, thresholds={{"http_req_failed": [{{"threshold": "rate<0.1", "abortOnFail": True, '
        '"delayAbortEval": "-5s"}]}',
        "'-5s'",
    ),
    "capacity_key": (f'{ARRIVAL}, capacity={{1: 2, "x": 3}}', "unknown capacity option(s) 'x', 1"),
    "tag_value": (f'{ARRIVAL}, tags={{"a": None}}', "{'a': None}"),
    "split": (f'{ARRIVAL}, split="no"', "'no'"),
}
BAD_MARKERS["http_version"] = (f'{ARRIVAL}, http_version="3"', "'3'")
BAD_MARKERS["agent_jitter"] = ('executor="agent-fleet", agents=5, duration="10s", jitter=1.5', "1.5")


@pytest.mark.parametrize("mode", ["--collect-only", "--certload-duration=3s"])
def test_bad_markers_are_collection_errors_naming_test_and_value(pytester: pytest.Pytester, mode: str):
    """Each bad marker: its module fails to collect, naming the test id and the value; nothing runs."""
    body = 'def test_case{params}(certload{args}):\n    open("ran_{name}.txt", "w").write("ran")\n'
    for name, (options, _) in BAD_MARKERS.items():
        pytester.makepyfile(
            **{
                f"test_{name}": f"import pytest\n\n@pytest.mark.certload({options})\n"
                + body.format(params="", args="", name=name)
            }
        )
    pytester.makepyfile(
        test_param='import pytest\n\n@pytest.mark.parametrize("n", [7])\n@pytest.mark.certload('
        + ARRIVAL
        + ", start_time=-1)\n"
        + body.format(params="", args=", n", name="param"),
        test_good='def test_good():\n    open("ran_good.txt", "w").write("ran")\n',
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--certctl=standin", mode)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, output
    expected = {f"test_{name}": ("test_case", shown) for name, (_, shown) in BAD_MARKERS.items()}
    expected["test_param"] = ("test_case[7]", "start_time: -1")
    for module, (test_id, shown) in expected.items():
        assert f"ERROR collecting {module}.py" in output
        assert f"{module}.py::{test_id}: invalid @pytest.mark.certload" in output
        line = next(li for li in output.splitlines() if f"{module}.py::{test_id}: invalid" in li)
        assert shown in line, line
    assert f"Interrupted: {len(expected)} errors during collection" in output
    assert "Traceback" not in output
    assert not list(pytester.path.glob("ran_*.txt"))  # not the good test either: collection failed
