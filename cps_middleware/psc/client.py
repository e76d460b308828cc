"""The Pro Santé Connect client: CIBA, code flow with PKCE, refresh, userinfo, token exchange.

:class:`PscClient` talks to PSC (or any OpenID provider shaped like it) over
``httpx`` with a client ``ssl.SSLContext`` that presents the organisation
certificate (RFC 8705 ``tls_client_auth``; the ``mtls_endpoint_aliases`` of
the discovery document are used when the provider lists them). Every token
it receives is validated (:mod:`cps_middleware.psc.tokens`) and, when the
provider binds tokens to the certificate, checked against the certificate in
use. :class:`AsyncPscClient` offers the same calls as coroutines.

Typical CIBA login (the practitioner approves on the e-CPS app or with the card)::

    creds = OrganisationCredentials.from_pkcs12("org.p12", "password")
    with PscClient("my-client-id", creds) as psc:
        login = psc.ciba_login(card.holder, binding_message="Connexion LPS 42")
        print(login.practitioner, login.tokens.lifetimes())
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import httpx

from cps_middleware.cards.identity import Practitioner, parse_ps_id_nat
from cps_middleware.errors import (
    CibaCancelled,
    InvalidInput,
    OAuthAuthorizationPending,
    OAuthExpiredToken,
    OAuthSlowDown,
    ProviderResponseInvalid,
    ProviderUnreachable,
    TokenRejected,
    oauth_error,
)
from cps_middleware.psc.config import DEFAULT_ACR, DEFAULT_SCOPE, PscEnvironment, environment
from cps_middleware.psc.credentials import OrganisationCredentials
from cps_middleware.psc.identity import practitioner_from_claims
from cps_middleware.psc.tokens import (
    JwksCache,
    TokenSet,
    check_certificate_binding,
    peek_header,
    validate_jwt,
)

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "CIBA_GRANT",
    "JWT_TOKEN_TYPE",
    "TOKEN_EXCHANGE_GRANT",
    "AsyncPscClient",
    "AuthorizationRequest",
    "CibaRequest",
    "LoginResult",
    "PscClient",
    "login_hint_of",
]

CIBA_GRANT = "urn:openid:params:grant-type:ciba"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
# CIBA core §11 / RFC 8628 §3.5: after slow_down, wait 5 seconds more for every later poll.
SLOW_DOWN_STEP = 5.0
_DEFAULT_INTERVAL = 5.0
Channel = Literal["CARD", "MOBILE"]


@dataclass
class CibaRequest:
    """A CIBA authentication in progress; :meth:`cancel` stops the wait (any thread)."""

    auth_req_id: str = field(repr=False)
    login_hint: str
    binding_message: str | None
    interval: float
    expires_in: float
    started: float = field(default_factory=time.monotonic)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def deadline(self) -> float:
        """``time.monotonic()`` value after which the provider answers ``expired_token``."""
        return self.started + self.expires_in

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()


@dataclass(frozen=True)
class AuthorizationRequest:
    """A code-flow login to send the browser to (``url``); keep it for the callback."""

    url: str
    redirect_uri: str
    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    pushed: bool = False


@dataclass(frozen=True)
class LoginResult:
    """A finished login: the tokens, the validated claims and who logged in."""

    tokens: TokenSet
    claims: Mapping[str, Any] = field(repr=False)
    practitioner: Practitioner


def _jwt_issuer(token: str) -> str | None:
    """The unverified ``iss`` of a compact JWT (None for an opaque token)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    iss = payload.get("iss") if isinstance(payload, dict) else None
    return iss if isinstance(iss, str) else None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def login_hint_of(who: object) -> str:
    """The national identifier to send as ``login_hint``: a string, a
    :class:`Practitioner`, or a card (its ``holder``)."""
    holder = getattr(who, "holder", None)
    if isinstance(holder, Practitioner):
        who = holder
    if isinstance(who, Practitioner):
        value = who.ps_id_nat
    elif isinstance(who, str):
        value = who.strip()
    else:
        raise InvalidInput(
            f"login_hint must be a national identifier, a Practitioner or a card, "
            f"not {type(who).__name__}"
        )
    if not value or parse_ps_id_nat(value) is None:
        raise InvalidInput(
            f"{value!r} is not a national identifier",
            hint="use the PS_IdNat: 8 followed by the 11-digit RPPS number, e.g. 810001234567",
        )
    return value


