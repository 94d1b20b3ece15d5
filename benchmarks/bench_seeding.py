"""Seeding benchmark: our COPY writer vs the original generate_series SQL, and API vs COPY.

Side by side in one run on the same PostgreSQL (a NativePostgres with certctl's real migrations
when CERTLOAD_CERTCTL_MIGRATIONS is set, else the stand-in's schema), each attempt on a fresh copy
of the prepared database:

1. 10,000 bulk-renewal certificates + 5,000 agents: ours vs the original SQL (goal < 1 s both).
2. 1,000,000 certificates: ours vs the original SQL (goal < 60 s), and our process's peak RSS
   growth at 100k vs 1M rows (flat when rows are streamed).
3. API seeding rate vs COPY on a running stack (real certctl when CERTLOAD_CERTCTL_BIN is set,
   else the stand-in, which has no agent registration route).

The "original" SQL is re-created from certctl-facts §1.9 (same expressions as
deploy/test/loadtest/seed/0{1,2}_*.sql: lpad ids, lower-case 'active', ON CONFLICT on name / id).

    python benchmarks/bench_seeding.py [--skip-million] [--api-certs 2000] [--api-agents 1000]

Writes benchmarks/results/seeding.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psutil
import psycopg

from pytest_certload.seeding.api_seeder import seed_fleet_via_api
from pytest_certload.seeding.copy_writer import seed_fleet
from pytest_certload.seeding.databases import MIGRATIONS_ENV, SchemaTemplates
from pytest_certload.seeding.fleet import load_fleet

RESULTS = Path(__file__).resolve().parent / "results" / "seeding.json"

ORIGINAL_CERTS_SQL = """
INSERT INTO managed_certificates (id, name, common_name, sans, environment, owner_id, team_id, issuer_id,
                                  renewal_policy_id, status, expires_at, tags, created_at, updated_at)
SELECT 'cert-loadtest-bulk-' || lpad(g::text, {width}, '0'),
       'loadtest-bulk-' || lpad(g::text, {width}, '0') || '.example.test',
       'loadtest-bulk-' || lpad(g::text, {width}, '0') || '.example.test',
       ARRAY['loadtest-bulk-' || lpad(g::text, {width}, '0') || '.example.test'],
       'loadtest', 'o-alice', 't-platform', 'iss-local', 'rp-standard', 'active',
       now() + ((g % 30) || ' days')::interval + ((g % 24) || ' hours')::interval,
       jsonb_build_object('source', 'loadtest-phase8', 'batch', 'bulk-renewal'),
       now(), now()
FROM generate_series(1, {count}) AS g
ON CONFLICT (name) DO NOTHING
"""

ORIGINAL_AGENTS_SQL = """
INSERT INTO agents (id, name, hostname, status, last_heartbeat_at, registered_at, api_key_hash,
                    os, architecture, ip_address, version)
SELECT 'ag-loadtest-' || lpad(g::text, 5, '0'),
       'loadtest-agent-' || lpad(g::text, 5, '0'),
       'loadtest-' || lpad(g::text, 5, '0') || '.fleet.example.test',
       'Online',
       now() - ((g % 60) || ' seconds')::interval,
       now() - ((g % 90 + 1) || ' days')::interval,
       'loadtest_no_auth',
       CASE (g % 10) WHEN 0 THEN 'windows' WHEN 1 THEN 'darwin' ELSE 'linux' END,
       CASE WHEN (g % 5) = 0 THEN 'arm64' ELSE 'amd64' END,
       '10.42.' || ((g / 256) % 256)::text || '.' || (g % 256)::text,
       '2.1.0'
FROM generate_series(1, {count}) AS g
ON CONFLICT (id) DO NOTHING
"""


class PeakRss:
    """Samples this process's RSS every 20 ms; ``growth`` is peak minus the value at start."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return round((self.peak - self.base) / 2**20, 2)


def run_original(dsn: str, certs: int, agents: int, width: int = 5) -> dict[str, float]:
    """The original SQL. ``width`` is lpad's: the original's 5 *truncates* i >= 100000 to 5 digits."""
    out: dict[str, float] = {}
    with psycopg.connect(dsn) as conn:
        if certs:
            t0 = time.perf_counter()
            conn.execute(ORIGINAL_CERTS_SQL.format(count=int(certs), width=int(width)))
            conn.commit()
            out["certs_s"] = time.perf_counter() - t0
        if agents:
            t0 = time.perf_counter()
            conn.execute(ORIGINAL_AGENTS_SQL.format(count=int(agents)))
            conn.commit()
            out["agents_s"] = time.perf_counter() - t0
    return out


