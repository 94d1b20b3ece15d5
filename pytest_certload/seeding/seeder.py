"""The session's seeder: picks SQL or API, refuses foreign databases, seeds each fleet once.

Kept apart from the pytest glue so benchmarks and other tools can seed a stack the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pytest_certload.seeding.agent_bound import AgentBoundReport, seed_agent_bound_fleet
from pytest_certload.seeding.api_seeder import seed_fleet_via_api
from pytest_certload.seeding.copy_writer import seed_fleet
from pytest_certload.seeding.errors import SeedingError, SeedRefused
from pytest_certload.seeding.fleet import load_fleet
from pytest_certload.seeding.report import SeedReport
from pytest_certload.stack.model import Stack
from pytest_certload.stack.secret import connect_pg

SeedVia = Literal["auto", "sql", "api"]


def ensure_may_seed(stack: Stack, allow_external: bool) -> None:
    """Seeding writes thousands of rows: only into a stack we started, unless explicitly allowed."""
    if not stack.owned and not allow_external:
        raise SeedRefused(
            f"refusing to seed {stack.target_label} at {stack.certctl_url}: the plugin did not start this "
            "stack (stack.owned is False), so its database may hold real data. "
            "Pass --certload-allow-external-load to seed it anyway (rows are namespaced by id prefix "
            "and can be removed with cleanup_fleet)."
        )


class FleetSeeder:
    """``seeder(fleet_name, count=None) -> SeedReport``; cached, so two scenarios naming a fleet
    seed it once. ``seeder.agent_bound(n)`` seeds the agent-bound fleet (agents, targets,
    certificates, mappings: :mod:`.agent_bound`)."""

    def __init__(
        self,
        stack: Stack,
        *,
        allow_external: bool = False,
        via: SeedVia = "auto",
        seeds_dir: Path | None = None,
        api_concurrency: int = 8,
    ) -> None:
        self.stack = stack
        self.allow_external = allow_external
        self.via = via
        self.seeds_dir = seeds_dir
        self.api_concurrency = api_concurrency
        self.reports: dict[str, SeedReport] = {}
        self.agent_bound_reports: dict[int, AgentBoundReport] = {}

    def method_for(self) -> Literal["sql", "api"]:
        if self.via == "sql" and not self.stack.dsn:
            raise SeedingError(
                "--certload-seed-via=sql but the stack has no database DSN; "
                "use --certload-seed-via=api or auto"
            )
        if self.via in ("sql", "api"):
            return self.via  # type: ignore[return-value]
        return "sql" if self.stack.dsn else "api"

    def __call__(self, fleet_name: str, count: int | None = None) -> SeedReport:
        """Seed ``fleet_name`` (``count`` rows instead of the file's, when given)."""
        key = fleet_name if count is None else f"{fleet_name}[{count}]"
        if key in self.reports:
            return self.reports[key]
        ensure_may_seed(self.stack, self.allow_external)
        fleet = load_fleet(fleet_name, self.seeds_dir)
        if count is not None:
            fleet = fleet.with_count(count)
        if self.method_for() == "sql":
            assert self.stack.dsn is not None
            with connect_pg(self.stack.dsn, connect_timeout=10) as conn:
                report = seed_fleet(conn, fleet)
        else:
            # a Secret all the way down: the header is set by BearerAuth as each request is sent
            token = (
                self.stack.bootstrap_token
                if fleet.api == "agents" and self.stack.bootstrap_token
                else self.stack.token
            )
            report = seed_fleet_via_api(
                self.stack.certctl_url,
                token,
                fleet,
                ca_bundle=self.stack.ca_bundle,
                concurrency=self.api_concurrency,
            )
        self.reports[key] = report
        return report

    def agent_bound(self, count: int) -> AgentBoundReport:
        """Seed ``count`` agent-bound agents/targets/certificates (SQL only: no API creates mappings)."""
        if count in self.agent_bound_reports:
            return self.agent_bound_reports[count]
        ensure_may_seed(self.stack, self.allow_external)
        if not self.stack.dsn or self.via == "api":
            raise SeedingError(
                "the agent-bound fleet needs SQL seeding (certctl has no API for certificate-target "
                "mappings, and API-created targets reach agents with key_path redacted): run with a "
                "stack that has a DSN and without --certload-seed-via=api"
            )
        with connect_pg(self.stack.dsn, connect_timeout=10) as conn:
            report = seed_agent_bound_fleet(conn, count, seeds_dir=self.seeds_dir)
        self.agent_bound_reports[count] = report
        for table_report in report.tables:
            self.reports[f"{table_report.fleet}[{count}]"] = table_report
        return report
