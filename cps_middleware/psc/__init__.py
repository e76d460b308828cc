"""Pro Santé Connect for the servers of health software (layer 4, beside ``tls``).

* :class:`PscClient` / :class:`AsyncPscClient` — CIBA (poll mode), code flow
  with PKCE and PAR, refresh, userinfo, end session, introspection and RFC
  8693 token exchange, the client authenticated by RFC 8705 mutual TLS with
  an organisation certificate (:class:`OrganisationCredentials`, from PKCS#12
  or a PKCS#11 token);
* :mod:`~cps_middleware.psc.config` — the sandbox and production issuers;
* :mod:`~cps_middleware.psc.tokens` — validation of ID and access tokens,
  JWKS with rotation, certificate binding;
* :func:`practitioner_from_claims` — the same ``Practitioner`` a card gives.

JOSE is ``joserfc`` (JWS/JWT/JWK, typed, by the author of Authlib) and HTTP
is ``httpx`` (takes the mutual-TLS ``ssl.SSLContext`` as it is); the OAuth
requests themselves are a few form posts written here, because no Python
client library does CIBA, ``tls_client_auth`` and token exchange together.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cps_middleware.psc.client import (
        AsyncPscClient,
        AuthorizationRequest,
        CibaRequest,
        LoginResult,
        PscClient,
        login_hint_of,
    )
    from cps_middleware.psc.config import PRODUCTION, SANDBOX, PscEnvironment, environment
    from cps_middleware.psc.credentials import OrganisationCredentials, x5t_s256
    from cps_middleware.psc.identity import practitioner_from_claims
    from cps_middleware.psc.tokens import JwksCache, TokenSet, validate_jwt

_EXPORTS = {
    "AsyncPscClient": "client",
    "AuthorizationRequest": "client",
    "CibaRequest": "client",
    "LoginResult": "client",
    "PscClient": "client",
    "login_hint_of": "client",
    "PRODUCTION": "config",
    "SANDBOX": "config",
    "PscEnvironment": "config",
    "environment": "config",
    "OrganisationCredentials": "credentials",
    "x5t_s256": "credentials",
    "practitioner_from_claims": "identity",
    "JwksCache": "tokens",
    "TokenSet": "tokens",
    "validate_jwt": "tokens",
}
__all__ = [
    "PRODUCTION",
    "SANDBOX",
    "AsyncPscClient",
    "AuthorizationRequest",
    "CibaRequest",
    "JwksCache",
    "LoginResult",
    "OrganisationCredentials",
    "PscClient",
    "PscEnvironment",
    "TokenSet",
    "environment",
    "login_hint_of",
    "practitioner_from_claims",
    "validate_jwt",
    "x5t_s256",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
