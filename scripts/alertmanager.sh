#!/usr/bin/env bash
# Local Prometheus Alertmanager for tests and the demo (Debian's prometheus-alertmanager).
#
#   scripts/alertmanager.sh up       install if missing, start (or reuse), wait for /-/ready
#   scripts/alertmanager.sh down     stop the one this script started; no process is left
#   scripts/alertmanager.sh status   exit 0 when an Alertmanager answers /-/ready
#   scripts/alertmanager.sh install  only make sure the binary is there
#
# Listens on 127.0.0.1:19093 (9093 is the Kafka controller's port), clustering off, one null
# receiver (nothing is notified; the API holds the alerts). Config, storage, log and pid file
# live in $ALERTMANAGER_HOME (gitignored var/).
#
# Environment (defaults in brackets):
#   ALERTMANAGER_HOST [127.0.0.1]  ALERTMANAGER_PORT [19093]
#   ALERTMANAGER_HOME [<repo>/var/alertmanager]  ALERTMANAGER_READY_TIMEOUT [30] seconds
#   ALERTMANAGER_BIN [prometheus-alertmanager or alertmanager from PATH]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AM_HOST="${ALERTMANAGER_HOST:-127.0.0.1}"
AM_PORT="${ALERTMANAGER_PORT:-19093}"
AM_HOME="${ALERTMANAGER_HOME:-$REPO/var/alertmanager}"
AM_READY_TIMEOUT="${ALERTMANAGER_READY_TIMEOUT:-30}"
CONFIG="$AM_HOME/alertmanager.yml"
STORAGE="$AM_HOME/data"
LOGFILE="$AM_HOME/alertmanager.log"
PIDFILE="$AM_HOME/alertmanager.pid"
URL="http://$AM_HOST:$AM_PORT"
SERVICE=alertmanager
# shellcheck source=scripts/lib/service.sh
source "$REPO/scripts/lib/service.sh"

find_bin() {
  find_program "${ALERTMANAGER_BIN:-}" prometheus-alertmanager alertmanager
}

install_bin() {
  if find_bin >/dev/null; then return 0; fi
  local sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      log "not installed, and installing needs root: apt-get install prometheus-alertmanager"
      return 1
    fi
  fi
  if ! command -v apt-get >/dev/null; then
    log "not installed and no apt-get here: install Alertmanager or set ALERTMANAGER_BIN"
    return 1
  fi
  if ! apt-cache policy prometheus-alertmanager 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    log "refreshing the package lists (apt-get update)"
    $sudo apt-get update -qq >&2
  fi
  log "installing Debian's prometheus-alertmanager"
  # The package's service is not wanted (and cannot start without systemd): only the binary.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    prometheus-alertmanager >&2
  find_bin >/dev/null
}

ready() {
  http_ok "$URL/-/ready"
}

write_config() {
  mkdir -p "$AM_HOME" "$STORAGE"
  cat >"$CONFIG" <<YAML
# Written by scripts/alertmanager.sh: every alert goes to a receiver that notifies nobody.
route:
  receiver: "null"
  group_by: ["alertname"]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: "null"
YAML
}

up() {
  if ready; then log "already answering on $URL"; return 0; fi
  install_bin
  local bin
  bin="$(find_bin)"
  write_config
  log "starting $bin on $URL (log: $LOGFILE)"
  spawn "$LOGFILE" "$bin" \
    --config.file="$CONFIG" \
    --storage.path="$STORAGE" \
    --web.listen-address="$AM_HOST:$AM_PORT" \
    --cluster.listen-address= \
    --log.level=info
  local status=0
  wait_until "$(cat "$PIDFILE")" "$AM_READY_TIMEOUT" 0.2 ready || status=$?
  if ((status == EXITED)); then
    log "exited during startup; last log lines:"
    last_lines 20 "$LOGFILE"
    rm -f "$PIDFILE"
    return 1
  elif ((status == TIMED_OUT)); then
    log "not ready after ${AM_READY_TIMEOUT}s"
    down
    return 1
  fi
  log "ready on $URL (pid $(cat "$PIDFILE"))"
}

down() {
  stop_service 15 0.1
  log "stopped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  install) install_bin ;;
  status) print_status ready || exit 1 ;;
  *) echo "usage: $0 up|down|status|install" >&2; exit 2 ;;
esac
