#!/usr/bin/env bash
# The main job: installs what is missing, then runs `cps demo` (a CPS test card,
# discovery, PIN, certificate, chain validation, mutual TLS, diagnostic report).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
.venv/bin/cps demo "$@"
