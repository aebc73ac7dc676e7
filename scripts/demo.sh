#!/usr/bin/env bash
# `make demo`: the live pipeline on a local broker with sample telemetry and the web view.
# Starts what is not running yet (broker, one worker, the generator); Ctrl-C stops what it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SERVICE=demo
# shellcheck source=scripts/lib/service.sh
source scripts/lib/service.sh
BIN=.venv/bin
WEB_PORT="${WEB_PORT:-6066}"
# Demo tokens for the web view (override them; never use these outside a laptop).
export VIGIL_READ_TOKENS="${VIGIL_READ_TOKENS:-demo-read}"
export VIGIL_ADMIN_TOKENS="${VIGIL_ADMIN_TOKENS:-demo-admin}"
export VIGIL_CATALOGUE="${VIGIL_CATALOGUE:-docs/catalogue.example.yaml}"
RATE="${DEMO_RATE:-50}"
mkdir -p var/logs

started_broker=0
if ! scripts/kafka.sh status >/dev/null 2>&1; then
  scripts/kafka.sh up
  started_broker=1
fi

pids=()
stopping=0
cleanup() {
  trap - INT TERM EXIT
  stopping=1
  echo
  echo "demo: stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ $started_broker == 1 ]]; then scripts/kafka.sh down; fi
  echo "demo: stopped"
}
trap cleanup INT TERM EXIT

WEB_PORT=$WEB_PORT $BIN/vigil worker >var/logs/worker.log 2>&1 &
pids+=($!)
echo "demo: worker starting (log: var/logs/worker.log)"
if ! wait_until "${pids[0]}" "" 0.5 http_ok "http://127.0.0.1:$WEB_PORT/health/live"; then
  echo "demo: the worker exited during startup; last lines of var/logs/worker.log:"
  tail -n 20 var/logs/worker.log
  exit 1
fi

$BIN/vigil generate --rate "$RATE" --history 2>var/logs/generate.log &
pids+=($!)
cat <<MSG

  Vigil is running.
    web view:   http://127.0.0.1:$WEB_PORT/   (token: $VIGIL_ADMIN_TOKENS, or $VIGIL_READ_TOKENS)
    gate:       curl -H "Authorization: Bearer $VIGIL_READ_TOKENS" http://127.0.0.1:$WEB_PORT/gate/payments
    events:     $BIN/vigil consume --topic vigil.events --max 10
    dead letters: $BIN/vigil consume --topic vigil.deadletter --from-beginning --max 5
    logs:       var/logs/worker.log, var/logs/generate.log

  Press Ctrl-C to stop everything this demo started.
MSG
wait "${pids[0]}" || true
[[ $stopping == 1 ]] || echo "demo: the worker stopped; see var/logs/worker.log (stale state after a broker reset? make clean-state)"
