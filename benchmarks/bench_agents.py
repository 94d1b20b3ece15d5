"""Cost of the generator per simulated certctl agent at the real cadence (issue 13 §6).

Each run is a fresh process holding N simulated agents (pytest_certload/agents, executor
"agent-fleet") against nginx on loopback (http2 on, one TLS listener answering the agent's
heartbeat with 200 and its work poll with ``{"jobs":[],"count":0}``): first heartbeats spread over
60 s, then a heartbeat every 60 s and a poll every 30 s, +-10 %, one connection per agent. Measured
per run, on the generator process:

- memory per agent: (RSS once every agent connected - RSS before the phase) / N;
- CPU per agent: process CPU over the steady-state window (from first_heartbeat + first_poll + 5 s,
  when every agent serves its tickers, to the end) / N / s;
- connections held: the process's open fds over its baseline once all connected (one socket per
  agent; cheap, unlike a full psutil connection scan, so it does not disturb the loop it measures);
- the engine's health verdict (event-loop lag p99, client_queue_time p99, CPU) for the phase.

The largest fleet one process holds = the largest N whose phase the engine judged healthy; then
the same with two processes side by side (N/2 each, the xdist split of an agent fleet). The fd
limit is raised with resource.setrlimit as far as the hard limit allows (raising the hard limit
needs CAP_SYS_RESOURCE; the JSON records the limit each process got). nginx runs two workers, so
its own per-process fd limit does not cap the fleet first.

    python benchmarks/bench_agents.py [--sizes 2000,10000,19000] [--split 20000] [--seconds 140]

Writes benchmarks/results/agents.json and prints a table. Target: nginx, not certctl: this
measures the generator only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
NOFILE = 200_000

NGINX_SERVERS = """
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{tls_port0} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        default_type application/json;
        location ~ /heartbeat$ {{ return 200 '{{"status":"heartbeat_recorded"}}'; }}
        location ~ /work$ {{ return 200 '{{"jobs":[],"count":0}}'; }}
    }}
