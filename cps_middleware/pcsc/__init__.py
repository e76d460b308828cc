"""PC/SC readers and cards through pyscard: list, identify by ATR, watch, PIN tries.

Every pyscard failure comes out as a :class:`~cps_middleware.errors.PcscError`
subclass (``PcscServiceUnavailable``, ``NoReaders``, ``NoCardPresent``,
``CardInUse``, ``CardRemoved`` ...). A context broken by a pcscd restart is
replaced automatically.
"""

from cps_middleware.pcsc.card import (
    PIN_STATUS_COMMANDS,
    CardConnection,
    PinStatusKind,
    PinTries,
    check_sw,
    read_pin_tries,
)
from cps_middleware.pcsc.context import PNP_READER, PcscContext, default_context
from cps_middleware.pcsc.readers import ReaderInfo, list_readers, wait_for_reader
from cps_middleware.pcsc.watcher import CardEvent, CardWatcher, EventKind

__all__ = [
    "PIN_STATUS_COMMANDS",
    "PNP_READER",
    "CardConnection",
    "CardEvent",
    "CardWatcher",
    "EventKind",
    "PcscContext",
    "PinStatusKind",
    "PinTries",
    "ReaderInfo",
    "check_sw",
    "default_context",
    "list_readers",
    "read_pin_tries",
    "wait_for_reader",
]
