"""The ANS Cryptolib PKCS#11 module as a test consumer, without touching the machine.

The ANS module (``libcps3_pkcs11_lux.so``) reads its configuration from the
fixed path ``/etc/opt/santesocial/CPS/cps3_pkcs11.conf``, caches card contents
under ``/etc/opt/santesocial/CPS/cache`` and writes traces under
``/var/opt/santesocial/CPS/log``. :func:`private_opt_dirs` gives the calling
process (as root, on Linux) a private mount namespace where throw-away
directories are bound over ``/etc/opt`` and ``/var/opt``: the module loaded
afterwards in this process sees them, the machine never does, and they vanish
with the process. pcscd's socket and the vpcd TCP ports stay reachable.

Linux mount namespaces belong to a thread: call :func:`private_opt_dirs` from
the thread that will load and call the module (pytest's main thread), before
loading it; threads it starts later inherit the namespace.

:func:`ans_traces` reads the APDUs of the module's traces back (for tests that
check what it sent).
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import re
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from cps_middleware.errors import TestCardError

__all__ = [
    "ANS_CONF",
    "ANS_LOG_DIR",
    "ans_module_path",
    "ans_traces",
    "configure_ans",
    "private_opt_dirs",
]

ANS_CONF = Path("/etc/opt/santesocial/CPS/cps3_pkcs11.conf")
ANS_LOG_DIR = Path("/var/opt/santesocial/CPS/log")
_ANS_FILE = "libcps3_pkcs11_lux.so"

_CLONE_NEWNS = 0x00020000
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18

_lock = threading.Lock()
_done: dict[int, Path] = {}  # thread id -> its throw-away root


def ans_module_path(start: Path | None = None) -> Path | None:
    """``$CPS_ANS_MODULE``, else ``../shared/ans-cryptolib/`` beside the project root."""
    env = os.environ.get("CPS_ANS_MODULE")
    if env:
        return Path(env) if Path(env).is_file() else None
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        candidate = d.parent / "shared" / "ans-cryptolib" / _ANS_FILE
        if (d / "pyproject.toml").is_file() and candidate.is_file():
            return candidate
    return None


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def private_opt_dirs() -> Path:
    """Private ``/etc/opt`` and ``/var/opt`` for the calling thread; returns their root.

    Idempotent per thread. Raises :class:`~cps_middleware.errors.TestCardError`
    when the system does not allow it (not Linux, not root).
    """
    with _lock:
        tid = threading.get_ident()
        if tid in _done:
            return _done[tid]
        if not os.uname().sysname == "Linux" or os.geteuid() != 0:
            raise TestCardError("a private /etc/opt needs Linux and root (mount namespace)")
        libc = _libc()
        if libc.unshare(_CLONE_NEWNS) != 0:
            err = ctypes.get_errno()
            raise TestCardError(f"unshare(CLONE_NEWNS) failed: {os.strerror(err)}")
        if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
            err = ctypes.get_errno()
            raise TestCardError(f"making / private failed: {os.strerror(err)}")
        root = Path(tempfile.mkdtemp(prefix="cps-ans-opt-"))
        for name in ("etc_opt", "var_opt"):
            (root / name).mkdir()
        for src, dst in ((root / "etc_opt", "/etc/opt"), (root / "var_opt", "/var/opt")):
            Path(dst).mkdir(parents=True, exist_ok=True)
            if libc.mount(str(src).encode(), dst.encode(), None, _MS_BIND, None) != 0:
                err = ctypes.get_errno()
                raise TestCardError(f"bind mount over {dst} failed: {os.strerror(err)}")
        _done[tid] = root
        # the directories outlive the namespace: remove them at exit (unless traces
        # were asked for: then they are kept and their place printed)
        atexit.register(_cleanup, root)
        return root


_keep: set[Path] = set()


def _cleanup(root: Path) -> None:
    if root in _keep:
        print(f"ANS module traces kept in {root / 'var_opt'}", file=sys.stderr)
        return
    shutil.rmtree(root, ignore_errors=True)


def configure_ans(*, traces: bool = False, debug: int = 10) -> Path:
    """Write the module's configuration in the private ``/etc/opt`` (traces on or off)."""
    root = private_opt_dirs()
    if traces:
        _keep.add(root)
    ANS_CONF.parent.mkdir(parents=True, exist_ok=True)
    ANS_LOG_DIR.mkdir(parents=True, exist_ok=True)
    active = "true" if traces else "false"
    ANS_CONF.write_text(
        f"Traces\n{{\n\tactive = {active};\n\tdebug = {debug if traces else 0};\n}}\n"
    )
    return ANS_CONF


_APDU_RE = re.compile(r"(Outgoing|Incoming) APDU data \[\s*(\d+) bytes\] =+\n(.*?)\n=+", re.S)


def ans_traces(log_dir: Path = ANS_LOG_DIR) -> list[tuple[str, bytes]]:
    """Every APDU in the module's trace files, in order: ``("out"|"in", bytes)``."""
    out: list[tuple[str, bytes]] = []
    if not log_dir.is_dir():
        return out
    for path in sorted(log_dir.glob("cps3opsc_*.log")):
        text = path.read_text(errors="replace")
        for direction, count, body in _APDU_RE.findall(text):
            # 16 bytes a line as "XX " then an ASCII column: the count says where hex ends
            left, data = int(count), b""
            for line in body.splitlines():
                n = min(16, left)
                data += bytes.fromhex(line[: 3 * n])
                left -= n
            out.append(("out" if direction == "Outgoing" else "in", data))
    return out