"""


def raise_nofile() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def child(args: argparse.Namespace) -> None:
    """One generator process: N agents for ``seconds``; prints one JSON line."""
    import psutil

    from pytest_certload.agents.fleet import AgentFleet
    from pytest_certload.engine import ExecutorSpec, ScenarioRun, make_ssl_context, run_phase
    from pytest_certload.stack.model import Stack

    nofile = raise_nofile()
    from pytest_certload.engine import gc_pauses

    gc_pauses.ENABLED = not args.no_freeze  # --no-freeze: the collector as before h9 (comparisons)
    proc = psutil.Process()
    stack = Stack("external", f"https://127.0.0.1:{args.port}", "bench", Path(args.ca), "unknown", owned=True)
    ids = [f"ag-bench-{args.index}-{i:05d}" for i in range(args.agents)]
    fleet = AgentFleet(stack, ids)
    connected_at = args.first_heartbeat + 3.0  # every agent has heartbeated: all connections open
    steady_from = args.first_heartbeat + args.first_poll + 5.0  # every agent in its ticker loop
    readings: dict = {"rss_before_mb": proc.memory_info().rss / 2**20, "fds_before": proc.num_fds()}

    def sample() -> None:
        t0 = time.monotonic()
        time.sleep(max(connected_at - (time.monotonic() - t0), 0))
        readings["rss_connected_mb"] = proc.memory_info().rss / 2**20
        # open fds over the baseline (~ one socket per agent): psutil.num_fds lists /proc/self/fd, where
        # a full connection scan would parse every TCP socket of the host with the GIL held
        readings["connections_held"] = proc.num_fds() - readings["fds_before"]
        readings["sampled_at_s"] = round(time.monotonic() - t0, 1)

    spec = ExecutorSpec.from_options(
        {
            "executor": "agent-fleet",
            "agents": args.agents,
            "duration": f"{args.seconds}s",
            "first_heartbeat_within": f"{args.first_heartbeat}s",
            "first_poll_within": f"{args.first_poll}s",
            "http_version": args.http_version,
            "graceful_stop": "5s",
        }
    )
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    m = run_phase(
        [ScenarioRun("agent_fleet", spec, fleet)],
        ssl_context=make_ssl_context(args.ca),
        max_lag_p99_ms=10.0,
    )
    sampler.join(timeout=5)
    tl = m.samples.meta["timeline"]
    at, cpu = tl["at"], tl["generator"]["cpu_s"]
    window = [(a, c) for a, c in zip(at, cpu, strict=True) if a >= steady_from]
    steady_cpu = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0]) if len(window) > 1 else None
    lag_max = tl["generator"]["lag_max_ms"]
    windows = range(0, len(at), 10)  # where in the phase the loop stalled: the connection ramp or later
    by_10s = {
        "from_s": [round(at[i]) for i in windows],
        "lag_max_ms": [round(max(lag_max[i : i + 10]), 1) for i in windows],
        "cpu_fraction": [
            round((cpu[j] - cpu[i]) / max(at[j] - at[i], 1e-9), 3)
            for i, j in ((i, min(i + 10, len(at) - 1)) for i in windows)
        ],
    }
    meta = m.samples.meta["scenarios"]["agent_fleet"]
    reqs = m.samples.select_counter("http_reqs")
    failed = m.samples.select_rate("http_req_failed")
    versions = sorted({dict(t).get("http_version", "?") for (n, t) in m.samples.counters if n == "http_reqs"})
    out = {
        "agents": args.agents,
        "variant": "no-freeze" if args.no_freeze else "freeze",
        "nofile": nofile,
        **readings,
        "steady_cpu_fraction": steady_cpu,
        "cpu_us_per_agent_s": steady_cpu / args.agents * 1e6 if steady_cpu is not None else None,
        "mem_kb_per_agent": (readings.get("rss_connected_mb", 0) - readings["rss_before_mb"])
        * 1024
        / args.agents,
        "requests": reqs,
        "failed": failed[0],
        "http_versions": versions,
        "ticks": meta["ticks"],
        "late_starts": meta["late_starts"],
        "health": m.health.to_dict(),
        "by_10s": by_10s,
        "heartbeat_p99_ms": m.samples.trend_stats("http_req_duration", {"agent_step": "heartbeat"})["p(99)"],
        "poll_p99_ms": m.samples.trend_stats("http_req_duration", {"agent_step": "poll"})["p(99)"],
    }
    print("RESULT " + json.dumps(out), flush=True)


def start_nginx(workdir: Path, conns: int):
    """nginx, 2 workers (each inherits our raised fd limit): (ManagedProcess, port, CA file)."""
    from pytest_certload.sidecars.plain_nginx import start_plain_nginx

    target = start_plain_nginx(workdir, NGINX_SERVERS, workers=2, worker_connections=conns)
    return target.process, target.tls_ports[0], str(target.tls.ca_cert)


def run_children(port: int, ca: str, sizes: list[int], args: argparse.Namespace) -> list[dict]:
    """``len(sizes)`` generator processes side by side; their RESULT lines."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                f"--port={port}",
                f"--ca={ca}",
                f"--agents={n}",
                f"--index={i}",
                f"--seconds={args.seconds}",
                f"--first-heartbeat={args.first_heartbeat}",
                f"--first-poll={args.first_poll}",
                f"--http-version={args.http_version}",
                *(["--no-freeze"] if args.no_freeze else []),
            ],
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=raise_nofile,
        )
        for i, n in enumerate(sizes)
    ]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=args.seconds + 120)
        line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
        results.append(
            json.loads(line[7:]) if line else {"error": f"exit {p.returncode}", "tail": out[-500:]}
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--port", type=int)
    parser.add_argument("--ca")
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=140.0)
    parser.add_argument("--first-heartbeat", type=float, default=60.0)
    parser.add_argument("--first-poll", type=float, default=30.0)
    parser.add_argument("--http-version", default="auto")
    parser.add_argument("--sizes", default="2000,10000,19000")
    parser.add_argument("--split", type=int, default=20000, help="total agents over two processes (0: skip)")
    parser.add_argument("--out", default="agents.json", help="file name under benchmarks/results/")
    parser.add_argument(
        "--compare-no-freeze",
        action="store_true",
        help="run every single-process size twice, the collector as before h9 (no heap freezing) then as now",
    )
    parser.add_argument("--no-freeze", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    raise_nofile()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-agents-") as tmp:
        nginx, port, ca = start_nginx(Path(tmp), conns=2 * max([*sizes, args.split]) + 1000)
        try:
            for n in sizes:
                for no_freeze in (True, False) if args.compare_no_freeze else (False,):
                    args.no_freeze = no_freeze
                    (result,) = run_children(port, ca, [n], args)
                    rows.append({"processes": 1, "total_agents": n, "runs": [result]})
                    print(json.dumps(rows[-1])[:600], flush=True)
            args.no_freeze = False
            if args.split:
                half = args.split // 2
                results = run_children(port, ca, [half, args.split - half], args)
                rows.append({"processes": 2, "total_agents": args.split, "runs": results})
                print(json.dumps(rows[-1])[:600], flush=True)
        finally:
            nginx.stop()
    healthy = [
        r["total_agents"]
        for r in rows
        if r["processes"] == 1
        and r["runs"][0].get("variant") != "no-freeze"
        and all(not x.get("health", {}).get("saturated", True) for x in r["runs"])
    ]
    doc = {
        "benchmark": "bench_agents",
        "target": "nginx (http2 on, 2 workers) on loopback, not certctl",
        "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE),
        "machine": f"{platform.node()} {os.cpu_count()} vCPU (shared dev VM, noisy)",
        "python": platform.python_version(),
        "cadence": {
            "heartbeat_s": 60,
            "poll_s": 30,
            "jitter": 0.1,
            "first_heartbeat_within_s": args.first_heartbeat,
            "first_poll_within_s": args.first_poll,
        },
        "seconds": args.seconds,
        "command": " ".join(["python", "benchmarks/bench_agents.py", *sys.argv[1:]]),
        "largest_healthy_single_process": max(healthy) if healthy else None,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(doc, indent=1))
    print(f"\nlargest fleet one process held healthy: {doc['largest_healthy_single_process']}")
    for r in rows:
        for x in r["runs"]:
            h = x.get("health", {})
            mem, cpu = x.get("mem_kb_per_agent") or 0, x.get("cpu_us_per_agent_s") or 0
            print(
                f"{r['processes']}p {x.get('agents')} {x.get('variant')}: conns {x.get('connections_held')} "
                f"mem {mem:.1f} KB/agent cpu {cpu:.1f} us/agent/s "
                f"steady cpu {x.get('steady_cpu_fraction') or 0:.2f} lag p99 {h.get('lag_p99_ms', 0):.1f} ms "
                f"queue p99 {h.get('queue_p99_ms', 0):.1f} ms gc max {h.get('gc_pause_max_ms', 0):.0f} ms "
                f"cpu-wait {h.get('runq_wait_fraction', 0):.0%} saturated {h.get('saturated')} "
                f"{h.get('reason', '')} http {x.get('http_versions')} failed {x.get('failed')}"
            )


if __name__ == "__main__":
    main()
