"""Client CPU per request of the load engine next to wrk, hey, aiohttp, Locust and httpx.

All clients drive the same Debian nginx (one worker, started here with a config in a temp dir,
plain HTTP and HTTPS keep-alive on loopback) with 64 requests in flight, one after the other in
one run, so their ratios are comparable (absolute numbers on a shared VM move +-25 %). Each
client runs in its own process; its CPU is that process's user+system time:

- wrk, hey: the child's rusage (os.wait4), start-up included (negligible for C/Go);
- Python clients: process CPU over a steady-state window after a 0.5 s warm-up;
- our engine: process CPU between the start and end of ``run_phase`` (the health monitor's figure),
  so recording and the health ticker are included.

Then the maximum sustained arrival rate one generator process holds: constant-arrival-rate runs at
rising rates against nginx; a rate holds when no iteration is dropped, the achieved rate is within
1 % of target and the p99 of the scheduling lag (``iteration_start_lag``: actual minus intended
start) is below 1 ms.

    python benchmarks/bench_engine.py [--seconds 3] [--rounds 2]

Every client runs ``--rounds`` times (the table shows the median and the minimum of its CPU per
request: the minimum is the least disturbed by other work on a shared machine); a rate that fails
the sweep is tried once more.

Locust is optional: found in this interpreter, or in the interpreter named by
``CERTLOAD_BENCH_LOCUST_PYTHON`` (we install it into a separate venv for the benchmark only:
``python -m venv /tmp/locust-venv && /tmp/locust-venv/bin/pip install locust``); otherwise skipped
with a note. Writes ``benchmarks/results/engine.json`` and prints a markdown table.
Bar: <= 50 us of client CPU per request for our engine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BAR_US = 50.0
CONCURRENCY = 64
RATES = (500, 1000, 2000, 3000, 4000, 6000, 8000, 10000, 12000, 15000)
LAG_P99_BOUND_MS = 1.0

NGINX_SERVERS = """
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{plain_port0};
        location / {{ return 200 "ok"; }}
    }}
    server {{
        listen 127.0.0.1:{tls_port0} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{ return 200 "ok"; }}
    }}
"""


# -- children: one client each, printing {"requests", "cpu_s", "wall_s", ...} as JSON ------------


def _window(counter, seconds: float):
    """Steady-state window of a Python client: (requests, cpu seconds, wall seconds)."""

    async def measure():
        await asyncio.sleep(0.5)  # warm-up: imports, connections, first requests
        n0, c0, w0 = counter(), time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        return counter() - n0, time.process_time() - c0, time.monotonic() - w0

    return measure()


def child_engine(url: str, ca: str, seconds: float) -> dict:
    from pytest_certload.engine import ExecutorSpec, ScenarioRun, make_ssl_context, run_phase

    async def it(ctx):
        await ctx.request("GET", url)

    spec = ExecutorSpec.from_options(
        {"executor": "constant-vus", "vus": CONCURRENCY, "duration": seconds, "graceful_stop": "5s"}
    )
    outcome = run_phase([ScenarioRun("bench", spec, it)], ssl_context=make_ssl_context(ca))
    r = outcome.samples
    requests = int(r.select_counter("http_reqs"))
    failed = r.select_rate("http_req_failed")[0]
    h = outcome.health
    return {
        "requests": requests,
        "failed": failed,
        "cpu_s": h.cpu_fraction * h.wall_seconds,
        "wall_s": h.wall_seconds,
        "note": "uvloop, TLS verified, recording and health ticker included",
    }


def child_engine_rate(url: str, rate: float, seconds: float) -> dict:
    import numpy as np

    from pytest_certload.engine import ExecutorSpec, ScenarioRun, run_phase

    async def it(ctx):
        await ctx.request("GET", url)

    spec = ExecutorSpec.from_options(
        {
            "executor": "constant-arrival-rate",
            "rate": rate,
            "duration": seconds,
            "pre_allocated_vus": 64,
            "max_vus": 512,
            "graceful_stop": "5s",
        }
    )
    outcome = run_phase([ScenarioRun("bench", spec, it)])
    r = outcome.samples
    lag = r.select_trend("iteration_start_lag") / 1e6
    meta = outcome.meta["scenarios"]["bench"]
    h = outcome.health
    return {
        "rate": rate,
        "achieved_rate": meta["achieved_rate"],
        "achieved_rate_wall": meta["achieved_rate_wall"],
        "dropped": meta["dropped_iterations"],
        "late_starts": meta["late_starts"],
        "lag_p50_ms": float(np.percentile(lag, 50)),
        "lag_p99_ms": float(np.percentile(lag, 99)),
        "lag_max_ms": float(lag.max()),
        "loop_lag_p99_ms": h.lag_p99_ms,
        "cpu_fraction": h.cpu_fraction,
        "saturated": h.saturated,
        "failed": r.select_rate("http_req_failed")[0],
        "duration_p99_ms": r.trend_stats("http_req_duration")["p(99)"],
    }


def child_aiohttp(url: str, ca: str, seconds: float) -> dict:
    import ssl

    import aiohttp
    import uvloop

    async def main():
        count = 0
        stop = False
        ctx = ssl.create_default_context(cafile=ca)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY, ssl=ctx)) as s:

            async def worker():
                nonlocal count
                while not stop:
                    async with s.get(url) as resp:
                        await resp.read()
                    count += 1

            tasks = [asyncio.create_task(worker()) for _ in range(CONCURRENCY)]
            n, cpu, wall = await _window(lambda: count, seconds)
            stop = True
            await asyncio.gather(*tasks, return_exceptions=True)
        return {"requests": n, "cpu_s": cpu, "wall_s": wall, "note": "uvloop, TLS verified"}

    return uvloop.run(main())


def child_httpx(url: str, ca: str, seconds: float) -> dict:
    import ssl

    import httpx

    async def main():
        count = 0
        stop = False
        ctx = ssl.create_default_context(cafile=ca)
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(verify=ctx, limits=limits) as client:

            async def worker():
                nonlocal count
                while not stop:
                    await client.get(url)
                    count += 1

            tasks = [asyncio.create_task(worker()) for _ in range(CONCURRENCY)]
            n, cpu, wall = await _window(lambda: count, seconds)
            stop = True
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        return {"requests": n, "cpu_s": cpu, "wall_s": wall, "note": "asyncio, TLS verified"}

    return asyncio.run(main())


LOCUST_CHILD = r"""
import json, sys, time
import gevent
from locust import FastHttpUser, constant, task
from locust.env import Environment

