"""A phase's server-side block as the reports show it: derived figures, CPU shares, the bottleneck.

The bottleneck comes from measured CPU time over the phase -- the generator's (its process CPU, less
the sampler thread's), certctl's, PostgreSQL's, and "other" (the machine's busy time minus those
three) -- never from latency. What could not be read is n/a and takes no share.
"""

from __future__ import annotations

from typing import Any

from pytest_certload.serverside.derived import (
    SERVER_METRICS,
    raw_block,
    scenario_names,
    scope_of,
    values,
)

#: a phase without a server block (no certload_stack in the test)
NO_SERVER_BLOCK = {"scope": None, "na": "n/a: the test used no certload_stack, so no server was sampled"}
#: below this busy fraction of every core the machine was not CPU-bound
CPU_BOUND_FRACTION = 0.8


def generator_cpu_s(health: dict[str, Any], sampler_cpu_s: float) -> float | None:
    """The generator processes' CPU seconds (every xdist worker's) without the sampler thread."""
    parts = list((health.get("workers") or {}).values()) or [health]
    seconds = [
        p["cpu_fraction"] * p["wall_seconds"] for p in parts if "cpu_fraction" in p and "wall_seconds" in p
    ]
    return max(0.0, sum(seconds) - sampler_cpu_s) if seconds else None


def cpu_shares(block: dict[str, Any], health: dict[str, Any]) -> dict[str, Any]:
    """CPU seconds and shares of the machine's capacity (cores x wall) over the phase."""
    machine = block.get("machine") or {}
    wall = float(block.get("wall_s") or 0.0)
    capacity = (machine.get("cores") or 1) * wall
    seconds: dict[str, float | None] = {
        "generator": generator_cpu_s(health, float((block.get("sampler") or {}).get("cpu_s") or 0.0)),
        "certctl": (block.get("certctl") or {}).get("cpu_s"),
        "postgresql": (block.get("postgres_process") or {}).get("cpu_s"),
    }
    busy = machine.get("busy_s")
    known = sum(v for v in seconds.values() if v is not None)
    seconds["other"] = max(0.0, busy - known) if busy is not None else None
    shares = {k: (v / capacity if v is not None and capacity > 0 else None) for k, v in seconds.items()}
    return {
        "cores": machine.get("cores"),
        "wall_s": wall,
        "seconds": seconds,
        "shares": shares,
        "machine_busy": machine.get("busy_fraction"),
        "psi_some": machine.get("psi_some"),
    }


LABELS = {"generator": "generator", "certctl": "certctl", "postgresql": "PostgreSQL", "other": "other"}


def bottleneck_line(cpu: dict[str, Any], server_label: str = "certctl") -> str:
    """One line naming the phase's CPU bottleneck, with every share it was judged from."""
    shares = cpu["shares"]
    labels = {**LABELS, "certctl": server_label}
    parts = [
        f"{labels[k]} {shares[k] * 100:.0f}%" if shares[k] is not None else f"{labels[k]} n/a" for k in LABELS
    ]
    busy = cpu.get("machine_busy")
    tail = f" of {cpu.get('cores')} cores over {cpu['wall_s']:.1f} s"
    tail += f"; machine {busy * 100:.0f}% busy" if busy is not None else "; machine n/a"
    if cpu.get("psi_some") is not None:
        tail += f", CPU pressure {cpu['psi_some'] * 100:.0f}%"
    measured = {k: v for k, v in shares.items() if v is not None}
    if shares["certctl"] is None or shares["postgresql"] is None:
        verdict = "n/a (certctl's or PostgreSQL's CPU could not be read)"
    elif busy is not None and busy < CPU_BOUND_FRACTION:
        top = max(measured, key=measured.__getitem__)
        verdict = f"none on CPU (largest user: {labels[top]})"
    else:
        verdict = labels[max(measured, key=measured.__getitem__)]
    return f"bottleneck (measured CPU): {verdict} -- {', '.join(parts)}{tail}"


def phase_block(phase: Any) -> dict[str, Any] | None:
    """The summary's server-side block of one judged phase (None: nothing was sampled)."""
    samples = phase.samples
    block = raw_block(samples.meta)
    if block is None:
        return None
    names = scenario_names(samples)
    where, scope = scope_of(samples, names[0] if len(names) == 1 else None)
    derived = values(block, int(samples.select_counter("http_reqs", where)))
    connections = derived.pop("server_connections") or []
    derived["server_connections"] = (
        {"avg": sum(connections) / len(connections), "max": max(connections)} if connections else None
    )
    cpu = cpu_shares(block, phase.health or {})
    label = "certctl stand-in" if block.get("server") == "stand-in" else "certctl"
    raw = {k: v for k, v in block.items() if k != "certctl"}
    raw["certctl"] = {k: v for k, v in (block.get("certctl") or {}).items() if k != "series"}
    return {
        "scope": scope,
        "derived": derived,
        "units": {name: unit for name, (unit, _) in SERVER_METRICS.items()},
        "cpu": cpu,
        "bottleneck": bottleneck_line(cpu, label),
        "raw": raw,
    }


def scenario_server(phase: Any) -> dict[str, Any] | None:
    """What each scenario's summary entry carries: scope, figures, bottleneck (the raw block is in the
    summary's ``server_side`` list, once per phase)."""
    entry = phase_block(phase)
    return None if entry is None else {k: entry[k] for k in ("scope", "derived", "units", "bottleneck")}


def server_entry(phase: Any) -> dict[str, Any]:
    """:func:`phase_block`, or what stands in its place when nothing was sampled."""
    return phase_block(phase) or NO_SERVER_BLOCK


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def compact_cell(entry: dict[str, Any] | None) -> str:
    """The terminal table's "server" cell: certctl CPU ms/req, DB queries/req, write transactions/req."""
    if entry is None:
        return "-"
    d = entry["derived"]
    cell = (
        f"{_fmt(d['server_cpu_per_request'])}ms {_fmt(d['db_queries_per_request'], 1)}q "
        f"{_fmt(d['db_commits_per_request'], 1)}tx"
    )
    return cell + (" (phase)" if entry["scope"].startswith("phase-wide") else "")


def detail_lines(entry: dict[str, Any]) -> list[str]:
    """A few lines for the HTML report and logs: the derived figures, database, top statements."""
    d, raw = entry["derived"], entry["raw"]
    rss = d["server_rss_growth"]
    conns = d["server_connections"]
    lines = [
        f"scope: {entry['scope']}, {d['requests']} requests",
        f"certctl CPU {_fmt(d['server_cpu_per_request'], 3)} ms/request; RSS growth "
        f"{_fmt(rss)} MiB; connections avg {_fmt(conns and conns['avg'], 1)} max {conns and conns['max']}",
        f"database: {_fmt(d['db_queries_per_request'])} statements, {_fmt(d['db_time_per_request'], 3)} ms, "
        f"{_fmt(d['db_commits_per_request'])} write transactions, "
        f"{_fmt(d['db_rows_written_per_request'])} rows written per request",
        entry["bottleneck"],
    ]
    database = raw.get("database") or {}
    if database.get("na"):
        lines.append(f"database figures: {database['na']}")
    if (raw.get("metrics") or {}).get("na"):
        lines.append(f"certctl metrics endpoint: {raw['metrics']['na']}")
    return lines
