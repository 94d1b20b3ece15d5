"""One vantage every agent request passes: a TLS-terminating nginx in front of certctl, and its log.

Why a proxy: to compare real agents (separate processes) with simulated ones (the engine), both
populations must be counted the same way, by something we control. certctl's audit trail does not
record heartbeats or polls one row each, and the stand-in has its own bookkeeping; the agents' own
logs are the client's word. An nginx we start on loopback terminates the agents' TLS (ALPN h2 and
http/1.1 offered, as certctl's server does) and logs, per request: time (ms), nginx's connection
serial, the protocol the client spoke (``HTTP/2.0`` or ``HTTP/1.1``), the ALPN result, method, path,
status and body size. From that log: requests per agent and step, steady-state intervals, HTTP
version, connections per agent. Upstream it keeps a small HTTP/1.1 keep-alive pool to the stack;
so certctl itself sees nginx, not the agents' own connections, while it is in place.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pytest_certload.engine.agent_timing import HEARTBEAT_INTERVAL_S, JITTER, POLL_INTERVAL_S
from pytest_certload.sidecars.nginx import (
    NOT_INSTALLED,
    make_temp_dirs,
    nginx_binary,
    nginx_conf,
    start_serving_nginx,
)
from pytest_certload.stack.ports import free_port
from pytest_certload.stack.process import ManagedProcess
from pytest_certload.stack.tls import TLSMaterial, make_tls_material

HOST = "127.0.0.1"
LOG_FORMAT = (
    '{"t":$msec,"conn":$connection,"proto":"$server_protocol","alpn":"$ssl_alpn_protocol",'
    '"method":"$request_method","uri":"$uri","status":$status,"bytes":$body_bytes_sent}'
)
AGENT_PATH = re.compile(r"^/api/v1/agents/(?P<agent>[^/]+)/(?P<rest>.+)$")
#: the upstream pool's idle limit, below certctl's 60 s server idle timeout (facts §2.5), so nginx
#: never reuses a connection certctl is closing (a POST cannot be retried on another one)
UPSTREAM_IDLE_S = 20
#: nginx's idle limit toward the agents: certctl's server idle timeout, so connections age as there
CLIENT_IDLE_S = 60


def step_of(rest: str, method: str) -> str:
    """The agent step a path under ``/api/v1/agents/{id}/`` is (the names protocol.py tags with)."""
    if rest == "heartbeat":
        return "heartbeat"
    if rest == "work":
        return "poll"
    if rest == "csr":
        return "csr"
    if rest.startswith("certificates/"):
        return "pickup"
    if rest.startswith("jobs/") and rest.endswith("/status"):
        return "status"
    return f"other:{method}"


@dataclass(frozen=True)
class AgentRequest:
    """One logged request: when (epoch s), by which agent, which step, on which connection, how."""

    t: float
    agent: str
    step: str
    conn: int
    proto: str
    alpn: str
    status: int
    bytes: int


def read_log(path: Path) -> list[AgentRequest]:
    """The agent requests in the access log, in time order; ``/api/v1/jobs/{id}/verify`` reports are
    attributed to the agent whose other requests used the same connection."""
    rows = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    owner: dict[int, str] = {}
    out: list[AgentRequest] = []
    pending: list[dict] = []
    for row in rows:
        m = AGENT_PATH.match(row.get("uri", ""))
        if m is None:
            if row.get("uri", "").startswith("/api/v1/jobs/") and row["uri"].endswith("/verify"):
                pending.append(row)
            continue
        owner[row["conn"]] = m["agent"]
        out.append(_request(row, m["agent"], step_of(m["rest"], row.get("method", ""))))
    for row in pending:
        out.append(_request(row, owner.get(row["conn"], "?"), "verify_report"))
    return sorted(out, key=lambda r: r.t)


def _request(row: dict, agent: str, step: str) -> AgentRequest:
    return AgentRequest(
        t=float(row["t"]),
        agent=agent,
        step=step,
        conn=int(row["conn"]),
        proto=str(row.get("proto", "")),
        alpn=str(row.get("alpn", "")),
        status=int(row.get("status", 0)),
        bytes=int(row.get("bytes", 0)),
    )


@dataclass
class AgentProxy:
    """The running nginx: its https URL, the CA that verifies it, its access log."""

    url: str
    port: int
    tls: TLSMaterial
    access_log: Path
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()

    def requests(self) -> list[AgentRequest]:
        return read_log(self.access_log)


def nginx_config(workdir: Path, port: int, upstream_url: str, tls: TLSMaterial) -> str:
    """The proxy's nginx.conf: loopback listener with h2, one upstream (the stack's certctl URL)."""
    up = urlsplit(upstream_url)
    if up.hostname not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError(f"the agent vantage proxies to a loopback certctl only, not {up.hostname!r}")
    upstream_port = up.port or (443 if up.scheme == "https" else 80)
    upstream_host = f"[{up.hostname}]" if ":" in (up.hostname or "") else up.hostname
    body = f"""    keepalive_timeout {CLIENT_IDLE_S}s;
    upstream certctl {{
        server {upstream_host}:{upstream_port};
        keepalive 32;
        keepalive_timeout {UPSTREAM_IDLE_S}s;
    }}
    server {{
        listen {HOST}:{port} ssl http2;
        ssl_certificate {tls.server_cert};
        ssl_certificate_key {tls.server_key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            proxy_pass {up.scheme}://certctl;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            # loopback hop to the stack this session started; TLS is verified on the agents' hop
            proxy_ssl_verify off;
            proxy_ssl_protocols TLSv1.2 TLSv1.3;  # certctl accepts TLS 1.3 only; nginx 1.22 offers <= 1.2
            proxy_read_timeout 60s;
        }}
    }}"""
    logging = f"log_format agents escape=json '{LOG_FORMAT}';\naccess_log {workdir}/access.log agents;"
    return nginx_conf(workdir, body, logging=logging, worker_connections=4096)


def start_agent_proxy(workdir: Path, upstream_url: str, ready_timeout: float = 15.0) -> AgentProxy:
    """Start the vantage nginx with TLS material of its own; raises ComponentFailed if it does not serve."""
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError(NOT_INSTALLED)
    make_temp_dirs(workdir)
    tls = make_tls_material(workdir / "tls")
    port = free_port(HOST)
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_config(workdir, port, upstream_url, tls))
    process = start_serving_nginx(
        "agent-vantage-nginx", binary, workdir, conf, HOST, port, tls.fingerprint_sha256, ready_timeout
    )
    return AgentProxy(f"https://{HOST}:{port}", port, tls, workdir / "access.log", process)


@dataclass
class Population:
    """What the vantage saw of one group of agents (real or simulated)."""

    name: str
    agents: list[str]
    requests: list[AgentRequest] = field(default_factory=list)

    @classmethod
    def of(cls, name: str, agents: list[str], log: list[AgentRequest]) -> Population:
        wanted = set(agents)
        return cls(name, list(agents), [r for r in log if r.agent in wanted])

    def by_agent(self) -> dict[str, list[AgentRequest]]:
        out: dict[str, list[AgentRequest]] = defaultdict(list)
        for r in self.requests:
            out[r.agent].append(r)
        return out

    def counts(self) -> Counter[str]:
        return Counter(r.step for r in self.requests)

    def protocols(self) -> Counter[str]:
        return Counter(r.proto for r in self.requests)

    def connections(self) -> dict[str, int]:
        """Per agent, how many distinct connections its requests came on."""
        return {a: len({r.conn for r in reqs}) for a, reqs in self.by_agent().items()}

    def agents_seen(self) -> int:
        return len(self.by_agent())


# -- the request mix: steady-state rates per agent, and how far two populations may differ ----------

#: an agent's steady state starts this long after its first work poll: the real agent enters its main
#: loop right after that poll and takes any tick buffered during its start-up sleeps at once
#: (cmd/agent/main.go:264-299; internal/scheduler/jitter.go:71-100), so earlier gaps are start-up bursts
SETTLE_S = 2.0
#: the real agent's cadence (cmd/agent/main.go:190-191, scheduler.DefaultSchedulerJitter)
DOCUMENTED = {"heartbeat": HEARTBEAT_INTERVAL_S, "poll": POLL_INTERVAL_S}
SIGMAS = 4.0
SLACK_S = 0.5  # request latency and the log's millisecond clock, on top of the jitter's spread


@dataclass
class StepRate:
    """One step's steady-state figures for a population: pooled intervals and counted requests."""

    step: str
    intervals: list[float]
    counted: int
    exposure_s: float  # agent-seconds of steady state observed

    @property
    def mean_interval(self) -> float | None:
        return sum(self.intervals) / len(self.intervals) if self.intervals else None

    @property
    def per_min(self) -> float | None:
        """Requests per agent per minute from the mean interval (not biased by where the window cuts)."""
        mean = self.mean_interval
        return 60.0 / mean if mean else None

    @property
    def counted_per_min(self) -> float | None:
        return 60.0 * self.counted / self.exposure_s if self.exposure_s > 0 else None


