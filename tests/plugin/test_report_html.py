"""The HTML report as a person reads it: rendered by headless Chromium, screenshot, plots present,
no console errors, nothing fetched from the network.

Chromium is driven over the DevTools protocol (a websocket, with aiohttp which the plugin already
depends on): the console and exceptions are collected while the page loads, every request it makes
is recorded, and ``Page.captureScreenshot`` takes the picture. Debian's ``chromium`` package
(``scripts/bootstrap.sh`` installs it); without it these tests skip and say why.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import calibration  # tests/plugin/calibration.py
import numpy as np
import pytest

from pytest_certload.report.html import render_html, write_html
from pytest_certload.stats import PhaseSamples
from pytest_certload.stats.timeline import TIMELINE_KEY
from pytest_certload.verdict import PhaseVerdict

pytest_plugins = ["pytester"]

CALIBRATION_DIR = Path(__file__).resolve().parent
CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install chromium)"
)

# --- a small DevTools-protocol client -----------------------------------------------------------------


class Page:
    """One Chromium tab: send commands, collect events."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict] = []
        self.waiting: dict[int, asyncio.Future] = {}
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data and data["id"] in self.waiting:
                self.waiting.pop(data["id"]).set_result(data)
            elif "method" in data:
                self.events.append(data)

    async def send(self, method: str, **params) -> dict:
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.waiting[self.next_id] = future
        await self.ws.send_str(json.dumps({"id": self.next_id, "method": method, "params": params}))
        answer = await asyncio.wait_for(future, 60)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


