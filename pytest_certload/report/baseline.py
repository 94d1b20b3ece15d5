"""Saved runs: a session's judged phases with their raw samples, kept under ``.certload/`` to compare.

One run is one zip file (``.certload/<NAME>.certload.zip``): ``run.json`` holds what describes the
run (when, which commit, the command line, the stack, the machine), the k6-shaped summary and every
phase's verdicts and meta (with the per-second marks), and ``trends/<i>.i8`` holds each trend series'
raw int64 nanoseconds, byte-shuffled (the 8 bytes of every value stored as 8 planes) and deflated:
latency values share their high bytes, so the planes compress ~3-4x where the plain array does ~1.5x.
Raw samples, not histograms: a later comparison bootstraps percentiles from them exactly.

``--certload-save=NAME`` writes ``NAME``; ``--certload-autosave`` writes ``NNNN_<commit>_<time>``;
``--certload-compare`` reads the newest run, ``=NAME`` a saved name (or a unique prefix such as
``0003``), ``=PATH`` a run file anywhere.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pytest_certload.report.writer import _json_safe
from pytest_certload.stats import PhaseSamples
from pytest_certload.verdict import PhaseVerdict

FORMAT = "pytest-certload run"
VERSION = 1
SUFFIX = ".certload.zip"
DEFAULT_DIR = ".certload"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class RunNotFound(LookupError):
    """No saved run answers a name or path."""


@dataclass
class SavedRun:
    """A session's results as kept on disk (or as they stand at the end of this session)."""

    name: str
    info: dict[str, Any]  # created, commit, argv, machine, stack, interrupted, plugin version
    summary: dict[str, Any]
    phases: list[PhaseVerdict] = field(default_factory=list)
    path: Path | None = None

    @property
    def label(self) -> str:
        """``'NAME' (saved 2026-05-16 12:00 UTC, commit abc1234)``."""
        created = str(self.info.get("created") or "?")[:16].replace("T", " ")
        commit = self.info.get("commit") or {}
        where = f"commit {commit['short']}" if commit.get("short") else "not in a git checkout"
        return f"'{self.name}' (saved {created} UTC, {where}{' with changes' if commit.get('dirty') else ''})"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(
            f"run name {name!r}: use letters, digits, '.', '_' or '-' (at most 100, not starting with . _ -)"
        )
    return name


def commit_info(cwd: Path) -> dict[str, Any] | None:
    """The checked-out commit (sha, short, branch, dirty), read with git's plumbing; None outside git."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    if not sha:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "sha": sha,
        "short": sha[:8],
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(status),
    }


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "")


# --- writing -----------------------------------------------------------------------------------------


def _shuffle(values: np.ndarray) -> bytes:
    raw = np.ascontiguousarray(values, dtype="<i8").view(np.uint8).reshape(-1, 8)
    return raw.T.tobytes()


def _unshuffle(data: bytes) -> np.ndarray:
    planes = np.frombuffer(data, dtype=np.uint8).reshape(8, -1)
    return np.ascontiguousarray(planes.T).view("<i8").reshape(-1).astype(np.int64)


def save_run(run: SavedRun, path: str | os.PathLike[str]) -> Path:
    """Write ``run`` to ``path`` (atomically: a reader never sees half a file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    phases = []
    blobs: list[tuple[str, bytes]] = []
    for phase in run.phases:
        # the trend arrays go to their own members below: serialise the phase without them
        data = dataclasses.replace(phase, samples=dataclasses.replace(phase.samples, trends={})).to_dict()
        trends = []
        for (name, tags), values in phase.samples.trends.items():
            member = f"trends/{len(blobs):06d}.i8"
            blobs.append((member, _shuffle(values)))
            trends.append({"name": name, "tags": [list(t) for t in tags], "file": member})
        data["samples"]["trends"] = trends
        phases.append(data)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "name": run.name,
        "info": run.info,
        "summary": run.summary,
        "phases": phases,
    }
    text = json.dumps(_json_safe(document), default=str, allow_nan=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            zf.writestr("run.json", text)
            for member, blob in blobs:
                zf.writestr(member, blob)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# --- reading -----------------------------------------------------------------------------------------


def load_run(path: str | os.PathLike[str]) -> SavedRun:
    """Read a run file; raise RunNotFound (missing) or ValueError (not a run file)."""
    source = Path(path)
    if not source.is_file():
        raise RunNotFound(f"no saved run at {source}")
    try:
        with zipfile.ZipFile(source) as zf:
            document = json.loads(zf.read("run.json"))
            if document.get("format") != FORMAT:
                raise ValueError(f"{source} is not a {FORMAT} file")
            phases = []
            for data in document.get("phases", []):
                files = data["samples"].get("trends", [])
                data["samples"] = {**data["samples"], "trends": []}
                phase = PhaseVerdict.from_dict(data)
                trends = {
                    (f["name"], tuple((str(a), str(b)) for a, b in f["tags"])): _unshuffle(zf.read(f["file"]))
                    for f in files
                }
                phase.samples = PhaseSamples(
                    trends, phase.samples.rates, phase.samples.counters, phase.samples.meta
                )
                phases.append(phase)
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{source} is not a readable {FORMAT} file: {exc}") from None
    return SavedRun(document["name"], document.get("info", {}), document.get("summary", {}), phases, source)


def run_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Saved runs in ``directory``, oldest first (by the time they were written)."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"*{SUFFIX}"), key=lambda p: (p.stat().st_mtime_ns, p.name))


def run_name(path: Path) -> str:
    return path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.stem


def resolve_run(ref: str | None, directory: str | os.PathLike[str]) -> Path:
    """The file a ``--certload-compare`` / CLI reference names: newest, NAME, unique prefix, or PATH."""
    files = run_files(directory)
    if not ref:
        if not files:
            raise RunNotFound(f"no saved run in {directory}: save one first with --certload-save=NAME")
        return files[-1]
    candidate = Path(ref)
    if candidate.is_file():
        return candidate
    by_name = {run_name(p): p for p in files}
    if ref in by_name:
        return by_name[ref]
    prefixed = [p for n, p in by_name.items() if n.startswith(ref)]
    if len(prefixed) == 1:
        return prefixed[0]
    known = ", ".join(sorted(by_name)) or "none"
    why = f"{len(prefixed)} saved runs start with it" if prefixed else "no such file or saved run"
    raise RunNotFound(f"{ref!r}: {why} (saved in {directory}: {known})")


def autosave_name(directory: str | os.PathLike[str], commit: dict[str, Any] | None) -> str:
    """``NNNN_<commit>_<yyyymmddThhmmss>``: the next counter after the saved runs', as pytest-benchmark."""
    numbers = [int(m.group(1)) for p in run_files(directory) if (m := re.match(r"^(\d{4})_", p.name))]
    stamp = now_iso().replace("-", "").replace(":", "")
    short = (commit or {}).get("short") or "nocommit"
    return (
        f"{max(numbers, default=0) + 1:04d}_{short}{'-dirty' if (commit or {}).get('dirty') else ''}_{stamp}"
    )


def run_path(directory: str | os.PathLike[str], name: str) -> Path:
    return Path(directory) / f"{check_name(name)}{SUFFIX}"
