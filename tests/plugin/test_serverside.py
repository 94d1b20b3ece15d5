"""Server-side sampling, piece by piece: a process we start, the machine, a real PostgreSQL, the
derived metrics and the xdist merge rule (the server is sampled once; the merged count divides it)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from docker_images import BASE_IMAGE, client_with_base_image  # this directory is on sys.path

from pytest_certload.serverside.derived import META_KEY, server_metric
from pytest_certload.serverside.machine import machine_delta, read_machine
from pytest_certload.serverside.postgres import PgProbe, counters_delta, statement_kind, statements_delta
from pytest_certload.serverside.process import PidProbe
from pytest_certload.serverside.sampler import ServerSampler
from pytest_certload.serverside.summary import bottleneck_line, cpu_shares, phase_block
from pytest_certload.stack.model import Stack
from pytest_certload.stack.postgres import NativePostgres, find_pg_bin
from pytest_certload.stack.secret import Secret, connect_pg
from pytest_certload.stats import Recorder
from pytest_certload.stats.samples import tagset
from pytest_certload.verdict import SPLIT_META_KEY, PhaseVerdict, ScenarioVerdict
from pytest_certload.xdist.merge import merge_worker_phases

# a child that, on each line it reads, does one step and says so: allocate 64 MiB, burn 0.4 s of CPU,
# accept one connection on its listening port
CHILD = r"""
import socket, sys, time
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(4)
print(srv.getsockname()[1], flush=True)
keep = []
for line in sys.stdin:
    step = line.strip()
    if step == "alloc":
        keep.append(bytearray(64 * 1024 * 1024))
    elif step == "burn":
        end = time.process_time() + 0.4
        while time.process_time() < end:
            pass
    elif step == "accept":
        keep.append(srv.accept()[0])
    print("done", flush=True)
