"""The ANS module never writes the machine's /etc/opt: with ``cps_private_opt`` every
thread of the test process is in the private mount namespace, also a thread started
before the ``cps_ans_module`` fixture ran (a thread pool of an earlier test)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

# Started at collection, before any fixture: as an earlier test's worker thread.
_stop = threading.Event()
_EARLY = threading.Thread(target=_stop.wait, args=(600,), daemon=True, name="early")
_EARLY.start()


def test_every_thread_of_the_run_has_the_private_opt_dirs(cps_ans_module: str) -> None:
    mine = os.readlink("/proc/self/ns/mnt")
    try:
        assert mine != os.readlink("/proc/1/ns/mnt")  # not the machine's namespace
        early = os.readlink(f"/proc/self/task/{_EARLY.native_id}/ns/mnt")
        assert early == mine
    finally:
        _stop.set()
    conf = Path("/etc/opt/santesocial/CPS/cps3_pkcs11.conf")
    assert conf.is_file()  # written by the fixture in the throw-away /etc/opt
