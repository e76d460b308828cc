"""The real middlewares in the browsers' NSS databases, with the virtual CPS3 on a vpcd reader.

``cps browser setup --module`` registers OpenSC's module, then the ANS
Cryptolib CPS, in a throw-away Chromium database; NSS loads them (``modutil
-list`` loads every registered module as the browser does at start-up) and the
status must show the virtual CPS3 through them. Headless Chromium then loads
the module in its own process and offers the card's certificate to a
mutual-TLS site. The login itself needs the PIN: a vpcd reader has no PIN pad,
so Chromium would show its PIN dialog, which nobody can answer in a headless
run; the test stops at "the browser asked the card" (see the test docstrings).

The ANS module reads and writes ``/etc/opt`` and ``/var/opt``: everything that
loads it runs in a private mount namespace with throw-away folders bound there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cps_middleware import browser

REPO = Path(__file__).resolve().parents[1]
ANS_MODULE = REPO.parent / "shared" / "ans-cryptolib" / "libcps3_pkcs11_lux.so"

pytestmark = [
    pytest.mark.pcsc,
    pytest.mark.skipif(shutil.which("modutil") is None, reason="libnss3-tools is not installed"),
]


def _in_private_opt(
    tmp: Path, argv: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run argv with throw-away /etc/opt and /var/opt (the ANS module writes there)."""
    etc_opt, var_opt = tmp / "etc_opt", tmp / "var_opt"
    conf = etc_opt / "santesocial" / "CPS"
    conf.mkdir(parents=True, exist_ok=True)
    var_opt.mkdir(exist_ok=True)
    shipped = ANS_MODULE.parent / "cps3_pkcs11.conf"
    if shipped.exists():
        shutil.copy(shipped, conf / "cps3_pkcs11.conf")
    ns = ["--mount"] if os.geteuid() == 0 else ["--user", "--map-root-user", "--mount"]
    script = 'mount --bind "$0" /etc/opt && mount --bind "$1" /var/opt && shift && exec "$@"'
    return subprocess.run(
        ["unshare", *ns, "--propagation", "private", "sh", "-c", script,
         str(etc_opt), str(var_opt), *argv],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _cli(tmp: Path, home: Path, *args: str) -> dict[str, object] | list[object]:
    env = {**os.environ, "HOME": str(home)}
    proc = _in_private_opt(tmp, [sys.executable, "-m", "cps_middleware.cli", "browser", *args,
                                 "--chromium", "--home", str(home), "--json"], env)  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    data: dict[str, object] | list[object] = json.loads(proc.stdout)
    return data


def _card_tokens(status: list[object]) -> list[dict[str, object]]:
    (target,) = status
    assert isinstance(target, dict)
    mods = [m for m in target["modules"] if not m["builtin"]]
    return [t for m in mods for t in m["tokens"]]


@pytest.mark.parametrize("which", ["opensc", "ans"])
def test_real_middleware_registered_in_chromium_sees_the_virtual_cps3(
    which: str, cps_iasecc_cps3: object, cps_opensc_module: str, tmp_path: Path
) -> None:
    module = cps_opensc_module if which == "opensc" else str(ANS_MODULE)
    if not os.path.exists(module):
        pytest.skip(f"{module} is not there")
    home = tmp_path / "home"
    home.mkdir()
    setup = _cli(tmp_path, home, "setup", "--module", module)
    assert isinstance(setup, dict)
    (res,) = setup["results"]  # type: ignore[misc]
    assert res["outcome"] == "done" and res["module_added"], res
    status = _cli(tmp_path, home, "status")
    assert isinstance(status, list)
    tokens = _card_tokens(status)
    assert status[0]["module_loads"] is True, status  # type: ignore[index]
    serial = cps_iasecc_cps3.objects.serial  # type: ignore[attr-defined]
    # OpenSC shows the 10 digits of EF.SN.ICC, the ANS module their first 8.
    assert any(t["serial"] and str(t["serial"]) in serial for t in tokens), (serial, tokens)
    removed = _cli(tmp_path, home, "remove")
    assert removed["results"][0]["module_removed"] is True  # type: ignore[index,call-overload]
    assert browser.NssDb(browser.chromium_target(home).directory).registrations()[-1].library == ""
