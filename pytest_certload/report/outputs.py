"""The reports' side of a pytest session: options checked at start, per-test JUnit properties and the
regression gate, the files written at the end (saved run, HTML, scale-baseline page), terminal lines.

The session (``session.py``) calls :func:`write_outputs` next to the summary and
:func:`terminal_summary` after its table; ``plugin.py``'s report hook calls :func:`after_call_report`.
Everything reads the same judged phases (:class:`~pytest_certload.verdict.PhaseVerdict`) the summary
reads. Nothing here runs on pytest-xdist workers except the per-test part, which sees the merged phase.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_certload import __version__
from pytest_certload.report import baseline as store
from pytest_certload.report.compare import (
    CompareRuleError,
    Row,
    Rule,
    compare_phases,
    option_differences,
    parse_rules,
    setup_differences,
    table_lines,
)
from pytest_certload.report.junit import phase_properties
from pytest_certload.report.machine import describe_machine
from pytest_certload.verdict import PhaseVerdict


@dataclass
class ReportOutputs:
    """What this session was asked to write and compare, and what came of it."""

    storage: Path
    rules: list[Rule] = field(default_factory=list)
    compare: bool = False
    baseline_path: Path | None = None
    note: str | None = None  # why a requested comparison is not made
    messages: list[str] = field(default_factory=list)
    comparison: tuple[str, list[Row], list[str]] | None = None  # label, rows, setup warnings
    saved: Path | None = None
    _baseline: store.SavedRun | None = None
    _machine: dict[str, Any] | None = None

    def baseline(self) -> store.SavedRun | None:
        if self._baseline is None and self.baseline_path is not None:
            self._baseline = store.load_run(self.baseline_path)
        return self._baseline

    def machine(self) -> dict[str, Any]:
        if self._machine is None:
            self._machine = describe_machine()
        return self._machine


OUTPUTS = pytest.StashKey[ReportOutputs]()


def _worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def configure(config: pytest.Config) -> None:
    """Check the options before anything runs (a bad rule or a missing baseline is a usage error)."""
    storage = Path(config.getoption("certload_storage") or config.rootpath / store.DEFAULT_DIR)
    outputs = ReportOutputs(storage=storage)
    try:
        outputs.rules = parse_rules(config.getoption("certload_compare_fail") or [])
    except CompareRuleError as exc:
        raise pytest.UsageError(str(exc)) from None
    name = config.getoption("certload_save")
    if name is not None:
        try:
            store.check_name(name)
        except ValueError as exc:
            raise pytest.UsageError(f"--certload-save: {exc}") from None
    ref = config.getoption("certload_compare")
    outputs.compare = ref is not None or bool(outputs.rules)
    if outputs.compare:
        try:
            outputs.baseline_path = store.resolve_run(ref or None, storage)
        except store.RunNotFound as exc:
            # a named baseline that is not there is a mistake ("the newest" may not exist yet); an xdist
            # worker on another host may lack the file: its tests go ungated, the controller compares
            if ref and not _worker(config):
                raise pytest.UsageError(f"--certload-compare: {exc}") from None
            outputs.note = f"nothing to compare with: {exc}"
            if not _worker(config):
                config.issue_config_time_warning(pytest.PytestConfigWarning(f"certload: {outputs.note}"), 2)
    config.stash[OUTPUTS] = outputs


def run_info(
    config: pytest.Config, summary: dict[str, Any], name: str | None, interrupted: bool, commit: dict | None
) -> dict:
    """What describes this run next to its numbers (saved with it, shown in the HTML report)."""
    return {
        "name": name,
        "created": store.now_iso(),
        "commit": commit,
        "argv": ["pytest", *config.invocation_params.args],
        "pytest": pytest.__version__,
        "plugin": __version__,
        "machine": summary.get("machine"),
        "stack": summary.get("stack"),
        "duration_override_s": (summary.get("options") or {}).get("durationOverrideSeconds"),
        "interrupted": interrupted,
        "exit_status": (summary.get("state") or {}).get("exitStatus"),
    }


def _now_info(outputs: ReportOutputs, phases: list[PhaseVerdict], config: pytest.Config) -> dict[str, Any]:
    from pytest_certload.report.summary import stack_caveat

    stack = next((p.stack for p in phases if p.stack), None)
    if stack is not None:
        stack = {**stack, "caveat": stack_caveat(stack)}
    return {"machine": outputs.machine(), "stack": stack, "duration_override_s": _duration_override(config)}


def _duration_override(config: pytest.Config) -> float | None:
    raw = config.getoption("certload_duration", None)
    if raw is None:
        return None
    from pytest_certload.engine.durations import parse_duration

    return parse_duration(raw, "--certload-duration")


def after_call_report(item: pytest.Item, report: pytest.TestReport) -> None:
    """After a load test's call: its key figures as JUnit properties, and the regression gate."""
    if report.when != "call":
        return
    runner = (getattr(item, "funcargs", None) or {}).get("certload")
    phases = list(getattr(runner, "results", None) or [])
    if not phases:
        return
    properties = phase_properties(phases)
    item.user_properties.extend(properties)  # the teardown report carries them into the JUnit XML
    report.user_properties.extend(properties)
    outputs = item.config.stash.get(OUTPUTS, None)
    if outputs is None or not outputs.rules or report.skipped or getattr(report, "certload_saturated", False):
        return
    try:
        base = outputs.baseline()
    except (OSError, ValueError) as exc:  # a damaged run file: say so, but do not fail the test for it
        report.sections.append(("certload regression", f"the baseline could not be read: {exc}"))
        return
    if base is None:
        return
    regressions = [r for r in compare_phases(base.phases, phases, outputs.rules) if r.regression]
    if not regressions:
        return
    lines = [f"certload regression against {base.label}:"]
    lines += [
        f"  {r.describe()}: over {', '.join(x.text for x in r.exceeded)} and significant" for r in regressions
    ]
    different = setup_differences(base.info, _now_info(outputs, phases, item.config))
    if different:
        lines += [
            "  WARNING: the baseline was measured on a different setup:",
            *(f"    {d}" for d in different),
        ]
    message = "\n".join(lines)
    if report.passed:
        report.outcome = "failed"
        report.longrepr = message
    else:
        report.sections.append(("certload regression", message))


