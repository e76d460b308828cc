"""The Test SSL against local servers: success and each failure explained."""

from __future__ import annotations

import socket
import ssl
import sys
import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from cps_middleware.testing.pki import TestHolder, TestPki
from cps_middleware.testing.servers import MutualTlsServer, OpenSslServer, ServerPki, SlowRSAKey
from cps_middleware.tls import Failure, TestSslResult, test_ssl
from cps_middleware.tls.testssl import _fetch_chain


def _key(pki: TestPki) -> tuple[object, object]:
    creds = pki.issue_card(TestHolder())
    return creds.authentication.private_key, creds.authentication.certificate


def test_accepted(cps_pki: TestPki, cps_tls_server: MutualTlsServer) -> None:
    key, cert = _key(cps_pki)
    r = test_ssl(cps_tls_server.url, key, cert, cadata=cps_tls_server.ca_pem)
    assert r.ok and r.failure is None, r.to_text()
    assert r.protocol == "TLSv1.3" and r.client_signature == "rsa_pss sha256"
    assert r.http_status == 200 and r.server_verified
    assert r.server_chain[0].subject == "CN=localhost"
    assert "tls_handshake" in r.timings_ms


def test_pkcs1_card_tls12(cps_pki: TestPki, cps_tls_server: MutualTlsServer) -> None:
    key, cert = _key(cps_pki)
    r = test_ssl(cps_tls_server.url, key, cert, cadata=cps_tls_server.ca_pem, pss=False)
    assert r.ok and r.protocol == "TLSv1.2" and r.client_signature == "rsa_pkcs1 sha256"


def test_untrusted_server(cps_pki: TestPki, cps_tls_server: MutualTlsServer) -> None:
    key, cert = _key(cps_pki)
    r = test_ssl(cps_tls_server.url, key, cert, cadata=ServerPki().ca_pem)
    assert not r.ok and r.failure is Failure.SERVER_UNTRUSTED


def test_no_client_certificate_requested(
    cps_pki: TestPki, cps_tls_server_factory: Callable[..., MutualTlsServer]
) -> None:
    server = cps_tls_server_factory(client_cert="none")
    key, cert = _key(cps_pki)
    r = test_ssl(server.url, key, cert, cadata=server.ca_pem)
    assert not r.ok and r.failure is Failure.NO_CLIENT_CERT_REQUESTED


def test_rejected_by_server(
    cps_tls_server_factory: Callable[..., MutualTlsServer],
) -> None:
    other = TestPki(seed="another-pki")
    server = cps_tls_server_factory()  # trusts cps_pki only
    key, cert = _key(other)
    r = test_ssl(server.url, key, cert, cadata=server.ca_pem)
    assert not r.ok and r.failure is Failure.CLIENT_CERT_REJECTED, r.to_text()


def test_network_error(cps_pki: TestPki) -> None:
    key, cert = _key(cps_pki)
    r = test_ssl("https://127.0.0.1:9/", key, cert)
    assert not r.ok and r.failure is Failure.NETWORK


def test_report_names_the_holder_and_shows_the_server_answer(
    cps_pki: TestPki, cps_tls_server: MutualTlsServer
) -> None:
    key, cert = _key(cps_pki)
    r = test_ssl(cps_tls_server.url, key, cert, cadata=cps_tls_server.ca_pem)
    assert r.client_holder is not None and r.client_holder.ps_id_nat == "810001234567"
    assert '"ps_id_nat": "810001234567"' in r.http_body
    text = r.to_text("en")
    assert "OK" in text and "card holder:" in text and "TLSv1.3" in text
    text = r.to_text("fr")
    assert "OK — le serveur a accepté la carte" in text and "titulaire de la carte :" in text
    assert "card holder" not in text and "server" not in text


# -- the server chain: the whole chain the server sent, on every Python ---------------------------

_SOURCE = "get_unverified_chain" if sys.version_info >= (3, 13) else "pyopenssl"


@pytest.fixture(scope="module")
def chain_pki() -> ServerPki:
    return ServerPki(intermediate=True)


def _counting_key(pki: TestPki) -> tuple[SlowRSAKey, object]:
    creds = pki.issue_card(TestHolder())
    key = creds.authentication.private_key
    assert isinstance(key, rsa.RSAPrivateKey)
    return SlowRSAKey(key, 0.0), creds.authentication.certificate  # counts its signatures