url, seconds, users = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
base, path = url.rsplit("/", 1)[0], "/" + url.rsplit("/", 1)[1]

class Bench(FastHttpUser):
    host = base
    wait_time = constant(0)
    insecure = True

    @task
    def get(self):
        self.client.get(path)

env = Environment(user_classes=[Bench])
runner = env.create_local_runner()
runner.start(users, spawn_rate=users)
gevent.sleep(1.0)
n0, c0, w0 = env.stats.total.num_requests, time.process_time(), time.monotonic()
gevent.sleep(seconds)
n1, c1, w1 = env.stats.total.num_requests, time.process_time(), time.monotonic()
runner.quit()
print(json.dumps({"requests": n1 - n0, "cpu_s": c1 - c0, "wall_s": w1 - w0,
                  "failed": env.stats.total.num_failures, "loop": "gevent"}))
"""


# -- parent ---------------------------------------------------------------------------------------


def run_python_child(kind: str, url: str, ca: str, seconds: float, python: str = sys.executable) -> dict:
    argv = [
        python,
        str(Path(__file__).resolve()),
        "--child",
        kind,
        "--url",
        url,
        "--ca",
        ca,
        "--seconds",
        str(seconds),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds * 10 + 60)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-500:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_with_rusage(argv: list[str], timeout: float) -> tuple[str, float, float]:
    """Run a process; return (stdout, user+sys CPU seconds, wall seconds)."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)  # polling a child for exit, not synchronisation
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    return text, usage.ru_utime + usage.ru_stime, time.monotonic() - t0


def run_wrk(url: str, seconds: float) -> dict:
    text, cpu, wall = run_with_rusage(
        ["wrk", "-t1", f"-c{CONCURRENCY}", f"-d{seconds:g}s", url], seconds + 30
    )
    m = re.search(r"(\d+) requests in", text)
    if not m:
        return {"error": text[-300:]}
    return {"requests": int(m.group(1)), "cpu_s": cpu, "wall_s": wall, "note": "1 thread, no verification"}


def run_hey(url: str, seconds: float) -> dict:
    text, cpu, wall = run_with_rusage(
        ["hey", "-z", f"{seconds:g}s", "-c", str(CONCURRENCY), url], seconds + 30
    )
    m = re.search(r"\[200\]\s+(\d+) responses", text)
    if not m:
        return {"error": text[-300:]}
    return {
        "requests": int(m.group(1)),
        "cpu_s": cpu,
        "wall_s": wall,
        "note": "Go, all cores, no verification",
    }


