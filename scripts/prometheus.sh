#!/usr/bin/env bash
# Local Prometheus for tests and the demo (Debian's `prometheus` package, with promtool).
#
#   scripts/prometheus.sh up TARGET...   install if missing, write a scrape config for the
#                                        targets (host:port of Vigil workers' web servers, scraped
#                                        at /metrics, job "vigil") plus Vigil's alerting rules,
#                                        start (or reload the one this script started), wait for
#                                        /-/ready and for the new config to be in force
#   scripts/prometheus.sh down           stop the one this script started; no process is left
#   scripts/prometheus.sh status         exit 0 when a Prometheus answers /-/ready
#   scripts/prometheus.sh install        only make sure prometheus and promtool are there
#   scripts/prometheus.sh check [FILE]   promtool check rules (default: Vigil's rules file)
#
# Listens on 127.0.0.1:19090. Config, TSDB (emptied at each start), log and pid file live in
# $PROMETHEUS_HOME (gitignored var/). `apt-get update` runs only when the package is missing
# and apt knows no candidate for it; the package's own service is kept from starting during
# the install.
#
# Environment (defaults in brackets):
#   PROMETHEUS_HOST [127.0.0.1]  PROMETHEUS_PORT [19090]  PROMETHEUS_HOME [<repo>/var/prometheus]
#   PROMETHEUS_SCRAPE_INTERVAL [2s]  PROMETHEUS_READY_TIMEOUT [60] seconds
#   PROMETHEUS_RULES [<repo>/docker/prometheus/vigil-rules.yml]
#   PROMETHEUS_BIN / PROMTOOL_BIN [prometheus / promtool from PATH]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROM_HOST="${PROMETHEUS_HOST:-127.0.0.1}"
PROM_PORT="${PROMETHEUS_PORT:-19090}"
PROM_HOME="${PROMETHEUS_HOME:-$REPO/var/prometheus}"
SCRAPE_INTERVAL="${PROMETHEUS_SCRAPE_INTERVAL:-2s}"
READY_TIMEOUT="${PROMETHEUS_READY_TIMEOUT:-60}"
RULES="${PROMETHEUS_RULES:-$REPO/docker/prometheus/vigil-rules.yml}"
CONFIG="$PROM_HOME/prometheus.yml"
STORAGE="$PROM_HOME/data"
LOGFILE="$PROM_HOME/prometheus.log"
PIDFILE="$PROM_HOME/prometheus.pid"
URL="http://$PROM_HOST:$PROM_PORT"
SERVICE=prometheus
# shellcheck source=scripts/lib/service.sh
source "$REPO/scripts/lib/service.sh"

find_bin() {
  find_program "${PROMETHEUS_BIN:-}" prometheus
}

find_promtool() {
  find_program "${PROMTOOL_BIN:-}" promtool
}

install_bin() {
  if find_bin >/dev/null && find_promtool >/dev/null; then return 0; fi
  local sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      log "not installed, and installing needs root: apt-get install prometheus"
      return 1
    fi
  fi
  if ! command -v apt-get >/dev/null; then
    log "not installed and no apt-get here: install Prometheus or set PROMETHEUS_BIN"
    return 1
  fi
  local apt=(-o DPkg::Lock::Timeout=600)
  if ! apt-cache policy prometheus 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    log "refreshing the package lists (apt-get update)"
    $sudo apt-get "${apt[@]}" update -qq >&2
  fi
  # The package starts its own service (port 9090) through invoke-rc.d unless a policy says
  # no: only the binaries are wanted, so forbid service starts for the install's duration.
  local policy=/usr/sbin/policy-rc.d own_policy=""
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    own_policy=1
  fi
  log "installing Debian's prometheus"
  local status=0
  DEBIAN_FRONTEND=noninteractive $sudo apt-get "${apt[@]}" install -y -qq \
    --no-install-recommends prometheus >&2 || status=$?
  if [[ -n "$own_policy" ]]; then $sudo rm -f "$policy"; fi
  ((status == 0)) || return "$status"
  find_bin >/dev/null && find_promtool >/dev/null
}

ready() {
  http_ok "$URL/-/ready"
}

write_config() {
  mkdir -p "$PROM_HOME" "$STORAGE"
  local targets="" target
  for target in "$@"; do targets+="\"$target\", "; done
  targets="${targets%, }"
  cat >"$CONFIG.tmp" <<YAML
# Written by scripts/prometheus.sh: scrape Vigil workers, evaluate Vigil's alerting rules.
global:
  scrape_interval: $SCRAPE_INTERVAL
  evaluation_interval: $SCRAPE_INTERVAL
rule_files:
  - "$RULES"
scrape_configs:
  - job_name: vigil
    metrics_path: /metrics
    static_configs:
      - targets: [$targets]
YAML
  mv "$CONFIG.tmp" "$CONFIG"
}

# The running Prometheus serves this script's current config (all targets present).
config_in_force() {
  local current target
  current="$(curl -fsS --max-time 2 "$URL/api/v1/status/config" 2>/dev/null)" || return 1
  for target in "$@"; do
    [[ "$current" == *"$target"* ]] || return 1
  done
}

# wait_for WHAT CHECK...: until CHECK succeeds; fails, saying why, when the process exits
# first or after READY_TIMEOUT seconds.
wait_for() {
  local what="$1" status=0 pid
  shift
  pid="$(running_pid)" || pid=""
  wait_until "$pid" "$READY_TIMEOUT" 0.2 "$@" || status=$?
  if ((status == EXITED)); then
    log "exited while waiting for $what; last log lines:"
    last_lines 20 "$LOGFILE"
    rm -f "$PIDFILE"
    return 1
  elif ((status == TIMED_OUT)); then
    log "not $what after ${READY_TIMEOUT}s; last log lines:"
    last_lines 20 "$LOGFILE"
    return 1
  fi
}

up() {
  if (($# == 0)); then
    log "usage: $0 up HOST:PORT... (the Vigil workers to scrape)"
    return 2
  fi
  install_bin
  local bin pid
  bin="$(find_bin)"
  if pid="$(running_pid)"; then
    write_config "$@"
    log "reloading (pid $pid) with targets: $*"
    kill -HUP "$pid"
    wait_for "reloaded" config_in_force "$@"
    return 0
  fi
  if ready; then
    log "another Prometheus (not started by this script) answers on $URL"
    return 1
  fi
  write_config "$@"
  "$(find_promtool)" check config "$CONFIG" >&2
  # A fresh TSDB on every start: series of earlier runs' targets would linger for 5 minutes.
  rm -rf "$STORAGE"
  mkdir -p "$STORAGE"
  log "starting $bin on $URL, scraping $* (log: $LOGFILE)"
  spawn "$LOGFILE" "$bin" \
    --config.file="$CONFIG" \
    --storage.tsdb.path="$STORAGE" \
    --storage.tsdb.retention.time=1d \
    --web.listen-address="$PROM_HOST:$PROM_PORT" \
    --log.level=info
  if ! wait_for "ready" ready || ! wait_for "configured" config_in_force "$@"; then
    down
    return 1
  fi
  log "ready on $URL (pid $(cat "$PIDFILE"))"
}

down() {
  stop_service 20 0.1
  log "stopped"
}

check() {
  install_bin
  "$(find_promtool)" check rules "${1:-$RULES}"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  install) install_bin ;;
  check) shift; check "$@" ;;
  status) print_status ready || exit 1 ;;
  *) echo "usage: $0 up HOST:PORT...|down|status|install|check [FILE]" >&2; exit 2 ;;
esac
