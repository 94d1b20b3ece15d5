"""The machine's CPU over a phase: /proc/stat busy time and, where the kernel has it, CPU pressure.

On a shared 2-vCPU machine the generator, certctl and PostgreSQL compete for the same cores; the
machine's busy time is the whole from which their shares (and "other") are taken.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: /proc/stat's cpu columns: user nice system idle iowait irq softirq steal (guest* are inside user)
IDLE_COLUMNS = (3, 4)  # idle, iowait


@dataclass(frozen=True)
class MachineReading:
    busy_s: float | None  # CPU seconds spent busy on all cores since boot
    total_s: float | None  # CPU seconds on all cores since boot (busy + idle)
    psi_some_us: int | None  # /proc/pressure/cpu "some" total: microseconds some task waited for a CPU


def read_machine(proc: Path = Path("/proc")) -> MachineReading:
    """One reading; fields are None where the file is missing (not Linux, PSI not built in)."""
    busy = total = None
    try:
        first = (proc / "stat").read_text().splitlines()[0].split()
        ticks = [int(x) for x in first[1:9]]
        total = sum(ticks) / CLOCK_TICKS
        busy = total - sum(ticks[i] for i in IDLE_COLUMNS) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        pass
    psi = None
    try:
        for line in (proc / "pressure" / "cpu").read_text().splitlines():
            if line.startswith("some "):
                psi = int(dict(p.split("=") for p in line.split()[1:])["total"])
    except (OSError, KeyError, ValueError):
        pass
    return MachineReading(busy, total, psi)


def machine_delta(before: MachineReading, after: MachineReading, wall_s: float) -> dict:
    """The machine's CPU over the phase: cores, busy seconds, busy fraction, pressure fraction."""
    cores = os.cpu_count() or 1
    out: dict = {"cores": cores, "wall_s": wall_s, "busy_s": None, "busy_fraction": None, "psi_some": None}
    if before.busy_s is not None and after.busy_s is not None:
        busy = max(0.0, after.busy_s - before.busy_s)
        total = max(1e-9, (after.total_s or 0.0) - (before.total_s or 0.0))
        out["busy_s"] = busy
        out["busy_fraction"] = busy / total  # of every core
    if before.psi_some_us is not None and after.psi_some_us is not None and wall_s > 0:
        out["psi_some"] = (after.psi_some_us - before.psi_some_us) / 1e6 / wall_s
    return out
