"""How long the stack under test takes from start to ready, per component, native and docker.

Each run starts a full stack (PostgreSQL, certctl or its stand-in, nginx, apache, haproxy, the F5
mock), records every component's start-to-ready time and the wall time of the whole start, and
stops it again. Writes ``benchmarks/results/stack_start.json`` and a markdown table next to it.

    python benchmarks/bench_stack_start.py --runs 5
    CERTLOAD_CERTCTL_BIN=... CERTLOAD_CERTCTL_MIGRATIONS=... python benchmarks/bench_stack_start.py

Goals: < 10 s native, < 15 s docker (wall time of ``start()``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

from pytest_certload.stack.docker import engine_answers
from pytest_certload.stack.options import StackOptions
from pytest_certload.stack.session import StackSession

RESULTS = Path(__file__).resolve().parent / "results"
GOALS_S = {"native": 10.0, "docker": 15.0}
COMPONENTS = ("postgresql", "certctl", "nginx", "apache", "haproxy", "f5")


def docker_storage_driver() -> str | None:
    try:
        out = subprocess.run(
            ["docker", "info", "--format", "{{.Driver}}"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def variants(base_image: str) -> list[tuple[str, str, StackOptions]]:
    bin_, migrations = os.environ.get("CERTLOAD_CERTCTL_BIN"), os.environ.get("CERTLOAD_CERTCTL_MIGRATIONS")
    servers = [("stand-in", {})]
    if bin_ and migrations:
        servers.insert(0, ("certctl", {"certctl_bin": Path(bin_), "certctl_migrations": Path(migrations)}))
    out = [("native", name, StackOptions(provider="native", **kw)) for name, kw in servers]
    if engine_answers():
        out += [
            (
                "docker",
                name,
                StackOptions(provider="docker", docker_network="host", base_image=base_image, **kw),
            )
            for name, kw in servers
        ]
    return out


def measure(opts: StackOptions) -> dict:
    session = StackSession(opts)
    t0 = time.monotonic()
    stack = session.start()
    total = time.monotonic() - t0
    t1 = time.monotonic()
    session.stop()
    return {
        "total_s": total,
        "stop_s": time.monotonic() - t1,
        "components": {name: info["ready_s"] for name, info in stack.components.items()},
        "server_version": stack.server_version,
    }


def markdown(summary: list[dict]) -> str:
    head = "| provider | server | runs | " + " | ".join(COMPONENTS) + " | start total (median / max) | goal |"
    lines = [head, "|" + "---|" * (len(COMPONENTS) + 5)]
    for row in summary:
        cells = [f"{row['components'].get(c, float('nan')):.2f}" for c in COMPONENTS]
        ok = "met" if row["total_max_s"] < row["goal_s"] else "MISSED"
        lines.append(
            f"| {row['provider']} | {row['server']} | {row['runs']} | "
            + " | ".join(cells)
            + f" | {row['total_median_s']:.2f} / {row['total_max_s']:.2f} | < {row['goal_s']:.0f} s {ok} |"
        )
    lines.append("")
    lines.append(
        "Seconds; per component: median start-to-ready (process/container start to identity-checked ready)."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--base-image", default=os.environ.get("CERTLOAD_DOCKER_BASE_IMAGE", "certload/base:bookworm")
    )
    args = parser.parse_args()
    runs, summary = [], []
    for provider, server, opts in variants(args.base_image):
        measured = [measure(opts) for _ in range(args.runs)]
        for i, m in enumerate(measured):
            runs.append({"provider": provider, "server": server, "run": i, **m})
        totals = [m["total_s"] for m in measured]
        summary.append(
            {
                "provider": provider,
                "server": server,
                "runs": len(measured),
                "total_median_s": statistics.median(totals),
                "total_max_s": max(totals),
                "goal_s": GOALS_S[provider],
                "components": {
                    c: statistics.median(m["components"][c] for m in measured)
                    for c in measured[0]["components"]
                },
            }
        )
        print(f"{provider:7s} {server:9s} median {statistics.median(totals):.2f} s  max {max(totals):.2f} s")
    result = {
        "benchmark": "stack_start",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "docker_storage_driver": docker_storage_driver(),
        },
        "summary": summary,
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stack_start.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "stack_start.md").write_text(markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    main()
