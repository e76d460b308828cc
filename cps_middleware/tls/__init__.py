"""TLS client authentication with the card's key (layer 4).

``client_context(card_or_key)`` gives an ``ssl.SSLContext`` for urllib,
requests, httpx, aiohttp and asyncio whose client key stays on the card;
``test_ssl(url, card_or_key)`` is the "Test SSL" of the ANS tools.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cps_middleware.tls.context import (
        PKCS1_CLIENT_SIGALGS,
        CardSSLContext,
        ClientCredentials,
        client_context,
    )
    from cps_middleware.tls.http import requests_adapter, requests_session
    from cps_middleware.tls.testssl import Failure, ServerCertificate, TestSslResult, test_ssl

_EXPORTS = {
    "PKCS1_CLIENT_SIGALGS": "context",
    "CardSSLContext": "context",
    "ClientCredentials": "context",
    "client_context": "context",
    "requests_adapter": "http",
    "requests_session": "http",
    "test_ssl": "testssl",
    "TestSslResult": "testssl",
    "ServerCertificate": "testssl",
    "Failure": "testssl",
}
__all__ = [
    "PKCS1_CLIENT_SIGALGS",
    "CardSSLContext",
    "ClientCredentials",
    "Failure",
    "ServerCertificate",
    "TestSslResult",
    "client_context",
    "requests_adapter",
    "requests_session",
    "test_ssl",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
