"""Start and stop pcscd with vpcd virtual readers, by PID, without systemd.

The reader layout is the one of ``scripts/pcscd.sh``: one reader.conf entry
``Virtual PCD <base>`` per base port (35963, 35965, 35967), each giving two
readers, ``Virtual PCD <base> 00 00`` on TCP ``base`` and ``... 00 01`` on
``base + 1``; and one reader *with a PIN pad*, ``CPS PIN pad 35969 00 00`` on
TCP 35969, served by the package's own driver ``_ifdpinpad.so``
(``native/pinpad/pinpad.c``: the vpcd protocol plus PC/SC part 10 secure PIN
entry, the keys typed by :attr:`VirtualCard.keypad`).

Each entry gets its *own copy* of ``libifdvpcd.so``: pcscd loads a driver
library once per path and vpcd keeps its sockets in per-library globals indexed
by slot, so entries sharing one library overwrite each other and only the last
entry's two ports ever accept a card (seen with vsmartcard 3.3 / pcsc-lite
1.9.9: ports 35963-35966 listened but were never polled).

There is one pcscd per machine (fixed socket ``/run/pcscd/pcscd.comm``):
:class:`PcscDaemon` adopts a running one through its pidfile, and
:meth:`PcscDaemon.restart` stops it by PID and starts it again with the same
layout.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from cps_middleware.errors import PcscServiceUnavailable, TestCardError
from cps_middleware.pcsc.context import PcscContext

__all__ = [
    "DEFAULT_BASE_PORTS",
    "DEFAULT_PIDFILE",
    "DEFAULT_PINPAD_PORTS",
    "PcscDaemon",
    "find_pcscd",
    "find_pinpad_driver",
    "find_vpcd_driver",
]

DEFAULT_BASE_PORTS = (35963, 35965, 35967)
DEFAULT_PINPAD_PORTS = (35969,)
DEFAULT_PIDFILE = "/tmp/cps-middleware-pcscd.pid"


def find_vpcd_driver() -> Path:
    """The vpcd IFD handler (Debian: ``vsmartcard-vpcd``)."""
    for pattern in ("/usr/lib/pcsc/drivers/serial/libifdvpcd.so*", "/usr/lib/**/libifdvpcd.so*"):
        hits = sorted(glob.glob(pattern, recursive=True))
        if hits:
            return Path(hits[0])
    raise TestCardError(
        "vpcd driver (libifdvpcd.so) not found",
        hint="apt-get install vsmartcard-vpcd",
    )


def find_pcscd() -> str | None:
    """The pcscd program: on PATH, else in the sbin folders an ordinary user's PATH
    lacks (Debian installs it as /usr/sbin/pcscd)."""
    extra = os.pathsep.join(("/usr/local/sbin", "/usr/sbin", "/sbin"))
    return shutil.which("pcscd", path=os.environ.get("PATH", os.defpath) + os.pathsep + extra)


def find_pinpad_driver() -> Path | None:
    """The package's PIN-pad reader driver (``_ifdpinpad.so``), None if not built."""
    path = Path(__file__).resolve().parent.parent / "_ifdpinpad.so"
    return path if path.is_file() else None


def pinpad_reader_name(port: int) -> str:
    """The PC/SC name of the PIN-pad reader on ``port``."""
    return f"CPS PIN pad {port} 00 00"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    try:  # a zombie child is not a running daemon
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:  # pragma: no cover - non-Linux
        return True


