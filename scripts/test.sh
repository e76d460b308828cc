#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts pcscd (with the vpcd
# virtual readers) and stops it by PID at the end, runs ruff, mypy and pytest.
# The last line printed is pytest's summary.
set -uo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$top"
bash scripts/bootstrap.sh || exit 1

export CPS_PCSCD_PIDFILE="${CPS_PCSCD_PIDFILE:-$top/.state/pcscd.pid}"
mkdir -p "$(dirname "$CPS_PCSCD_PIDFILE")"
if ! pgrep -x pcscd >/dev/null; then
    bash scripts/pcscd.sh start "$CPS_PCSCD_PIDFILE" >/dev/null || exit 1
    # Stop by PID, whichever pcscd the tests left running (they restart it once).
    trap 'bash scripts/pcscd.sh stop "$CPS_PCSCD_PIDFILE" >/dev/null 2>&1' EXIT
fi

echo "== ruff"; .venv/bin/ruff check cps_middleware tests examples benchmarks || exit 1
echo "== mypy"; .venv/bin/mypy || exit 1
echo "== pytest"
.venv/bin/python -m pytest -q "$@"