class PscClient:
    """A PSC relying party authenticated by mutual TLS (see the module docstring).

    *verify_cafile* / *verify_cadata* name the CA of the provider's TLS
    certificate (system CAs by default). *leeway* bounds clock differences
    (0 to 300 s). Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        client_id: str,
        credentials: OrganisationCredentials | None = None,
        *,
        env: PscEnvironment | str | None = None,
        scope: str = DEFAULT_SCOPE,
        acr_values: str = DEFAULT_ACR,
        verify_cafile: str | None = None,
        verify_cadata: str | bytes | None = None,
        leeway: float = 60,
        timeout: float = 30,
        metadata_ttl: float = 3600,
        jwks_min_refresh: float = 30,
    ) -> None:
        if not client_id:
            raise InvalidInput("client_id is empty")
        if not 0 <= leeway <= 300:
            raise InvalidInput("leeway must be between 0 and 300 seconds")
        self.client_id = client_id
        self.credentials = credentials
        self.environment = environment(env)
        self.scope = scope
        self.acr_values = acr_values
        self.leeway = leeway
        self.metadata_ttl = metadata_ttl
        self.jwks = JwksCache(min_refresh=jwks_min_refresh)
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._lock = threading.Lock()
        ctx = self._ssl_context(verify_cafile, verify_cadata)
        self._http = httpx.Client(verify=ctx, timeout=timeout, follow_redirects=False)

    def _ssl_context(self, cafile: str | None, cadata: str | bytes | None) -> ssl.SSLContext:
        if self.credentials is not None:
            return self.credentials.ssl_context(cafile=cafile, cadata=cadata)
        if isinstance(cadata, bytes):
            cadata = cadata.decode("ascii")
        ctx = ssl.create_default_context(cafile=cafile, cadata=cadata)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    # -- life cycle ------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP ------------------------------------------------------------------------

    def _send(self, method: str, url: str, endpoint: str, **kw: Any) -> httpx.Response:
        try:
            return self._http.request(method, url, **kw)
        except httpx.TransportError as exc:
            raise ProviderUnreachable(
                f"cannot reach {endpoint} at {url}: {exc}", function=endpoint
            ) from exc

    def _json(self, response: httpx.Response, endpoint: str) -> dict[str, Any]:
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if response.status_code >= 400:
                raise oauth_error(
                    "server_error" if response.status_code >= 500 else "invalid_request",
                    f"HTTP {response.status_code} without a JSON body",
                    status=response.status_code,
                    endpoint=endpoint,
                ) from exc
            raise ProviderResponseInvalid(
                f"{endpoint} did not answer JSON", function=endpoint, code=response.status_code
            ) from exc
        if not isinstance(data, dict):
            raise ProviderResponseInvalid(f"{endpoint} did not answer a JSON object",
                                          function=endpoint)
        if response.status_code >= 400 or "error" in data:
            error = data.get("error")
            raise oauth_error(
                str(error) if error else "server_error",
                str(data["error_description"]) if data.get("error_description") else None,
                status=response.status_code,
                endpoint=endpoint,
            )
        return data

    def _post(self, name: str, data: Mapping[str, str | None],
              url: str | None = None) -> dict[str, Any]:
        target = url or self.endpoint(name)
        form = {k: v for k, v in data.items() if v is not None}
        form.setdefault("client_id", self.client_id)
        response = self._send("POST", target, name, data=form,
                              headers={"Accept": "application/json"})
        return self._json(response, name)

    # -- discovery and keys ----------------------------------------------------------

    def metadata(self, *, refresh: bool = False) -> dict[str, Any]:
        """The discovery document (cached for ``metadata_ttl`` seconds)."""
        with self._lock:
            fresh = time.monotonic() - self._metadata_at < self.metadata_ttl
            if self._metadata is not None and fresh and not refresh:
                return self._metadata
            url = self.environment.discovery_url
            data = self._json(self._send("GET", url, "discovery"), "discovery")
            issuer = data.get("issuer")
            expected = self.environment.issuer
            if expected and issuer != expected:
                raise ProviderResponseInvalid(
                    f"the discovery document names issuer {issuer!r}, not {expected!r}",
                    function="discovery",
                )
            if not isinstance(issuer, str) or not issuer.startswith("https://"):
                raise ProviderResponseInvalid("the discovery document has no https issuer",
                                              function="discovery")
            self._metadata, self._metadata_at = data, time.monotonic()
            return data

    @property
    def issuer(self) -> str:
        return str(self.metadata()["issuer"])

    def endpoint(self, name: str) -> str:
        """``<name>_endpoint`` from discovery, its mTLS alias (RFC 8705 §5) when listed."""
        meta = self.metadata()
        key = name if name.endswith("_uri") else f"{name}_endpoint"
        aliases = meta.get("mtls_endpoint_aliases")
        if self.credentials is not None and isinstance(aliases, dict) and aliases.get(key):
            return str(aliases[key])
        value = meta.get(key)
        if not isinstance(value, str) or not value:
            raise ProviderResponseInvalid(f"the provider advertises no {key}", function=name)
        return value

    def refresh_jwks(self, *, forced: bool = False) -> None:
        data = self._json(self._send("GET", self.endpoint("jwks_uri"), "jwks"), "jwks")
        self.jwks.update(data, forced=forced)

    def _validate(self, token: str, **kw: Any) -> dict[str, Any]:
        if not self.jwks.loaded:
            self.refresh_jwks()
        kid = peek_header(token).get("kid")
        if not self.jwks.knows(kid) and self.jwks.may_refresh():
            self.refresh_jwks(forced=True)  # the provider rotated its keys
        return validate_jwt(token, self.jwks.keys, issuer=self.issuer, leeway=self.leeway, **kw)

    def validate_id_token(self, id_token: str, *, nonce: str | None = None,
                          acr: str | None = None) -> dict[str, Any]:
        """Claims of an ID token issued to this client (see :func:`validate_jwt`)."""
        return self._validate(id_token, audience=self.client_id, client_id=self.client_id,
                              nonce=nonce, acr=acr)

    def validate_access_token(self, access_token: str, *,
                              audience: str | None = None) -> dict[str, Any]:
        """Claims of a JWT access token from this issuer, bound to our certificate if bound."""
        claims = self._validate(access_token, audience=audience, require=("exp",))
        self._check_binding(claims)
        return claims

    def _check_binding(self, claims: Mapping[str, Any]) -> None:
        if self.credentials is not None:
            check_certificate_binding(claims, self.credentials.thumbprint)
        elif claims.get("cnf") is not None:
            raise TokenRejected("a certificate-bound token needs the organisation certificate",
                                code_name="cnf_mismatch")

    # -- results ---------------------------------------------------------------------

    def _login(self, data: Mapping[str, Any], *, nonce: str | None, acr: str | None,
               userinfo: bool) -> LoginResult:
        tokens = TokenSet.from_response(data)
        if tokens.id_token is None:
            raise TokenRejected("the provider returned no ID token", code_name="missing_claim")
        claims = self.validate_id_token(tokens.id_token, nonce=nonce, acr=acr)
        merged = dict(claims)
        if userinfo and self.metadata().get("userinfo_endpoint"):
            info = self.userinfo(tokens.access_token, expected_sub=str(claims.get("sub")))
            merged = {**info, **claims}
        return LoginResult(tokens, merged,
                           practitioner_from_claims(merged, test=self.environment.test))

    # -- CIBA ------------------------------------------------------------------------

    def ciba_start(
        self,
        who: object,
        *,
        binding_message: str | None = None,
        channel: Channel | None = None,
        scope: str | None = None,
        acr_values: str | None = None,
        requested_expiry: int | None = None,
    ) -> CibaRequest:
        """Ask PSC to authenticate *who* (national id, Practitioner or card) on the backchannel."""
        hint = login_hint_of(who)
        if channel is not None and channel not in ("CARD", "MOBILE"):
            raise InvalidInput("channel must be 'CARD' or 'MOBILE'")
        data = self._post("backchannel_authentication", {
            "scope": scope or self.scope,
            "login_hint": hint,
            "binding_message": binding_message,
            "acr_values": acr_values or self.acr_values,
            "channel": channel,
            "requested_expiry": str(requested_expiry) if requested_expiry else None,
        })
        auth_req_id, expires_in = data.get("auth_req_id"), data.get("expires_in")
        if not isinstance(auth_req_id, str) or not isinstance(expires_in, int | float):
            raise ProviderResponseInvalid("the CIBA answer lacks auth_req_id or expires_in",
                                          function="backchannel_authentication")
        interval = data.get("interval", _DEFAULT_INTERVAL)
        # A zero or negative interval would make a busy loop: one poll a second at most.
        pace = max(float(interval), 1.0) if isinstance(interval, int | float) else 5.0
        return CibaRequest(auth_req_id, hint, binding_message, pace, float(expires_in))

    def ciba_poll(self, request: CibaRequest, *, userinfo: bool = True) -> LoginResult | None:
        """One poll: the login when approved, ``None`` while pending (``slow_down`` adds
        5 s to ``request.interval``); ``access_denied`` / ``expired_token`` raise."""
        try:
            data = self._post("token", {"grant_type": CIBA_GRANT,
                                        "auth_req_id": request.auth_req_id})
        except OAuthAuthorizationPending:
            return None
        except OAuthSlowDown:
            request.interval += SLOW_DOWN_STEP
            return None
        return self._login(data, nonce=None, acr=self.acr_values or None, userinfo=userinfo)

    def ciba_wait(self, request: CibaRequest, *, timeout: float | None = None,
                  userinfo: bool = True) -> LoginResult:
        """Poll at the provider's interval until the practitioner answers.

        Raises :class:`OAuthAccessDenied` (refused), :class:`OAuthExpiredToken`
        (no answer in time), :class:`CibaCancelled` (``request.cancel()`` or *timeout*).
        """
        give_up = time.monotonic() + timeout if timeout is not None else None
        while True:
            if request._cancel.wait(request.interval):
                raise CibaCancelled("the CIBA login was cancelled", function="ciba_wait")
            if give_up is not None and time.monotonic() > give_up:
                raise CibaCancelled("no answer within the timeout", function="ciba_wait",
                                    code_name="timeout")
            result = self.ciba_poll(request, userinfo=userinfo)
            if result is not None:
                return result
            if time.monotonic() > request.deadline + 2 * request.interval:
                raise OAuthExpiredToken("the practitioner did not answer in time",
                                        error="expired_token", function="ciba_wait")

    def ciba_login(self, who: object, **kw: Any) -> LoginResult:
        """:meth:`ciba_start` then :meth:`ciba_wait` (``timeout`` goes to the wait)."""
        timeout = kw.pop("timeout", None)
        return self.ciba_wait(self.ciba_start(who, **kw), timeout=timeout)

    # -- authorization code flow with PKCE -------------------------------------------

    def authorization_request(
        self,
        redirect_uri: str,
        *,
        scope: str | None = None,
        login_hint: object = None,
        acr_values: str | None = None,
        use_par: bool | None = None,
    ) -> AuthorizationRequest:
        """A code-flow request with state, nonce and PKCE (S256); pushed (PAR) when the
        provider offers it (``use_par=None``) or requires it."""
        meta = self.metadata()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        params: dict[str, str | None] = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": scope or self.scope,
            "state": state,
            "nonce": nonce,
            "acr_values": acr_values or self.acr_values,
            "code_challenge": _b64url(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
            "login_hint": login_hint_of(login_hint) if login_hint is not None else None,
        }
        has_par = bool(meta.get("pushed_authorization_request_endpoint"))
        if meta.get("require_pushed_authorization_requests") and use_par is False:
            raise InvalidInput("this provider requires pushed authorization requests (PAR)")
        pushed = has_par and use_par is not False
        if use_par and not has_par:
            raise InvalidInput("this provider does not offer pushed authorization requests")
        if pushed:
            data = self._post("pushed_authorization_request", params)
            request_uri = data.get("request_uri")
            if not isinstance(request_uri, str):
                raise ProviderResponseInvalid("PAR answer without request_uri",
                                              function="pushed_authorization_request")
            query: dict[str, str | None] = {"client_id": self.client_id,
                                            "request_uri": request_uri}
        else:
            query = params
        url = self.endpoint("authorization") + "?" + urllib.parse.urlencode(
            {k: v for k, v in query.items() if v is not None})
        return AuthorizationRequest(url, redirect_uri, state, nonce, verifier, pushed)

    def authorization_callback(
        self, request: AuthorizationRequest, callback: str | Mapping[str, str], *,
        userinfo: bool = True,
    ) -> LoginResult:
        """Finish a code-flow login from the redirect (URL or its query parameters)."""
        if isinstance(callback, str):
            query = urllib.parse.urlsplit(callback).query
            params = dict(urllib.parse.parse_qsl(query))
        else:
            params = dict(callback)
        if params.get("state") != request.state:
            raise TokenRejected("the state does not match the login request (possible CSRF)",
                                code_name="state_mismatch", function="authorization")
        iss = params.get("iss")
        if iss is not None and iss != self.issuer:
            raise TokenRejected(f"the answer comes from issuer {iss!r}", code_name="wrong_issuer",
                                function="authorization")
        if "error" in params:
            raise oauth_error(params["error"], params.get("error_description"),
                              endpoint="authorization")
        code = params.get("code")
        if not code:
            raise ProviderResponseInvalid("the redirect carries neither code nor error",
                                          function="authorization")
        data = self._post("token", {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": request.redirect_uri,
            "code_verifier": request.code_verifier,
        })
        return self._login(data, nonce=request.nonce, acr=self.acr_values or None,
                           userinfo=userinfo)

    # -- refresh, userinfo, end session, introspection ----------------------------------

    def refresh(self, tokens: TokenSet) -> TokenSet:
        """New tokens from the refresh token (the ID token, when returned, is validated)."""
        if tokens.refresh_token is None:
            raise InvalidInput("these tokens have no refresh token (ask for offline_access?)")
        data = self._post("token", {"grant_type": "refresh_token",
                                    "refresh_token": tokens.refresh_token})
        new = TokenSet.from_response(data)
        if new.id_token is not None:
            self.validate_id_token(new.id_token)
        if new.refresh_token is None:
            new = TokenSet(new.access_token, new.token_type, new.expires_at, tokens.refresh_token,
                           new.id_token, new.scope, new.issued_token_type,
                           tokens.refresh_expires_at)
        return new

    def userinfo(self, access_token: str | TokenSet, *,
                 expected_sub: str | None = None) -> dict[str, Any]:
        """The userinfo claims (JSON, or a signed JWT validated against the JWKS)."""
        token = access_token.access_token if isinstance(access_token, TokenSet) else access_token
        response = self._send("GET", self.endpoint("userinfo"), "userinfo",
                              headers={"Authorization": f"Bearer {token}"})
        kind = response.headers.get("content-type", "").split(";")[0].strip()
        if kind == "application/jwt" and response.status_code == 200:
            claims = self._validate(response.text.strip(), audience=self.client_id,
                                    client_id=self.client_id, require=())
        else:
            claims = self._json(response, "userinfo")
        if expected_sub is not None and claims.get("sub") != expected_sub:
            raise TokenRejected("userinfo is about another subject", code_name="sub_mismatch",
                                function="userinfo")
        return claims

    def end_session_url(self, *, id_token_hint: str | None = None,
                        post_logout_redirect_uri: str | None = None,
                        state: str | None = None) -> str:
        """Where to send the browser to log out of PSC (RP-initiated logout)."""
        params = {"client_id": self.client_id, "id_token_hint": id_token_hint,
                  "post_logout_redirect_uri": post_logout_redirect_uri, "state": state}
        return self.endpoint("end_session") + "?" + urllib.parse.urlencode(
            {k: v for k, v in params.items() if v is not None})

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 introspection over mTLS; an active bound token must be bound to us."""
        data = self._post("introspection", {"token": token})
        if data.get("active"):
            self._check_binding(data)
        return data

    # -- token exchange (RFC 8693) ----------------------------------------------------

    def exchange(
        self,
        subject_token: str | TokenSet,
        *,
        scope: str | None = None,
        audience: str | None = None,
        resource: str | None = None,
        subject_token_type: str = ACCESS_TOKEN_TYPE,
        token_endpoint: str | None = None,
    ) -> TokenSet:
        """Exchange a PSC access token for one to call a service (RFC 8693, over mTLS).

        *token_endpoint* is the authorisation server's (default: the provider's).
        A JWT access token issued by this provider is validated (and its ``aud`` must
        include *audience* when one is asked), its binding checked; a token of another
        authorisation server is returned as it is (validate it with that server's keys).
        """
        token = (subject_token.access_token if isinstance(subject_token, TokenSet)
                 else subject_token)
        if not token:
            raise InvalidInput("the subject token is empty")
        data = self._post("token", {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": token,
            "subject_token_type": subject_token_type,
            "scope": scope,
            "audience": audience,
            "resource": resource,
        }, url=token_endpoint)
        tokens = TokenSet.from_response(data)
        if _jwt_issuer(tokens.access_token) == self.issuer:
            # Ours to check: signature, expiry, the audience asked for, the certificate binding.
            self.validate_access_token(tokens.access_token, audience=audience)
        return tokens


