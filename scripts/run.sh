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
for service in $($BIN/flask services list 2>/dev/null || true); do
  $BIN/flask services run "$service" &
  pids+=($!)
done
echo "Serving on http://${BIND:-127.0.0.1:5000}"
$BIN/gunicorn --config gunicorn.conf.py wsgi:app  # workers, threads, bind and access log: see gunicorn.conf.py
