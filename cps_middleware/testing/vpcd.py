"""A virtual smart card for pcscd's vpcd driver, and a simple CPS card model.

vsmartcard's vpcd driver makes pcscd show virtual readers; each listens on a
TCP port (35963, 35964 ... see ``scripts/pcscd.sh``). A card is a TCP
*client*: connecting inserts it, closing removes it. Every message in both
directions is a big-endian uint16 length followed by the bytes. One-byte
messages are control: ``00`` power off, ``01`` power on, ``02`` reset, ``04``
get ATR (answered with the ATR); anything longer is a command APDU, answered
with the response APDU.

:class:`VirtualCard` runs that protocol in a thread of the test process and
drives any :class:`CardModel`; :class:`SimpleCpsCard` is a small CPS-shaped
model (files, SELECT, READ BINARY, VERIFY with a 3-try counter, GET RESPONSE).
"""

from __future__ import annotations

import contextlib
import enum
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, runtime_checkable

from cps_middleware.cards.atr import ATR_TABLE
from cps_middleware.errors import PcscError, TestCardError
from cps_middleware.pcsc.readers import wait_for_reader
from cps_middleware.testing.pcscd import DEFAULT_PINPAD_PORTS, PcscDaemon, pinpad_reader_name

__all__ = [
    "CPS3_AID",
    "CPS3_ATR",
    "CPS4_AID_CHIPDOC",
    "CPS4_AID_CPS2TER",
    "CPS4_ATR",
    "NON_CPS_ATR",
    "CardModel",
    "Keypad",
    "SimpleCpsCard",
    "VirtualCard",
    "vpcd_reader_name",
]

CPS3_ATR = next(p.atr for p in ATR_TABLE if p.name == "CPS3 contact")
CPS4_ATR = next(p.atr for p in ATR_TABLE if p.name == "CPS4")
#: A MIFARE Classic 1K as a PC/SC contactless reader shows it: a card that is not a CPS.
NON_CPS_ATR = bytes.fromhex("3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A")

CPS3_AID = bytes.fromhex("E8 28 BD 08 0F 80 25 00 00 01 FF 00 10")
CPS4_AID_CHIPDOC = bytes.fromhex("80 25 00 00 01 FF 01 00")
CPS4_AID_CPS2TER = bytes.fromhex("80 25 00 00 01 FF 00 02")

_VPCD_BASE_PORTS = (35963, 35965, 35967)  # scripts/pcscd.sh: one vpcd entry per pair of ports


def vpcd_reader_name(port: int, *, base_ports: tuple[int, ...] = _VPCD_BASE_PORTS) -> str:
    """The PC/SC reader name of the vpcd reader listening on ``port`` (pcscd.sh layout).

    Each reader.conf entry ``Virtual PCD <base>`` gives two readers: slot ``00``
    on ``base`` and slot ``01`` on ``base + 1``. The PIN-pad reader's port
    (35969) gives ``CPS PIN pad 35969 00 00``.
    """
    if port in DEFAULT_PINPAD_PORTS:
        return pinpad_reader_name(port)
    for base in base_ports:
        if port in (base, base + 1):
            return f"Virtual PCD {base} 00 {port - base:02X}"
    raise TestCardError(f"port {port} is not a vpcd port of this layout {base_ports}")


@runtime_checkable
class CardModel(Protocol):
    """What a virtual card answers; :class:`VirtualCard` carries the bytes."""

    atr: bytes

    def reset(self) -> None:
        """Power on / reset: clear volatile state (PIN verified, selection), keep counters."""

    def process(self, apdu: bytes) -> bytes:
        """A command APDU in, the response APDU (data + SW1 SW2) out."""


_CTRL_POWER_OFF, _CTRL_POWER_ON, _CTRL_RESET, _CTRL_GET_ATR = 0, 1, 2, 4
_CTRL_KEYPAD = 0x10  # the PIN-pad reader asks for the keys typed: 10 <timeout s>
_MAX_KEYS = 64  # what the reader reads of one entry (native/pinpad/pinpad.c)


