"""The test token's ``pad_auto_login`` (PIN-pad mode for browsers): opening a session logs in
through the simulated pad, counted like any login. python-pkcs11 in a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cps_middleware.testing import _tokenstate
from cps_middleware.testing.pki import TestPki
from cps_middleware.testing.testcard import CpsTestCard

SCRIPT = """
import json, os, pkcs11
lib = pkcs11.lib(os.environ["CPS_MODULE"])
with lib.get_token().open() as s:  # no PIN given by the application
    keys = list(s.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY}))
    print(json.dumps({"private_keys": len(keys)}))
"""


def _private_keys_seen(card: CpsTestCard) -> int:
    env = {**os.environ, **card.env, "CPS_MODULE": card.module_path}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return int(json.loads(proc.stdout)["private_keys"])


def test_pad_auto_login_logs_in_when_a_session_opens(tmp_path: Path, cps_pki: TestPki) -> None:
    with CpsTestCard(tmp_path / "cards", pki=cps_pki, name="pad") as card:
        assert _private_keys_seen(card) == 0  # a card: keys hidden until login
        card.set_pin_pad(auto_login=True)
        assert _private_keys_seen(card) == 2
        assert card.state().pin_tries_left == 3
        _tokenstate.update(card.directory, pad_pin="9999")  # the holder types a wrong PIN
        assert _private_keys_seen(card) == 0
        assert card.state().pin_tries_left == 2  # counted like any wrong PIN
        card.set_pin_pad(auto_login=False)  # PIN pad without auto login: the app logs in
        assert _private_keys_seen(card) == 0 and card.state().pin_tries_left == 2
        assert card.state().pin_pad and not card.state().pad_auto_login
