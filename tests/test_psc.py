"""Pro Santé Connect against a real OpenID provider (panva's oidc-provider, shaped like PSC).

Every flow goes over mutual TLS with an IGC-Santé-shaped organisation
certificate; the provider is a separate Node process (``cps_psc`` fixture).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from cps_middleware import errors
from cps_middleware.cards.identity import practitioner_from_certificate
from cps_middleware.errors import (
    CibaCancelled,
    InvalidInput,
    OAuthAccessDenied,
    OAuthError,
    OAuthExpiredToken,
    OAuthInvalidBindingMessage,
    OAuthInvalidClient,
    OAuthInvalidGrant,
    OAuthInvalidRequest,
    OAuthInvalidScope,
    OAuthInvalidTarget,
    OAuthInvalidToken,
    OAuthUnknownUserId,
    TokenRejected,
)
from cps_middleware.psc import (
    PRODUCTION,
    SANDBOX,
    AsyncPscClient,
    OrganisationCredentials,
    PscClient,
    environment,
)
from cps_middleware.testing.pki import OrganisationCertificate, TestHolder, TestPki
from cps_middleware.testing.psc_provider import PscTestProvider

REDIRECT = "https://app.example.test/callback"
JEAN = TestHolder().ps_idnat  # 810001234567
MARIE = "810009876543"


def _client(op: PscTestProvider, org: OrganisationCertificate | None = None,
            client_id: str | None = None, **kw: Any) -> PscClient:
    creds = OrganisationCredentials.from_pkcs12((org or op.organisation).pkcs12(b"pw"), "pw")
    return PscClient(client_id or op.client_id, creds, env=op.issuer,
                     verify_cadata=op.ca_pem, **kw)


@pytest.fixture
def psc(cps_psc: PscTestProvider) -> Iterator[PscClient]:
    with _client(cps_psc) as client:
        yield client


def _browse(op: PscTestProvider, url: str) -> str:
    """The practitioner's browser: follow the provider's redirects back to the app."""
    ctx = ssl.create_default_context(cadata=op.ca_pem.decode())
    with httpx.Client(verify=ctx) as browser:
        for _ in range(10):
            response = browser.get(url)
            assert response.status_code in (302, 303), response.text
            location = response.headers["location"]
            if location.startswith(REDIRECT):
                return location
            url = urllib.parse.urljoin(url, location)
    raise AssertionError("the provider never redirected back")


def _forge(op: PscTestProvider, key: RSAKey | None = None, **claims: Any) -> str:
    key = key or op.signing_key()
    now = int(time.time())
    body = {"iss": op.issuer, "aud": op.client_id, "sub": JEAN, "iat": now, "exp": now + 300,
            "acr": "eidas1", **claims}
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": key.kid}, body, key)


# -- configuration and discovery ---------------------------------------------------


def test_environments_are_data_and_overridable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SANDBOX.issuer.endswith("/auth/realms/esante-wallet") and SANDBOX.test
    assert SANDBOX.discovery_url == SANDBOX.issuer + "/.well-known/wallet-openid-configuration"
    assert environment("production") is PRODUCTION and not PRODUCTION.test
    monkeypatch.setenv("CPS_PSC_ISSUER", "https://psc.example.test/auth/realms/x/")
    env = environment()
    assert env.issuer == "https://psc.example.test/auth/realms/x"
    assert env.discovery_url.endswith("/x/.well-known/wallet-openid-configuration")
    with pytest.raises(InvalidInput):
        environment("staging")


def test_discovery_is_psc_shaped_and_cached(psc: PscClient, cps_psc: PscTestProvider) -> None:
    meta = psc.metadata()
    assert meta["issuer"] == cps_psc.issuer
    assert "eidas1" in meta["acr_values_supported"]
    assert "tls_client_auth" in meta["token_endpoint_auth_methods_supported"]
    assert meta["tls_client_certificate_bound_access_tokens"] is True
    assert psc.endpoint("token").endswith("/protocol/openid-connect/token")
    assert psc.metadata() is meta
    assert psc.metadata(refresh=True) is not meta


def test_discovery_of_another_issuer_is_refused(cps_psc: PscTestProvider) -> None:
    env = environment(cps_psc.issuer)
    env = replace(env, issuer="https://127.0.0.1:1/auth/realms/other")
    creds = OrganisationCredentials.from_pkcs12(cps_psc.organisation.pkcs12(None))
    with PscClient(cps_psc.client_id, creds, env=env, verify_cadata=cps_psc.ca_pem) as client, \
            pytest.raises(errors.ProviderResponseInvalid):
        client.metadata()


def test_unreachable_provider_is_a_typed_error(cps_psc: PscTestProvider) -> None:
    with PscClient("x", env="https://127.0.0.1:9/auth/realms/esante-wallet", timeout=2) as c, \
            pytest.raises(errors.ProviderUnreachable):
        c.metadata()


# -- CIBA ---------------------------------------------------------------------------


def test_ciba_login_for_the_card_holder(psc: PscClient, cps_pki: TestPki) -> None:
    card_holder = practitioner_from_certificate(
        cps_pki.issue_card(TestHolder()).authentication.certificate)
    login = psc.ciba_login(card_holder, binding_message="Connexion LPS 42", channel="CARD")
    who = login.practitioner
    assert who.ps_id_nat == card_holder.ps_id_nat == JEAN
    assert (who.given_name, who.surname) == (card_holder.given_name, card_holder.surname)
    assert who.profession is not None and card_holder.profession is not None
    assert who.profession.code == card_holder.profession.code
    assert login.claims["acr"] == "eidas1"
    assert login.tokens.expires_in() is not None and 200 < (login.tokens.expires_in() or 0) <= 300
    assert login.tokens.access_token not in repr(login) and "access_token=" not in repr(login)
    assert psc.introspect(login.tokens.access_token)["cnf"]["x5t#S256"] == (
        psc.credentials.thumbprint if psc.credentials else None)


def test_ciba_pending_then_approved(psc: PscClient, cps_psc: PscTestProvider) -> None:
    cps_psc.approver(MARIE, "approve", delay_ms=3000)
    request = psc.ciba_start(MARIE, binding_message="Code 7")
    assert request.interval == 1
    time.sleep(request.interval)
    assert psc.ciba_poll(request) is None  # authorization_pending
    login = psc.ciba_wait(request, timeout=10)
    assert login.practitioner.ps_id_nat == MARIE


def test_ciba_denied(psc: PscClient, cps_psc: PscTestProvider) -> None:
    cps_psc.approver(JEAN, "deny", delay_ms=200)
    with pytest.raises(OAuthAccessDenied) as info:
        psc.ciba_login(JEAN, binding_message="Connexion")
    assert info.value.code_name == "access_denied" and info.value.hint


def test_ciba_expired(psc: PscClient, cps_psc: PscTestProvider) -> None:
    cps_psc.approver(JEAN, "pending")
    start = time.monotonic()
    with pytest.raises(OAuthExpiredToken):
        psc.ciba_login(JEAN, requested_expiry=2)
    assert time.monotonic() - start < 8


def test_ciba_slow_down_adds_five_seconds(psc: PscClient, cps_psc: PscTestProvider) -> None:
    cps_psc.approver(JEAN, "slow", delay_ms=4000)
    request = psc.ciba_start(JEAN)
    time.sleep(request.interval)
    assert psc.ciba_poll(request) is None  # pending (first poll)
    time.sleep(request.interval)
    assert psc.ciba_poll(request) is None  # slow_down: polled faster than the provider wants
    assert request.interval == 6
    assert psc.ciba_wait(request, timeout=15).practitioner.ps_id_nat == JEAN


def test_ciba_cancel_from_another_thread(psc: PscClient, cps_psc: PscTestProvider) -> None:
    cps_psc.approver(JEAN, "pending")
    request = psc.ciba_start(JEAN)
    threading.Timer(0.3, request.cancel).start()
    start = time.monotonic()
    with pytest.raises(CibaCancelled):
        psc.ciba_wait(request)
    assert time.monotonic() - start < 3  # not the 600 s the provider would wait


def test_ciba_poll_of_an_unknown_request_is_invalid_grant(psc: PscClient) -> None:
    request = psc.ciba_start(JEAN)
    forged = replace(request, auth_req_id="not-a-request-id")
    with pytest.raises(OAuthInvalidGrant):
        psc.ciba_poll(forged)


@pytest.mark.parametrize(
    ("hint", "kw", "error"),
    [
        ("810000000000", {}, OAuthUnknownUserId),
        (JEAN, {"binding_message": "x" * 80}, OAuthInvalidBindingMessage),
        (JEAN, {"acr_values": "eidas1", "scope": "openid not_a_scope"}, None),
    ],
)
def test_ciba_request_errors_are_typed(psc: PscClient, hint: str, kw: dict[str, Any],
                                       error: type[OAuthError] | None) -> None:
    if error is None:  # unknown scopes are dropped by the provider, the login still works
        assert psc.ciba_start(hint, **kw).auth_req_id
        return
    with pytest.raises(error):
        psc.ciba_start(hint, **kw)


@pytest.mark.parametrize("hint", ["", "12", "dr house", object()])
def test_malformed_login_hint_is_refused_before_any_request(psc: PscClient, hint: Any) -> None:
    with pytest.raises(InvalidInput):
        psc.ciba_start(hint)


def test_async_ciba_login_and_cancel(cps_psc: PscTestProvider) -> None:
    async def scenario() -> None:
        creds = OrganisationCredentials.from_pkcs12(cps_psc.organisation.pkcs12(b"pw"), b"pw")
        async with AsyncPscClient(cps_psc.client_id, creds, env=cps_psc.issuer,
                                  verify_cadata=cps_psc.ca_pem) as psc:
            login = await psc.ciba_login(JEAN, binding_message="Async")
            assert login.practitioner.ps_id_nat == JEAN
            cps_psc.approver(JEAN, "pending")
            request = await psc.ciba_start(JEAN)
            task = asyncio.ensure_future(psc.ciba_wait(request))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert request.cancelled

    asyncio.run(scenario())


# -- mutual TLS with the organisation certificate -------------------------------------


def test_revoked_organisation_certificate_is_refused(cps_psc: PscTestProvider) -> None:
    with _client(cps_psc, cps_psc.revoked_organisation, cps_psc.client_id + "-revoked") as c, \
            pytest.raises(OAuthInvalidClient) as info:
        c.ciba_start(JEAN)
    assert info.value.code == 401 and "certificate" in (info.value.hint or "")


def test_certificate_of_another_organisation_is_refused(cps_psc: PscTestProvider) -> None:
    with _client(cps_psc, cps_psc.stranger_organisation) as c, pytest.raises(OAuthInvalidClient):
        c.ciba_start(JEAN)


def test_certificate_from_another_pki_is_refused(cps_psc: PscTestProvider) -> None:
    other = TestPki(seed="another-pki", ca_key_type="p256").issue_organisation(
        service="PROXY LPS TEST", key_type="p256")
    with _client(cps_psc, other) as c, pytest.raises(OAuthInvalidClient):
        c.ciba_start(JEAN)


def test_no_client_certificate_is_refused(cps_psc: PscTestProvider) -> None:
    with PscClient(cps_psc.client_id, env=cps_psc.issuer, verify_cadata=cps_psc.ca_pem) as c, \
            pytest.raises(OAuthInvalidClient):
        c.ciba_start(JEAN)


def test_bound_token_is_refused_with_another_certificate(
    psc: PscClient, cps_psc: PscTestProvider
) -> None:
    login = psc.ciba_login(JEAN)
    exchanged = psc.exchange(login.tokens, scope="dmp:read", audience="https://api.dmp.test")
    with _client(cps_psc, cps_psc.stranger_organisation) as thief:
        with pytest.raises(TokenRejected) as info:
            thief.validate_access_token(exchanged.access_token, audience="https://api.dmp.test")
        assert info.value.code_name == "cnf_mismatch"
        with pytest.raises(OAuthInvalidToken):  # the provider checks the binding too
            thief.userinfo(login.tokens.access_token)


def test_pkcs12_with_a_wrong_password_is_refused(cps_psc: PscTestProvider) -> None:
    with pytest.raises(InvalidInput):
        OrganisationCredentials.from_pkcs12(cps_psc.organisation.pkcs12(b"right"), "wrong")


# -- authorization code flow ----------------------------------------------------------


@pytest.mark.parametrize("use_par", [None, False])
def test_code_flow_with_pkce(psc: PscClient, cps_psc: PscTestProvider,
                             use_par: bool | None) -> None:
    request = psc.authorization_request(REDIRECT, login_hint=MARIE, use_par=use_par)
    assert request.pushed is (use_par is None)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.url).query)
    assert ("request_uri" in query) is request.pushed
    if not request.pushed:
        assert query["code_challenge_method"] == ["S256"] and query["acr_values"] == ["eidas1"]
        assert request.code_verifier not in request.url
    login = psc.authorization_callback(request, _browse(cps_psc, request.url))
    assert login.practitioner.ps_id_nat == MARIE
    assert login.practitioner.profession is not None
    assert login.practitioner.profession.code == "21"


def test_code_flow_refusals(psc: PscClient, cps_psc: PscTestProvider) -> None:
    request = psc.authorization_request(REDIRECT, login_hint=JEAN)
    callback = _browse(cps_psc, request.url)
    with pytest.raises(TokenRejected) as info:
        psc.authorization_callback(replace(request, state="forged"), callback)
    assert info.value.code_name == "state_mismatch"
    with pytest.raises(TokenRejected) as info:
        psc.authorization_callback(replace(request, nonce="another"), callback)
    assert info.value.code_name == "wrong_nonce"
    with pytest.raises(OAuthInvalidGrant):  # the code was used (and burnt) above
        psc.authorization_callback(request, callback)
    cps_psc.approver(JEAN, "deny")
    request = psc.authorization_request(REDIRECT, login_hint=JEAN)
    with pytest.raises(OAuthAccessDenied):
        psc.authorization_callback(request, _browse(cps_psc, request.url))


def test_refresh_userinfo_and_end_session(psc: PscClient, cps_psc: PscTestProvider) -> None:
    login = psc.ciba_login(JEAN)
    renewed = psc.refresh(login.tokens)
    assert renewed.access_token != login.tokens.access_token
    assert psc.userinfo(renewed, expected_sub=JEAN)["SubjectNameID"] == JEAN
    url = psc.end_session_url(id_token_hint=login.tokens.id_token,
                              post_logout_redirect_uri="https://app.example.test/logged-out")
    assert url.startswith(psc.endpoint("end_session"))
    ctx = ssl.create_default_context(cadata=cps_psc.ca_pem.decode())
    assert httpx.get(url, verify=ctx).status_code == 200  # the logout confirmation page


def test_signed_userinfo_is_validated(cps_psc: PscTestProvider) -> None:
    with _client(cps_psc, client_id=cps_psc.client_id + "-jwt") as psc:
        login = psc.ciba_login(JEAN)
        info = psc.userinfo(login.tokens, expected_sub=JEAN)
        assert info["iss"] == cps_psc.issuer and info["SubjectNameID"] == JEAN


# -- token validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "another-client"}, "wrong_audience"),
        ({"iss": "https://evil.example.test/"}, "wrong_issuer"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"iat": int(time.time()) + 3600}, "not_yet_valid"),
        ({"acr": "0"}, "acr_too_low"),
        ({"exp": None}, "missing_claim"),
    ],
)
def test_id_token_claims_are_checked(psc: PscClient, cps_psc: PscTestProvider,
                                     claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(TokenRejected) as info:
        psc.validate_id_token(_forge(cps_psc, **claims), acr="eidas1")
    assert info.value.code_name == reason


def test_clock_leeway_is_bounded(cps_psc: PscTestProvider) -> None:
    late = _forge(cps_psc, exp=int(time.time()) - 30)
    with _client(cps_psc, leeway=60) as tolerant, _client(cps_psc, leeway=0) as strict:
        assert tolerant.validate_id_token(late)["sub"] == JEAN
        with pytest.raises(TokenRejected) as info:
            strict.validate_id_token(late)
        assert info.value.code_name == "expired"
    with pytest.raises(InvalidInput):
        PscClient("x", env="sandbox", leeway=301)


def test_id_token_nonce_and_signature_are_checked(psc: PscClient,
                                                  cps_psc: PscTestProvider) -> None:
    good = _forge(cps_psc, nonce="n-1")
    assert psc.validate_id_token(good, nonce="n-1", acr="eidas1")["sub"] == JEAN
    with pytest.raises(TokenRejected) as info:
        psc.validate_id_token(good, nonce="n-2")
    assert info.value.code_name == "wrong_nonce"
    impostor = RSAKey.generate_key(2048, {"kid": cps_psc.signing_key().kid})
    with pytest.raises(TokenRejected) as info:
        psc.validate_id_token(_forge(cps_psc, impostor, nonce="n-1"), nonce="n-1")
    assert info.value.code_name == "bad_signature"
    head, body, sig = good.split(".")
    with pytest.raises(TokenRejected):
        psc.validate_id_token(f"{head}.{body}.{sig[:-4]}AAAA")
    with pytest.raises(TokenRejected) as info:  # alg "none" is never accepted
        psc.validate_id_token("eyJhbGciOiJub25lIn0." + body + ".")
    assert info.value.code_name == "bad_signature"
    with pytest.raises(InvalidInput):
        PscClient("x", env="sandbox", leeway=3600)


def test_jwks_rotation_refetches_once_and_is_rate_limited(cps_psc: PscTestProvider) -> None:
    with _client(cps_psc, jwks_min_refresh=60) as psc:
        psc.ciba_login(JEAN)
        fetched = psc.jwks.fetches
        new_kid = cps_psc.rotate_keys()
        login = psc.ciba_login(JEAN)  # ID token signed with the new key
        assert psc.jwks.fetches == fetched + 1 and new_kid in psc.jwks.kids
        assert login.practitioner.ps_id_nat == JEAN
        stranger = RSAKey.generate_key(2048, {"kid": "made-up"})
        with pytest.raises(TokenRejected) as info:
            psc.validate_id_token(_forge(cps_psc, stranger))
        assert info.value.code_name == "unknown_key"
        assert psc.jwks.fetches == fetched + 1  # no new download within min_refresh


# -- token exchange (RFC 8693) -------------------------------------------------------


def test_token_exchange_over_mtls(psc: PscClient, cps_psc: PscTestProvider) -> None:
    login = psc.ciba_login(JEAN)
    exchanged = psc.exchange(login.tokens, scope="dmp:read", audience="https://api.dmp.test")
    assert exchanged.issued_token_type == "urn:ietf:params:oauth:token-type:access_token"
    claims = psc.validate_access_token(exchanged.access_token, audience="https://api.dmp.test")
    assert claims["sub"] == JEAN and claims["scope"] == "dmp:read"
    assert claims["cnf"]["x5t#S256"] == (psc.credentials.thumbprint if psc.credentials else "")


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"scope": "dmp:delete"}, OAuthInvalidScope),
        ({"audience": "https://unknown.test"}, OAuthInvalidTarget),
        ({"subject_token": "not-a-token"}, OAuthInvalidGrant),
        ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, OAuthInvalidRequest),
    ],
)
def test_token_exchange_errors_are_typed(psc: PscClient, kw: dict[str, Any],
                                         error: type[OAuthError]) -> None:
    subject = kw.pop("subject_token", None) or psc.ciba_login(JEAN).tokens.access_token
    with pytest.raises(error) as info:
        psc.exchange(subject, **kw)
    assert info.value.function == "token" and info.value.code == 400


def test_every_oauth_error_code_has_a_typed_error() -> None:
    for code, cls in errors.OAUTH_ERRORS.items():
        err = errors.oauth_error(code, "why", status=400, endpoint="token")
        assert type(err) is cls and isinstance(err, OAuthError)
        assert err.code_name == code and err.hint and "why" in str(err)
    assert type(errors.oauth_error("brand_new_code")) is OAuthError


def test_pkcs11_token_key_authenticates_the_client(
    cps_psc: PscTestProvider, cps4_card: Any, cps_pki: TestPki
) -> None:
    """The TLS client key on a PKCS#11 token (a SoftHSM-backed card): it never leaves it."""
    from cps_middleware.card import open_card
    from cps_middleware.pkcs11 import Pin
    from cps_middleware.testing import test_token_module

    card = open_card(module=test_token_module(), serial=cps4_card.serial)
    try:
        card.login(Pin(cps4_card.pin))
        creds = OrganisationCredentials.from_pkcs11(card, chain=(cps_pki.intermediate.certificate,))
        cps_psc.register_client("card-client", creds.certificate)
        with PscClient("card-client", creds, env=cps_psc.issuer,
                       verify_cadata=cps_psc.ca_pem) as psc:
            login = psc.ciba_login(JEAN, binding_message="Carte")
            assert login.practitioner.ps_id_nat == JEAN
            assert psc.introspect(login.tokens.access_token)["cnf"]["x5t#S256"] == (
                creds.thumbprint)
    finally:
        card.close()
