#!/usr/bin/env bash
# Installs what cps-middleware needs on a Debian/Ubuntu machine, idempotently:
# apt packages, a virtualenv in .venv, and the package with its native parts.
# A second run installs nothing and returns in well under a second.
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$top"

APT_PACKAGES=(softhsm2 pcscd vsmartcard-vpcd opensc opensc-pkcs11 pcsc-tools libpcsclite-dev libp11-kit-dev
              swig libssl-dev gcc python3-venv python3-dev)
# Only the browser test of the diagnostic page needs these; on Ubuntu `chromium`
# is a snap wrapper that may not install in a container: warn, don't stop.
BROWSER_PACKAGES=(chromium chromium-driver)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3-venv / python3-dev are only needed when the python3 on PATH is Debian's own.
if [ "$(command -v python3)" != "/usr/bin/python3" ]; then
    filtered=(); for p in "${missing[@]}"; do
        case "$p" in python3-venv|python3-dev) ;; *) filtered+=("$p");; esac
    done; missing=("${filtered[@]}")
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
for p in "${BROWSER_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        [ -n "${browser_update_done:-}" ] || { apt-get update -qq >&2; browser_update_done=1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >&2 \
            || echo "bootstrap: could not install $p: the browser test of the diagnostic page will fail" >&2
    fi
done

if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv" >&2
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip setuptools wheel >&2
fi

# Reinstall only when the packaging or native sources changed since the last install.
stamp=.venv/.cps-install-stamp
want="$(cat pyproject.toml setup.py native/*/*.c native/*/*.h 2>/dev/null | sha256sum | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$want" != "$have" ] || ! .venv/bin/python -c "import cps_middleware._bridge" 2>/dev/null; then
    echo "bootstrap: installing cps-middleware into .venv" >&2
    .venv/bin/pip install -q --disable-pip-version-check -e ".[test]" 2>&1 \
        | grep -v -e "^WARNING: Location" >&2 || true
    .venv/bin/python -c "import cps_middleware._bridge" >&2
    echo "$want" > "$stamp"
fi

# The test OpenID provider (Pro Santé Connect tests): Node.js and panva's
# oidc-provider, installed from the lock file beside it.
oidc_dir=cps_middleware/testing/oidc
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "bootstrap: installing nodejs npm" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >&2 \
        || echo "bootstrap: could not install nodejs/npm: the Pro Santé Connect tests will fail" >&2
fi
oidc_stamp="$oidc_dir/node_modules/.cps-lock-stamp"
oidc_want="$(sha256sum "$oidc_dir/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$oidc_stamp" 2>/dev/null || true)" != "$oidc_want" ]; then
    echo "bootstrap: npm ci in $oidc_dir" >&2
    if (cd "$oidc_dir" && npm ci --no-audit --no-fund --loglevel=error >&2); then
        echo "$oidc_want" > "$oidc_stamp"
    else
        echo "bootstrap: npm ci failed: the Pro Santé Connect tests will fail" >&2
    fi
fi
