"""What the numbers were measured on: CPU, memory, OS -- never the hostname."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import psutil


def cpu_model() -> str | None:
    """The CPU model string from /proc/cpuinfo (Linux), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def describe_machine() -> dict:
    """A JSON-safe, hostname-free description of the load generator's machine."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_count_usable": usable,
        "cpu_model": cpu_model(),
        "memory_bytes": psutil.virtual_memory().total,
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "in_container": Path("/.dockerenv").exists() or Path("/run/.containerenv").exists(),
    }
