"""Tokens: the token set a login gives, JWKS caching with rotation, JWT validation.

Validation is :mod:`joserfc` (signatures, JWK) plus the OpenID Connect rules
written here: ``iss`` equal to the issuer, ``aud`` containing the client id
(and ``azp`` when there are several audiences), ``exp`` / ``iat`` / ``nbf``
with a bounded leeway (at most five minutes), ``nonce`` when one was sent,
``acr`` at least the level asked for, and, for certificate-bound tokens
(RFC 8705), ``cnf.x5t#S256`` equal to the thumbprint of the certificate in use.
Every refusal is a :class:`~cps_middleware.errors.TokenRejected` whose
``code_name`` says why. Only asymmetric algorithms are accepted (no ``none``,
no HMAC).
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import KeySet

from cps_middleware.errors import InvalidInput, TokenRejected

__all__ = [
    "ALGORITHMS",
    "MAX_LEEWAY",
    "JwksCache",
    "TokenSet",
    "check_certificate_binding",
    "peek_header",
    "validate_jwt",
]

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
MAX_LEEWAY = 300
# Order of the eIDAS levels PSC names in acr (higher is stronger).
_ACR_RANK = {"eidas1": 1, "eidas2": 2, "eidas3": 3}


def _utc(ts: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC)


@dataclass(frozen=True)
class TokenSet:
    """What a token endpoint returned. Token values are left out of ``repr``."""

    access_token: str = field(repr=False)
    token_type: str
    expires_at: _dt.datetime | None
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)
    scope: str | None = None
    issued_token_type: str | None = None
    refresh_expires_at: _dt.datetime | None = None

    @classmethod
    def from_response(cls, data: Mapping[str, Any], *, now: float | None = None) -> TokenSet:
        t = time.time() if now is None else now
        access = data.get("access_token")
        if not isinstance(access, str) or not access:
            raise TokenRejected("the token response has no access_token", code_name="malformed")
        expires_in = data.get("expires_in")
        refresh_in = data.get("refresh_expires_in")
        return cls(
            access_token=access,
            token_type=str(data.get("token_type", "Bearer")),
            expires_at=_utc(t + float(expires_in)) if isinstance(expires_in, int | float) else None,
            refresh_token=data.get("refresh_token") if isinstance(data.get("refresh_token"), str)
            else None,
            id_token=data.get("id_token") if isinstance(data.get("id_token"), str) else None,
            scope=data.get("scope") if isinstance(data.get("scope"), str) else None,
            issued_token_type=data.get("issued_token_type")
            if isinstance(data.get("issued_token_type"), str) else None,
            refresh_expires_at=_utc(t + float(refresh_in))
            if isinstance(refresh_in, int | float) and refresh_in > 0 else None,
        )

    def expires_in(self, now: _dt.datetime | None = None) -> float | None:
        """Seconds until the access token expires (negative once expired)."""
        if self.expires_at is None:
            return None
        return (self.expires_at - (now or _dt.datetime.now(_dt.UTC))).total_seconds()

    def lifetimes(self) -> dict[str, object]:
        """What a person may see: lifetimes and kinds, never the token values."""
        return {
            "token_type": self.token_type,
            "access_token_expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "access_token_expires_in": round(self.expires_in() or 0) if self.expires_at else None,
            "refresh_token": self.refresh_token is not None,
            "refresh_token_expires_at": self.refresh_expires_at.isoformat()
            if self.refresh_expires_at else None,
            "id_token": self.id_token is not None,
            "scope": self.scope,
        }


class JwksCache:
    """The provider's signing keys, refetched when a token names an unknown ``kid``.

    Refetches for unknown keys are rate-limited (one per ``min_refresh``
    seconds) so that forged tokens with random ``kid`` values cannot make the
    client hammer the provider. ``fetches`` counts the downloads.
    """

    def __init__(self, *, min_refresh: float = 30.0) -> None:
        self.min_refresh = min_refresh
        self.fetches = 0
        self._keys: KeySet | None = None
        self._last_refresh = -float("inf")

    @property
    def loaded(self) -> bool:
        return self._keys is not None

    def update(self, jwks: Mapping[str, Any], *, forced: bool = False) -> None:
        try:
            keys = KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise TokenRejected(
                "the provider's JWKS cannot be read", code_name="malformed"
            ) from exc
        self._keys = keys
        self.fetches += 1
        if forced:
            self._last_refresh = time.monotonic()

    def knows(self, kid: str | None) -> bool:
        if self._keys is None:
            return False
        if kid is None:
            return True
        return any(k.kid == kid for k in self._keys.keys)

    def may_refresh(self) -> bool:
        return time.monotonic() - self._last_refresh >= self.min_refresh

    @property
    def keys(self) -> KeySet:
        if self._keys is None:
            raise TokenRejected("no signing keys loaded", code_name="unknown_key")
        return self._keys

    @property
    def kids(self) -> list[str]:
        return [str(k.kid) for k in self._keys.keys] if self._keys is not None else []


def peek_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, unverified (to find its ``kid``)."""
    try:
        return dict(jws.extract_compact(token.encode("ascii")).protected)
    except (JoseError, ValueError, UnicodeEncodeError) as exc:
        raise TokenRejected("not a signed JWT", code_name="malformed") from exc


