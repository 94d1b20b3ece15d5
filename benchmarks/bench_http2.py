"""Client CPU per request over HTTP/2 (engine/http2.py) next to h2load and the engine's HTTP/1.1.

One Debian nginx (one worker, started here with a throwaway config in a temp dir: TLS with
``listen ... ssl http2`` on one port, TLS HTTP/1.1 on another, tiny responses, keep-alive) serves
every client in turn, in one run, so the ratios are comparable (absolute numbers on a shared
2-vCPU VM move +-25 %). Every client runs in its own process:

- ``h2load`` (nghttp2-client, C): ``-t1 -c C -m M -D s``; CPU is the child's rusage (os.wait4),
  start-up included (negligible for C);
- ``engine h2, C VUs``: ``run_phase`` with ``http_version="2"``, constant-vus C: one connection per
  VU, one stream each (h2load ``-c C -m 1``); CPU between start and end of the phase (the health
  monitor's figure: recording, timeline and health ticker included);
- ``Http2Client mux``: one Http2Client (one connection) with M concurrent requests (h2load
  ``-c 1 -m M``); process CPU over a steady-state window after a 0.5 s warm-up, no recording;
- ``engine h1.1, C VUs``: the same run_phase over HTTP/1.1 + TLS keep-alive.

    python benchmarks/bench_http2.py [--seconds 3] [--rounds 2]

Writes benchmarks/results/http2.json and prints a markdown table. Goal: the engine within 2x of
h2load's client CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_engine

RESULTS = Path(__file__).resolve().parent / "results"
CONNECTIONS = 64  # connections for the one-stream-per-connection comparison
STREAMS = 64  # streams on one connection for the multiplexed comparison

NGINX_SERVERS = """
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    http2_max_concurrent_streams 128;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    server {{
        listen 127.0.0.1:{tls_port0} ssl http2;
        location / {{ return 200 "ok"; }}
    }}
    server {{
        listen 127.0.0.1:{tls_port1} ssl;
        location / {{ return 200 "ok"; }}
    }}
