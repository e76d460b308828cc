"""What each CPS generation can do with each PKCS#11 middleware, as data.

Facts (VIRTUAL_CPS3.md and the virtual CPS4 driven by the real modules):

* CPS3 + ANS Cryptolib: everything the card offers (authentication, qualified
  signature, decryption); no RSA-PSS, so TLS 1.2 only;
* CPS3 + OpenSC (built with OpenSSL 3): authentication and decryption; the
  signature key cannot sign (OpenSC's IAS-ECC qualified signature needs OpenSSL < 3);
* CPS4 + ANS Cryptolib >= 5.2: authentication, signature, decryption, RSA-PSS
  with both keys, so TLS 1.3;
* CPS4 + OpenSC: OpenSC has no driver for the ChipDoc applet: "unsupported card",
  no token.

Correct the table, not the code, when a middleware changes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cps_middleware.cards.atr import CardGeneration

__all__ = [
    "MIDDLEWARE_SUPPORT",
    "Middleware",
    "Support",
    "middleware_of",
    "support",
]


class Middleware(enum.Enum):
    """The PKCS#11 modules that read CPS cards."""

    ANS = "ANS Cryptolib CPS"
    OPENSC = "OpenSC"


@dataclass(frozen=True)
class Support:
    """What works with one (generation, middleware) pair."""

    token: bool  #: the card shows up as a token (certificates readable)
    authentication: bool  #: login + authentication signature (TLS client auth)
    signature: bool  #: the non-repudiation key signs
    decryption: bool
    pss: bool  #: RSA-PSS signatures
    tls13: bool  #: TLS 1.3 client authentication (needs PSS with an RSA key)
    minimum_version: str | None = None  #: oldest middleware version that works, when known


_S = Support
MIDDLEWARE_SUPPORT: dict[tuple[CardGeneration, Middleware], Support] = {
    (CardGeneration.CPS3, Middleware.ANS): _S(True, True, True, True, False, False),
    (CardGeneration.CPS3, Middleware.OPENSC): _S(True, True, False, True, False, False),
    (CardGeneration.CPS4, Middleware.ANS): _S(True, True, True, True, True, True, "5.2"),
    (CardGeneration.CPS4, Middleware.OPENSC): _S(False, False, False, False, False, False),
}


def support(generation: CardGeneration, middleware: Middleware) -> Support | None:
    """What works; ``None`` when the pair was never tried."""
    return MIDDLEWARE_SUPPORT.get((generation, middleware))


def middleware_of(manufacturer: str, path: str = "") -> Middleware | None:
    """Which middleware a loaded module is, from its manufacturer id and file name."""
    text = f"{manufacturer} {path}".casefold()
    if "opensc" in text:
        return Middleware.OPENSC
    if manufacturer.strip() == "ANS" or "cps3_pkcs11" in text or "cryptolib" in text:
        return Middleware.ANS
    return None
