"""The ``certload`` console script on saved runs, JUnit XML properties, and the scale-baseline page."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import calibration  # tests/plugin/calibration.py
import numpy as np
import pytest

from pytest_certload.cli import main
from pytest_certload.report import baseline as store
from pytest_certload.report.junit import phase_properties, verdict_text
from pytest_certload.report.markdown import scale_baseline_markdown
from pytest_certload.report.summary import build_summary
from pytest_certload.stats import PhaseSamples, tagset
from pytest_certload.thresholds import evaluate, parse_thresholds
from pytest_certload.verdict import PhaseVerdict, ScenarioVerdict

pytest_plugins = ["pytester"]
STAND_IN = {
    "target": "certctl stand-in",
    "server": "stand-in",
    "postgres_profile": "fast",
    "postgres": "PostgreSQL 15, fast profile (fsync=off)",
}


def make_phase(scale: float = 1.0, steps: tuple[str, ...] = ("directory", "new-nonce")) -> PhaseVerdict:
    rng = np.random.default_rng(7)
    trends, rates, counters = {}, {}, {}
    for step in steps:
        tags = tagset({"scenario": "acme_burst", "step": step, "status": "200", "status_class": "2xx"})
        trends[("http_req_duration", tags)] = (rng.lognormal(np.log(4e6), 0.5, 600) * scale).astype(np.int64)
        rates[("http_req_failed", tags)] = (3, 600)
        counters[("http_reqs", tags)] = 600.0
    counters[("iterations", tagset({"scenario": "acme_burst"}))] = 600.0
    samples = PhaseSamples(trends, rates, counters, {"wall_seconds": 6.0})
    thresholds = parse_thresholds({"http_req_duration": ["p(95)<500"]}).scoped("acme_burst")
    info = ScenarioVerdict(
        "acme_burst",
        {"executor": "constant-arrival-rate", "rate": 100, "duration": "6s"},
        "constant-arrival-rate",
        100.0,
        None,
        evaluate(thresholds, samples, 6.0),
        scheduled_s=6.0,
    )
    return PhaseVerdict("tests/test_acme.py::test_burst", samples, 6.0, [info], stack=STAND_IN)


def save(storage: Path, name: str, scale: float = 1.0) -> Path:
    phase = make_phase(scale)
    summary = build_summary([phase], run_duration_s=7.0, machine={"cpu_model": "X"}, stack=STAND_IN)
    info = {
        "created": "2026-05-16T12:00:00",
        "commit": {"short": "abc12345"},
        "stack": summary["stack"],
        "machine": {"cpu_model": "X"},
        "argv": ["pytest", "tests/scale"],
    }
    return store.save_run(store.SavedRun(name, info, summary, [phase]), store.run_path(storage, name))


def test_list_report_compare_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    storage = tmp_path / ".certload"
    save(storage, "v1")
    save(storage, "v2-slower", scale=1.4)
    args = ["--storage", str(storage)]
    assert main([*args, "list"]) == 0
    out = capsys.readouterr().out
    assert (
        "v1  'v1' (saved 2026-05-16 12:00 UTC, commit abc12345)  1 phase(s) in 1 test(s)  certctl stand-in"
        in out
    )

    html = tmp_path / "report.html"
    assert main([*args, "report", "v1", "-o", str(html)]) == 0
    text = html.read_text()
    assert "stand-in: functional check only" in text and text.count("Plotly.newPlot(") == 1  # no timeline

    assert main([*args, "compare", "v1", "v1", "--fail", "p95:10%"]) == 0
    assert "0 regression(s) against p95:10%" in capsys.readouterr().out
    assert main([*args, "compare", "v1", "latest", "--fail", "p95:10%,error_rate:+1pp"]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION acme_burst p95 http_req_duration:" in out and "over p95:10% and significant" in out

    md = tmp_path / "baseline.md"
    assert main([*args, "baseline-md", "v1", "-o", str(md)]) == 0
    assert "| **acme_burst** directory | `v1` | 2026-05-16 |" in md.read_text()

    assert main([*args, "compare", "v1", "v3"]) == 2
    assert "'v3': no such file or saved run" in capsys.readouterr().err
    assert main([*args, "compare", "v1", "v1", "--fail", "p95"]) == 2


def test_the_console_script_is_installed():
    script = shutil.which("certload")
    if script is None:
        pytest.skip("the certload console script is not on PATH (pip install -e . installs it)")
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "compare" in done.stdout and "report" in done.stdout
    module = subprocess.run(
        [sys.executable, "-m", "pytest_certload.cli", "list", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert module.returncode == 0


def test_junit_properties_carry_the_key_figures():
    props = dict(phase_properties([make_phase()]))
    assert props["certload.target"] == "certctl stand-in"
    assert props["certload.caveat"].startswith("stand-in: functional check only")
    for figure in ("p50_ms", "p95_ms", "p99_ms", "achieved_rate_per_s", "target_rate_per_s", "error_rate"):
        assert isinstance(props[f"certload.acme_burst.{figure}"], float)
    assert props["certload.acme_burst.thresholds"] == "ok 1/1"
    assert props["certload.acme_burst.error_rate"] == pytest.approx(0.005)
    two = dict(phase_properties([make_phase(), make_phase()]))
    assert "certload.phase2.acme_burst.p95_ms" in two
    failed = {
        "metric": "http_req_duration",
        "expression": "p(95)<5",
        "ok": False,
        "observed": 12.5,
        "unit": "ms",
    }
    assert (
        verdict_text([failed, {**failed, "ok": True}])
        == "FAIL 1/2: http_req_duration: p(95)<5 observed 12.5ms"
    )


def test_scale_baseline_page_has_certctls_columns_and_a_row_per_step():
    phase = make_phase()
    summary = build_summary(
        [phase], run_duration_s=7.0, machine={"cpu_model": "X", "cpu_count_usable": 2}, stack=STAND_IN
    )
    text = scale_baseline_markdown(summary, [phase], {"created": "2026-05-16T12:00:00"}, "run-7")
    lines = text.splitlines()
    header = "| Scenario | Run ID | Date | p50 | p95 | p99 | Error rate | Peak server RSS | Notes |"
    assert header in lines and "|---|---|---|---|---|---|---|---|---|" in lines
    rows = [line for line in lines if line.startswith("| **acme_burst**")]
    assert len(rows) == 3  # the scenario, then its two steps
    assert (
        rows[0].startswith("| **acme_burst** | `run-7` | 2026-05-16 | ")
        and "| 0.50% | not measured |" in rows[0]
    )
    assert "thresholds ok 1/1" in rows[0] and "stand-in: functional check only" in rows[0]
    assert rows[1].startswith("| **acme_burst** directory |") and rows[2].startswith(
        "| **acme_burst** new-nonce |"
    )
    for heading in (
        "## Latest capture",
        "## Methodology",
        "### Hardware",
        "### Software",
        "### Metrics captured",
    ):
        assert heading in lines
    assert "**Postgres:** PostgreSQL 15, fast profile (fsync=off)." in text


LOAD = textwrap.dedent(
    """
    import pytest

    @pytest.mark.certload(executor="constant-arrival-rate", rate=20, duration="1s", pre_allocated_vus=2,
                          thresholds={"iteration_duration": ["p(95)<1000"]})
    def test_quiet(certload):
        async def iteration(ctx):
            pass
        certload.run(iteration, name="quiet")
    """
)


def test_junit_xml_and_markdown_from_a_session(pytester: pytest.Pytester):
    pytester.makeini(calibration.RELAXED_HEALTH_INI)
    pytester.makepyfile(test_load=LOAD)
    result = pytester.runpytest_subprocess("--junitxml=junit.xml", "--certload-baseline-md=docs/baseline.md")
    result.assert_outcomes(passed=1)
    case = ElementTree.parse(pytester.path / "junit.xml").getroot().find(".//testcase")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["certload.quiet.achieved_rate_per_s"] == "20.0"
    assert props["certload.quiet.thresholds"] == "ok 1/1"
    assert props["certload.quiet.target_rate_per_s"] == "20.0"
    page = (pytester.path / "docs" / "baseline.md").read_text()
    assert "| **quiet** |" in page and "20.0/20 it/s achieved/target" in page
    result.stdout.fnmatch_lines(["certload: scale baseline written to *baseline.md"])


def test_storage_option_and_autosave_numbering(pytester: pytest.Pytester):
    pytester.makeini(calibration.RELAXED_HEALTH_INI)
    pytester.makepyfile(test_load=LOAD)
    for _ in range(2):
        pytester.runpytest_subprocess("--certload-autosave", "--certload-storage=runs").assert_outcomes(
            passed=1
        )
    names = sorted(p.name for p in (pytester.path / "runs").iterdir())
    assert [n[:5] for n in names] == ["0001_", "0002_"] and all(n.endswith(store.SUFFIX) for n in names)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest_certload.cli", "--storage=runs", "compare", "0001", "0002"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "quiet     p95 http_req_duration" not in done.stdout  # no requests: only what was recorded
    assert "quiet     rate" in done.stdout
