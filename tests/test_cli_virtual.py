"""``cps testcard create --virtual``: a virtual CPS3 served by the command, for real middleware.

The command runs as a separate process (``python -m cps_middleware.cli``), as a
developer or a CI script would start it; the card is in the vpcd reader of
port 35966 (``Virtual PCD 35965 00 01``, the fourth reader, within the 16
slots OpenSC shows). ``pkcs11-tool`` (the line the command prints) and the
library's ``discover()`` through OpenSC's ``opensc-pkcs11.so`` must see it;
SIGTERM or Ctrl-C must end the command with exit 0 and an empty reader.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from cps_middleware.cli import EXIT_ERROR, EXIT_OK, EXIT_PIN, EXIT_USAGE, main
from cps_middleware.pcsc.readers import list_readers
from cps_middleware.testing.pcscd import PcscDaemon
from cps_middleware.testing.vpcd import vpcd_reader_name

pytestmark = pytest.mark.pcsc

PORT = 35966
READER = vpcd_reader_name(PORT)  # "Virtual PCD 35965 00 01"
Capture = pytest.CaptureFixture[str]


def _card_present(reader: str) -> bool:
    found = [r for r in list_readers(allow_empty=True) if r.name == reader]
    assert found, f"pcscd has no reader {reader!r}"
    return bool(found[0].card_present)


class _Command:
    """``cps testcard create --virtual --port 35966 ...`` in a child process.

    Threads read its stdout and stderr as they come (a line is waited for with a
    timeout; buffered output is never missed by a select on the pipe).
    """

    def __init__(self, *options: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cps_middleware.cli", "testcard", "create", "--virtual",
             "--port", str(PORT), *options],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.err: list[str] = []
        self.threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, True)),
                        threading.Thread(target=self._pump, args=(self.proc.stderr, False))]
        for t in self.threads:
            t.start()

    def _pump(self, stream: IO[str] | None, out: bool) -> None:
        assert stream is not None
        for line in stream:
            if out:
                self.lines.put(line)
            else:
                self.err.append(line)
        if out:
            self.lines.put(None)

    def read_line(self, timeout: float = 60.0) -> str:
        """The next stdout line; fails (with stderr) if the command ends or stays silent."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no output from the command within {timeout:.0f} s")
        if line is None:
            self.proc.wait(timeout=10)
            self.threads[1].join(timeout=10)
            pytest.fail(f"the command ended with exit code {self.proc.returncode}: "
                        f"{''.join(self.err)}")  # fmt: skip
        return line

    def stop(self, sig: int) -> tuple[int, str, str]:
        """Send *sig*; the exit code, the rest of stdout and all of stderr."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        assert time.monotonic() - t0 < 15, "the command took too long to remove the card"
        for t in self.threads:
            t.join(timeout=10)
        rest = []
        while (line := self.lines.get_nowait()) is not None:
            rest.append(line)
        return code, "".join(rest), "".join(self.err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for t in self.threads:
            t.join(timeout=10)


@pytest.fixture
def command() -> Iterator[Callable[..., _Command]]:
    """Starts the command; any still running at the end is killed (by its handle)."""
    started: list[_Command] = []

    def start(*options: str) -> _Command:
        started.append(_Command(*options))
        return started[-1]

    yield start
    for cmd in started:
        cmd.kill()


@pytest.fixture
def empty_reader(cps_pcscd: PcscDaemon) -> str:
    if _card_present(READER):
        pytest.fail(f"{READER!r} is not empty before the test: another program serves a card")
    return READER


def _slot_block(listing: str, reader: str) -> str:
    """The lines of ``pkcs11-tool -L`` for the slot of *reader*."""
    blocks = re.split(r"(?m)^(?=Slot \d+)", listing)
    mine = [b for b in blocks if b.splitlines()[0].rstrip().endswith(": " + reader)]
    assert len(mine) == 1, listing
    return mine[0]


def _field(block: str, name: str) -> str:
    m = re.search(rf"(?m)^\s*{re.escape(name)}\s*:\s*(.*?)\s*$", block)
    assert m, block
    return m.group(1)


def test_virtual_card_is_seen_by_opensc_and_discovery_until_sigterm(
    command: Callable[..., _Command], empty_reader: str, cps_opensc_module: str, capsys: Capture
) -> None:
    from cps_middleware.discovery import discover

    t0 = time.monotonic()
    cmd = command("--json", "--given-name", "VIRTUELLE", "--surname", "CLI-TEST",
                  "--rpps", "10005550001", "--pin", "4321")  # fmt: skip
    line = cmd.read_line()
    ready_s = time.monotonic() - t0
    info = json.loads(line)
    assert info["reader"] == empty_reader and info["port"] == PORT
    assert (info["label"], info["pin"], info["puk"]) == ("CPS", "4321", "12345678")
    assert re.fullmatch(r"\d{10}", info["serial"]), info
    assert info["atr"].startswith("3B ")
    assert info["pid"] == cmd.proc.pid
    assert (info["holder"]["given_name"], info["holder"]["surname"]) == ("VIRTUELLE", "CLI-TEST")
    assert info["holder"]["ps_id_nat"] == "810005550001" and info["holder"]["is_test_card"]
    assert info["module"]
    assert os.path.realpath(info["module"]) == os.path.realpath(cps_opensc_module)
    assert info["pkcs11_tool"] == f"pkcs11-tool --module {shlex.quote(info['module'])} -L"
    assert _card_present(empty_reader)

    # The printed line, pasted as is: OpenSC's token in that reader, with the card's serial.
    listing = subprocess.run(shlex.split(info["pkcs11_tool"]), capture_output=True, text=True,
                             timeout=60, check=True).stdout  # fmt: skip
    slot = _slot_block(listing, empty_reader)
    assert _field(slot, "token label") == info["label"], slot
    assert _field(slot, "serial num") == info["serial"], slot

    found = [c for c in discover(module_path=cps_opensc_module) if c.reader == empty_reader]
    assert len(found) == 1, found
    card = found[0]
    assert card.generation is not None and card.generation.value == "CPS3"
    assert card.atr_hex == info["atr"]
    assert card.token is not None, card.pkcs11_error
    assert card.token.serial == info["serial"]
    assert card.holder is not None and card.holder.ps_id_nat == "810005550001"

    # A second card for the same reader is refused while this one is in it.
    code = main(["testcard", "create", "--virtual", "--port", str(PORT)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_ERROR and len(lines) == 1, lines
    assert lines[0].startswith("cps: error: a card is already in") and " — " in lines[0]  # hint
    assert cmd.proc.poll() is None  # the first card is still served

    code, out, err = cmd.stop(signal.SIGTERM)
    assert code == EXIT_OK, err
    assert out == "" and err == ""  # --json: the one line, then nothing
    assert not _card_present(empty_reader)
    assert not [c for c in discover(pkcs11=False) if c.reader == empty_reader]
    print(f"ready in {ready_s:.2f} s")


def test_virtual_card_text_output_and_ctrl_c(
    command: Callable[..., _Command], empty_reader: str
) -> None:
    cmd = command()
    lines = [cmd.read_line()]
    while not lines[-1].startswith("Ctrl-C"):
        lines.append(cmd.read_line())
    text = "".join(lines)
    assert lines[0].startswith(f"Virtual CPS3 in {empty_reader} (vpcd port {PORT}): token CPS, "
                               "serial "), text  # fmt: skip
    assert re.fullmatch(r".*serial \d{10}\n", lines[0]), text  # not wrapped
    assert "Holder: JEAN MEDECIN-TEST" in text and "PIN 1234, PUK 12345678" in text
    tool = [ln for ln in lines if ln.startswith("pkcs11-tool --module ")]
    assert len(tool) == 1 and tool[0].rstrip().endswith(" -L"), text
    assert _card_present(empty_reader)

    code, out, err = cmd.stop(signal.SIGINT)
    assert code == EXIT_OK, err
    assert out.strip() == f"Virtual CPS3 removed from {empty_reader}" and err == ""
    assert not _card_present(empty_reader)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "argument --port: 70000 is not a TCP port (1 to 65535)"),
        (["--port", "x"], "argument --port: not a port number: 'x'"),
        (["--pin", "12"], "argument --pin: the PIN of a test card is 4 to 8 digits"),
        (["--puk", "1234"], "argument --puk: the unblocking code (PUK) of a test card is 8 digits"),
        (["--latency-ms", "5"], "--latency-ms cannot be used with --virtual"),
        (["--name", "x"], "--name cannot be used with --virtual"),
    ],
)
def test_bad_input_is_a_usage_error_in_one_line(
    capsys: Capture, argv: list[str], message: str
) -> None:
    code = main(["testcard", "create", "--virtual", *argv])
    out, err = capsys.readouterr()
    assert code == EXIT_USAGE and out == ""
    errors_ = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(errors_) == 1 and errors_[0].startswith("cps testcard create: error: "), err
    assert message in errors_[0], err
    assert "Traceback" not in err


def test_port_without_a_vpcd_reader_is_an_error_with_a_hint(
    capsys: Capture, cps_pcscd: PcscDaemon
) -> None:
    code = main(["testcard", "create", "--virtual", "--port", "35999"])
    out, err = capsys.readouterr()
    assert code == EXIT_ERROR and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cps: error: port 35999 is not a vpcd port")
    assert "— use a port of the scripts/pcscd.sh readers (35963 to 35968)" in lines[0]


def test_softhsm_test_card_takes_the_same_holder_and_pin_options(
    capsys: Capture, tmp_path: Path
) -> None:
    cards = str(tmp_path / "cards")
    code = main(["testcard", "--cards-dir", cards, "create", "--name", "opts", "--json",
                 "--given-name", "ANNE", "--surname", "SOFTHSM-TEST", "--profession", "21",
                 "--pin", "9876", "--puk", "87654321"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    info = json.loads(out)
    assert info["label"] == "CPS ANNE SOFTHSM-TEST"
    env = {**os.environ, **info["env"]}

    def cps(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cps_middleware.cli", *argv], input=stdin,
                              env=env, capture_output=True, text=True, timeout=120)  # fmt: skip

    card = ["--module", info["module"], "--serial", info["serial"]]
    shown = cps("info", "--json", *card)
    assert shown.returncode == EXIT_OK, shown.stderr
    holder = json.loads(shown.stdout)["holder"]
    assert (holder["given_name"], holder["surname"]) == ("ANNE", "SOFTHSM-TEST")
    assert holder["profession"]["code"] == "21"
    wrong = cps("pin", *card, "verify", stdin="1234\n")  # the default PIN is not this card's
    assert wrong.returncode == EXIT_PIN, wrong.stderr
    right = cps("pin", *card, "verify", stdin="9876\n")
    assert right.returncode == EXIT_OK, right.stderr
    assert main(["testcard", "--cards-dir", cards, "delete", "opts"]) == EXIT_OK
