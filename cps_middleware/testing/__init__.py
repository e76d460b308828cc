"""Test doubles that are real components: a test PKI shaped like IGC-Santé TEST,
SoftHSM-backed CPS test cards served by the CPS test-token PKCS#11 module,
virtual PC/SC cards on pcscd's vpcd driver, and local TLS test servers.

The same fixtures are exposed to any project by the pytest plugin
(``cps_middleware.testing.pytest_plugin``): ``cps_pki``, ``cps_card``,
``cps4_card``, ``cps_ec_card``, ``cps_card_factory``, ``cps_pcscd``,
``cps_virtual_card``, ``cps_iasecc_cps3``, ``cps_opensc_module``, ``cps_psc``
(a real OpenID provider shaped like Pro Santé Connect) ... Fixtures that
need pcscd adopt a running one and start one only when the run opts in (ini
``cps_start_pcscd = true``, ``--cps-start-pcscd`` or ``CPS_START_PCSCD=1``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cps_middleware.testing._provision import softhsm_library
    from cps_middleware.testing.cps3image import VirtualCps3, build_cps3
    from cps_middleware.testing.cps4image import VirtualCps4, build_cps4
    from cps_middleware.testing.iasecc import IasEccCard
    from cps_middleware.testing.pki import CardCredentials, CertifiedKey, TestHolder, TestPki
    from cps_middleware.testing.psc_provider import PscTestProvider
    from cps_middleware.testing.revocation_servers import (
        OpenSslOcspResponder,
        RevocationHttpServer,
    )
    from cps_middleware.testing.servers import MutualTlsServer, OpenSslServer, ServerPki
    from cps_middleware.testing.testcard import CpsTestCard, list_cards, test_token_module
    from cps_middleware.testing.vpcd import SimpleCpsCard, VirtualCard

_EXPORTS = {
    "CardCredentials": "pki",
    "CertifiedKey": "pki",
    "TestHolder": "pki",
    "TestPki": "pki",
    "CpsTestCard": "testcard",
    "list_cards": "testcard",
    "test_token_module": "testcard",
    "softhsm_library": "_provision",
    "VirtualCps3": "cps3image",
    "VirtualCps4": "cps4image",
    "build_cps4": "cps4image",
    "build_cps3": "cps3image",
    "IasEccCard": "iasecc",
    "MutualTlsServer": "servers",
    "OpenSslOcspResponder": "revocation_servers",
    "RevocationHttpServer": "revocation_servers",
    "OpenSslServer": "servers",
    "ServerPki": "servers",
    "SimpleCpsCard": "vpcd",
    "VirtualCard": "vpcd",
    "PscTestProvider": "psc_provider",
}
__all__ = [
    "CardCredentials",
    "CertifiedKey",
    "CpsTestCard",
    "IasEccCard",
    "MutualTlsServer",
    "OpenSslOcspResponder",
    "OpenSslServer",
    "PscTestProvider",
    "RevocationHttpServer",
    "ServerPki",
    "SimpleCpsCard",
    "TestHolder",
    "TestPki",
    "VirtualCard",
    "VirtualCps3",
    "VirtualCps4",
    "build_cps3",
    "build_cps4",
    "list_cards",
    "softhsm_library",
    "test_token_module",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
