#!/usr/bin/env bash
# The main job: the API tier (tests/api) on the default stack (Docker when an engine answers, else
# local processes), each load phase 60 s instead of k6's 5 minutes, so the whole job takes about
# four minutes (4 min 11 s on this project's 2-core machine): issuance_acceptance, list_certificates, both at once (api_tier), and rate_limiter
# (on a second stack with certctl's limiter on). At the end pytest prints one table (scenario,
# requests, achieved vs target rate, p50/p95/p99 in ms, error rate, threshold verdicts) and the
# same numbers go to results/main-job.json (k6's summary-export shape, plus the stack description).
#
# Which certctl answers is left to --certctl=auto (the default): a certctl-server binary in
# CERTLOAD_CERTCTL_BIN, else certctl's published image pinned in pytest_certload/stack/options.py when
# Docker has it or can pull it, else the certctl stand-in, with a banner saying why; the table and
# results/main-job.json then say "stand-in: functional check only, latencies are not certctl's".
# PostgreSQL keeps the stacks' default profile, durable (PostgreSQL's own fsync, synchronous_commit and
# full_page_writes, data on disk): certctl audits every request, and a database that skips its disk
# flatters every write. (scripts/test.sh passes --certload-pg-profile=fast; this job does not.)
#
# Extra arguments go to pytest and win over these, e.g. the original's full length:
#   bash scripts/main-job.sh --certload-duration=5m
# CERTLOAD_DOCKER_BASE_IMAGE: as in scripts/test.sh (set it empty where public images can be pulled).
set -uo pipefail
cd "$(dirname "$0")/.."
export CERTLOAD_DOCKER_BASE_IMAGE=${CERTLOAD_DOCKER_BASE_IMAGE-certload/base:bookworm}
exec pytest -p no:cacheprovider tests/api --certload-duration=60s --certload-summary=results/main-job.json "$@"
