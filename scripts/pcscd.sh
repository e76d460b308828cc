#!/usr/bin/env bash
# Starts pcscd in the foreground with the vpcd virtual-reader driver, no systemd
# needed, and prints its PID once every virtual reader is listed; stops it by PID.
# Usage: scripts/pcscd.sh start|stop|restart [PIDFILE]
# One implementation serves the scripts and the test fixtures:
# cps_middleware.testing.pcscd (reader layout and why each entry has its own driver copy).
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -x "$top/.venv/bin/python" ]; then
    echo "pcscd.sh: no .venv yet: run bash scripts/bootstrap.sh first" >&2
    exit 1
fi
exec "$top/.venv/bin/python" -m cps_middleware.testing.pcscd "$@"