"""


def child_engine(url: str, ca: str, seconds: float, version: str) -> dict:
    from pytest_certload.engine import ExecutorSpec, ScenarioRun, make_ssl_context, run_phase

    async def it(ctx):
        await ctx.request("GET", url)

    spec = ExecutorSpec.from_options(
        {"executor": "constant-vus", "vus": CONNECTIONS, "duration": seconds, "http_version": version}
    )
    outcome = run_phase([ScenarioRun("bench", spec, it)], ssl_context=make_ssl_context(ca))
    r = outcome.samples
    h = outcome.health
    versions = sorted({dict(t).get("http_version") for (n, t) in r.trends if n == "http_req_duration"})
    return {
        "requests": int(r.select_counter("http_reqs")),
        "failed": r.select_rate("http_req_failed")[0],
        "cpu_s": h.cpu_fraction * h.wall_seconds,
        "wall_s": h.wall_seconds,
        "http_version_tags": versions,
        "client_queue_p99_ms": h.queue_p99_ms,
    }


def child_mux(url: str, ca: str, seconds: float) -> dict:
    from pytest_certload.engine import make_ssl_context
    from pytest_certload.engine.http2 import Http2Client
    from pytest_certload.engine.phase import event_loop_factory

    async def main() -> dict:
        client = Http2Client(make_ssl_context(ca))
        done = failed = 0
        stop = False

        async def worker() -> None:
            nonlocal done, failed
            while not stop:
                resp = await client.request("GET", url)
                done += 1
                failed += resp.status != 200

        tasks = [asyncio.ensure_future(worker()) for _ in range(STREAMS)]
        await asyncio.sleep(0.5)
        n0, c0, w0 = done, time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        n1, c1, w1 = done, time.process_time(), time.monotonic()
        stop = True
        await asyncio.gather(*tasks)
        opened = client.connections_opened
        client.close()
        return {
            "requests": n1 - n0,
            "failed": failed,
            "cpu_s": c1 - c0,
            "wall_s": w1 - w0,
            "connections": opened,
        }

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(main())


def run_child(kind: str, url: str, ca: str, seconds: float) -> dict:
    argv = [sys.executable, __file__, "--child", kind, "--url", url, "--ca", ca, "--seconds", str(seconds)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds * 10 + 60)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-500:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_h2load(url: str, seconds: float, connections: int, streams: int) -> dict:
    h2load = shutil.which("h2load") or "/usr/bin/h2load"
    argv = [h2load, "-t1", f"-c{connections}", f"-m{streams}", "-D", f"{seconds:g}", url]
    text, cpu, wall = bench_engine.run_with_rusage(argv, seconds + 30)
    m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded", text)
    if not m:
        return {"error": text[-300:]}
    return {
        "requests": int(m.group(2)),
        "failed": int(m.group(2)) - int(m.group(3)),
        "cpu_s": cpu,
        "wall_s": wall,
    }


def start_nginx(workdir: Path):
    """nginx (one worker), an h2 and an HTTP/1.1 TLS port: (process, h2 url, h1 url, CA, binary)."""
    from pytest_certload.sidecars.plain_nginx import start_plain_nginx

    target = start_plain_nginx(workdir, NGINX_SERVERS, tls_ports=2)
    return target.process, target.url(0), target.url(1), str(target.tls.ca_cert), target.binary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child")
    p.add_argument("--url")
    p.add_argument("--ca", default="")
    p.add_argument("--out", type=Path, default=RESULTS / "http2.json")
    args = p.parse_args()
    if args.child:
        if args.child == "mux":
            print(json.dumps(child_mux(args.url, args.ca, args.seconds)))
        else:
            print(json.dumps(child_engine(args.url, args.ca, args.seconds, args.child)))
        return

    workdir = Path(tempfile.mkdtemp(prefix="bench-http2-"))
    proc, h2_url, h1_url, ca, nginx = start_nginx(workdir)
    s = args.seconds
    clients = {
        f"h2load -c{CONNECTIONS} -m1": lambda: run_h2load(h2_url, s, CONNECTIONS, 1),
        f"engine h2, {CONNECTIONS} VUs (a connection each)": lambda: run_child("2", h2_url, ca, s),
        f"h2load -c1 -m{STREAMS}": lambda: run_h2load(h2_url, s, 1, STREAMS),
        f"Http2Client mux, 1 connection x {STREAMS} streams": lambda: run_child("mux", h2_url, ca, s),
        f"engine h1.1 TLS keep-alive, {CONNECTIONS} VUs": lambda: run_child("1.1", h1_url, ca, s),
    }
    rows: dict[str, list[dict]] = {name: [] for name in clients}
    try:
        for _ in range(args.rounds):  # interleaved rounds: every client sees the same machine noise
            for name, run in clients.items():
                rows[name].append(run())
    finally:
        proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    summary = []
    for name, runs in rows.items():
        us = [r["cpu_s"] / r["requests"] * 1e6 for r in runs if r.get("requests")]
        rps = [r["requests"] / r["wall_s"] for r in runs if r.get("requests")]
        summary.append(
            {
                "client": name,
                "cpu_us_per_request_median": round(statistics.median(us), 1) if us else None,
                "cpu_us_per_request_min": round(min(us), 1) if us else None,
                "req_per_s_median": round(statistics.median(rps)) if rps else None,
                "runs": runs,
            }
        )
    by = {row["client"]: row["cpu_us_per_request_median"] for row in summary}
    names = list(clients)
    ratios = {
        "engine_h2_vs_h2load_c64_m1": _ratio(by[names[1]], by[names[0]]),
        "mux_vs_h2load_c1_m64": _ratio(by[names[3]], by[names[2]]),
        "engine_h2_vs_engine_h1": _ratio(by[names[1]], by[names[4]]),
    }
    report = {
        "benchmark": "client CPU per request, HTTP/2 over TLS, vs h2load and engine HTTP/1.1",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": s,
        "rounds": args.rounds,
        "nginx": subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip(),
        "machine": "shared 2-vCPU dev VM (noisy: compare ratios within this run)",
        "clients": summary,
        "ratios": ratios,
        "goal": "engine within 2x of h2load per request",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("| client | CPU us/request (median, min) | req/s |\n|---|---|---|")
    for row in summary:
        print(
            f"| {row['client']} | {row['cpu_us_per_request_median']}, {row['cpu_us_per_request_min']} "
            f"| {row['req_per_s_median']} |"
        )
    print(json.dumps(ratios))


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


if __name__ == "__main__":
    main()
