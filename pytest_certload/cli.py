"""``certload``: the reports of saved runs, outside pytest.

    certload list                                   saved runs in .certload/
    certload report RUN -o report.html              the HTML report of a saved run
    certload compare BASE NOW [--fail p95:10%]      per scenario and metric: BASE vs NOW, the change,
                                                    its 95 % interval; exit 1 on a regression
    certload baseline-md RUN -o scale-baseline.md   certctl's scale-baseline table for a saved run

RUN, BASE and NOW are a saved name (``.certload/NAME.certload.zip``), a unique prefix of one
(``0003``), ``latest``, or the path of a run file. Exit status: 0 fine, 1 regression, 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_certload.report import baseline as store


def _load(ref: str, storage: Path) -> store.SavedRun:
    return store.load_run(store.resolve_run(None if ref == "latest" else ref, storage))


def cmd_list(args: argparse.Namespace) -> int:
    files = store.run_files(args.storage)
    if not files:
        print(f"no saved runs in {args.storage}")
        return 0
    for path in files:
        run = store.load_run(path)
        tests = len({p.nodeid for p in run.phases})
        target = (run.info.get("stack") or {}).get("target") or "no certload_stack"
        print(f"{store.run_name(path)}  {run.label}  {len(run.phases)} phase(s) in {tests} test(s)  {target}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pytest_certload.report.html import render_html, write_html

    run = _load(args.run, args.storage)
    output = Path(args.output or f"{run.name}.html")
    write_html(output, render_html(run.summary, run.phases, {**run.info, "name": run.name}))
    print(f"HTML report of {run.label} written to {output}")
    return 0


def cmd_baseline_md(args: argparse.Namespace) -> int:
    from pytest_certload.report.markdown import scale_baseline_markdown

    run = _load(args.run, args.storage)
    text = scale_baseline_markdown(run.summary, run.phases, run.info, run.name)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"scale baseline of {run.label} written to {args.output}")
    else:
        print(text)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from pytest_certload.report.compare import (
        CompareRuleError,
        compare_phases,
        option_differences,
        parse_rules,
        setup_differences,
        table_lines,
    )

    try:
        rules = parse_rules(args.fail or [])
    except CompareRuleError as exc:
        print(exc, file=sys.stderr)
        return 2
    base, now = _load(args.base, args.storage), _load(args.now, args.storage)
    print(f"certload compare: {now.label} vs baseline {base.label}")
    warnings = setup_differences(base.info, now.info) + option_differences(base.phases, now.phases)
    if warnings:
        print("!" * 20 + " DIFFERENT SETUPS: these numbers may not be comparable " + "!" * 20)
        for warning in warnings:
            print(f"  {warning}")
        print("!" * 94)
    rows = compare_phases(base.phases, now.phases, rules)
    for line in table_lines(rows):
        print(line)
    regressions = [r for r in rows if r.regression]
    for row in regressions:
        print(f"REGRESSION {row.describe()}: over {', '.join(r.text for r in row.exceeded)} and significant")
    if rules:
        print(f"{len(regressions)} regression(s) against {', '.join(r.text for r in rules)}")
    return 1 if regressions else 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="certload", description="Reports of saved pytest-certload runs.")
    top.add_argument(
        "--storage", type=Path, default=Path(store.DEFAULT_DIR), help="saved runs (default .certload)"
    )
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the saved runs").set_defaults(func=cmd_list)
    report = sub.add_parser("report", help="write the HTML report of a saved run")
    report.add_argument("run", help="saved name, prefix, 'latest' or file")
    report.add_argument("-o", "--output", help="HTML file to write (default: NAME.html)")
    report.set_defaults(func=cmd_report)
    compare = sub.add_parser("compare", help="compare two saved runs (BASE is the baseline)")
    compare.add_argument("base")
    compare.add_argument("now")
    compare.add_argument(
        "--fail", action="append", metavar="EXPR", help="e.g. p95:10%% (exit 1 on a regression)"
    )
    compare.set_defaults(func=cmd_compare)
    markdown = sub.add_parser("baseline-md", help="certctl's scale-baseline table of a saved run")
    markdown.add_argument("run")
    markdown.add_argument("-o", "--output", help="Markdown file to write (default: print it)")
    markdown.set_defaults(func=cmd_baseline_md)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except store.RunNotFound as exc:
        print(f"certload: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"certload: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `certload compare A B | head`: the reader left; no traceback for it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # python -m pytest_certload.cli
    sys.exit(main())
