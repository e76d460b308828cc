#!/usr/bin/env bash
# Starts pcscd in the foreground with the vpcd virtual-reader driver, no systemd
# needed. Prints the PID. Usage: scripts/pcscd.sh start|stop [PIDFILE]
set -euo pipefail
cmd="${1:-start}"
pidfile="${2:-${CPS_PCSCD_PIDFILE:-/tmp/cps-middleware-pcscd.pid}}"
case "$cmd" in
start)
    conf="$(mktemp -d -t cps-pcscd-XXXXXX)"
    drv="$(find /usr/lib -name 'libifdvpcd.so*' 2>/dev/null | head -n 1)"
    [ -n "$drv" ] || { echo "pcscd.sh: vpcd driver not found (apt-get install vsmartcard-vpcd)" >&2; exit 1; }
    # Three vpcd entries: virtual readers on TCP ports 35963..35968 (two per entry),
    # so that independent test runs can each use their own pair of readers.
    # pcscd loads a driver once per path: each entry needs its own copy of the
    # driver (kept outside the config folder, whose every file pcscd reads).
    libs="$(mktemp -d -t cps-vpcd-lib-XXXXXX)"
    for port in 35963 35965 35967; do
        cp "$drv" "$libs/libifdvpcd-$port.so"
        printf 'FRIENDLYNAME "Virtual PCD %d"\nDEVICENAME   /dev/null:0x%X\nLIBPATH      %s\nCHANNELID    0x%X\n\n' \
            "$port" "$port" "$libs/libifdvpcd-$port.so" "$port"
    done > "$conf/vpcd"
    mkdir -p /run/pcscd
    pcscd --foreground --config "$conf" >/dev/null 2>&1 &
    echo $! > "$pidfile"
    echo $!
    ;;
stop)
    if [ -f "$pidfile" ]; then
        pid="$(cat "$pidfile")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$pidfile"
    fi
    ;;
esac
