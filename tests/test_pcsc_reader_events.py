"""Reader added / removed events, with a private pcscd whose reader set changes.

vpcd readers are static (reader.conf), so the only way to add or remove one is
to restart pcscd with another configuration. That must not disturb the shared
pcscd: the scenario runs in a child process inside private mount and network
namespaces (``unshare -m -n``, root only) with its own ``/run/pcscd`` and its
own pcscd.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.pcsc

SCENARIO = textwrap.dedent(
    """
    import json, time
    from cps_middleware.pcsc import CardWatcher, EventKind
    from cps_middleware.testing.pcscd import PcscDaemon

    events = []
    def wait_for(kind, reader=None, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.kind is kind and (reader is None or e.reader == reader) for e in events):
                return
            time.sleep(0.02)
        raise SystemExit(f"no {kind} for {reader}: {events}")

    small = PcscDaemon(base_ports=(35963,), pidfile="/run/pcscd/t.pid")
    big = PcscDaemon(base_ports=(35963, 35965), pidfile="/run/pcscd/t.pid")
    small.start()
    watcher = CardWatcher(events.append, retry_interval=0.05).start()
    try:
        small.stop(); big.start()
        wait_for(EventKind.READER_ADDED, "Virtual PCD 35965 00 01")
        big.stop(); small.start()
        wait_for(EventKind.READER_REMOVED, "Virtual PCD 35965 00 01")
    finally:
        watcher.stop()
        small.stop(); big.stop()  # by PID: no pcscd outlives the namespace's test
    print(json.dumps([[e.kind.name, e.reader, e.initial] for e in events]))
    """
)


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "-n", "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare for a private pcscd")
def test_reader_added_and_removed() -> None:
    script = (
        "mount -t tmpfs tmpfs /run/pcscd && ip link set lo up && "
        f'exec {sys.executable} -c "$0"'
    )
    proc = subprocess.run(
        ["unshare", "-m", "-n", "--propagation", "private", "sh", "-c", script, SCENARIO],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    events = [tuple(e) for e in json.loads(proc.stdout.strip().splitlines()[-1])]
    later = [(k, r) for k, r, initial in events if not initial]
    assert ("READER_ADDED", "Virtual PCD 35963 00 00") in [(k, r) for k, r, _i in events]
    assert later.index(("SERVICE_LOST", None)) < later.index(("SERVICE_RESTORED", None))
    added = [r for k, r in later if k == "READER_ADDED"]
    removed = [r for k, r in later if k == "READER_REMOVED"]
    assert added == ["Virtual PCD 35965 00 00", "Virtual PCD 35965 00 01"]
    assert removed == ["Virtual PCD 35965 00 00", "Virtual PCD 35965 00 01"]
    # The readers that stayed were never reported as removed.
    assert "Virtual PCD 35963 00 00" not in removed
