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


def _mount_points(tid: int) -> set[str]:
    lines = Path(f"/proc/self/task/{tid}/mountinfo").read_text().splitlines()
    return {line.split()[4] for line in lines}


def test_every_thread_of_the_run_has_the_private_opt_dirs(cps_ans_module: str) -> None:
    try:
        for tid in (threading.get_native_id(), _EARLY.native_id):
            assert tid is not None
            # throw-away directories are bound over both, in this thread's namespace
            assert {"/etc/opt", "/var/opt"} <= _mount_points(tid), tid
        early = os.readlink(f"/proc/self/task/{_EARLY.native_id}/ns/mnt")
        assert early == os.readlink(f"/proc/self/task/{threading.get_native_id()}/ns/mnt")
    finally:
        _stop.set()
    conf = Path("/etc/opt/santesocial/CPS/cps3_pkcs11.conf")
    assert conf.is_file()  # written by the fixture in the throw-away /etc/opt
