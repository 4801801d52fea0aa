#!/usr/bin/env bash
# Migrate, create demo users, start the background services, and serve the app on 127.0.0.1:5000.
set -euo pipefail
cd "$(dirname "$0")/.."
export FLASK_APP=wsgi
BIN=.venv/bin
$BIN/flask db upgrade
$BIN/flask demo-data
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }  # services finish writing
trap cleanup EXIT INT TERM
# Wait until something listens on host:port (at most 15 s), so that a client started next finds it.
wait_for_port() {
  for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "warning: nothing listens on $1:$2 yet" >&2
}
for service in $($BIN/flask services list 2>/dev/null || true); do
  $BIN/flask services run "$service" &
  pids+=($!)
  if [ "$service" = opcua-simulator ]; then  # the collector starts once the simulator answers: no gap at start
    wait_for_port "${OPCUA_SIM_HOST:-127.0.0.1}" "${OPCUA_SIM_PORT:-4840}"
  fi
done
echo "Stop everything with Ctrl-C."
echo "Serving on http://${BIND:-127.0.0.1:5000}"
$BIN/gunicorn --config gunicorn.conf.py wsgi:app  # workers, threads, bind and access log: see gunicorn.conf.py