def _assert_full_chain(r: TestSslResult, pki: ServerPki) -> None:
    assert [c.subject for c in r.server_chain] == [
        "CN=localhost",
        "CN=TEST CPS SERVER INTERMEDIATE CA",
    ], r.to_text()
    assert [c.issuer for c in r.server_chain] == [
        "CN=TEST CPS SERVER INTERMEDIATE CA",
        "CN=TEST CPS SERVER CA",
    ]
    assert pki.intermediate_certificate is not None
    for seen, cert in zip(r.server_chain, pki.chain, strict=True):
        assert seen.not_before == cert.not_valid_before_utc
        assert seen.not_after == cert.not_valid_after_utc


@pytest.mark.parametrize("server_kind", ["python", "openssl"])
@pytest.mark.parametrize("client_cert", ["required", "none"])
@pytest.mark.parametrize("pss", [None, False], ids=["tls13", "tls12"])
def test_full_server_chain(
    cps_pki: TestPki,
    chain_pki: ServerPki,
    cps_tls_server_factory: Callable[..., MutualTlsServer],
    cps_openssl_server_factory: Callable[..., OpenSslServer],
    server_kind: str,
    client_cert: str,
    pss: bool | None,
) -> None:
    factory = cps_tls_server_factory if server_kind == "python" else cps_openssl_server_factory
    server = factory(client_cert=client_cert, server_pki=chain_pki)
    key, cert = _counting_key(cps_pki)
    r = test_ssl(server.url, key, cert, cadata=server.ca_pem, pss=pss, timeout=10)
    assert r.protocol == ("TLSv1.3" if pss is None else "TLSv1.2"), r.to_text()
    assert r.server_verified  # the card connection's verdict
    _assert_full_chain(r, chain_pki)
    assert r.server_chain_source == _SOURCE
    assert ("chain_fetch" in r.timings_ms) == (_SOURCE == "pyopenssl")
    assert "server chain: 2 certificate(s)" in r.to_text("en")
    assert "chaîne du serveur : 2 certificat(s)" in r.to_text("fr")
    if client_cert == "required":
        assert r.ok and r.http_status == 200, r.to_text()
        assert key.signatures == 1  # the card connection's only: the chain fetch signs nothing
    else:
        assert r.failure is Failure.NO_CLIENT_CERT_REQUESTED, r.to_text()
        assert key.signatures == 0


def test_untrusted_server_shows_its_chain(
    cps_pki: TestPki,
    chain_pki: ServerPki,
    cps_tls_server_factory: Callable[..., MutualTlsServer],
) -> None:
    server = cps_tls_server_factory(server_pki=chain_pki)
    key, cert = _counting_key(cps_pki)
    r = test_ssl(server.url, key, cert, cadata=ServerPki().ca_pem, timeout=10)
    assert r.failure is Failure.SERVER_UNTRUSTED and not r.server_verified, r.to_text()
    # the card connection stopped at the server's certificate: the chain comes
    # from the separate handshake, on every Python
    _assert_full_chain(r, chain_pki)
    assert r.server_chain_source == "pyopenssl"
    assert key.signatures == 0


def test_chain_fetch_times_out() -> None:
    # a server that accepts the connection and never answers the ClientHello
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ctx = ssl.create_default_context()
        t = time.monotonic()
        chain = _fetch_chain("127.0.0.1", listener.getsockname()[1], ctx, 0.5)
        elapsed = time.monotonic() - t
    assert chain == [] and 0.4 < elapsed < 2.0


def test_leaf_only_when_the_chain_fetch_fails(
    cps_pki: TestPki,
    chain_pki: ServerPki,
    cps_openssl_server_factory: Callable[..., OpenSslServer],
) -> None:
    # s_server serves two connections (its start-up probe and the card's) and
    # exits: the separate handshake finds no server
    server = cps_openssl_server_factory(server_pki=chain_pki, extra_args=["-naccept", "2"])
    key, cert = _counting_key(cps_pki)
    r = test_ssl(server.url, key, cert, cadata=server.ca_pem, timeout=10)
    assert r.ok and r.server_verified, r.to_text()
    if _SOURCE == "pyopenssl":
        assert r.server_chain_source == "leaf_only"
        assert [c.subject for c in r.server_chain] == ["CN=localhost"]
    else:
        _assert_full_chain(r, chain_pki)
    assert key.signatures == 1
