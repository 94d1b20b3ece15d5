"""Maximum sustained arrival rate of split mode with 1, 2 and 4 pytest-xdist workers.

Each worker count runs one real ``pytest -n N`` session (so the scheduler, the controller's phase
barrier, the shares and the merge are all in the measurement) whose one load test is parametrized
over rising constant-arrival-rate targets, one phase per rate, against Debian nginx on loopback
(started as benchmarks/bench_engine.py starts it: one nginx worker, keep-alive, ``return 200``).
A rate *holds* when no iteration was dropped, the combined rate a wall clock sees (the sum of the
workers' first-to-last-start rates) is within 1 % of target, and the p99 of the scheduling lag
(``iteration_start_lag`` pooled over every worker's samples) is below 1 ms -- the same bar as
bench_engine.py's single-process sweep.

    python benchmarks/bench_xdist.py [--seconds 2] [--workers 1 2 4] [--rounds 2]

Every worker count runs the sweep ``--rounds`` times (a rate holds if it held in any round, as
bench_engine.py tries a failing rate once more: other work on a shared machine can spoil one try).

On a 2-core machine nginx, the controller and N generators share two cores, so this measures how
the split behaves when the generators compete for CPU, not a scale-out across machines.
Writes ``benchmarks/results/xdist.json`` and ``xdist.md`` and prints the markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import LAG_P99_BOUND_MS, cpu_pressure, start_nginx

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent
RATES = (2000, 4000, 6000, 8000, 10000, 12000, 15000, 18000, 22000)

CONFTEST = """
import json
import numpy as np


def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput"):
        return
    from pytest_certload.session import STATE

    out = []
    for record in session.config.stash[STATE].phases.values():
        result = record.samples
        lag = result.select_trend("iteration_start_lag") / 1e6
        parts = result.meta.get("parts") or [result.meta]
        scenario = result.meta["scenarios"]["bench"]
        out.append({
            "test": record.nodeid,
            "workers": len(parts),
            "started": scenario["started_iterations"],
            "dropped": scenario["dropped_iterations"],
            "achieved_rate_wall": sum(p["scenarios"]["bench"]["achieved_rate_wall"] for p in parts),
            "lag_p50_ms": float(np.percentile(lag, 50)) if lag.size else None,
            "lag_p99_ms": float(np.percentile(lag, 99)) if lag.size else None,
            "worker_lag_p99_ms": [p["health"]["lag_p99_ms"] for p in parts],
            "worker_cpu": [p["health"]["cpu_fraction"] for p in parts],
            "failed": result.select_rate("http_req_failed")[0],
        })
    with open("bench.json", "w") as f:
        json.dump(out, f)
"""

TEST = """
import os
import pytest

RATES = {rates!r}


@pytest.mark.parametrize("rate", [
    pytest.param(r, id=str(r), marks=pytest.mark.certload(
        executor="constant-arrival-rate", rate=r, duration="{seconds}s", pre_allocated_vus=64,
        max_vus=512, graceful_stop="5s"))
    for r in RATES
])
def test_rate(certload, rate):
    url = os.environ["BENCH_URL"]

    async def iteration(ctx):
        await ctx.request("GET", url)

    certload.run(iteration, name="bench")
