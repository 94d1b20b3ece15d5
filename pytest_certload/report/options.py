"""The ``--certload-*`` options of the reports: HTML, live progress, saved runs and the regression gate,
the scale-baseline page (registered by ``plugin.pytest_addoption`` through :func:`add_options`)."""

from __future__ import annotations

from typing import Any


def add_options(group: Any) -> None:
    group.addoption(
        "--certload-html",
        metavar="PATH",
        default=None,
        help="write one self-contained HTML report (plots over time, percentile spectra, verdicts) here",
    )
    group.addoption(
        "--certload-progress",
        choices=("auto", "on", "off"),
        default="auto",
        help="live progress line per running scenario: auto (on a terminal, not with -q, not on xdist "
        "workers), on, off (default: auto)",
    )
    group.addoption(
        "--certload-save",
        metavar="NAME",
        default=None,
        help="save this run (summary, raw samples, stack/machine/commit) as .certload/NAME.certload.zip",
    )
    group.addoption(
        "--certload-autosave",
        action="store_true",
        default=False,
        help="save this run as .certload/NNNN_<commit>_<time>.certload.zip",
    )
    group.addoption(
        "--certload-compare",
        metavar="NAME|PATH",
        nargs="?",
        const="",
        default=None,
        help="compare with a saved run: the newest when no value is given, else a name, prefix or file",
    )
    group.addoption(
        "--certload-compare-fail",
        metavar="EXPR",
        action="append",
        default=[],
        help="fail tests whose scenarios regressed beyond EXPR against the baseline, when significant: "
        "e.g. p95:10%%, p99:+50ms, error_rate:+0.5pp, rate:-5%% (comma-separated; "
        "implies --certload-compare)",
    )
    group.addoption(
        "--certload-storage",
        metavar="DIR",
        default=None,
        help="where saved runs live (default: .certload/ in pytest's rootdir)",
    )
    group.addoption(
        "--certload-baseline-md",
        metavar="PATH",
        default=None,
        help="write a scale-baseline table in the shape of certctl's docs/operator/scale-baseline-*.md",
    )