class PcscDaemon:
    """pcscd in the foreground with vpcd readers, managed by PID (see module doc)."""

    def __init__(
        self,
        *,
        base_ports: tuple[int, ...] = DEFAULT_BASE_PORTS,
        pinpad_ports: tuple[int, ...] = DEFAULT_PINPAD_PORTS,
        pidfile: str | os.PathLike[str] | None = None,
    ) -> None:
        self.base_ports = base_ports
        self.pinpad_ports = pinpad_ports if find_pinpad_driver() is not None else ()
        self.pidfile = Path(pidfile or os.environ.get("CPS_PCSCD_PIDFILE") or DEFAULT_PIDFILE)
        self._proc: subprocess.Popen[bytes] | None = None
        self._confdir: str | None = None

    # -- state ------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """PID of the managed (or adopted) pcscd, if it runs."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def layout_problem(self) -> str | None:
        """Why the running pcscd's vpcd readers cannot all work, or ``None``.

        Reads the running daemon's ``--config`` directory: reader.conf entries
        sharing one ``LIBPATH`` share vpcd's sockets (see the module doc).
        """
        pid = self.pid
        if pid is None:
            return None
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        args = [a.decode(errors="replace") for a in argv]
        if "--config" not in args or args.index("--config") + 1 >= len(args):
            return None
        confdir = Path(args[args.index("--config") + 1])
        libs: list[str] = []
        for conf in sorted(confdir.iterdir()) if confdir.is_dir() else []:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                libs += [
                    line.split(None, 1)[1].strip()
                    for line in conf.read_text().splitlines()
                    if line.startswith("LIBPATH") and len(line.split(None, 1)) == 2
                ]
        shared = sorted({lib for lib in libs if libs.count(lib) > 1})
        if not shared:
            return None
        return (
            f"pcscd (PID {pid}) loads {shared[0]} for {libs.count(shared[0])} reader.conf "
            "entries: vpcd then serves only the last entry's two ports; give each entry "
            "its own copy of the driver (python -m cps_middleware.testing.pcscd restart)"
        )

    @property
    def reader_names(self) -> list[str]:
        vpcd = [f"Virtual PCD {b} 00 {s:02X}" for b in self.base_ports for s in (0, 1)]
        return vpcd + [pinpad_reader_name(p) for p in self.pinpad_ports]

    # -- start / stop -------------------------------------------------------------------

    def write_config(self, directory: str | os.PathLike[str]) -> Path:
        """Write the reader.conf (and one driver copy per entry) into ``directory``."""
        directory = Path(directory)
        conf, libs = directory / "conf", directory / "lib"
        conf.mkdir(parents=True, exist_ok=True)
        libs.mkdir(parents=True, exist_ok=True)
        driver = find_vpcd_driver()
        entries = []
        for port in self.base_ports:
            lib = libs / f"libifdvpcd-{port}.so"
            shutil.copyfile(driver, lib)
            entries.append(
                f'FRIENDLYNAME "Virtual PCD {port}"\n'
                f"DEVICENAME   /dev/null:0x{port:X}\n"
                f"LIBPATH      {lib}\n"
                f"CHANNELID    0x{port:X}\n"
            )
        (conf / "vpcd").write_text("\n".join(entries))
        pad = find_pinpad_driver()
        pads = [
            f'FRIENDLYNAME "CPS PIN pad {port}"\n'
            f"DEVICENAME   cps-pinpad:{port}\n"
            f"LIBPATH      {pad}\n"
            f"CHANNELID    {port}\n"
            for port in self.pinpad_ports
        ]
        if pads:
            (conf / "cps-pinpad").write_text("\n".join(pads))
        return conf

    def start(self, *, timeout: float = 5.0) -> int:
        """Start pcscd; return its PID once every virtual reader is listed."""
        if self.running:
            raise TestCardError(
                f"pcscd already runs (PID {self.pid})",
                hint="stop it first, or use the running one",
            )
        pcscd = find_pcscd()
        if pcscd is None:
            raise TestCardError("pcscd not found", hint="apt-get install pcscd")
        self._confdir = tempfile.mkdtemp(prefix="cps-pcscd-")
        conf = self.write_config(self._confdir)
        Path("/run/pcscd").mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [pcscd, "--foreground", "--config", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.pidfile.write_text(f"{self._proc.pid}\n")
        self.wait_ready(timeout=timeout)
        return self._proc.pid

    def wait_ready(self, *, timeout: float = 5.0) -> None:
        """Wait until pcscd answers and lists every virtual reader."""
        deadline = time.monotonic() + timeout
        wanted = set(self.reader_names)
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise TestCardError(f"pcscd exited with status {self._proc.returncode}")
            try:
                with PcscContext() as ctx:
                    if wanted <= set(ctx.list_reader_names()):
                        return
            except PcscServiceUnavailable as exc:
                last = exc
            # pcscd offers no "ready" notification to a process that is not its client yet.
            time.sleep(0.01)
        raise TestCardError(f"pcscd not ready within {timeout} s") from last

    def stop(self, *, timeout: float = 5.0) -> None:
        """Stop pcscd by PID (SIGTERM, then SIGKILL) and wait until it is gone."""
        pid = self.pid
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _pid_alive(pid) and time.monotonic() < deadline:
                if self._proc is not None and self._proc.pid == pid:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self._proc.wait(timeout=0.05)
                else:
                    time.sleep(0.02)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self._proc is not None:
            self._proc.wait()
            self._proc = None
        self.pidfile.unlink(missing_ok=True)
        if self._confdir is not None:
            shutil.rmtree(self._confdir, ignore_errors=True)
            self._confdir = None

    def restart(self, *, timeout: float = 5.0) -> int:
        """Stop pcscd by PID and start it again with the same readers."""
        self.stop(timeout=timeout)
        return self.start(timeout=timeout)

    def __enter__(self) -> PcscDaemon:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m cps_middleware.testing.pcscd start|stop|restart [PIDFILE]``."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    cmd = args[0] if args else "start"
    daemon = PcscDaemon(pidfile=args[1] if len(args) > 1 else None)
    if cmd not in ("start", "stop", "restart"):
        print(f"usage: {sys.argv[0]} start|stop|restart [PIDFILE]", file=sys.stderr)
        return 2
    try:
        if cmd == "stop":
            daemon.stop()
            return 0
        pid = daemon.start() if cmd == "start" else daemon.restart()
    except TestCardError as exc:
        if daemon._proc is not None:  # started here but not ready: do not leave it behind
            daemon.stop()
        print(f"pcscd: {exc}", file=sys.stderr)
        return 1
    daemon._proc = None  # leave it running after we exit
    print(pid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