class AsyncPscClient:
    """:class:`PscClient`'s calls as coroutines.

    Each call runs the synchronous client in a worker thread (``asyncio.to_thread``):
    the event loop never blocks, and cancelling a task that waits for a CIBA
    answer cancels the :class:`CibaRequest`, which stops the worker's poll loop.
    """

    def __init__(self, client_id: str, credentials: OrganisationCredentials | None = None,
                 **kw: Any) -> None:
        self.sync = PscClient(client_id, credentials, **kw)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def metadata(self, *, refresh: bool = False) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.metadata, refresh=refresh)

    async def ciba_start(self, who: object, **kw: Any) -> CibaRequest:
        return await asyncio.to_thread(self.sync.ciba_start, who, **kw)

    async def ciba_wait(self, request: CibaRequest, **kw: Any) -> LoginResult:
        try:
            return await asyncio.to_thread(self.sync.ciba_wait, request, **kw)
        except asyncio.CancelledError:
            request.cancel()
            raise

    async def ciba_login(self, who: object, **kw: Any) -> LoginResult:
        timeout = kw.pop("timeout", None)
        request = await self.ciba_start(who, **kw)
        return await self.ciba_wait(request, timeout=timeout)

    async def authorization_request(self, redirect_uri: str, **kw: Any) -> AuthorizationRequest:
        return await asyncio.to_thread(self.sync.authorization_request, redirect_uri, **kw)

    async def authorization_callback(self, request: AuthorizationRequest,
                                     callback: str | Mapping[str, str],
                                     **kw: Any) -> LoginResult:
        return await asyncio.to_thread(self.sync.authorization_callback, request, callback, **kw)

    async def refresh(self, tokens: TokenSet) -> TokenSet:
        return await asyncio.to_thread(self.sync.refresh, tokens)

    async def userinfo(self, access_token: str | TokenSet, **kw: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.userinfo, access_token, **kw)

    async def exchange(self, subject_token: str | TokenSet, **kw: Any) -> TokenSet:
        return await asyncio.to_thread(self.sync.exchange, subject_token, **kw)

    async def introspect(self, token: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.introspect, token)

    def end_session_url(self, **kw: Any) -> str:
        return self.sync.end_session_url(**kw)