class Keypad:
    """The person at a PIN-pad reader (``CPS PIN pad ...``, ``_ifdpinpad.so``).

    When the middleware asks the reader for secure PIN entry, the reader reads
    this keypad: each :meth:`type` (or :meth:`cancel`) is one entry, used by
    one PIN request, in order; with none queued the reader waits up to its
    timeout and then answers "timeout" (SW 64 00), as a real PIN pad does.
    The digits go to the reader driver, never to the middleware.
    """

    _CANCEL = b"\x1b"

    def __init__(self) -> None:
        self._entries: list[bytes] = []
        self._cond = threading.Condition()
        self.requests = 0  #: PIN requests the reader made (answered or timed out)
        self.max_wait: float | None = None  #: cap on the reader's timeout (tests), seconds
        #: when set, asked for each PIN request instead of the queue (``cps testcard
        #: create --virtual --pin-pad`` prompts a person): digits, "" to cancel
        self.source: Callable[[float], str] | None = None

    def type(self, digits: str) -> None:
        """Queue one PIN entry: the digits (at most 64), then the OK key."""
        if not (digits.isascii() and digits.isdigit() and len(digits) <= _MAX_KEYS):
            raise TestCardError(f"a PIN pad has digits only: 1 to {_MAX_KEYS} of them")
        self._push(digits.encode("ascii"))

    def cancel(self) -> None:
        """Queue one press of the cancel key."""
        self._push(self._CANCEL)

    def walk_away(self) -> None:
        """Queue one request left unanswered: the reader times out at once."""
        self._push(b"")

    def _push(self, entry: bytes) -> None:
        with self._cond:
            self._entries.append(entry)
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        """Entries typed and not yet read by the reader."""
        with self._cond:
            return len(self._entries)

    def _read(self, timeout: float) -> bytes:
        if self.max_wait is not None:
            timeout = min(timeout, self.max_wait)
        source = self.source
        if source is not None:
            self.requests += 1
            digits = source(timeout)
            ok = digits.isascii() and digits.isdigit() and len(digits) <= _MAX_KEYS
            return digits.encode("ascii") if ok else self._CANCEL
        with self._cond:
            self.requests += 1
            if not self._cond.wait_for(lambda: bool(self._entries), timeout=timeout):
                return b""  # nothing typed in time: the reader answers "timeout"
            return self._entries.pop(0)


