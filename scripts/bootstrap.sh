#!/usr/bin/env bash
# Prepare a fresh Debian/Ubuntu machine for pytest-certload: system packages for the native stack,
# a Docker engine when this workplace's helper script is present, and the plugin itself.
# Idempotent; safe to run again. Needs root (or sudo) for apt-get.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_pkgs=()
# chromium: headless, renders the --certload-html report in tests/plugin/test_report_html.py
# h2load: the HTTP/2 reference client beside the engine in benchmarks/bench_http2.py; tc (iproute2):
# netem delay and loss on links inside network namespaces the fault tests create
for pair in initdb:postgresql nginx:nginx apache2:apache2 haproxy:haproxy openssl:openssl chromium:chromium h2load:nghttp2-client tc:iproute2; do
  bin=${pair%%:*}; pkg=${pair##*:}
  if ! command -v "$bin" >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/"$bin" >/dev/null 2>&1 \
     && ! [ -x "/usr/sbin/$bin" ]; then need_pkgs+=("$pkg"); fi
done
# Chromium only recommends fonts (installed here without recommends): text needs one font at least
if [[ " ${need_pkgs[*]} " == *" chromium "* ]]; then need_pkgs+=(fonts-dejavu-core); fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" postgresql-contrib ca-certificates >/dev/null
fi

# Docker: use a running engine; otherwise, on the project's machines, start one with the shared helper.
docker_up=${CERTLOAD_DOCKER_UP:-$here/../shared/tools/docker-up.sh}
if docker version >/dev/null 2>&1; then
  echo "bootstrap: Docker engine answers"
elif [ -f "$docker_up" ]; then
  echo "bootstrap: starting a Docker engine with $docker_up"
  bash "$docker_up" up
fi
if docker version >/dev/null 2>&1 && [ -f "$docker_up" ]; then
  bash "$docker_up" image   # certload/base:bookworm, built locally (no registry here)
fi

python3 -m pip install -q --disable-pip-version-check -e "$here[dev]"
echo "bootstrap: ready"
