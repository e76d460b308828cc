"""List PC/SC readers with their card: presence, ATR, CPS generation, exclusive use.

One ``SCardListReaders`` and one non-blocking ``SCardGetStatusChange`` for all
readers: no card I/O, no connection, so listing never disturbs another program
that is using the card.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from smartcard import scard

from cps_middleware.cards.atr import AtrIdentification, CardGeneration, identify_atr
from cps_middleware.errors import NoReaders, PcscError
from cps_middleware.pcsc import _codes
from cps_middleware.pcsc.context import PcscContext, default_context

__all__ = ["ReaderInfo", "list_readers", "reader_info_from_state", "wait_for_reader"]


@dataclass(frozen=True)
class ReaderInfo:
    """A reader and what is in it, as pcscd reports it (no card I/O)."""

    name: str
    card_present: bool
    atr: bytes | None
    identification: AtrIdentification | None
    exclusive: bool  #: another program holds the card exclusively
    in_use: bool  #: some program has the card open (shared)
    mute: bool  #: a card is there but does not answer
    state_flags: int  #: raw SCARD_STATE_* bits, for diagnostics

    @property
    def generation(self) -> CardGeneration | None:
        return self.identification.generation if self.identification else None

    @property
    def is_cps(self) -> bool:
        return bool(self.identification and self.identification.is_cps)


def reader_info_from_state(name: str, event_state: int, atr: list[int] | bytes) -> ReaderInfo:
    """A :class:`ReaderInfo` from a reader state as ``SCardGetStatusChange`` returns it."""
    present = bool(event_state & scard.SCARD_STATE_PRESENT)
    atr_bytes = bytes(atr) if (present and atr) else None
    return ReaderInfo(
        name=name,
        card_present=present,
        atr=atr_bytes,
        identification=identify_atr(atr_bytes) if atr_bytes else None,
        exclusive=bool(event_state & scard.SCARD_STATE_EXCLUSIVE),
        in_use=bool(event_state & scard.SCARD_STATE_INUSE),
        mute=bool(event_state & scard.SCARD_STATE_MUTE),
        state_flags=event_state & 0xFFFF,
    )


def list_readers(
    context: PcscContext | None = None, *, allow_empty: bool = False
) -> list[ReaderInfo]:
    """Every reader with its card, in pcscd's order.

    Raises :class:`~cps_middleware.errors.NoReaders` when there is none (unless
    ``allow_empty``), :class:`~cps_middleware.errors.PcscServiceUnavailable`
    when pcscd is not running. A context broken by a pcscd restart is renewed.
    """
    ctx = context or default_context()
    for attempt in (0, 1):
        names = ctx.list_reader_names()
        if not names:
            if allow_empty:
                return []
            raise NoReaders("no PC/SC reader found", function="SCardListReaders")
        try:
            _rc, states = ctx.get_status_change(
                0, [(n, scard.SCARD_STATE_UNAWARE) for n in names]
            )
        except NoReaders:
            # A reader went away between the two calls: list again once.
            if attempt == 0:
                continue
            raise
        return [reader_info_from_state(n, s, a) for n, s, a in states]
    raise AssertionError("unreachable")  # pragma: no cover


def wait_for_reader(
    reader: str,
    *,
    card_present: bool,
    timeout: float = 10.0,
    context: PcscContext | None = None,
) -> ReaderInfo:
    """Block (in ``SCardGetStatusChange``, no polling) until ``reader`` has / has no card.

    Raises :class:`~cps_middleware.errors.PcscError` (``SCARD_E_TIMEOUT``) when
    the state is not reached within ``timeout`` seconds.
    """
    ctx = context or PcscContext()
    own = context is None
    try:
        deadline = time.monotonic() + timeout
        current = scard.SCARD_STATE_UNAWARE
        while True:
            left_ms = max(0, int((deadline - time.monotonic()) * 1000))
            rc, states = ctx.get_status_change(
                0 if current == scard.SCARD_STATE_UNAWARE else left_ms, [(reader, current)]
            )
            name, event_state, atr = states[0]
            if rc == _codes.SCARD_S_SUCCESS or current == scard.SCARD_STATE_UNAWARE:
                info = reader_info_from_state(name, event_state, atr)
                if info.card_present == card_present and not (
                    card_present and info.atr is None
                ):
                    return info
                current = event_state & ~scard.SCARD_STATE_CHANGED
            if time.monotonic() >= deadline:
                raise PcscError(
                    f"reader did not {'get a card' if card_present else 'become empty'} "
                    f"within {timeout:.1f} s",
                    function="SCardGetStatusChange",
                    code=_codes.SCARD_E_TIMEOUT,
                    code_name="SCARD_E_TIMEOUT",
                    module=reader,
                )
    finally:
        if own:
            ctx.release()