def steady_rates(pop: Population, window_end: float, steps=("heartbeat", "poll")) -> dict[str, StepRate]:
    """Per step: intervals between an agent's consecutive requests of that step inside its steady
    state (from its first poll + SETTLE_S to ``window_end``), pooled over the population's agents."""
    rates = {s: StepRate(s, [], 0, 0.0) for s in steps}
    for reqs in pop.by_agent().values():
        polls = [r.t for r in reqs if r.step == "poll"]
        if not polls:
            continue
        start = polls[0] + SETTLE_S
        if start >= window_end:
            continue
        for step in steps:
            times = [r.t for r in reqs if r.step == step and start <= r.t <= window_end]
            rate = rates[step]
            rate.intervals.extend(b - a for a, b in itertools.pairwise(times))
            rate.counted += len(times)
            rate.exposure_s += window_end - start
    return rates


def interval_tolerance(nominal_s: float, n_a: int, n_b: int | None = None) -> float:
    """How far two pooled mean intervals may differ, in seconds: SIGMAS standard errors of a mean of
    uniform +-JITTER intervals (sd = nominal x jitter / sqrt 3) from ``n_a`` and ``n_b`` intervals
    (``n_b`` None: against the documented value, which has no error), plus SLACK_S."""
    if n_a <= 0 or (n_b is not None and n_b <= 0):
        return float("inf")
    sd = nominal_s * JITTER / 3**0.5
    spread = (1 / n_a + (1 / n_b if n_b else 0.0)) ** 0.5
    return SIGMAS * sd * spread + SLACK_S