"""


def run_session(workers: int, url: str, rates: tuple[int, ...], seconds: float) -> list[dict]:
    """One ``pytest -n workers`` session over every rate; the controller dumps the merged records."""
    project = Path(tempfile.mkdtemp(prefix=f"bench-xdist-{workers}-"))
    (project / "conftest.py").write_text(CONFTEST)
    (project / "test_bench.py").write_text(textwrap.dedent(TEST.format(rates=list(rates), seconds=seconds)))
    # the generators' own saturation bounds are reported, not enforced: the sweep judges each rate
    (project / "pytest.ini").write_text(
        "[pytest]\ncertload_max_lag_p99_ms = 100000\ncertload_max_cpu_fraction = 100\n"
    )
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(workers)]
    # the sessions import this checkout's plugin, whatever copy of the package is installed
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "BENCH_URL": url, "PYTHONPATH": pythonpath}
    out = subprocess.run(
        argv, cwd=project, env=env, capture_output=True, text=True, timeout=len(rates) * (seconds + 10) + 120
    )
    dump = project / "bench.json"
    if not dump.exists():
        raise RuntimeError(
            f"-n {workers}: no results; pytest said:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
        )
    rows = json.loads(dump.read_text())
    for row, rate in zip(rows, rates, strict=True):
        assert row["test"].endswith(f"[{rate}]"), row["test"]
        row["rate"] = rate
        row["workers_requested"] = workers
        kept = row["dropped"] == 0 and abs(row["achieved_rate_wall"] / rate - 1) <= 0.01
        row["holds"] = bool(kept and row["lag_p99_ms"] is not None and row["lag_p99_ms"] < LAG_P99_BOUND_MS)
    return rows


def table(results: dict[int, list[dict]]) -> list[str]:
    lines = [
        "| workers | round | target rate/s | achieved (wall, combined) | sched. lag p50 | lag p99 (pooled) "
        "| worker loop lag p99 | worker CPU | dropped | holds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for workers, rows in results.items():
        for r in sorted(rows, key=lambda r: (r["rate"], r["round"])):
            loop = ", ".join(f"{x:.2f}" for x in r["worker_lag_p99_ms"])
            cpu = ", ".join(f"{x:.0%}" for x in r["worker_cpu"])
            lines.append(
                f"| {workers} | {r['round']} | {r['rate']:,} | {r['achieved_rate_wall']:,.0f} "
                f"| {r['lag_p50_ms']:.2f} ms "
                f"| {r['lag_p99_ms']:.2f} ms | {loop} ms | {cpu} | {r['dropped']} | {r['holds']} |"
            )
    return lines


def max_sustained(rows: list[dict]) -> int | None:
    """The top of the unbroken run of rates, from the bottom of the sweep, that held in some round."""
    held: dict[int, bool] = {}
    for r in rows:
        held[r["rate"]] = held.get(r["rate"], False) or r["holds"]
    best = None
    for rate in sorted(held):
        if not held[rate]:
            break
        best = rate
    return best


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--rates", type=int, nargs="+", default=list(RATES))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=RESULTS / "xdist.json")
    args = p.parse_args()
    started = time.time()
    pressure_before = cpu_pressure()
    workdir = Path(tempfile.mkdtemp(prefix="bench-xdist-nginx-"))
    nginx, url, _tls_url, _ca, nginx_bin = start_nginx(workdir)
    try:
        results: dict[int, list[dict]] = {n: [] for n in args.workers}
        for round_ in range(1, args.rounds + 1):
            for n in args.workers:
                for row in run_session(n, url, tuple(args.rates), args.seconds):
                    results[n].append({**row, "round": round_})
    finally:
        nginx.stop()
    summary = {n: max_sustained(rows) for n, rows in results.items()}
    highest = {n: max((r["rate"] for r in rows if r["holds"]), default=None) for n, rows in results.items()}
    doc = {
        "benchmark": "bench_xdist",
        "how": "python benchmarks/bench_xdist.py " + " ".join(sys.argv[1:]),
        "cpus": os.cpu_count(),
        "target": f"Debian nginx ({nginx_bin}), 1 worker, plain HTTP keep-alive on 127.0.0.1",
        "seconds_per_rate": args.seconds,
        "bar": f"no drops, combined wall rate within 1 %, pooled scheduling lag p99 < {LAG_P99_BOUND_MS} ms",
        "max_sustained_rate": summary,  # every rate up to it held (in some round)
        "highest_rate_held": highest,  # the highest rate that held in some round
        "runs": results,
        "cpu_pressure_before": pressure_before,
        "cpu_pressure_after": cpu_pressure(),
        "wall_seconds": time.time() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2))
    lines = table(results)
    lines += ["", "| workers | max sustained rate/s (every rate up to it held) | highest rate held |"]
    lines += ["|---|---|---|"]
    lines += [f"| {n} | {_n(summary[n])} | {_n(highest[n])} |" for n in results]
    lines += ["", f"CPU pressure (PSI) before: {pressure_before}; after: {doc['cpu_pressure_after']}"]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