def validate_jwt(
    token: str,
    keys: KeySet,
    *,
    issuer: str,
    audience: str | Collection[str] | None,
    client_id: str | None = None,
    leeway: float = 60,
    nonce: str | None = None,
    acr: str | None = None,
    require: Collection[str] = ("exp", "iat"),
    now: float | None = None,
) -> dict[str, Any]:
    """The claims of *token* after every check of the module docstring."""
    if not 0 <= leeway <= MAX_LEEWAY:
        raise InvalidInput(f"leeway must be between 0 and {MAX_LEEWAY} seconds")
    header = peek_header(token)
    if header.get("alg") not in ALGORITHMS:
        raise TokenRejected(f"algorithm {header.get('alg')!r} is not accepted",
                            code_name="bad_signature")
    kid = header.get("kid")
    if kid is not None and not any(k.kid == kid for k in keys.keys):
        raise TokenRejected(f"unknown signing key {kid!r}", code_name="unknown_key")
    try:
        decoded = jwt.decode(token, keys, algorithms=list(ALGORITHMS))
    except BadSignatureError as exc:
        raise TokenRejected("the token's signature is wrong", code_name="bad_signature") from exc
    except (JoseError, ValueError) as exc:
        raise TokenRejected(f"the token cannot be decoded: {exc}", code_name="malformed") from exc
    claims = dict(decoded.claims)
    t = time.time() if now is None else now
    for name in require:
        if name not in claims:
            raise TokenRejected(f"the token has no {name!r} claim", code_name="missing_claim")
    if claims.get("iss") != issuer:
        raise TokenRejected(f"issuer {claims.get('iss')!r} is not {issuer!r}",
                            code_name="wrong_issuer")
    if audience is not None:
        wanted = {audience} if isinstance(audience, str) else set(audience)
        aud = claims.get("aud")
        auds = {aud} if isinstance(aud, str) else set(aud or [])
        if not wanted & auds:
            raise TokenRejected(f"audience {sorted(auds)} does not include {sorted(wanted)}",
                                code_name="wrong_audience")
        if client_id and len(auds) > 1 and claims.get("azp", client_id) != client_id:
            raise TokenRejected("azp is another client", code_name="wrong_audience")
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if value is None:
            continue
        if not isinstance(value, int | float):
            raise TokenRejected(f"{name} is not a number", code_name="malformed")
        if name == "exp" and value + leeway < t:
            raise TokenRejected("the token has expired", code_name="expired")
        if name != "exp" and value - leeway > t:
            raise TokenRejected("the token is not valid yet", code_name="not_yet_valid")
    if nonce is not None and claims.get("nonce") != nonce:
        raise TokenRejected("the nonce does not match the login request", code_name="wrong_nonce")
    if acr is not None:
        got = claims.get("acr")
        if _ACR_RANK.get(str(got), 0) < _ACR_RANK.get(acr, 1) or (
            acr not in _ACR_RANK and got != acr
        ):
            raise TokenRejected(f"authentication level {got!r} is below {acr!r}",
                                code_name="acr_too_low")
    return claims


def check_certificate_binding(claims: Mapping[str, Any], thumbprint: str) -> None:
    """Refuse a certificate-bound token (``cnf.x5t#S256``) bound to another certificate.

    Tokens without ``cnf`` pass (they are not bound).
    """
    cnf = claims.get("cnf")
    if cnf is None:
        return
    bound = cnf.get("x5t#S256") if isinstance(cnf, Mapping) else None
    if bound != thumbprint:
        raise TokenRejected(
            "the token is bound to another certificate (cnf.x5t#S256)",
            code_name="cnf_mismatch",
            hint="use the organisation certificate the token was issued to",
        )
