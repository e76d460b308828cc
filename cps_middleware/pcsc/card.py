"""Talk to a card in a reader: connect, send APDUs, read the PIN tries left.

:func:`read_pin_tries` sends VERIFY *without data*: ISO 7816-4 makes that a
status query, answered ``63 Cx`` (x tries left), ``90 00`` (already verified)
or ``69 83`` (blocked). No PIN is ever sent and no try is spent. The commands
used per generation are data (:data:`PIN_STATUS_COMMANDS`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import TracebackType

from smartcard import scard

from cps_middleware.cards.atr import (
    GENERATION_PROBES,
    CardGeneration,
    identify_atr,
    serial_from_ef_sn,
)
from cps_middleware.cards.status_words import StatusWord
from cps_middleware.errors import CardCommandError, InvalidInput
from cps_middleware.pcsc import _codes
from cps_middleware.pcsc.context import PcscContext, default_context

__all__ = [
    "PIN_STATUS_COMMANDS",
    "CardConnection",
    "PinStatusKind",
    "PinTries",
    "ProbedGeneration",
    "check_sw",
    "probe_generation",
    "read_pin_tries",
]


class CardConnection:
    """A shared connection to the card in ``reader`` (T=0 or T=1, as the card offers).

    :meth:`transmit` follows ``61 xx`` with GET RESPONSE and repeats a command
    answered ``6C xx`` with the right Le, so callers see the whole answer.
    """

    def __init__(
        self,
        reader: str,
        *,
        context: PcscContext | None = None,
        exclusive: bool = False,
    ) -> None:
        self.reader = reader
        self._ctx = context or default_context()
        share = scard.SCARD_SHARE_EXCLUSIVE if exclusive else scard.SCARD_SHARE_SHARED
        protocols = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        _rc, (self._card, self.protocol) = self._ctx.call(
            "SCardConnect",
            lambda h: _split3(scard.SCardConnect(h, reader, share, protocols)),
            reader=reader,
        )
        self._open = True
        self._in_transaction = False

    @property
    def atr(self) -> bytes:
        rc, _name, _state, _proto, atr = scard.SCardStatus(self._card)
        if rc:
            raise _codes.error_for("SCardStatus", rc, reader=self.reader)
        return bytes(atr)

    def begin_transaction(self) -> None:
        rc = scard.SCardBeginTransaction(self._card)
        if rc:
            raise _codes.error_for("SCardBeginTransaction", rc, reader=self.reader)
        self._in_transaction = True

    def end_transaction(self) -> None:
        if self._in_transaction:
            self._in_transaction = False
            scard.SCardEndTransaction(self._card, scard.SCARD_LEAVE_CARD)

    def transmit_raw(self, apdu: bytes) -> bytes:
        """One exchange, no GET RESPONSE handling: the response APDU (data + SW)."""
        pci = scard.SCARD_PCI_T0 if self.protocol == scard.SCARD_PROTOCOL_T0 else scard.SCARD_PCI_T1
        rc, response = scard.SCardTransmit(self._card, pci, list(apdu))
        if rc:
            raise _codes.error_for("SCardTransmit", rc, reader=self.reader)
        return bytes(response)

    def transmit(self, apdu: bytes) -> tuple[bytes, StatusWord]:
        """Send ``apdu``; return ``(data, status word)`` after GET RESPONSE / 6Cxx handling."""
        if len(apdu) < 4:
            raise InvalidInput("an APDU has at least 4 bytes (CLA INS P1 P2)")
        response = self.transmit_raw(apdu)
        sw = StatusWord.from_response(response)
        if sw.exact_length is not None:
            response = self.transmit_raw(_with_le(apdu, sw.exact_length))
            sw = StatusWord.from_response(response)
        data = bytearray(response[:-2])
        while sw.bytes_available is not None:
            cla = apdu[0] & 0x03  # GET RESPONSE on the command's logical channel
            response = self.transmit_raw(bytes([cla, 0xC0, 0, 0, sw.sw2]))
            sw = StatusWord.from_response(response)
            data += response[:-2]
        return bytes(data), sw

    def close(self) -> None:
        if self._open:
            self._open = False
            self.end_transaction()
            scard.SCardDisconnect(self._card, scard.SCARD_LEAVE_CARD)

    def __enter__(self) -> CardConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _split3(result: tuple[int, int, int]) -> tuple[int, tuple[int, int]]:
    rc, card, proto = result
    return int(rc), (card, proto)


def _with_le(apdu: bytes, le: int) -> bytes:
    header, body = apdu[:4], apdu[4:]
    if not body or len(body) == 1:  # case 1 or 2
        return header + bytes([le & 0xFF])
    lc = body[0]
    return header + body[: 1 + lc] + bytes([le & 0xFF])


class PinStatusKind(enum.Enum):
    TRIES_LEFT = "tries left"  #: the card told the count (63 Cx)
    VERIFIED = "verified"  #: the PIN is already verified in this card session (90 00)
    BLOCKED = "blocked"  #: 69 83
    UNSUPPORTED = "unsupported"  #: the card does not answer the status query
    NOT_CPS = "not a CPS"


@dataclass(frozen=True)
class PinTries:
    """Result of :func:`read_pin_tries`; ``tries_left`` is ``None`` when unknown."""

    reader: str
    status: PinStatusKind
    tries_left: int | None
    sw: StatusWord | None
    reason: str

    @property
    def final_try(self) -> bool:
        return self.tries_left == 1


@dataclass(frozen=True)
class _PinCommands:
    select: bytes | None  #: SELECT to send first (None: the PIN is global)
    verify_status: bytes  #: VERIFY with no data


#: How to ask each generation for its PIN status, from the ANS driver's facts
#: (:data:`cps_middleware.cards.atr.GENERATION_PROBES`): a CPS4 is asked on logical
#: channel 1 after selecting its ChipDoc applet there. VERIFY here never carries
#: data: no try is spent.
PIN_STATUS_COMMANDS: dict[CardGeneration, _PinCommands] = {
    p.generation: _PinCommands(select=p.pin_select, verify_status=p.pin_status)
    for p in GENERATION_PROBES
}
PIN_STATUS_COMMANDS[CardGeneration.CPS_UNKNOWN_GENERATION] = PIN_STATUS_COMMANDS[
    CardGeneration.CPS3
]


@dataclass(frozen=True)
class ProbedGeneration:
    """What :func:`probe_generation` found: the generation and the serial it read."""

    reader: str
    generation: CardGeneration  #: ``NOT_CPS`` when no probe answered
    serial: str | None  #: 10 digits of EF.SN.ICC
    by_atr: bool  #: the ATR alone told (nothing was sent)


def _probe(conn: CardConnection) -> tuple[CardGeneration, str | None]:
    for probe in GENERATION_PROBES:
        _data, sw = conn.transmit(probe.select_applet)
        if not sw.ok:
            continue
        data, sw = b"", sw
        for apdu in probe.read_serial:
            data, sw = conn.transmit(apdu)
            if not sw.ok and sw.value != 0x6282:
                break
        serial = serial_from_ef_sn(data) if sw.ok or sw.value == 0x6282 else None
        if serial is not None:
            return probe.generation, serial
    return CardGeneration.NOT_CPS, None


def probe_generation(
    reader: str, *, context: PcscContext | None = None, force: bool = False
) -> ProbedGeneration:
    """Which CPS generation is in *reader*: by the ATR, else as the ANS module does.

    A known ATR answers at once (nothing is sent) unless ``force``; otherwise the
    applets of :data:`~cps_middleware.cards.atr.GENERATION_PROBES` are selected
    and EF.SN.ICC must carry ANS's issuer id. Read-only: no PIN, no write.
    """
    with CardConnection(reader, context=context) as conn:
        ident = identify_atr(conn.atr)
        known = ident.generation in (CardGeneration.CPS3, CardGeneration.CPS4)
        if known and not force:
            return ProbedGeneration(reader, ident.generation, None, by_atr=True)
        conn.begin_transaction()
        try:
            generation, serial = _probe(conn)
        finally:
            conn.end_transaction()
    return ProbedGeneration(reader, generation, serial, by_atr=False)


def read_pin_tries(
    reader: str, *, context: PcscContext | None = None, force: bool = False
) -> PinTries:
    """The holder PIN's tries left, read with a VERIFY status query (no PIN sent).

    Only for CPS cards, unless ``force``. Errors at the PC/SC level raise
    (``NoCardPresent``, ``CardInUse`` ...); card answers are in the result.
    """
    with CardConnection(reader, context=context) as conn:
        ident = identify_atr(conn.atr)
        generation = ident.generation
        if generation is CardGeneration.NOT_CPS and not force:
            return PinTries(reader, PinStatusKind.NOT_CPS, None, None, "not a CPS card")
        conn.begin_transaction()
        try:
            if generation not in (CardGeneration.CPS3, CardGeneration.CPS4):
                # an unknown ATR: ask the card which applet it has (as the ANS module does)
                probed, _serial = _probe(conn)
                generation = probed if probed.is_cps else CardGeneration.CPS3
            commands = PIN_STATUS_COMMANDS[generation]
            if len(commands.verify_status) != 4:  # the guarantee: never a PIN on the wire
                raise AssertionError("a PIN status query carries no data")
            if commands.select is not None:
                _data, sw = conn.transmit(commands.select)
                if not sw.ok:
                    return PinTries(
                        reader, PinStatusKind.UNSUPPORTED, None, sw,
                        f"SELECT before the PIN status refused: {sw}",
                    )
            _data, sw = conn.transmit(commands.verify_status)
        finally:
            conn.end_transaction()
    if sw.pin_blocked:
        return PinTries(reader, PinStatusKind.BLOCKED, 0, sw, sw.meaning)
    if sw.tries_left is not None:
        return PinTries(reader, PinStatusKind.TRIES_LEFT, sw.tries_left, sw, sw.meaning)
    if sw.value == 0x9000:
        return PinTries(reader, PinStatusKind.VERIFIED, None, sw, "PIN already verified")
    return PinTries(reader, PinStatusKind.UNSUPPORTED, None, sw, sw.meaning)


def check_sw(sw: StatusWord, function: str, reader: str | None = None) -> None:
    """Raise :class:`~cps_middleware.errors.CardCommandError` unless ``sw`` is a success."""
    if not sw.ok:
        raise CardCommandError(
            sw.meaning, function=function, code=sw.value, code_name=sw.code_name, module=reader
        )
