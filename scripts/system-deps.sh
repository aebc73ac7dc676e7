#!/usr/bin/env bash
# Debian packages the test suite drives for real: Chromium (browser test), Prometheus
# (scrape test, promtool) and Alertmanager (sink test). Installs only what is missing.
set -euo pipefail
needed=()
command -v chromium >/dev/null 2>&1 || needed+=(chromium)
command -v promtool >/dev/null 2>&1 || needed+=(prometheus)
{ command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1; } \
  || needed+=(prometheus-alertmanager)
if ((${#needed[@]} == 0)); then exit 0; fi
if [[ $(id -u) != 0 ]]; then
  echo "system-deps: missing ${needed[*]}; install them with apt-get (needs root)" >&2
  exit 1
fi
echo "system-deps: installing ${needed[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${needed[@]}" >&2
# The Debian packages start their daemons; tests run their own instances on other ports.
for service in prometheus prometheus-alertmanager; do
  if command -v systemctl >/dev/null 2>&1; then systemctl stop "$service" 2>/dev/null || true; fi
  pkill -x "$service" 2>/dev/null || true
done
