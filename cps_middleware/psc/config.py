"""Pro Santé Connect environments as data: issuers, discovery paths, defaults.

PSC runs on Keycloak: the realm ``esante-wallet`` is the issuer and the
discovery document sits at ``<issuer>/.well-known/wallet-openid-configuration``
(the Keycloak plug-in of ANS and the reference proxy use that path). Logins
ask for ``acr_values=eidas1``. Each value can be overridden: pass your own
:class:`PscEnvironment`, or set ``CPS_PSC_ISSUER`` (and optionally
``CPS_PSC_DISCOVERY_URL``) to point every client at another provider.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from cps_middleware.errors import InvalidInput

__all__ = [
    "DEFAULT_ACR",
    "DEFAULT_SCOPE",
    "DISCOVERY_PATH",
    "ENVIRONMENTS",
    "PRODUCTION",
    "SANDBOX",
    "PscEnvironment",
    "environment",
]

DISCOVERY_PATH = "/.well-known/wallet-openid-configuration"
DEFAULT_ACR = "eidas1"
DEFAULT_SCOPE = "openid scope_all"


@dataclass(frozen=True)
class PscEnvironment:
    """One PSC deployment: its issuer and where its discovery document is."""

    name: str
    issuer: str
    discovery_url: str
    test: bool = False  # identities from it are test identities

    def with_issuer(self, issuer: str, discovery_url: str | None = None) -> PscEnvironment:
        issuer = issuer.rstrip("/")
        return replace(self, issuer=issuer, discovery_url=discovery_url or issuer + DISCOVERY_PATH)


def _env(name: str, issuer: str, test: bool) -> PscEnvironment:
    return PscEnvironment(name, issuer, issuer + DISCOVERY_PATH, test)


# "BAS" is ANS's sandbox ("bac à sable") where test e-CPS and test cards log in.
SANDBOX = _env("sandbox", "https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet", True)
PRODUCTION = _env("production", "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet", False)
ENVIRONMENTS: Mapping[str, PscEnvironment] = {"sandbox": SANDBOX, "production": PRODUCTION}


def environment(name_or_issuer: str | PscEnvironment | None = None) -> PscEnvironment:
    """The environment called *name_or_issuer* (``sandbox`` / ``production``), or one
    for an issuer URL; by default ``CPS_PSC_ISSUER`` if set, else the sandbox."""
    if isinstance(name_or_issuer, PscEnvironment):
        return name_or_issuer
    if name_or_issuer is None:
        issuer = os.environ.get("CPS_PSC_ISSUER")
        if not issuer:
            return SANDBOX
        return PscEnvironment("custom", "", "", test=True).with_issuer(
            issuer, os.environ.get("CPS_PSC_DISCOVERY_URL") or None
        )
    known = ENVIRONMENTS.get(name_or_issuer.lower())
    if known is not None:
        return known
    if name_or_issuer.startswith("https://"):
        return PscEnvironment("custom", "", "", test=True).with_issuer(name_or_issuer)
    raise InvalidInput(
        f"unknown PSC environment {name_or_issuer!r}",
        hint="use 'sandbox', 'production' or an https:// issuer URL",
    )