def write_outputs(
    config: pytest.Config, summary: dict[str, Any], phases: list[PhaseVerdict], interrupted: bool
) -> None:
    """At session end (controller or single process): compare, save, write HTML and Markdown."""
    outputs = config.stash.get(OUTPUTS, None)
    if outputs is None or _worker(config):
        return
    outputs.messages.clear()
    commit = store.commit_info(config.rootpath)
    save_name = config.getoption("certload_save")
    if save_name is None and config.getoption("certload_autosave") and not interrupted and phases:
        save_name = store.autosave_name(outputs.storage, commit)  # a run with no phase is no baseline
    info = run_info(config, summary, save_name, interrupted, commit)
    if outputs.compare and outputs.baseline_path is not None:
        try:
            base = outputs.baseline()
        except (OSError, ValueError) as exc:
            outputs.note = f"could not read the baseline: {exc}"
            base = None
        if base is not None:
            now_info = {**info, "stack": summary.get("stack")}
            warnings = setup_differences(base.info, now_info) + option_differences(base.phases, phases)
            outputs.comparison = (base.label, compare_phases(base.phases, phases, outputs.rules), warnings)
    _write(outputs, "run saved", lambda: _save(outputs, save_name, info, summary, phases), bool(save_name))
    html_path = config.getoption("certload_html")
    _write(
        outputs,
        "HTML report written",
        lambda: _html(html_path, summary, phases, info, outputs),
        bool(html_path),
    )
    md_path = config.getoption("certload_baseline_md")
    _write(
        outputs, "scale baseline written", lambda: _markdown(md_path, summary, phases, info), bool(md_path)
    )


def _write(outputs: ReportOutputs, what: str, action: Any, wanted: bool) -> None:
    if not wanted:
        return
    try:
        outputs.messages.append(f"{what} to {action()}")
    except Exception as exc:  # one output failing must not lose the others (or the summary)
        outputs.messages.append(
            f"ERROR: {what.split()[0]} {what.split()[1]} not written: {type(exc).__name__}: {exc}"
        )


def _save(outputs: ReportOutputs, name: str, info: dict, summary: dict, phases: list[PhaseVerdict]) -> Path:
    path = store.save_run(store.SavedRun(name, info, summary, phases), store.run_path(outputs.storage, name))
    outputs.saved = path
    return path


def _html(path: str, summary: dict, phases: list[PhaseVerdict], info: dict, outputs: ReportOutputs) -> Path:
    from pytest_certload.report.html import render_html, write_html

    return write_html(path, render_html(summary, phases, info, outputs.comparison))


def _markdown(path: str, summary: dict, phases: list[PhaseVerdict], info: dict) -> Path:
    from pytest_certload.report.markdown import scale_baseline_markdown

    run_id = info.get("name") or (info.get("commit") or {}).get("short") or info["created"]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(scale_baseline_markdown(summary, phases, info, run_id), encoding="utf-8")
    return target


def terminal_summary(config: pytest.Config, reporter: Any) -> None:
    """The comparison table (loud when the setups differ) and which files were written."""
    outputs = config.stash.get(OUTPUTS, None)
    if outputs is None or _worker(config):
        return
    if outputs.comparison is not None:
        label, rows, warnings = outputs.comparison
        reporter.section(f"certload compare: now vs {label}")
        if warnings:
            reporter.write_sep(
                "!", "DIFFERENT SETUPS: these numbers may not be comparable", red=True, bold=True
            )
            for warning in warnings:
                reporter.write_line(f"  {warning}", red=True, bold=True)
            reporter.write_sep("!", red=True, bold=True)
        for line in table_lines(rows):
            reporter.write_line(line)
        regressions = [r for r in rows if r.regression]
        if outputs.rules:
            rules = ", ".join(r.text for r in outputs.rules)
            reporter.write_line(
                f"{len(regressions)} regression(s) against {rules}"
                if regressions
                else f"no regression against {rules}",
                red=bool(regressions),
                green=not regressions,
            )
    elif outputs.note:
        reporter.write_line(f"certload compare: {outputs.note}", yellow=True)
    for message in outputs.messages:
        reporter.write_line(f"certload: {message}", red=message.startswith("ERROR"))


def wanted(config: pytest.Config) -> bool:
    """Did this session ask for any report output (so the session end must build the summary)?"""
    return any(
        config.getoption(name, None)
        for name in ("certload_html", "certload_save", "certload_autosave", "certload_baseline_md")
    ) or bool(getattr(config.stash.get(OUTPUTS, None), "compare", False))
