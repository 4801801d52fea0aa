#!/usr/bin/env bash
# Make sure PostgreSQL server binaries (initdb, pg_ctl) are present; install Debian's package if not.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "${PG_BIN:-}" ]; then
  exit 0
fi
echo "PostgreSQL server binaries not found: installing Debian's postgresql package"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq postgresql >/dev/null
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