def run_ours(dsn: str, certs: int, agents: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with psycopg.connect(dsn) as conn:
        if certs:
            report = seed_fleet(conn, load_fleet("bulk_renewal").with_count(certs))
            assert report.present == certs
            out["certs_s"] = report.seconds
        if agents:
            report = seed_fleet(conn, load_fleet("agent_fleet").with_count(agents))
            assert report.present == agents
            out["agents_s"] = report.seconds
    return out


def summarise(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = runs[0].keys()
    totals = [sum(r.values()) for r in runs]
    result = {k: {"median": round(statistics.median(r[k] for r in runs), 4),
                  "min": round(min(r[k] for r in runs), 4)} for k in keys}  # fmt: skip
    result["total_s"] = {"median": round(statistics.median(totals), 4), "min": round(min(totals), 4)}
    return result


def fleet_comparison(templates: SchemaTemplates, variant: str, repeat: int) -> dict:
    runs: dict[str, list[dict[str, float]]] = {"ours_copy": [], "original_sql": []}
    for _ in range(repeat):
        for name, runner in (("ours_copy", run_ours), ("original_sql", run_original)):
            with templates.fresh(variant) as dsn:
                runs[name].append(runner(dsn, 10_000, 5_000))
    return {"certs": 10_000, "agents": 5_000, "repeat": repeat, **{k: summarise(v) for k, v in runs.items()}}


def agent_bound(templates: SchemaTemplates, variant: str, repeat: int) -> dict:
    """The agent-bound fleet (agents + targets + certificates + mappings, one transaction) at the sizes
    issue 13's scenarios use, each into a fresh database; seconds as its own report gives them."""
    from pytest_certload.seeding.agent_bound import seed_agent_bound_fleet

    out: dict[str, dict[str, float]] = {}
    for n in (1_000, 5_000, 20_000):
        runs = []
        for _ in range(repeat):
            with templates.fresh(variant) as dsn, psycopg.connect(dsn) as conn:
                runs.append({"seconds": seed_agent_bound_fleet(conn, n).seconds})
        out[str(n)] = summarise(runs)["seconds"]
    return out


def bulk_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        query = "SELECT count(*) FROM managed_certificates WHERE starts_with(id, 'cert-loadtest-bulk-')"
        return conn.execute(query).fetchone()[0]


def million(templates: SchemaTemplates, variant: str) -> dict:
    """1M certificates. The original SQL as written (lpad 5) cannot make more than 99,999 distinct
    names: lpad truncates '100000' to '10000', so every row from i = 100000 on collides and is
    skipped by ON CONFLICT. It is timed as written and with lpad widened to 7 (a fair 1M)."""
    result: dict = {"certs": 1_000_000}
    for count in (100_000, 1_000_000):
        with templates.fresh(variant) as dsn:
            with PeakRss() as rss:
                seconds = run_ours(dsn, count, 0)["certs_s"]
            rows = bulk_rows(dsn)
        result[f"ours_copy_{count}"] = {
            "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds),
            "rows_present": rows,
            "peak_rss_growth_mb": rss.growth_mb,
        }
    for width, label in ((5, "original_sql_as_written_1000000"), (7, "original_sql_lpad7_1000000")):
        with templates.fresh(variant) as dsn:
            seconds = run_original(dsn, 1_000_000, 0, width=width)["certs_s"]
            rows = bulk_rows(dsn)
        result[label] = {
            "seconds": round(seconds, 2),
            "rows_present": rows,
            "rows_per_s": round(rows / seconds),
        }
    return result


def api_vs_copy(api_certs: int, api_agents: int, workdir: Path) -> dict:
    """Seed over the API of a running native stack, then COPY into the same database."""
    from pytest_certload.stack.certctl import SessionSecrets
    from pytest_certload.stack.native import NativeProvider
    from pytest_certload.stack.options import StackOptions
    from pytest_certload.stack.tls import make_tls_material

    binary = os.environ.get("CERTLOAD_CERTCTL_BIN")
    migrations = os.environ.get(MIGRATIONS_ENV)
    opts = StackOptions(
        provider="native",
        certctl_bin=Path(binary) if binary else None,
        certctl_migrations=Path(migrations) if binary and migrations else None,
        rate_limit=False,
    )
    secret = SessionSecrets()
    # certctl registers agents only when the Bearer token is an admin key AND the bootstrap token
    secret = SessionSecrets(api_token=secret.api_token, bootstrap_token=secret.api_token)
    provider = NativeProvider(opts, workdir, make_tls_material(workdir / "tls"), secret)
    stack = provider.start()
    result: dict = {"server": stack.target_label, "concurrency": 8, "rate_limit": False}
    try:
        certs = load_fleet("bulk_renewal").with_count(api_certs)
        report = seed_fleet_via_api(stack.certctl_url, stack.token, certs, ca_bundle=stack.ca_bundle)
        result["api_certs"] = {"rows": api_certs, "seconds": round(report.seconds, 2),
                               "rows_per_s": round(report.rows_per_second, 1)}  # fmt: skip
        agent_ids: list[str] = []
        if stack.server == "certctl" and api_agents:
            agents = load_fleet("agent_fleet").with_count(api_agents)
            report = seed_fleet_via_api(stack.certctl_url, stack.token, agents, ca_bundle=stack.ca_bundle)
            agent_ids = list(report.ids)
            result["api_agents"] = {"rows": api_agents, "seconds": round(report.seconds, 2),
                                    "rows_per_s": round(report.rows_per_second, 1)}  # fmt: skip
        with psycopg.connect(stack.dsn.reveal()) as conn:  # make room for the COPY fleets (same names)
            conn.execute("DELETE FROM managed_certificates WHERE starts_with(id, 'cert-loadtest-bulk-')")
            conn.execute("DELETE FROM agents WHERE id = ANY(%s)", [agent_ids])
            conn.commit()
            copy_certs = seed_fleet(conn, load_fleet("bulk_renewal"))
            copy_agents = seed_fleet(conn, load_fleet("agent_fleet"))
        result["copy_certs"] = {"rows": copy_certs.expected, "seconds": round(copy_certs.seconds, 3),
                                "rows_per_s": round(copy_certs.rows_per_second)}  # fmt: skip
        result["copy_agents"] = {"rows": copy_agents.expected, "seconds": round(copy_agents.seconds, 3),
                                 "rows_per_s": round(copy_agents.rows_per_second)}  # fmt: skip
        result["copy_over_api_certs"] = round(copy_certs.rows_per_second / result["api_certs"]["rows_per_s"])
        if "api_agents" in result:
            result["copy_over_api_agents"] = round(
                copy_agents.rows_per_second / result["api_agents"]["rows_per_s"]
            )
    finally:
        provider.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-million", action="store_true")
    parser.add_argument("--api-certs", type=int, default=2000)
    parser.add_argument("--api-agents", type=int, default=1000)
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    variant = "certctl" if os.environ.get(MIGRATIONS_ENV) else "standin"
    results: dict = {
        "benchmark": "seeding",
        "schema": "certctl migrations + seed_demo.sql" if variant == "certctl" else "certctl stand-in schema",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_at_start": [round(x, 2) for x in psutil.getloadavg()],
    }
    with tempfile.TemporaryDirectory(prefix="certload-bench-seeding-") as tmp:
        with SchemaTemplates(Path(tmp) / "pg") as templates:
            results["postgres_version"] = templates.postgres.version
            results["fleets_10k_5k"] = fleet_comparison(templates, variant, args.repeat)
            print(json.dumps(results["fleets_10k_5k"], indent=2), flush=True)
            results["agent_bound"] = agent_bound(templates, variant, args.repeat)
            print(json.dumps(results["agent_bound"], indent=2), flush=True)
            if not args.skip_million:
                results["million_certs"] = million(templates, variant)
                print(json.dumps(results["million_certs"], indent=2), flush=True)
        if not args.skip_api:
            results["api_vs_copy"] = api_vs_copy(args.api_certs, args.api_agents, Path(tmp) / "stack")
            print(json.dumps(results["api_vs_copy"], indent=2), flush=True)
    results["load_average_at_end"] = [round(x, 2) for x in psutil.getloadavg()]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
