#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts pcscd (with the vpcd
# virtual readers) and stops it by PID at the end, runs ruff, mypy and pytest.
# The last line printed is pytest's summary.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"

echo "== ruff"; .venv/bin/ruff check cps_middleware tests examples benchmarks || exit 1
echo "== mypy"; .venv/bin/mypy || exit 1
echo "== pytest"
if [ "${CPS_ISOLATED:-}" != 1 ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
    # The ANS module of the conformance suite writes /etc/opt and /var/opt: run
    # pytest in a private mount namespace with throw-away directories over them.
    unshare --mount --propagation private bash -c '
        t=$(mktemp -d); mkdir -p "$t/etc_opt" "$t/var_opt" /etc/opt /var/opt
        mount --bind "$t/etc_opt" /etc/opt && mount --bind "$t/var_opt" /var/opt || exit 1
        "$@"; rc=$?; rm -rf "$t"; exit $rc' test.sh .venv/bin/python -m pytest -q "$@"
else
    .venv/bin/python -m pytest -q "$@"
fi
