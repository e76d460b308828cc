"""The holder PIN and the unblocking code (PUK) as secret values, and the PIN state of a token.

A :class:`Pin` checks its format when it is made (so a bad PIN never reaches the
card and never spends a try), and its digits never appear in a repr, a str, a
log record, a pickle or an exception message.
"""

from __future__ import annotations

import enum
import hmac
import re
from typing import ClassVar, NoReturn

from cps_middleware.errors import PinFormatError

__all__ = ["Pin", "PinStatus", "Puk"]


class _Secret:
    """A string of ASCII digits whose length lies in ``[min_len, max_len]``."""

    __slots__ = ("__digits",)
    kind: ClassVar[str] = "secret"
    min_len: ClassVar[int] = 1
    max_len: ClassVar[int] = 64

    def __init__(self, digits: str) -> None:
        if not isinstance(digits, str):
            raise PinFormatError(f"a {self.kind} must be given as a str of digits")
        # re.ASCII: "١٢٣٤" (Arabic-Indic digits) is not a PIN a card accepts.
        if not re.fullmatch(rf"[0-9]{{{self.min_len},{self.max_len}}}", digits, re.ASCII):
            length = (
                f"{self.min_len} digits"
                if self.min_len == self.max_len
                else f"{self.min_len} to {self.max_len} digits"
            )
            raise PinFormatError(
                f"the {self.kind} must be {length} (0-9), got {len(digits)} character(s)"
            )
        self.__digits = digits

    def _reveal(self) -> bytes:
        """The digits, for the PKCS#11 call only."""
        return self.__digits.encode("ascii")

    def __len__(self) -> int:
        return len(self.__digits)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<redacted>)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Secret)
        return hmac.compare_digest(self.__digits.encode(), other.__digits.encode())

    def __hash__(self) -> int:  # equal secrets must hash alike; the digits stay inside
        return hash((type(self), self.__digits))

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"a {self.kind} cannot be pickled")


class Pin(_Secret):
    """The CPS holder PIN ("code porteur"): 4 to 8 digits.

    >>> Pin("1234")
    Pin(<redacted>)
    """

    __slots__ = ()
    kind = "holder PIN"
    min_len = 4
    max_len = 8


class Puk(_Secret):
    """The CPS unblocking code ("code de déblocage"): 8 digits."""

    __slots__ = ()
    kind = "unblocking code (PUK)"
    min_len = 8
    max_len = 8


class PinStatus(enum.Enum):
    """What the token flags say about the holder PIN, read without logging in.

    The most urgent state wins: LOCKED, then FINAL_TRY, then COUNT_LOW, then
    PIN_PAD (a reader with its own keypad), then OK.
    """

    OK = "ok"
    COUNT_LOW = "count_low"
    FINAL_TRY = "final_try"
    LOCKED = "locked"
    PIN_PAD = "pin_pad"