def compare_mix(real: dict[str, StepRate], sim: dict[str, StepRate]) -> list[str]:
    """The disagreements (empty: the mixes match): each population against the documented cadence,
    and the two against each other, on the mean interval of each step."""
    problems = []
    for step, nominal in DOCUMENTED.items():
        a, b = real.get(step), sim.get(step)
        for name, rate in (("real", a), ("simulated", b)):
            if rate is None or rate.mean_interval is None:
                problems.append(f"{step}: no steady-state intervals from the {name} agents")
                continue
            tol = interval_tolerance(nominal, len(rate.intervals))
            if abs(rate.mean_interval - nominal) > tol:
                problems.append(
                    f"{step}: {name} agents' mean interval {rate.mean_interval:.2f} s, documented "
                    f"{nominal:g} s +- {tol:.2f} s ({len(rate.intervals)} intervals)"
                )
        if a and b and a.mean_interval and b.mean_interval:
            tol = interval_tolerance(nominal, len(a.intervals), len(b.intervals))
            if abs(a.mean_interval - b.mean_interval) > tol:
                problems.append(
                    f"{step}: mean interval real {a.mean_interval:.2f} s, simulated {b.mean_interval:.2f} s, "
                    f"allowed +- {tol:.2f} s ({len(a.intervals)} / {len(b.intervals)} intervals)"
                )
    return problems


def renewal_sequence(pop: Population, agent: str, since: float) -> list[str]:
    """An agent's requests after ``since`` other than heartbeats and empty polls: 'poll+work', 'csr 202',
    'status 200', 'pickup 200', ... (a poll is 'poll+work' when its body is larger than an empty one)."""
    reqs = [r for r in pop.by_agent().get(agent, []) if r.t >= since and r.step != "heartbeat"]
    empty = min((r.bytes for r in pop.requests if r.step == "poll" and r.status == 200), default=0)
    out = []
    for r in reqs:
        if r.step == "poll":
            if r.bytes > empty:
                out.append("poll+work")
            continue
        out.append(f"{r.step} {r.status}")
    return out


#: how an agent reacts to each kind of work (facts A.6, A.7): a CSR job -> one CSR submit (202); a
#: deployment -> status Running, certificate pickup, status Completed (a verification report between
#: when the target names a host)
REACTIONS = (("csr 202",), ("status 200", "pickup 200", "status 200"))


def reactions(sequence: list[str]) -> list[tuple[str, ...]]:
    """A renewal sequence cut at each 'poll+work': what the agent did with each poll that brought work
    (verification reports left out: the agent sends them only for targets that name a host)."""
    out: list[list[str]] = []
    for step in sequence:
        if step == "poll+work":
            out.append([])
        elif out and not step.startswith("verify_report"):
            out[-1].append(step)
    return [tuple(r) for r in out]