def run_locust(url: str, seconds: float) -> dict:
    python = os.environ.get("CERTLOAD_BENCH_LOCUST_PYTHON")
    if not python:
        probe = subprocess.run([sys.executable, "-c", "import locust"], capture_output=True)
        python = sys.executable if probe.returncode == 0 else ""
    if not python:
        return {"skipped": "locust not installed (pip install locust, or set CERTLOAD_BENCH_LOCUST_PYTHON)"}
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(LOCUST_CHILD)
    try:
        out = subprocess.run(
            [python, f.name, url, str(seconds), str(CONCURRENCY)],
            capture_output=True,
            text=True,
            timeout=seconds * 10 + 60,
        )
    finally:
        os.unlink(f.name)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-500:]}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["note"] = "FastHttpUser, no verification"
    return res


def start_nginx(workdir: Path):
    """nginx (one worker) on a plain and a TLS loopback port: (process, http url, https url, CA, binary)."""
    from pytest_certload.sidecars.plain_nginx import start_plain_nginx

    target = start_plain_nginx(workdir, NGINX_SERVERS, tls_ports=1, plain_ports=1)
    return target.process, target.url(0, "http"), target.url(), str(target.tls.ca_cert), target.binary


def run_rate(url: str, rate: float, seconds: float) -> dict:
    """One constant-arrival-rate run of the engine in a child process, judged against both bounds."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", "engine-rate", "--url", url]
    argv += ["--rate", str(rate), "--seconds", str(seconds)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds * 10 + 60)
    if out.returncode != 0:
        return {"rate": rate, "error": out.stderr.strip()[-300:]}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    kept = res["dropped"] == 0 and abs(res["achieved_rate_wall"] / rate - 1) <= 0.01
    res["holds"] = kept and res["lag_p99_ms"] < LAG_P99_BOUND_MS
    # the engine's own saturation bounds (engine/health.py): what a load test would accept
    res["healthy"] = kept and not res["saturated"]
    return res


def cpu_pressure() -> str:
    """Linux PSI for CPU: how much of the time runnable tasks waited (other work on the machine)."""
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return "unavailable"


def per_request_us(res: dict) -> float | None:
    if res.get("requests"):
        return res["cpu_s"] / res["requests"] * 1e6
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--child")
    p.add_argument("--url")
    p.add_argument("--ca", default="")
    p.add_argument("--rate", type=float)
    p.add_argument("--out", type=Path, default=RESULTS / "engine.json")
    p.add_argument("--skip-rates", action="store_true")
    p.add_argument("--rounds", type=int, default=2, help="runs of every client (median and min reported)")
    args = p.parse_args()
    if args.child:
        if args.child == "engine-rate":
            print(json.dumps(child_engine_rate(args.url, args.rate, args.seconds)))
        else:
            fn = {"engine": child_engine, "aiohttp": child_aiohttp, "httpx": child_httpx}[args.child]
            print(json.dumps(fn(args.url, args.ca, args.seconds)))
        return

    started = time.time()
    pressure_before = cpu_pressure()
    workdir = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    proc, http_url, https_url, ca, nginx = start_nginx(workdir)
    rows: list[dict] = []
    rates: list[dict] = []
    try:
        clients = [
            ("pytest-certload engine", lambda u: run_python_child("engine", u, ca, args.seconds)),
            ("wrk 4.1", lambda u: run_wrk(u, args.seconds)),
            ("hey", lambda u: run_hey(u, args.seconds)),
            ("aiohttp", lambda u: run_python_child("aiohttp", u, ca, args.seconds)),
            ("Locust FastHttpUser", lambda u: run_locust(u, args.seconds)),
            ("httpx AsyncClient", lambda u: run_python_child("httpx", u, ca, args.seconds)),
        ]
        for round_ in range(1, args.rounds + 1):
            for scheme, url in (("http", http_url), ("https", https_url)):
                for name, fn in clients:
                    if round_ > 1 and any(r.get("skipped") for r in rows if r["client"] == name):
                        continue
                    res = fn(url)
                    res.update(client=name, scheme=scheme, round=round_, us_per_request=per_request_us(res))
                    if res.get("requests"):
                        res["req_per_s"] = res["requests"] / res["wall_s"]
                    rows.append(res)
                    shown = res.get("us_per_request") or res.get("skipped") or res.get("error")
                    print(f"  round {round_} {scheme:5} {name:24} {shown}", file=sys.stderr, flush=True)
        if not args.skip_rates:
            failures_in_a_row = 0
            for rate in RATES:
                # a rate that fails is tried once more: a shared VM has hiccups of its own
                for attempt in (1, 2):
                    res = run_rate(http_url, rate, args.seconds)
                    res["attempt"] = attempt
                    rates.append(res)
                    print(
                        f"  rate {rate} (attempt {attempt}): lag p99 {res.get('lag_p99_ms', -1):.2f} ms, "
                        f"cpu {res.get('cpu_fraction', 0):.0%}, dropped {res.get('dropped')}, "
                        f"holds {res.get('holds')}, healthy {res.get('healthy')}",
                        file=sys.stderr,
                        flush=True,
                    )
                    if res.get("healthy"):
                        break
                failures_in_a_row = 0 if res.get("healthy") else failures_in_a_row + 1
                if failures_in_a_row >= 2 or res.get("cpu_fraction", 0) > 0.98:
                    break
    finally:
        proc.stop()
    held = [r["rate"] for r in rates if r.get("holds")]
    healthy = [r["rate"] for r in rates if r.get("healthy")]
    summary = summarise(rows)
    engine_us = [
        r["us_median"] for r in summary if r["client"].startswith("pytest-certload") and r["us_median"]
    ]
    report = {
        "benchmark": "engine client CPU per request, 64 in flight, nginx on loopback",
        "started_at": started,
        "wall_seconds": time.time() - started,
        "seconds_per_client": args.seconds,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_end": os.getloadavg(),
        },
        "nginx": subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip(),
        "bar_us_per_request": BAR_US,
        "rounds": args.rounds,
        "engine_meets_bar": bool(engine_us) and max(engine_us) <= BAR_US,
        "summary": summary,
        "clients": rows,
        "arrival_rates": rates,
        "max_sustained_rate_lag_p99_below_1ms": max(held) if held else None,
        "max_sustained_rate_healthy": max(healthy) if healthy else None,
        "cpu_pressure": {"before": pressure_before, "after": cpu_pressure()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    table = markdown(report)
    args.out.with_suffix(".md").write_text(table + "\n")
    print(table)


def summarise(rows: list[dict]) -> list[dict]:
    """Per client and scheme over the rounds: median and minimum CPU per request, median req/s."""
    out = []
    keys = dict.fromkeys((r["client"], r["scheme"]) for r in rows)
    for client, scheme in keys:
        runs = [r for r in rows if r["client"] == client and r["scheme"] == scheme]
        us = [r["us_per_request"] for r in runs if r.get("us_per_request")]
        rps = [r["req_per_s"] for r in runs if r.get("req_per_s")]
        note = next((r.get("note") or r.get("skipped") or r.get("error", "")[:80] for r in runs), "")
        out.append(
            {
                "client": client,
                "scheme": scheme,
                "runs": len(runs),
                "us_median": statistics.median(us) if us else None,
                "us_min": min(us) if us else None,
                "req_per_s_median": statistics.median(rps) if rps else None,
                "note": note,
            }
        )
    return out


def markdown(report: dict) -> str:
    lines = [
        f"Client CPU per request, {CONCURRENCY} in flight, nginx 1 worker on loopback "
        f"({report['seconds_per_client']:g} s per client and round, {report['rounds']} rounds, one run):",
        "",
        "| client | scheme | req/s (median) | client CPU per request, median (min) | note |",
        "|---|---|---|---|---|",
    ]
    for r in report["summary"]:
        if r["us_median"] is None:
            lines.append(f"| {r['client']} | {r['scheme']} | - | - | {r['note']} |")
            continue
        lines.append(
            f"| {r['client']} | {r['scheme']} | {r['req_per_s_median']:,.0f} | "
            f"{r['us_median']:,.1f} us ({r['us_min']:,.1f}) | {r['note']} |"
        )
    lines += [
        "",
        f"Bar: <= {report['bar_us_per_request']:g} us per request for the engine (median, both schemes): "
        f"{'met' if report['engine_meets_bar'] else 'NOT met'}.",
        "",
    ]
    if report["arrival_rates"]:
        lines += [
            "| target rate/s | try | achieved (wall) | sched. lag p50 | lag p99 | loop lag p99 | CPU "
            "| dropped | lag p99 < 1 ms | healthy |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in report["arrival_rates"]:
            if "error" in r:
                lines.append(f"| {r['rate']} | {r.get('attempt', 1)} | error | | | | | | | |")
                continue
            lines.append(
                f"| {r['rate']:,.0f} | {r.get('attempt', 1)} | {r['achieved_rate_wall']:,.0f} "
                f"| {r['lag_p50_ms']:.2f} ms | {r['lag_p99_ms']:.2f} ms | {r['loop_lag_p99_ms']:.2f} ms "
                f"| {r['cpu_fraction']:.0%} "
                f"| {r['dropped']} | {r['holds']} | {r['healthy']} |"
            )
        lines += [
            "",
            f"Max sustained arrival rate with p99 scheduling lag < 1 ms: "
            f"{report['max_sustained_rate_lag_p99_below_1ms']}; with the engine's health bounds (no drops, "
            f"lag p99 <= 10 ms, CPU <= 85 %): {report['max_sustained_rate_healthy']}.",
            f"CPU pressure (PSI) before: {report['cpu_pressure']['before']}; "
            f"after: {report['cpu_pressure']['after']}",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
