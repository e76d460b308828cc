#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts pcscd (with the vpcd
# virtual readers) and stops it by PID at the end, runs ruff, mypy and pytest.
# The last line printed is pytest's summary.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"

echo "== ruff"; .venv/bin/ruff check cps_middleware tests examples benchmarks || exit 1
echo "== mypy"; .venv/bin/mypy || exit 1
echo "== pytest"
# The ANS module of the conformance suite writes /etc/opt and /var/opt: the
# plugin (ini cps_private_opt, pyproject.toml) gives the whole pytest run a
# private mount namespace with throw-away directories over them.
.venv/bin/python -m pytest -q "$@"
