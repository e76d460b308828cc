"""OCSP client against the real ``openssl ocsp`` responder (and replayed/hand-made answers)."""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from cps_middleware.testing._keys import deterministic_key
from cps_middleware.testing.pki import CertifiedKey, TestHolder, TestPki
from cps_middleware.testing.revocation_servers import (
    OpenSslOcspResponder,
    RevocationHttpServer,
    ocsp_response,
)
from cps_middleware.validation.ocsp import OcspClient, OcspStatus

Factory = Callable[..., OpenSslOcspResponder]
REVOKED_AT = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


class Certs:
    def __init__(self, pki: TestPki) -> None:
        def card(n: int) -> x509.Certificate:
            holder = TestHolder(id_number=f"1000140000{n}", card_number=f"8025000001/28000140{n}")
            return pki.issue_card(holder, key_type="p256").signature.certificate

        self.good, self.revoked, self.unknown = card(1), card(2), card(3)
        self.issuer = pki.intermediate.certificate

    def responder(self, factory: Factory, **kw: object) -> OpenSslOcspResponder:
        return factory(
            good=[self.good],
            revoked=[(self.revoked, x509.ReasonFlags.key_compromise, REVOKED_AT)],
            **kw,
        )


@pytest.fixture(scope="module")
def certs(cps_pki: TestPki) -> Certs:
    return Certs(cps_pki)


def test_good_revoked_unknown_signed_by_the_ca(
    certs: Certs, cps_ocsp_responder_factory: Factory
) -> None:
    responder = certs.responder(cps_ocsp_responder_factory)
    client = OcspClient(responder.url)
    good = client.check(certs.good, certs.issuer)
    assert good.status is OcspStatus.GOOD, good
    assert not good.delegated and "TEST AC IGC-SANTE FORT PERSONNES" in good.responder
    assert good.next_update is not None and good.this_update is not None
    revoked = client.check(certs.revoked, certs.issuer)
    assert revoked.status is OcspStatus.REVOKED
    assert revoked.revocation_reason == "key_compromise"
    assert revoked.revocation_time == REVOKED_AT
    assert client.check(certs.unknown, certs.issuer).status is OcspStatus.UNKNOWN
    # sentences in both languages
    assert revoked.message("fr") != revoked.message("en")
    assert "2026-01-02" in revoked.message("fr") and "compromission" in revoked.message("fr")

    # round trips on loopback (fresh requests, each with its own nonce) vs the cache
    timings = []
    for _ in range(15):
        client.clear_cache()
        t0 = time.perf_counter()
        assert client.check(certs.good, certs.issuer).ok
        timings.append(time.perf_counter() - t0)
    sent = client.requests_sent
    t0 = time.perf_counter()
    cached = client.check(certs.good, certs.issuer)
    t_cached = time.perf_counter() - t0
    assert cached.cached and cached.ok and client.requests_sent == sent
    print(f"\nOCSP round trip to openssl ocsp on loopback (RSA-4096 CA signer): median "
          f"{statistics.median(timings) * 1000:.1f} ms; cache hit {t_cached * 1e6:.0f} µs")


def test_delegated_responder(
    cps_pki: TestPki, certs: Certs, cps_ocsp_responder_factory: Factory
) -> None:
    responder = certs.responder(cps_ocsp_responder_factory, signer=cps_pki.ocsp_responder())
    r = OcspClient(responder.url).check(certs.revoked, certs.issuer)
    assert r.status is OcspStatus.REVOKED and r.delegated
    assert "TEST OCSP IGC-SANTE FORT PERSONNES" in r.responder
    # responder named by key hash instead of by name
    responder = certs.responder(
        cps_ocsp_responder_factory, signer=cps_pki.ocsp_responder(), by_key_id=True
    )
    assert OcspClient(responder.url).check(certs.good, certs.issuer).ok


def _unavailable(url: str, certs: Certs, cert: x509.Certificate | None = None, **kw: object) -> str:
    r = OcspClient(url, **kw).check(cert or certs.good, certs.issuer)  # type: ignore[arg-type]
    assert r.status is OcspStatus.UNAVAILABLE, r
    assert r.message("fr") != r.message("en")
    return r.why


