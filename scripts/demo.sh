#!/usr/bin/env bash
# The main job: installs what is missing, then runs `cps demo` (a CPS test card,
# discovery, PIN, certificate, chain validation, mutual TLS, diagnostic report).
set -uo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$top"
bash scripts/bootstrap.sh || exit 1
export CPS_PCSCD_PIDFILE="${CPS_PCSCD_PIDFILE:-$top/.state/pcscd.pid}"
mkdir -p "$(dirname "$CPS_PCSCD_PIDFILE")"
if ! pgrep -x pcscd >/dev/null; then
    bash scripts/pcscd.sh start "$CPS_PCSCD_PIDFILE" >/dev/null || exit 1
    trap 'bash scripts/pcscd.sh stop "$CPS_PCSCD_PIDFILE" >/dev/null 2>&1' EXIT
fi
.venv/bin/cps demo "$@"
