"""RevocationChecker: the validator with CRLs fetched over HTTP and OCSP, soft- and hard-fail."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from cps_middleware.errors import ValidationSetupError
from cps_middleware.testing.pki import Revocation, TestHolder, TestPki
from cps_middleware.testing.revocation_servers import OpenSslOcspResponder, RevocationHttpServer
from cps_middleware.validation import Status, ValidatorBuilder, igc_sante_test
from cps_middleware.validation.ocsp import OcspClient, OcspStatus
from cps_middleware.validation.revocation import (
    CrlFetcher,
    CrlOutcome,
    RevocationChecker,
    RevocationSources,
)

BASE = "http://igc-sante.esante.gouv.fr/CRL/"
LEAF_CRL = "/CRL/ACI-FO-PP-TEST.crl"
ROOT_CRL = "/CRL/ACR-FO-TEST.crl"
Factory = Callable[..., OpenSslOcspResponder]


class Cards:
    def __init__(self, pki: TestPki) -> None:
        def card(n: int) -> x509.Certificate:
            holder = TestHolder(id_number=f"1000150000{n}", card_number=f"8025000001/28000150{n}")
            return pki.issue_card(holder, key_type="p256").authentication.certificate

        self.good, self.revoked, self.unknown = card(1), card(2), card(3)
        self.expired = pki.issue_card(
            TestHolder(id_number="10001500009", card_number="8025000001/2800015009"),
            key_type="p256",
            not_before=pki.reference_time - dt.timedelta(days=400),
            not_after=pki.reference_time - dt.timedelta(days=10),
        ).authentication.certificate


@pytest.fixture(scope="module")
def cards(cps_pki: TestPki) -> Cards:
    return Cards(cps_pki)


@pytest.fixture
def builder(cps_pki: TestPki) -> ValidatorBuilder:
    return ValidatorBuilder().trust(igc_sante_test(cps_pki.ca_certificates))


def fetcher(server: RevocationHttpServer, tmp: Path | None = None) -> CrlFetcher:
    sources = RevocationSources.igc_sante().with_mirror(BASE, server.url("/CRL/"))
    return CrlFetcher(tmp, sources=sources)


def test_crls_fetched_for_the_whole_path(
    cps_pki: TestPki, cards: Cards, builder: ValidatorBuilder,
    cps_revocation_server: RevocationHttpServer, tmp_path: Path,
) -> None:
    server = cps_revocation_server
    server.publish(ROOT_CRL, cps_pki.crl("root"))
    server.publish(LEAF_CRL, cps_pki.crl(
        "intermediate", extra=[Revocation(cards.revoked.serial_number)]))
    checker = RevocationChecker(builder, failure="hard", fetcher=fetcher(server, tmp_path))
    batch = checker.validate_many([cards.good, cards.revoked, cards.expired, b"junk"])
    good, revoked, expired, junk = batch
    assert good.status is Status.VALID, good.result.reason
    assert {f.url for f in good.crls} == {BASE + "ACI-FO-PP-TEST.crl", BASE + "ACR-FO-TEST.crl"}
    assert all(f.outcome in (CrlOutcome.DOWNLOADED, CrlOutcome.CACHED) for f in good.crls)
    assert revoked.status is Status.REVOKED
    assert revoked.result.revocation is not None
    assert revoked.result.revocation.reason == "key_compromise"
    assert expired.status is Status.EXPIRED and not expired.crls  # nothing fetched for it
    assert junk.status is Status.MALFORMED
    assert batch.counts()[Status.VALID] == 1
    # each CRL downloaded once for the whole batch
    assert len(server.requests_for(LEAF_CRL)) == 1 and len(server.requests_for(ROOT_CRL)) == 1
    # the fetched CRLs can also be given to a ValidatorBuilder directly
    ders = [f.der for f in checker.fetch_crls([cards.good]) if f.der is not None]
    v = builder.crls(ders).revocation("hard").build()
    assert v.validate(cards.good).ok and v.validate(cards.revoked).status is Status.REVOKED


def test_ocsp_for_what_no_crl_covers(
    cps_pki: TestPki, cards: Cards, builder: ValidatorBuilder,
    cps_revocation_server: RevocationHttpServer, cps_ocsp_responder_factory: Factory,
) -> None:
    server = cps_revocation_server
    server.publish(ROOT_CRL, cps_pki.crl("root"))  # the card CA's CRL is missing (404)
    responder = cps_ocsp_responder_factory(
        signer=cps_pki.ocsp_responder(),
        good=[cards.good],
        revoked=[(cards.revoked, x509.ReasonFlags.superseded,
                  cps_pki.reference_time - dt.timedelta(days=3))],
    )
    checker = RevocationChecker(
        builder, failure="hard", fetcher=fetcher(server), ocsp=OcspClient(responder.url)
    )
    good, revoked, unknown = checker.validate_many([cards.good, cards.revoked, cards.unknown])
    assert good.status is Status.VALID, good.result.reason
    assert [a.status for a in good.ocsp] == [OcspStatus.GOOD]  # the leaf only
    assert any(f.outcome is CrlOutcome.FAILED for f in good.crls)
    assert revoked.status is Status.REVOKED
    assert revoked.result.revocation is not None
    assert revoked.result.revocation.reason == "superseded"
    assert "OCSP" in revoked.result.reason
    # "unknown" from the responder is never accepted, even in soft-fail
    assert unknown.status is Status.REVOCATION_UNKNOWN
    soft = RevocationChecker(
        builder, failure="soft", fetcher=fetcher(server), ocsp=OcspClient(responder.url)
    )
    assert soft.validate(cards.unknown).status is Status.REVOCATION_UNKNOWN


def test_soft_fail_and_hard_fail_when_nothing_answers(
    cps_pki: TestPki, cards: Cards, builder: ValidatorBuilder,
    cps_revocation_server: RevocationHttpServer,
) -> None:
    server = cps_revocation_server  # no CRL published; OCSP responder down
    port = RevocationHttpServer().start()
    down = port.url("/")
    port.stop()
    hard = RevocationChecker(builder, failure="hard", fetcher=fetcher(server),
                             ocsp=OcspClient(down, timeout=1))
    r = hard.validate(cards.good)
    assert r.status is Status.REVOCATION_UNKNOWN and not r.soft_failed
    assert r.ocsp and r.ocsp[0].status is OcspStatus.UNAVAILABLE
    soft = RevocationChecker(builder, failure="soft", fetcher=fetcher(server),
                             ocsp=OcspClient(down, timeout=1))
    r = soft.validate(cards.good)
    assert r.status is Status.VALID and r.soft_failed
    notes_fr, notes_en = r.notes("fr"), r.notes("en")
    assert notes_fr != notes_en and any("soft-fail" in n for n in notes_en)
    # a CRL that says "revoked" wins over soft-fail
    server.publish(LEAF_CRL, cps_pki.crl(
        "intermediate", extra=[Revocation(cards.revoked.serial_number)]))
    soft = RevocationChecker(builder, failure="soft", fetcher=fetcher(server))
    assert soft.validate(cards.revoked).status is Status.REVOKED
    # without OCSP, hard-fail needs the root's CRL too
    hard = RevocationChecker(builder, failure="hard", fetcher=fetcher(server))
    r = hard.validate(cards.good)
    assert r.status is Status.REVOCATION_UNKNOWN and "TEST AC IGC-SANTE" in r.result.reason


def test_extra_crls_count_as_coverage(
    cps_pki: TestPki, cards: Cards, builder: ValidatorBuilder
) -> None:
    checker = RevocationChecker(
        builder, failure="hard", use_crls=False,
        extra_crls=[cps_pki.crl("root"), cps_pki.crl("intermediate")],
    )
    assert checker.validate(cards.good).status is Status.VALID


def test_builder_must_leave_revocation_to_the_checker(
    cps_pki: TestPki, builder: ValidatorBuilder
) -> None:
    with pytest.raises(ValidationSetupError):
        RevocationChecker(builder.revocation("soft"), failure="hard", use_crls=False)
    with pytest.raises(ValidationSetupError):
        RevocationChecker(builder.crls([cps_pki.crl("root")]), failure="hard", use_crls=False)
    with pytest.raises(ValidationSetupError):
        RevocationChecker(builder, failure="maybe", use_crls=False)  # type: ignore[arg-type]


def test_ocsp_asked_once_per_certificate_across_a_batch(
    cps_pki: TestPki, builder: ValidatorBuilder,
    cps_revocation_server: RevocationHttpServer, cps_ocsp_responder_factory: Factory,
) -> None:
    leaves = [
        cps_pki.issue_card(
            TestHolder(id_number=f"100015100{n:02d}", card_number=f"8025000001/280001510{n}"),
            key_type="p256",
        ).signature.certificate
        for n in range(5)
    ]
    cps_revocation_server.publish(ROOT_CRL, cps_pki.crl("root"))
    responder = cps_ocsp_responder_factory(good=leaves[:4], revoked=[
        (leaves[4], x509.ReasonFlags.cessation_of_operation, cps_pki.reference_time)])
    client = OcspClient(responder.url)
    checker = RevocationChecker(builder, failure="hard", fetcher=fetcher(cps_revocation_server),
                                ocsp=client, ocsp_workers=3)
    batch = checker.validate_many([*leaves, leaves[0], leaves[4]])
    assert [r.status for r in batch] == [Status.VALID] * 4 + [Status.REVOKED, Status.VALID,
                                                              Status.REVOKED]
    assert client.requests_sent == 5
    # a second batch is answered from the OCSP cache
    assert checker.validate_many(leaves).counts() == {Status.VALID: 4, Status.REVOKED: 1}
    assert client.requests_sent == 5
