"""The validator on the test PKI's IGC-Santé TEST hierarchy and real card profile."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from cps_middleware.testing.pki import TestHolder, TestPki
from cps_middleware.validation import Status, ValidatorBuilder, igc_sante, igc_sante_test

POLICY_SIGNATURE = "1.2.250.1.213.1.7.2.1.1.1.1"


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return TestPki(seed="validation-tests")


def test_cards_chain_to_the_test_hierarchy(pki: TestPki) -> None:
    card = pki.issue_card(TestHolder())
    store = igc_sante_test(pki.ca_certificates)
    b = ValidatorBuilder().trust(store).crls([pki.crl("root"), pki.crl("intermediate")])
    b = b.time(pki.reference_time)
    auth = b.key_usage("digital_signature").build().validate(card.authentication.certificate)
    assert auth.status is Status.VALID, auth.reason
    assert [c.subject for c in auth.path] == [c.subject for c in card.chain]
    sign = b.key_usage("non_repudiation").policies(POLICY_SIGNATURE).build()
    assert sign.validate(card.signature.certificate).ok
    # the authentication certificate has no non-repudiation
    r = sign.validate(card.authentication.certificate)
    assert r.status is Status.KEY_USAGE_NOT_ALLOWED
    # and the production store does not know the TEST hierarchy
    prod = ValidatorBuilder().trust(igc_sante()).time(pki.reference_time).build()
    assert prod.validate(card.authentication.certificate).status is Status.UNKNOWN_ISSUER


def test_revoked_test_card(pki: TestPki) -> None:
    card = pki.issue_card(TestHolder(id_number="10009999999"))
    pki.revoke(card.signature.certificate, x509.ReasonFlags.key_compromise)
    v = (
        ValidatorBuilder()
        .trust(igc_sante_test(pki.ca_certificates))
        .crls([pki.crl("root"), pki.crl("intermediate")])
        .time(pki.reference_time)
        .build()
    )
    r = v.validate(card.signature.certificate)
    assert r.status is Status.REVOKED
    assert r.revocation is not None and r.revocation.reason == "key_compromise"
    assert v.validate(card.authentication.certificate).ok
    # the holder certificate is three years long: expired afterwards
    later = pki.reference_time + dt.timedelta(days=4 * 365)
    v = ValidatorBuilder().trust(igc_sante_test(pki.ca_certificates)).time(later).build()
    assert v.validate(card.authentication.certificate).status is Status.EXPIRED


def test_ec_test_card(pki: TestPki) -> None:
    card = pki.issue_card(TestHolder(id_number="10007777777"), key_type="p256")
    v = ValidatorBuilder().trust(igc_sante_test(pki.ca_certificates)).time(pki.reference_time)
    assert v.build().validate(card.authentication.certificate).ok