class VirtualCard:
    """A card in a vpcd reader: :meth:`insert` connects, :meth:`remove` disconnects.

    ``apdu_log`` keeps every ``(command, response)`` pair. Use as a context
    manager to insert on entry and remove on exit. ``reader`` is the PC/SC name
    of the reader (derived from ``port`` for the ``scripts/pcscd.sh`` layout);
    :meth:`insert` and :meth:`remove` wait until pcscd reports the card there /
    gone, because pcscd can miss an insertion that follows a removal too closely.
    """

    def __init__(
        self,
        model: CardModel,
        *,
        port: int = 35963,
        host: str = "127.0.0.1",
        reader: str | None = None,
    ) -> None:
        self.model = model
        self.port = port
        self.host = host
        self.reader = reader if reader is not None else vpcd_reader_name(port)
        self.apdu_log: list[tuple[bytes, bytes]] = []
        self.inserted_at: float | None = None  #: time.monotonic() of the TCP connection
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.powered = False
        self.error: BaseException | None = None  #: an exception raised by the model, if any
        self.keypad = Keypad()  #: the keys typed on a PIN-pad reader
        self._pull_on: Callable[[bytes], bool] | None = None

    # -- insertion ----------------------------------------------------------------

    @property
    def inserted(self) -> bool:
        return self._sock is not None

    def insert(self, *, wait: bool = True, timeout: float = 10.0) -> None:
        """Connect to the vpcd reader; with ``wait``, return once pcscd shows the card."""
        with self._lock:
            if self._sock is not None:
                raise TestCardError("the virtual card is already inserted")
            try:
                sock = socket.create_connection((self.host, self.port), timeout=timeout)
            except OSError as exc:
                raise TestCardError(
                    f"cannot reach the vpcd reader on {self.host}:{self.port}: {exc}",
                    hint=_pcscd_hint("start pcscd with the vpcd driver: scripts/pcscd.sh start"),
                ) from exc
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _quickack(sock)
            self._sock = sock
            self.inserted_at = time.monotonic()
            self._thread = threading.Thread(
                target=self._serve, args=(sock,), name=f"vpcd-card-{self.port}"
            )
            self._thread.start()
        if wait:
            try:
                wait_for_reader(self.reader, card_present=True, timeout=timeout)
            except PcscError as exc:
                raise TestCardError(
                    f"pcscd did not show the virtual card in {self.reader!r} "
                    f"within {timeout:.1f} s",
                    hint=_pcscd_hint("check that pcscd runs with the vpcd readers"),
                ) from exc

    def remove(self, *, wait: bool = True, timeout: float = 10.0) -> None:
        """Disconnect; with ``wait``, return once pcscd reports the reader empty."""
        with self._lock:
            sock, thread = self._sock, self._thread
            self._sock = self._thread = None
        if sock is None:
            return
        with contextlib.suppress(OSError):  # vpcd (or pcscd) already closed it
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        if thread is not None:
            thread.join()
        self.powered = False
        if wait:
            wait_for_reader(self.reader, card_present=False, timeout=timeout)

    def pull_on(self, command: Callable[[bytes], bool]) -> None:
        """Pull the card out the next time a command APDU for which ``command`` is
        true arrives: the card never answers it (a holder who pulls the card while
        the reader waits for the answer). Once; :meth:`insert` puts it back."""
        self._pull_on = command

    def _pulled_mid_command(self, sock: socket.socket) -> None:
        with self._lock:
            if self._sock is sock:
                self._sock = self._thread = None
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        self.powered = False

    def __enter__(self) -> VirtualCard:
        self.insert()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    # -- the vpcd protocol ------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                msg = _recv_message(sock)
                if msg is None:
                    return
                if len(msg) == 1:
                    self._control(sock, msg[0])
                    continue
                if len(msg) == 2 and msg[0] == _CTRL_KEYPAD:  # only the PIN-pad reader
                    _send_message(sock, self.keypad._read(float(msg[1])))
                    continue
                pull, self._pull_on = self._pull_on, None
                if pull is not None and pull(msg):
                    self._pulled_mid_command(sock)
                    return
                self._pull_on = pull
                try:
                    response = self.model.process(msg)
                except Exception as exc:  # a bug in a model must not hang pcscd's reader
                    self.error = exc
                    response = b"\x6f\x00"
                self.apdu_log.append((msg, response))
                _send_message(sock, response)
        except OSError:
            return  # removed (socket closed) or pcscd went away

    def _control(self, sock: socket.socket, code: int) -> None:
        if code == _CTRL_GET_ATR:
            _send_message(sock, self.model.atr)
        elif code in (_CTRL_POWER_ON, _CTRL_RESET):
            self.model.reset()
            self.powered = True
        elif code == _CTRL_POWER_OFF:
            self.powered = False


def _pcscd_hint(default: str) -> str:
    """The known pcscd misconfiguration if there is one, else ``default``."""
    return PcscDaemon().layout_problem() or default


def _quickack(sock: socket.socket) -> None:
    # Linux turns delayed ACKs back on after each read: re-arm quick ACKs every
    # time, else every APDU waits ~40 ms for the peer's delayed ACK.
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:
        sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    _quickack(sock)
    return bytes(buf)


def _recv_message(sock: socket.socket) -> bytes | None:
    head = _recv_exact(sock, 2)
    if head is None:
        return None
    (length,) = struct.unpack(">H", head)
    if length == 0:
        return b""
    return _recv_exact(sock, length)


