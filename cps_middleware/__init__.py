"""cps-middleware: French health-professional smart cards (CPS) from Python.

The few names most applications need are here; each layer's own package holds
the rest (``cps_middleware.pcsc``, ``.pkcs11``, ``.validation``, ``.tls``,
``.diagnostics``, ``.testing``). Importing this package is cheap: pyscard,
python-pkcs11, numpy and the native bridge are loaded on first use.

>>> import cps_middleware as cps
>>> for card in cps.discover():  # doctest: +SKIP
...     print(card.reader, card.generation, card.holder)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cps_middleware.errors import (
    CardRemoved,
    CpsError,
    FinalTryRefused,
    PinIncorrect,
    PinLocked,
)

if TYPE_CHECKING:
    from cps_middleware import diagnostics, tls, validation
    from cps_middleware.card import CpsCard, open_card
    from cps_middleware.cards.identity import Practitioner, practitioner_from_certificate
    from cps_middleware.discovery import DiscoveredCard, discover
    from cps_middleware.pkcs11 import Pin, PinStatus, Puk

__version__ = "0.1.0"

_LAZY = {
    "CpsCard": "cps_middleware.card",
    "open_card": "cps_middleware.card",
    "Practitioner": "cps_middleware.cards.identity",
    "practitioner_from_certificate": "cps_middleware.cards.identity",
    "DiscoveredCard": "cps_middleware.discovery",
    "discover": "cps_middleware.discovery",
    "Pin": "cps_middleware.pkcs11",
    "PinStatus": "cps_middleware.pkcs11",
    "Puk": "cps_middleware.pkcs11",
}
_SUBPACKAGES = {"diagnostics", "tls", "validation"}

__all__ = [
    "CardRemoved",
    "CpsCard",
    "CpsError",
    "DiscoveredCard",
    "FinalTryRefused",
    "Pin",
    "PinIncorrect",
    "PinLocked",
    "PinStatus",
    "Practitioner",
    "Puk",
    "__version__",
    "diagnostics",
    "discover",
    "open_card",
    "practitioner_from_certificate",
    "tls",
    "validation",
]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(target), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