"""


@pytest.fixture
def child() -> Iterator[tuple[subprocess.Popen, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(proc.stdout.readline())
        yield proc, port
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _step(proc: subprocess.Popen, step: str) -> None:
    proc.stdin.write(step + "\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "done"  # the child finished the step


def test_process_probe_sees_cpu_rss_and_connections_move(child):
    import socket

    proc, port = child
    probe = PidProbe(proc.pid, port)
    before = probe.read()
    _step(proc, "alloc")
    _step(proc, "burn")
    with socket.create_connection(("127.0.0.1", port)) as conn:
        _step(proc, "accept")
        after = probe.read()
        assert conn.fileno() >= 0
    assert after.cpu_s - before.cpu_s >= 0.3
    assert after.rss_bytes - before.rss_bytes >= 60 * 1024 * 1024
    assert before.connections == 0 and after.connections == 1
    assert after.threads >= 1 and after.fds > before.fds  # the accepted socket


def test_process_probe_follows_a_restart_by_port(child):
    proc, port = child
    probe = PidProbe(proc.pid, port)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        probe.pid, probe._process = other.pid, __import__("psutil").Process(other.pid)
        other.kill()
        other.wait(timeout=10)
        reading = probe.read()  # the old PID is gone: whoever listens on the port now is followed
        assert probe.restarts == 1 and probe._process.pid == proc.pid and reading.cpu_s is not None
    finally:
        if other.poll() is None:
            other.kill()


def test_machine_busy_time_moves_with_a_busy_thread():
    before = read_machine()
    if before.busy_s is None:
        pytest.skip("no /proc/stat")
    start = time.monotonic()
    end = time.thread_time() + 0.5
    while time.thread_time() < end:  # 0.5 s of CPU on this thread
        pass
    delta = machine_delta(before, read_machine(), time.monotonic() - start)
    assert delta["busy_s"] >= 0.4
    assert 0 < delta["busy_fraction"] <= 1


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativePostgres]:
    if find_pg_bin() is None:
        pytest.skip("no PostgreSQL binaries")
    pg = NativePostgres(tmp_path_factory.mktemp("serverside-pg"), profile="fast").start()
    try:
        yield pg
    finally:
        pg.stop()


def test_pg_deltas_count_a_known_workload(postgres):
    assert postgres.statement_stats  # the stacks' PostgreSQL has pg_stat_statements
    with connect_pg(postgres.dsn, autocommit=True) as work:
        work.execute("CREATE TABLE IF NOT EXISTS known (x int)")
        probe = PgProbe(postgres.dsn)
        statements0, counters0 = probe.statements(), probe.counters()
        own0 = probe.own_transactions - 1
        for i in range(40):
            work.execute("SELECT %s::int + 1", (i,))
        for i in range(10):
            with work.transaction():  # BEGIN / INSERT / COMMIT
                work.execute("INSERT INTO known VALUES (%s)", (i,))
        statements1, counters1 = probe.statements(), probe.counters()
        delta = statements_delta(statements0, statements1)
        counters = counters_delta(counters0, counters1, probe.own_transactions - own0 - 1)
        probe.close()
    assert delta["calls"] == 50  # exact: pg_stat_statements counts as each statement ends
    assert delta["rows_written"] == 10
    assert delta["transaction_control_calls"] == 20  # BEGIN + COMMIT, not counted as queries
    assert counters["write_transactions"] == 10  # one transaction id per writing transaction
    assert counters["wal_bytes"] > 0
    top = delta["top"]
    assert {q["calls"] for q in top} == {40, 10} and all("certload-serverside" not in q["query"] for q in top)


def test_statement_text_blanks_literals():
    from pytest_certload.serverside.postgres import shown_text

    assert shown_text("ALTER ROLE x PASSWORD 'it''s secret'\n  ") == "ALTER ROLE x PASSWORD '…'"
    assert shown_text("SELECT $1") == "SELECT $1"


def test_statement_kinds():
    assert statement_kind("begin") == statement_kind(" COMMIT") == "transaction"
    assert statement_kind("INSERT INTO t VALUES ($1)") == "write"
    assert statement_kind("WITH x AS (SELECT 1) UPDATE t SET a = $1") == "write"
    assert statement_kind("SELECT 1") == "read"


def test_sampler_on_an_external_stack_with_a_dsn_reads_the_database_only(postgres):
    stack = Stack(
        kind="external",
        certctl_url="https://127.0.0.1:9",  # nothing listens: the metrics endpoint is n/a
        token=Secret("t"),
        ca_bundle=None,
        server="unknown",
        owned=False,
        dsn=postgres.dsn,
    )
    sampler = ServerSampler(stack, interval_s=0.1).start()
    with connect_pg(postgres.dsn, autocommit=True) as work:
        for _ in range(7):
            work.execute("SELECT 42")
    deadline = time.monotonic() + 10
    while sampler._activity == [] and time.monotonic() < deadline:  # one activity sample at least
        time.sleep(0.05)
    block = sampler.stop()
    assert block["certctl"]["na"].startswith("n/a: external stack")
    assert block["postgres_process"]["na"].startswith("n/a")
    assert block["metrics"]["na"].startswith("n/a")
    assert block["database"]["statements"]["calls"] == 7
    assert block["database"]["activity"]["samples"] >= 1
    assert sampler.stop() is block  # idempotent


def _record(worker: str, index: int, requests: int, block: dict | None, scenarios=("s",)) -> PhaseVerdict:
    recorder = Recorder()
    for i in range(requests):
        recorder.add_counter("http_reqs", tagset({"scenario": scenarios[i % len(scenarios)]}))
    meta = {"scenarios": {s: {"started_at": 1000.0, "ended_at": 1003.0} for s in scenarios}}
    meta[SPLIT_META_KEY] = {"phase": 1, "index": index, "count": 2, "worker": worker}
    if block is not None:
        meta[META_KEY] = block
    samples = recorder.samples(meta)
    infos = [ScenarioVerdict(s, {}, "constant-arrival-rate", 10.0, None) for s in scenarios]
    return PhaseVerdict(nodeid="t.py::test_s", samples=samples, duration_s=3.0, scenarios=infos)


BLOCK = {
    "wall_s": 3.0,
    "server": "certctl",
    "sampler": {"cpu_s": 0.01},
    "certctl": {
        "cpu_s": 0.6,
        "rss_before": 10 * 2**20,
        "rss_after": 13 * 2**20,
        "series": {"connections": [2, 4]},
    },
    "postgres_process": {"cpu_s": 0.3},
    "database": {
        "statements": {"calls": 1200, "exec_ms": 60.0, "rows_written": 300},
        "counters": {"write_transactions": 300},
    },
    "machine": {"cores": 2, "busy_s": 5.0, "busy_fraction": 5 / 6},
}


def test_xdist_merge_divides_the_one_block_by_the_merged_request_count():
    """Share 0 sampled (its block), share 1 carries nothing: 100 + 200 requests share one block."""
    parts = [_record("gw0", 0, 100, BLOCK), _record("gw1", 1, 200, None)]
    wire = {p.split["worker"]: [json.loads(json.dumps(p.to_dict()))] for p in parts}
    (merged,) = merge_worker_phases(wire)
    values, requests, note = server_metric("db_queries_per_request", merged.samples, {"scenario": "s"})
    assert (values, requests, note) == ([4.0], 300, "")  # 1200 / 300, not 1200/100 + 0/200
    assert server_metric("server_cpu_per_request", merged.samples, {})[0] == [2.0]  # 600 ms / 300
    assert server_metric("db_commits_per_request", merged.samples, {})[0] == [1.0]
    assert server_metric("server_rss_growth", merged.samples, {})[0] == [3.0]
    assert server_metric("server_connections", merged.samples, {})[0] == [2.0, 4.0]


def test_several_scenarios_make_it_phase_wide_and_other_tags_are_refused():
    phase = _record("gw0", 0, 120, BLOCK, scenarios=("a", "b"))
    values, requests, note = server_metric("db_queries_per_request", phase.samples, {"scenario": "a"})
    assert values == [10.0] and requests == 120 and note.startswith("phase-wide (2 scenarios")
    assert server_metric("db_queries_per_request", phase.samples, {"status": "200"})[2].startswith("n/a")
    assert "did not run" in server_metric("db_time_per_request", phase.samples, {"scenario": "zz"})[2]
    empty = _record("gw0", 0, 10, None)
    assert server_metric("db_queries_per_request", empty.samples, {})[0] == []


def test_bottleneck_is_named_from_measured_cpu_shares():
    phase = _record("gw0", 0, 300, BLOCK)
    phase.health = {"cpu_fraction": 0.5, "wall_seconds": 3.0}
    cpu = cpu_shares(BLOCK, phase.health)
    assert cpu["seconds"]["generator"] == pytest.approx(1.49)  # 1.5 s less the sampler's 0.01
    assert cpu["seconds"]["other"] == pytest.approx(5.0 - 1.49 - 0.6 - 0.3)
    line = bottleneck_line(cpu)
    assert line.startswith("bottleneck (measured CPU): other") and "certctl 10%" in line
    idle = {**BLOCK, "machine": {"cores": 2, "busy_s": 2.5, "busy_fraction": 2.5 / 6}}
    assert "none on CPU (largest user: generator)" in bottleneck_line(cpu_shares(idle, phase.health))
    external = {**BLOCK, "certctl": {"na": "n/a: external stack"}}
    assert "n/a" in bottleneck_line(cpu_shares(external, phase.health))
    entry = phase_block(phase)
    assert entry["scope"] == "scenario s" and entry["derived"]["server_connections"] == {"avg": 3.0, "max": 4}


def test_sampling_costs_little_cpu(postgres):
    """The sampler thread's own CPU over a 3 s sampling at 10 Hz (ten times the default rate)."""
    stack = Stack(
        kind="native",
        certctl_url="https://127.0.0.1:9",
        token=Secret("t"),
        ca_bundle=None,
        server="stand-in",
        owned=True,
        dsn=postgres.dsn,
        postgres_pid=postgres.process.popen.pid,
    )
    sampler = ServerSampler(stack, interval_s=0.1).start()
    deadline = time.monotonic() + 15
    while len(sampler._activity) < 20 and time.monotonic() < deadline:  # 20 samples taken
        time.sleep(0.05)
    block = sampler.stop()
    assert block["sampler"]["samples"] >= 20
    per_sample_ms = block["sampler"]["cpu_s"] / block["sampler"]["samples"] * 1e3
    assert per_sample_ms < 20, f"{per_sample_ms:.1f} ms of CPU per sample"


def test_container_probe_reads_the_cgroup_as_the_docker_api_does():
    client = client_with_base_image()
    busy = (
        "import time\nend = time.process_time() + 1.2\nwhile time.process_time() < end: pass\ntime.sleep(120)"
    )
    container = client.containers.run(
        BASE_IMAGE,
        ["python3", "-c", busy],
        detach=True,
        network_mode="none",
        labels={"io.certload.test": "serverside"},
    )
    try:
        from pytest_certload.serverside.process import ContainerProbe

        probe = ContainerProbe(container.id)
        deadline = time.monotonic() + 30
        reading = probe.read()
        while (reading.cpu_s or 0) < 1.0 and time.monotonic() < deadline:  # the busy loop's CPU
            time.sleep(0.1)
            reading = probe.read()
        assert reading.cpu_s >= 1.0 and reading.rss_bytes > 0 and reading.threads >= 1
        api_cpu, _, _ = probe._api_stats()  # the engine's own figure, a moment later
        assert reading.cpu_s <= api_cpu <= reading.cpu_s + 1.5
        probe.close()
    finally:
        container.remove(force=True)