def test_responders_the_ca_did_not_authorise(
    cps_pki: TestPki, certs: Certs, cps_ocsp_responder_factory: Factory
) -> None:
    # a responder certificate of the CA, but without id-kp-OCSPSigning
    no_eku = cps_pki.ocsp_responder(name="TEST NO OCSP SIGNING", ocsp_signing=False)
    url = certs.responder(cps_ocsp_responder_factory, signer=no_eku).url
    assert _unavailable(url, certs) == "UNAUTHORIZED_RESPONDER"
    # a responder delegated by another CA (the root), not by the card's CA
    by_root = cps_pki.ocsp_responder("root", name="TEST OCSP RACINE")
    url = certs.responder(cps_ocsp_responder_factory, signer=by_root).url
    assert _unavailable(url, certs) == "UNAUTHORIZED_RESPONDER"
    # the delegated responder certificate left out of the response
    url = certs.responder(
        cps_ocsp_responder_factory, signer=cps_pki.ocsp_responder(), include_signer=False
    ).url
    assert _unavailable(url, certs) == "UNAUTHORIZED_RESPONDER"


def test_signed_by_the_wrong_key(
    cps_pki: TestPki, certs: Certs, cps_ocsp_responder_factory: Factory
) -> None:
    # a self-made certificate with the CA's name and another key
    key = deterministic_key("revocation-tests/impostor", "p256")
    impostor = (
        x509.CertificateBuilder()
        .subject_name(certs.issuer.subject)
        .issuer_name(certs.issuer.subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(cps_pki.reference_time - dt.timedelta(days=1))
        .not_valid_after(cps_pki.reference_time + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    url = certs.responder(cps_ocsp_responder_factory, signer=CertifiedKey(impostor, key)).url
    assert _unavailable(url, certs) == "BAD_SIGNATURE"
    # the CA's own key, signature corrupted by openssl (-badsig)
    url = certs.responder(cps_ocsp_responder_factory, bad_signature=True).url
    assert _unavailable(url, certs) == "BAD_SIGNATURE"


def test_stale_and_future_answers(
    cps_pki: TestPki, certs: Certs, cps_revocation_server: RevocationHttpServer
) -> None:
    now = dt.datetime.now(dt.UTC)
    server = cps_revocation_server
    stale = ocsp_response(
        certs.good, certs.issuer, cps_pki.intermediate,
        this_update=now - dt.timedelta(days=3), next_update=now - dt.timedelta(days=2),
    )
    url = server.publish("/stale", stale, content_type="application/ocsp-response")
    assert _unavailable(url, certs) == "STALE"
    # no nextUpdate, and older than max_age
    old = ocsp_response(certs.good, certs.issuer, cps_pki.intermediate,
                        this_update=now - dt.timedelta(hours=3))
    url = server.publish("/old", old, content_type="application/ocsp-response")
    assert _unavailable(url, certs) == "STALE"
    assert OcspClient(url, max_age=dt.timedelta(hours=4)).check(certs.good, certs.issuer).ok
    # nextUpdate just past, inside the leeway: accepted; outside: refused
    edge = ocsp_response(certs.good, certs.issuer, cps_pki.intermediate,
                         this_update=now - dt.timedelta(hours=1),
                         next_update=now - dt.timedelta(minutes=2))
    url = server.publish("/edge", edge, content_type="application/ocsp-response")
    assert OcspClient(url).check(certs.good, certs.issuer).ok
    assert _unavailable(url, certs, leeway=dt.timedelta(seconds=30)) == "STALE"
    future = ocsp_response(certs.good, certs.issuer, cps_pki.intermediate,
                           this_update=now + dt.timedelta(hours=1))
    url = server.publish("/future", future, content_type="application/ocsp-response")
    assert _unavailable(url, certs) == "NOT_YET_VALID"


def test_replayed_answer_fails_the_nonce_check(
    certs: Certs, cps_ocsp_responder_factory: Factory,
    cps_revocation_server: RevocationHttpServer,
) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509 import ocsp

    from cps_middleware.validation._http import http_request

    responder = certs.responder(cps_ocsp_responder_factory)
    # record a genuine answer to a request with some nonce ...
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(certs.good, certs.issuer, hashes.SHA1())
        .add_extension(x509.OCSPNonce(b"an earlier nonce"), critical=False)
        .build()
    )
    recorded = http_request(responder.url, method="POST", body=request.public_bytes(Encoding.DER),
                            headers={"Content-Type": "application/ocsp-request"}).body
    assert ocsp.load_der_ocsp_response(recorded).certificate_status is ocsp.OCSPCertStatus.GOOD
    # ... and replay it to a client asking with its own nonce
    url = cps_revocation_server.publish("/replay", recorded,
                                        content_type="application/ocsp-response")
    assert _unavailable(url, certs) == "NONCE_MISMATCH"
    # a client that does not send a nonce takes it (a fresh, signed answer)
    assert OcspClient(url, nonce=False).check(certs.good, certs.issuer).ok
    # the responder itself echoes the nonce: a client requiring it is satisfied
    assert OcspClient(responder.url, require_nonce=True).check(certs.good, certs.issuer).ok


def test_answer_about_another_certificate_or_without_nonce(
    cps_pki: TestPki, certs: Certs, cps_revocation_server: RevocationHttpServer
) -> None:
    other = ocsp_response(certs.revoked, certs.issuer, cps_pki.intermediate, status="good")
    url = cps_revocation_server.publish("/other", other, content_type="application/ocsp-response")
    assert _unavailable(url, certs) == "CERTID_MISMATCH"
    plain = ocsp_response(certs.good, certs.issuer, cps_pki.intermediate)
    url = cps_revocation_server.publish("/plain", plain, content_type="application/ocsp-response")
    assert OcspClient(url).check(certs.good, certs.issuer).ok  # nonce not echoed: allowed
    assert _unavailable(url, certs, require_nonce=True) == "NONCE_MISSING"
    cps_revocation_server.publish("/junk", b"\x30\x03\x0a\x01\x00junk")
    assert _unavailable(cps_revocation_server.url("/junk"), certs) == "MALFORMED"
    assert _unavailable(cps_revocation_server.url("/missing"), certs) == "HTTP_STATUS"


def test_unavailable_responder_never_hangs(
    certs: Certs, cps_revocation_server: RevocationHttpServer
) -> None:
    url = cps_revocation_server.publish("/slow", b"", delay=3.0)
    t0 = time.monotonic()
    assert _unavailable(url, certs, timeout=0.3) == "TIMEOUT"
    assert time.monotonic() - t0 < 1.5
    port = cps_revocation_server.port
    cps_revocation_server.stop()
    assert _unavailable(f"http://127.0.0.1:{port}/", certs) == "NETWORK"
    r = OcspClient(None).check(certs.good, certs.issuer)
    assert r.status is OcspStatus.UNAVAILABLE and r.why == "NOT_CONFIGURED"
    # unavailable answers are not cached
    client = OcspClient(f"http://127.0.0.1:{port}/")
    client.check(certs.good, certs.issuer)
    client.check(certs.good, certs.issuer)
    assert client.requests_sent == 2


def test_cache_expires_at_next_update(
    cps_pki: TestPki, certs: Certs, cps_revocation_server: RevocationHttpServer
) -> None:
    now = dt.datetime.now(dt.UTC)
    resp = ocsp_response(certs.good, certs.issuer, cps_pki.intermediate,
                         this_update=now - dt.timedelta(minutes=1),
                         next_update=now + dt.timedelta(minutes=10))
    url = cps_revocation_server.publish("/r", resp, content_type="application/ocsp-response")
    moments = iter([now, now + dt.timedelta(minutes=5), now + dt.timedelta(minutes=16)])
    client = OcspClient(url, nonce=False, clock=lambda: next(moments))
    assert not client.check(certs.good, certs.issuer).cached
    assert client.check(certs.good, certs.issuer).cached
    # past nextUpdate (and the 5-minute leeway): asked again, the same answer is now stale
    late = client.check(certs.good, certs.issuer)
    assert not late.cached and late.why == "STALE"
    assert client.requests_sent == 2


def test_subject_names_in_responder_ids(cps_pki: TestPki, certs: Certs) -> None:
    # the delegated responder is issued by the card CA and carries the OCSP-signing EKU
    responder = cps_pki.ocsp_responder().certificate
    assert responder.issuer == certs.issuer.subject
    eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING in eku
    assert responder.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "TEST OCSP IGC-SANTE FORT PERSONNES"
    )


def test_client_settings_are_checked() -> None:
    from cps_middleware.errors import ValidationSetupError
    from cps_middleware.validation.revocation import CrlFetcher

    for kw in ({"leeway": dt.timedelta(days=1)}, {"hash_algorithm": "md5"},
               {"timeout": 0}, {"nonce": False, "require_nonce": True}):
        with pytest.raises(ValidationSetupError):
            OcspClient("http://127.0.0.1:1/", **kw)  # type: ignore[arg-type]
    with pytest.raises(ValidationSetupError):
        CrlFetcher(None, leeway=dt.timedelta(hours=2))
    with pytest.raises(ValidationSetupError):
        CrlFetcher(None, refresh_interval=dt.timedelta(minutes=1))