def _send_message(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(struct.pack(">H", len(payload)) + payload)


# ---------------------------------------------------------------------------------
# A simple CPS card model
# ---------------------------------------------------------------------------------


class _Kind(enum.Enum):
    DF = "DF"
    EF = "EF"


@dataclass
class _File:
    fid: int
    kind: _Kind
    data: bytes = b""
    aid: bytes | None = None
    parent: _File | None = None
    children: dict[int, _File] = field(default_factory=dict)

    def add(self, child: _File) -> _File:
        child.parent = self
        self.children[child.fid] = child
        return child

    def fcp(self) -> bytes:
        fid = self.fid.to_bytes(2, "big")
        if self.kind is _Kind.EF:
            body = (
                b"\x80\x02"
                + len(self.data).to_bytes(2, "big")
                + b"\x82\x01\x01\x83\x02"
                + fid
                + b"\x8a\x01\x05\xa1\x05\x8c\x03\x03\xff\x00"
            )
        else:
            body = b"\x82\x01\x38\x83\x02" + fid
            if self.aid:
                body += b"\x84" + bytes([len(self.aid)]) + self.aid
            body += b"\x8a\x01\x05\xa1\x05\x8c\x03\x42\xff\xff"
        return b"\x62" + bytes([len(body)]) + body


def _sw(value: int) -> bytes:
    return value.to_bytes(2, "big")


@dataclass
class _Channel:
    df: _File
    ef: _File | None = None


class SimpleCpsCard:
    """A CPS-shaped card: enough for discovery, PIN status and simple reads.

    Files: MF ``3F00`` with EF.DIR ``2F00``, EF.SN.ICC ``D003`` (12 bytes
    ``5A 0A 80 25 00 00 01`` + BCD serial), the generation's applications as
    DFs selectable by AID (CPS3: IAS ``E8 28 BD ...`` at ``3F00/0001``; CPS4:
    ChipDoc and CPS2ter applets), plus any ``extra_files`` (``{path: bytes}``,
    path as hex FIDs below the MF, e.g. ``"0001/5031"``).

    The holder PIN (reference ``01``, global) has a 3-try counter: VERIFY with
    data answers ``90 00`` / ``63 Cx`` / ``69 83``; VERIFY without data is a
    status query that spends nothing. A reset clears "PIN verified", not the
    counter. Case-4 commands sent without Le (T=0 style) get ``61 xx`` and the
    data through GET RESPONSE.
    """

    def __init__(
        self,
        generation: str = "CPS3",
        *,
        atr: bytes | None = None,
        pin: str = "1234",
        max_tries: int = 3,
        serial: str = "0123456789",
        extra_files: Mapping[str, bytes] | None = None,
    ) -> None:
        if generation not in ("CPS3", "CPS4"):
            raise TestCardError(f"generation must be 'CPS3' or 'CPS4', not {generation!r}")
        if not (pin.isdigit() and 4 <= len(pin) <= 8):
            raise TestCardError("the PIN of a test card is 4 to 8 digits")
        if not (serial.isdigit() and len(serial) == 10):
            raise TestCardError("the serial is 10 digits (5 BCD bytes)")
        self.generation = generation
        self.atr = atr if atr is not None else (CPS3_ATR if generation == "CPS3" else CPS4_ATR)
        self._pin = pin.encode("ascii")
        self.max_tries = max_tries
        self.tries_left = max_tries
        self.pin_verified = False
        self.serial = serial
        self.mf = _File(0x3F00, _Kind.DF)
        self.mf.add(
            _File(0xD003, _Kind.EF, b"\x5a\x0a\x80\x25\x00\x00\x01" + bytes.fromhex(serial))
        )
        if generation == "CPS3":
            apps = [(0x0001, CPS3_AID, "CPS3")]
        else:
            apps = [(0x0010, CPS4_AID_CHIPDOC, "CPS4"), (0x0020, CPS4_AID_CPS2TER, "CPS2ter")]
        ef_dir = b""
        for fid, aid, label in apps:
            self.mf.add(_File(fid, _Kind.DF, aid=aid))
            record = (
                b"\x4f"
                + bytes([len(aid)])
                + aid
                + b"\x50"
                + bytes([len(label)])
                + label.encode()
                + b"\x51\x04\x3f\x00"
                + fid.to_bytes(2, "big")
            )
            ef_dir += b"\x61" + bytes([len(record)]) + record
        self.mf.add(_File(0x2F00, _Kind.EF, ef_dir))
        for path, data in (extra_files or {}).items():
            self._put(path, data)
        self._channels: dict[int, _Channel] = {}
        self._pending = b""  # data waiting for GET RESPONSE
        self.reset()

    @classmethod
    def cps3(cls, **kw: object) -> SimpleCpsCard:
        return cls("CPS3", **kw)  # type: ignore[arg-type]

    @classmethod
    def cps4(cls, **kw: object) -> SimpleCpsCard:
        return cls("CPS4", **kw)  # type: ignore[arg-type]

    def _put(self, path: str, data: bytes) -> None:
        fids = [int(p, 16) for p in path.strip("/").split("/") if p]
        if not fids:
            raise TestCardError(f"empty file path {path!r}")
        if fids[0] == 0x3F00:
            fids = fids[1:]
        node = self.mf
        for fid in fids[:-1]:
            node = node.children.get(fid) or node.add(_File(fid, _Kind.DF))
        node.add(_File(fids[-1], _Kind.EF, data))

    # -- CardModel ----------------------------------------------------------------

    def reset(self) -> None:
        """Power on / reset: clear the verified PIN and the selection."""
        self.pin_verified = False
        self._channels = {0: _Channel(self.mf)}
        self._pending = b""

    def process(self, apdu: bytes) -> bytes:
        """One command APDU in, the response APDU out."""
        if len(apdu) < 4:
            return _sw(0x6700)
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        data, le, ok = _split_body(body)
        if not ok:
            return _sw(0x6700)
        if cla == 0xFF or cla & 0x80:
            return _sw(0x6E00)
        channel_no = cla & 0x03
        if ins == 0xC0:  # GET RESPONSE
            return self._get_response(le)
        self._pending = b""
        channel = self._channels.get(channel_no)
        if channel is None:
            if channel_no == 0:
                return _sw(0x6881)  # pragma: no cover - channel 0 always exists
            # CPS4: applets are selected on logical channel 1 without MANAGE CHANNEL.
            channel = self._channels.setdefault(channel_no, _Channel(self.mf))
        handler = {
            0xA4: self._select,
            0xB0: self._read_binary,
            0x20: self._verify,
        }.get(ins)
        if handler is None:
            return _sw(0x6D00)
        resp = handler(channel, p1, p2, data, le)
        return self._deliver(resp, le)

    # -- helpers ----------------------------------------------------------------------

    def _deliver(self, resp: bytes, le: int | None) -> bytes:
        """Answer with data directly when Le was sent; T=0 style (61 xx) otherwise."""
        payload, sw = resp[:-2], resp[-2:]
        if not payload:
            return resp
        if le is None:
            self._pending = payload + sw
            return b"\x61" + bytes([min(len(payload), 256) & 0xFF])
        return payload[:le] + sw

    def _get_response(self, le: int | None) -> bytes:
        if not self._pending:
            return _sw(0x6985)
        payload, sw = self._pending[:-2], self._pending[-2:]
        n = 256 if le is None else le
        chunk, rest = payload[:n], payload[n:]
        if rest:
            self._pending = rest + sw
            return chunk + b"\x61" + bytes([min(len(rest), 256) & 0xFF])
        self._pending = b""
        return chunk + sw

    def _find_aid(self, aid: bytes) -> _File | None:
        stack = [self.mf]
        while stack:
            node = stack.pop()
            if node.aid is not None and node.aid[: len(aid)] == aid and aid:
                return node
            stack.extend(c for c in node.children.values() if c.kind is _Kind.DF)
        return None

    def _select(self, ch: _Channel, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        target: _File | None
        if p1 == 0x04:  # by DF name (AID)
            target = self._find_aid(data)
        elif p1 == 0x00:  # MF, or a FID among the current DF's children / the DF itself
            if not data or data == b"\x3f\x00":
                target = self.mf
            elif len(data) != 2:
                return _sw(0x6A87)
            else:
                fid = int.from_bytes(data, "big")
                target = ch.df.children.get(fid) or (
                    ch.df.parent if ch.df.parent and ch.df.parent.fid == fid else None
                )
        elif p1 in (0x01, 0x02):  # child DF / EF under the current DF
            if len(data) != 2:
                return _sw(0x6A87)
            target = ch.df.children.get(int.from_bytes(data, "big"))
            want = _Kind.DF if p1 == 0x01 else _Kind.EF
            if target is not None and target.kind is not want:
                target = None
        elif p1 in (0x08, 0x09):  # path from the MF / from the current DF
            if not data or len(data) % 2:
                return _sw(0x6A87)
            fids = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
            node: _File | None = self.mf if (p1 == 0x08 or fids[0] == 0x3F00) else ch.df
            if fids[0] == 0x3F00:
                fids = fids[1:]
            for fid in fids:
                node = node.children.get(fid) if node is not None else None
            target = node
        else:
            return _sw(0x6A86)
        if target is None:
            return _sw(0x6A82)
        if target.kind is _Kind.DF:
            ch.df, ch.ef = target, None
        else:
            ch.df, ch.ef = target.parent or self.mf, target
        if p2 & 0x0C == 0x0C:
            return _sw(0x9000)
        return target.fcp() + _sw(0x9000)

    def _read_binary(self, ch: _Channel, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        if p1 & 0x80:  # short EF identifier in P1
            sfi = p1 & 0x1F
            ef = next(
                (c for c in ch.df.children.values() if c.kind is _Kind.EF and c.fid & 0x1F == sfi),
                None,
            )
            if ef is None:
                return _sw(0x6A82)
            ch.ef = ef
            offset = p2
        else:
            if ch.ef is None:
                return _sw(0x6986)
            ef = ch.ef
            offset = (p1 << 8) | p2
        if offset > len(ef.data):
            return _sw(0x6B00)
        want = 256 if le is None else le
        chunk = ef.data[offset : offset + want]
        if le is not None and len(chunk) < want:
            return chunk + _sw(0x6282)
        return chunk + _sw(0x9000)

    def _verify(self, ch: _Channel, p1: int, p2: int, data: bytes, le: int | None) -> bytes:
        if p1 != 0x00:
            return _sw(0x6A86)
        if p2 & 0x7F != 0x01:
            return _sw(0x6A88)
        if not data:  # status query: spends nothing
            if self.tries_left == 0:
                return _sw(0x6983)
            if self.pin_verified:
                return _sw(0x9000)
            return _sw(0x63C0 | self.tries_left)
        if self.tries_left == 0:
            return _sw(0x6983)
        pin = data.rstrip(b"\xff")
        if pin == self._pin:
            self.tries_left = self.max_tries
            self.pin_verified = True
            return _sw(0x9000)
        self.pin_verified = False
        self.tries_left -= 1
        if self.tries_left == 0:
            return _sw(0x6983)
        return _sw(0x63C0 | self.tries_left)


def _split_body(body: bytes) -> tuple[bytes, int | None, bool]:
    """``(data, le, ok)`` from the bytes after the header (short APDUs only)."""
    if not body:
        return b"", None, True
    if len(body) == 1:
        return b"", body[0] or 256, True
    lc = body[0]
    if lc == 0:
        return b"", None, False  # extended length: not supported by this model
    if len(body) == 1 + lc:
        return body[1:], None, True
    if len(body) == 2 + lc:
        return body[1 : 1 + lc], body[-1] or 256, True
    return b"", None, False