async def _render(url: str, width: int, height: int | None, clip_height: int | None, clip_y: int = 0) -> dict:
    import aiohttp

    profile = tempfile.mkdtemp(prefix="certload-chromium-")
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as answer:
                target = next(t for t in await answer.json() if t["type"] == "page")
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                for domain in ("Runtime", "Log", "Network", "Page"):
                    await page.send(f"{domain}.enable")
                await page.send(
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=height or 1000,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                await page.send("Page.navigate", url=url)
                plots, deadline = -1, time.monotonic() + 60
                while time.monotonic() < deadline:  # every figure drawn: each has its main SVG
                    await asyncio.sleep(0.5)
                    ready = await page.evaluate("document.readyState")
                    drawn = await page.evaluate(
                        "document.querySelectorAll('.js-plotly-plot .main-svg').length"
                    )
                    wanted = await page.evaluate("document.querySelectorAll('.plotly-graph-div').length")
                    if ready == "complete" and drawn == plots and wanted and drawn >= wanted:
                        break
                    plots = drawn
                info = {
                    "figures": await page.evaluate("document.querySelectorAll('.plotly-graph-div').length"),
                    "drawn": await page.evaluate("document.querySelectorAll('.js-plotly-plot').length"),
                    "traces": await page.evaluate(
                        "document.querySelectorAll('.js-plotly-plot .scatterlayer .trace, "
                        ".js-plotly-plot .barlayer .trace').length"
                    ),
                    "text": await page.evaluate("document.body.innerText"),
                    "page_height": await page.evaluate("document.documentElement.scrollHeight"),
                }
                params: dict = {"format": "png"}
                if clip_height:
                    params["clip"] = {"x": 0, "y": clip_y, "width": width, "height": clip_height, "scale": 1}
                shot = await page.send("Page.captureScreenshot", captureBeyondViewport=True, **params)
                info["png"] = base64.b64decode(shot["data"])
                info["events"] = list(page.events)
                page.reader.cancel()
        return info
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def render(
    path: Path, width: int = 1400, height: int | None = None, clip_height: int | None = None, clip_y: int = 0
) -> dict:
    """Open ``path`` in headless Chromium; the figures, console errors, requests and a PNG."""
    info = asyncio.run(_render(path.resolve().as_uri(), width, height, clip_height, clip_y))
    events = info.pop("events")
    info["errors"] = [
        e
        for e in events
        if e["method"] == "Runtime.exceptionThrown"
        or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
        or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    info["requests"] = [
        e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"
    ]
    return info


# --- a report from a real session ------------------------------------------------------------------

SERVER_CONFTEST = calibration.SERVER_CONFTEST

# two scenarios in one phase (shared time axis): errors in one, a server stall in the other (the
# stall shows coordinated omission: http_req_duration rises, service time does not)
TIER_TEST = textwrap.dedent(
    """
    import pytest

    @pytest.mark.certload(thresholds={"http_req_duration{scenario:list}": ["p(95)<500"]})
    def test_tier(certload, server):
        async def create(ctx):
            await ctx.request("GET", server + ("/status/500" if ctx.iteration % 13 == 0 else "/latency"))

        async def listing(ctx):
            if ctx.iteration == 40:
                await ctx.request("POST", server + "/stall?after=0&seconds=0.3")
            await ctx.request("GET", server + "/latency")

        result = certload.run_many({
            "create": (create, {"executor": "ramping-arrival-rate", "start_rate": 20, "pre_allocated_vus": 10,
                                "max_vus": 40, "stages": [{"target": 60, "duration": "3s"}],
                                "thresholds": {"http_req_failed": ["rate<0.05"]}}),
            "list": (listing, {"executor": "constant-arrival-rate", "rate": 40, "duration": "3s",
                               "pre_allocated_vus": 5, "max_vus": 5}),
        })
        assert result.verdicts
    """
)


@pytest.fixture(scope="module")
def session_report(tmp_path_factory) -> Path:
    """An HTML report written by a real pytest session (one two-scenario phase of 3 s)."""
    project = tmp_path_factory.mktemp("html-session")
    (project / "conftest.py").write_text(SERVER_CONFTEST)
    (project / "pytest.ini").write_text(calibration.RELAXED_HEALTH_INI)
    (project / "test_tier.py").write_text(TIER_TEST)
    report = project / "report.html"
    done = subprocess.run(
        ["python", "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--certload-html={report}"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=180,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
    )
    assert report.exists(), done.stdout + done.stderr
    assert "HTML report written to" in done.stdout, done.stdout
    return report


def test_the_report_is_one_self_contained_file(session_report: Path):
    from html.parser import HTMLParser

    text = session_report.read_text()
    fetched: list[str] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            fetched.extend(f"<{tag} {k}={v}>" for k, v in attrs if k in ("src", "href") and v)

    Tags().feed(text)
    assert fetched == []  # plotly.js is inline: no <script src>, no stylesheet, no CDN
    assert text.count("Plotly.newPlot(") == 2  # the phase's timeline and its percentile spectrum
    for words in ("What was measured on", "Thresholds", "Percentile spectrum", "Over time", "p(95)&lt;500"):
        assert words in text


@needs_chromium
def test_chromium_renders_every_plot_without_console_errors(session_report: Path, tmp_path: Path):
    page = render(session_report, clip_height=2400)
    assert page["errors"] == [], page["errors"]
    assert page["figures"] == 2 and page["drawn"] == 2
    # 2 scenarios x 6 latency lines, 3 rate, status classes, 6 per-second counts, 3 generator, 4 spectrum
    assert page["traces"] >= 25
    offline = [u for u in page["requests"] if not u.startswith(("file:", "data:", "about:"))]
    assert offline == [], f"the report fetched {offline}"
    for words in (
        "create: response time per second",
        "list: response time per second",
        "percentile spectrum",
        "achieved (solid) vs target",
        "event-loop lag",
    ):
        assert words in page["text"]
    shot = tmp_path / "report.png"
    shot.write_bytes(page["png"])
    assert page["png"][:8] == b"\x89PNG\r\n\x1a\n" and len(page["png"]) > 50_000


def _synthetic_phase(with_timeline: bool) -> PhaseVerdict:
    rng = np.random.default_rng(3)
    tags = (("scenario", "s"), ("status", "200"), ("status_class", "2xx"))
    values = (rng.lognormal(np.log(5e6), 0.5, 300)).astype(np.int64)
    meta: dict = {"wall_seconds": 3.0}
    if with_timeline:
        meta[TIMELINE_KEY] = {
            "version": 1,
            "at": [1.0, 2.0, 3.0],
            "trends": [{"name": "http_req_duration", "tags": [list(t) for t in tags], "n": [100, 200, 300]}],
            "counters": [],
            "rates": [],
            "generator": {},
        }
    samples = PhaseSamples(trends={("http_req_duration", tags): values}, meta=meta)
    return PhaseVerdict("t.py::test_s", samples, 3.0, [])


@needs_chromium
def test_a_report_without_per_second_marks_still_renders(tmp_path: Path):
    """Saved runs from before the timeline existed: the spectrum only, and no error."""
    from pytest_certload.report.summary import build_summary
    from pytest_certload.verdict import ScenarioVerdict

    phase = _synthetic_phase(with_timeline=False)
    phase.scenarios = [ScenarioVerdict("s", {"executor": "constant-vus", "vus": 1}, "constant-vus", None, 1)]
    summary = build_summary([phase], run_duration_s=3, machine={}, stack=None)
    path = write_html(tmp_path / "old.html", render_html(summary, [phase], {"name": "old"}))
    page = render(path, height=900)
    assert page["errors"] == [] and page["figures"] == 1 and page["drawn"] == 1
    assert "No per-second data for this phase" in page["text"]


# --- the per-second marks the figures read ----------------------------------------------------------


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A real 3.4 s phase of two scenarios against the calibration server, with per-second marks."""
    import sys

    sys.path.insert(0, str(CALIBRATION_DIR))
    from calibration import start_server

    from pytest_certload.engine import ExecutorSpec, ScenarioRun, run_phase

    proc, url = start_server(tmp_path_factory.mktemp("calibration"))
    try:

        async def latency(ctx):
            await ctx.request("GET", url + "/latency")

        async def errors(ctx):
            await ctx.request("GET", url + ("/status/503" if ctx.iteration % 4 == 0 else "/fast"))

        def spec(rate):
            return ExecutorSpec.from_options(
                {
                    "executor": "constant-arrival-rate",
                    "rate": rate,
                    "duration": "3.4s",
                    "pre_allocated_vus": 10,
                }
            )

        return run_phase(
            [ScenarioRun("latency", spec(60), latency), ScenarioRun("errors", spec(40), errors)],
            max_lag_p99_ms=1000,
            max_cpu_fraction=8,
        )
    finally:
        proc.stop()


def test_per_second_values_partition_the_raw_samples(measured):
    from pytest_certload.stats.timeline import Timeline

    samples = measured.samples
    timeline = Timeline.of(samples)
    assert timeline is not None and timeline.seconds in (3, 4)  # a last part under 0.5 s joins the 3rd
    for name in ("latency", "errors"):
        wanted = {"scenario": name}
        per_second = timeline.trend("http_req_duration", wanted)
        whole = samples.select_trend("http_req_duration", wanted)
        assert sum(v.size for v in per_second) == whole.size
        assert np.array_equal(np.sort(np.concatenate(per_second)), np.sort(whole))
        assert timeline.counter("started_iterations", wanted).sum() == samples.select_counter(
            "iterations", wanted
        )
    started = timeline.counter("started_iterations", {"scenario": "latency"})
    assert list(started[:2]) == pytest.approx([60, 60], abs=2)  # the target, second by second
    trues, _ = timeline.rate("http_req_failed", {"scenario": "errors"})
    assert trues.sum() == samples.select_rate("http_req_failed", {"scenario": "errors"})[0] == 34
    classes = timeline.counter_by_tag("http_reqs", "status_class", {"scenario": "errors"})
    assert set(classes) == {"2xx", "5xx"} and classes["5xx"].sum() == 34
    p = timeline.percentiles("http_req_duration", (50.0, 99.0), {"scenario": "latency"})
    assert np.all(p[99.0][:3] >= p[50.0][:3]) and p["count"].sum() == whole_count(samples, "latency")
    cpu = timeline.generator()["cpu"][0]
    assert np.all(cpu[np.isfinite(cpu)] < 2.0)


def whole_count(samples, name):
    return samples.select_trend("http_req_duration", {"scenario": name}).size


def test_marks_travel_with_the_samples_and_pool_across_shares(measured):
    from pytest_certload.stats.timeline import Timeline

    again = PhaseSamples.from_dict(measured.samples.to_dict())  # the xdist wire form
    assert Timeline.of(again) is not None
    merged = PhaseSamples.merge([measured.samples, again])  # two shares of one phase, as xdist merges
    pooled = Timeline.of(merged)
    single = Timeline.of(measured.samples)
    for name in ("latency", "errors"):
        wanted = {"scenario": name}
        assert [v.size for v in pooled.trend("http_req_duration", wanted)] == [
            2 * v.size for v in single.trend("http_req_duration", wanted)
        ]
        assert np.array_equal(pooled.counter("iterations", wanted), 2 * single.counter("iterations", wanted))
    assert len(pooled.generator()["cpu"]) == 2  # one CPU line per share
    broken = PhaseSamples(
        dict(merged.trends), meta={"parts": [measured.samples.meta]}
    )  # marks of one share only
    assert Timeline.of(broken) is None
