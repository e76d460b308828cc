"""The Test SSL against local servers: success and each failure explained."""

from __future__ import annotations

from collections.abc import Callable

from cps_middleware.testing.pki import TestHolder, TestPki
from cps_middleware.testing.servers import MutualTlsServer, ServerPki
from cps_middleware.tls import Failure, test_ssl


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
    text = r.to_text()
    assert "OK" in text and "card holder:" in text and "TLSv1.3" in text
