"""``python -m pytest_certload.golden record|compare``: record certctl's profile, or check the stand-in.

``record --certctl-bin PATH --migrations DIR --out tests/contract/golden/`` starts a fresh
PostgreSQL and the real certctl, measures every endpoint (:mod:`.record`) and writes the golden
files. ``compare --golden tests/contract/golden/`` does what CI does: the stand-in through the same
recorder, compared with the files (exit 1 naming each mismatch). ``--certctl-bin`` and
``--migrations`` default to ``CERTLOAD_CERTCTL_BIN`` / ``CERTLOAD_CERTCTL_MIGRATIONS``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

from pytest_certload.golden.endpoints import BY_NAME, ENDPOINTS
from pytest_certload.golden.record import (
    DEFAULT_REQUESTS,
    compare,
    load_golden,
    measure_all,
    side_by_side,
    write_golden,
)
from pytest_certload.golden.server import running_server

RECORD_COMMAND = (
    "python -m pytest_certload.golden record --certctl-bin PATH --migrations DIR --out tests/contract/golden/"
)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pytest_certload.golden", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="record the golden profile from a real certctl")
    rec.add_argument("--certctl-bin", type=Path, default=os.environ.get("CERTLOAD_CERTCTL_BIN"))
    rec.add_argument("--migrations", type=Path, default=os.environ.get("CERTLOAD_CERTCTL_MIGRATIONS"))
    rec.add_argument("--out", type=Path, default=Path("tests/contract/golden"))
    cmp = sub.add_parser("compare", help="measure the stand-in and compare it with the golden files")
    cmp.add_argument("--golden", type=Path, default=Path("tests/contract/golden"))
    for p in (rec, cmp):
        p.add_argument(
            "--requests", type=int, default=DEFAULT_REQUESTS, help="requests per endpoint (median)"
        )
        p.add_argument("--endpoint", action="append", choices=sorted(BY_NAME), help="only these endpoints")
    args = parser.parse_args(argv)
    if args.command == "record":
        if args.certctl_bin is None or not os.access(args.certctl_bin, os.X_OK):
            parser.error(
                f"--certctl-bin {args.certctl_bin}: not an executable certctl-server"
                " (pass it, or set CERTLOAD_CERTCTL_BIN)"
            )
        if args.migrations is None or not (args.migrations / "000001_initial_schema.up.sql").is_file():
            parser.error(
                f"--migrations {args.migrations}: not certctl's migrations/"
                " (pass it, or set CERTLOAD_CERTCTL_MIGRATIONS)"
            )
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    endpoints = [BY_NAME[n] for n in args.endpoint] if args.endpoint else list(ENDPOINTS)
    with tempfile.TemporaryDirectory(prefix="certload-golden-") as tmp:
        workdir = Path(tmp)
        certctl = args.certctl_bin if args.command == "record" else None
        migrations = args.migrations.resolve() if args.command == "record" else None
        with running_server(workdir, certctl, migrations) as server:
            print(
                f"measuring {len(endpoints)} endpoints x {args.requests} requests on {server.label}",
                flush=True,
            )
            profiles = measure_all(
                server.base_url, server.token, server.ssl_context, server.dsn, workdir,
                endpoints=endpoints, requests=args.requests, progress=lambda line: print(line, flush=True),
            )  # fmt: skip
    if args.command == "record":
        recorded_from = {
            "server": server.label,
            "certctl_binary_sha256": hashlib.sha256(args.certctl_bin.read_bytes()).hexdigest(),
            "postgresql": server.postgres_version,
            "requests_per_endpoint": args.requests,
            "command": RECORD_COMMAND,
        }
        for path in write_golden(args.out, profiles, recorded_from):
            print(f"wrote {path}")
        return 0
    golden = load_golden(args.golden)
    print("\n".join(side_by_side(golden, profiles)))
    problems = [p for name, g in golden.items() if name in profiles for p in compare(g, profiles[name])]
    for problem in problems:
        print("MISMATCH " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
