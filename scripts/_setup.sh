# Sourced by test.sh and demo.sh (not run on its own): installs what is missing,
# then starts pcscd (with the vpcd virtual readers) unless one runs already, and
# stops it by PID when the calling script exits.
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$top"
bash scripts/bootstrap.sh || exit 1

export CPS_PCSCD_PIDFILE="${CPS_PCSCD_PIDFILE:-$top/.state/pcscd.pid}"
mkdir -p "$(dirname "$CPS_PCSCD_PIDFILE")"
if ! pgrep -x pcscd >/dev/null; then
    bash scripts/pcscd.sh start "$CPS_PCSCD_PIDFILE" >/dev/null || exit 1
    # Stop by PID, whichever pcscd the tests left running (they restart it once).
    trap 'bash scripts/pcscd.sh stop "$CPS_PCSCD_PIDFILE" >/dev/null 2>&1' EXIT
else
    # Adopt the pcscd that runs already, so that the fixtures (and the one test
    # that restarts pcscd) manage the same daemon by PID.
    if ! { [ -s "$CPS_PCSCD_PIDFILE" ] && kill -0 "$(cat "$CPS_PCSCD_PIDFILE")" 2>/dev/null; }; then
        pgrep -x -o pcscd > "$CPS_PCSCD_PIDFILE"
    fi
fi
