"""PC/SC return codes → names, meanings and the error class to raise (one table)."""

from __future__ import annotations

from dataclasses import dataclass

from cps_middleware.errors import (
    CardInUse,
    CardRemoved,
    NoCardPresent,
    NoReaders,
    PcscError,
    PcscServiceUnavailable,
)

SCARD_S_SUCCESS = 0x00000000
SCARD_E_CANCELLED = 0x80100002
SCARD_E_INVALID_HANDLE = 0x80100003
SCARD_E_TIMEOUT = 0x8010000A
SCARD_E_SHARING_VIOLATION = 0x8010000B
SCARD_E_NO_SMARTCARD = 0x8010000C
SCARD_E_UNKNOWN_READER = 0x80100009
SCARD_E_NO_SERVICE = 0x8010001D
SCARD_E_SERVICE_STOPPED = 0x8010001E
SCARD_E_NO_READERS_AVAILABLE = 0x8010002E
SCARD_E_READER_UNAVAILABLE = 0x80100017
SCARD_W_REMOVED_CARD = 0x80100069
SCARD_W_RESET_CARD = 0x80100068
SCARD_W_UNRESPONSIVE_CARD = 0x80100066
SCARD_W_UNPOWERED_CARD = 0x80100067
SCARD_E_UNKNOWN_RES_MNG = 0x8010002B
SCARD_F_COMM_ERROR = 0x80100013
SCARD_W_SECURITY_VIOLATION = 0x8010006A

#: Codes that mean "this context is dead" (pcscd stopped or restarted): make a new one.
#: A call blocked in pcscd when it stops returns SCARD_F_COMM_ERROR, sometimes
#: SCARD_W_SECURITY_VIOLATION (pcsc-lite 1.9.9, seen in about 1 run in 10).
CONTEXT_LOST = frozenset(
    {
        SCARD_E_NO_SERVICE,
        SCARD_E_SERVICE_STOPPED,
        SCARD_E_INVALID_HANDLE,
        SCARD_E_UNKNOWN_RES_MNG,
        SCARD_F_COMM_ERROR,
        SCARD_W_SECURITY_VIOLATION,
    }
)


@dataclass(frozen=True)
class _Code:
    name: str
    meaning: str
    error: type[PcscError] | type[CardRemoved]
    hint: str | None = None


_TABLE: dict[int, _Code] = {
    0x80100001: _Code("SCARD_F_INTERNAL_ERROR", "internal error in the PC/SC service", PcscError),
    SCARD_E_CANCELLED: _Code("SCARD_E_CANCELLED", "the wait was cancelled", PcscError),
    SCARD_E_INVALID_HANDLE: _Code(
        "SCARD_E_INVALID_HANDLE", "invalid handle (the PC/SC service was restarted?)",
        PcscServiceUnavailable, "the PC/SC service restarted: try again",
    ),
    0x80100004: _Code("SCARD_E_INVALID_PARAMETER", "invalid parameter", PcscError),
    0x80100006: _Code("SCARD_E_NO_MEMORY", "not enough memory", PcscError),
    0x80100008: _Code("SCARD_E_INSUFFICIENT_BUFFER", "buffer too small", PcscError),
    SCARD_E_UNKNOWN_READER: _Code(
        "SCARD_E_UNKNOWN_READER", "unknown reader", NoReaders,
        "this reader is not connected (any more): check the reader name and its cable",
    ),
    SCARD_E_TIMEOUT: _Code("SCARD_E_TIMEOUT", "timeout", PcscError),
    SCARD_E_SHARING_VIOLATION: _Code(
        "SCARD_E_SHARING_VIOLATION", "sharing violation", CardInUse
    ),
    SCARD_E_NO_SMARTCARD: _Code("SCARD_E_NO_SMARTCARD", "no card in the reader", NoCardPresent),
    0x8010000D: _Code("SCARD_E_UNKNOWN_CARD", "unknown card", PcscError),
    0x8010000F: _Code(
        "SCARD_E_PROTO_MISMATCH", "the card does not speak the requested protocol", PcscError
    ),
    0x80100010: _Code("SCARD_E_NOT_READY", "reader or card not ready", PcscError),
    0x80100011: _Code("SCARD_E_INVALID_VALUE", "invalid value", PcscError),
    SCARD_F_COMM_ERROR: _Code(
        "SCARD_F_COMM_ERROR", "communication with the PC/SC service broke",
        PcscServiceUnavailable,
    ),
    0x80100016: _Code("SCARD_E_NOT_TRANSACTED", "transaction failed", PcscError),
    SCARD_E_READER_UNAVAILABLE: _Code(
        "SCARD_E_READER_UNAVAILABLE", "the reader is unavailable", NoReaders,
        "the reader was unplugged or failed: plug it in again",
    ),
    SCARD_E_NO_SERVICE: _Code(
        "SCARD_E_NO_SERVICE", "no answer from the PC/SC service", PcscServiceUnavailable
    ),
    SCARD_E_SERVICE_STOPPED: _Code(
        "SCARD_E_SERVICE_STOPPED", "the PC/SC service stopped", PcscServiceUnavailable
    ),
    SCARD_E_UNKNOWN_RES_MNG: _Code(
        "SCARD_E_UNKNOWN_RES_MNG", "unknown resource manager", PcscServiceUnavailable
    ),
    0x80100022: _Code("SCARD_E_UNSUPPORTED_FEATURE", "feature not supported", PcscError),
    SCARD_E_NO_READERS_AVAILABLE: _Code(
        "SCARD_E_NO_READERS_AVAILABLE", "no reader is available", NoReaders
    ),
    0x80100065: _Code(
        "SCARD_W_UNSUPPORTED_CARD", "the reader cannot talk to this card", PcscError,
        "the card is not supported by the reader: check it is inserted the right way",
    ),
    SCARD_W_UNRESPONSIVE_CARD: _Code(
        "SCARD_W_UNRESPONSIVE_CARD", "the card does not answer", PcscError,
        "the card does not answer: take it out, clean the chip, insert it again",
    ),
    SCARD_W_UNPOWERED_CARD: _Code("SCARD_W_UNPOWERED_CARD", "the card is not powered", PcscError),
    SCARD_W_RESET_CARD: _Code(
        "SCARD_W_RESET_CARD", "the card was reset by another program", CardRemoved,
        "the card was reset: open it again",
    ),
    SCARD_W_REMOVED_CARD: _Code("SCARD_W_REMOVED_CARD", "the card was removed", CardRemoved),
    SCARD_W_SECURITY_VIOLATION: _Code(
        "SCARD_W_SECURITY_VIOLATION", "access denied (or the PC/SC service went away)", PcscError
    ),
}


def code_name(rc: int) -> str:
    rc &= 0xFFFFFFFF
    entry = _TABLE.get(rc)
    return entry.name if entry else f"SCARD_0x{rc:08X}"


def error_for(
    function: str, rc: int, *, reader: str | None = None, cause: BaseException | None = None
) -> PcscError | CardRemoved:
    """The typed error for a failed PC/SC call (caller raises it)."""
    rc &= 0xFFFFFFFF
    entry = _TABLE.get(rc)
    if entry is None:
        return PcscError(
            f"PC/SC call failed (0x{rc:08X})", function=function, code=rc,
            code_name=code_name(rc), module=reader,
        )
    err = entry.error(
        entry.meaning, function=function, code=rc, code_name=entry.name, module=reader,
        hint=entry.hint,
    )
    if cause is not None:
        err.__cause__ = cause
    return err
