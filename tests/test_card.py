"""The CpsCard facade on SoftHSM-backed CPS test cards (cps_middleware.card)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cps_middleware.card import CpsCard, open_card
from cps_middleware.cards.atr import CardGeneration
from cps_middleware.cards.identity import CertificateUsage
from cps_middleware.errors import (
    AmbiguousSelection,
    InvalidInput,
    MultipleTokens,
    NoMatchingCertificate,
    NotLoggedIn,
    PinIncorrect,
)
from cps_middleware.pkcs11 import Pin, PinStatus
from cps_middleware.selection import CertificateCriteria
from cps_middleware.testing import CpsTestCard, test_token_module
from cps_middleware.testing.testcard import LABEL_AUTH_CERT, LABEL_SIGN_CERT


def _open(test_card: CpsTestCard) -> CpsCard:
    return open_card(module=test_token_module(), serial=test_card.serial)


def test_identity_read_from_the_card(cps_card: CpsTestCard) -> None:
    with _open(cps_card) as card:
        holder = card.holder
        expected = cps_card.holder
        assert holder.given_name == expected.given_name
        assert holder.surname == expected.surname
        assert holder.ps_id_nat == expected.ps_idnat
        assert holder.rpps == expected.id_number
        assert holder.profession is not None
        assert holder.profession.code == str(expected.profession_code)
        assert not holder.profession.unknown
        assert holder.card_number == expected.card_number
        assert holder.is_test_card
        assert holder.usage is CertificateUsage.AUTHENTICATION
        assert holder.issuer_cn == "TEST AC IGC-SANTE FORT PERSONNES"
        assert card.generation is CardGeneration.CPS3
        assert card.reader
        assert card.serial == cps_card.serial
        assert card.pin_status is PinStatus.OK


def test_generation_of_a_cps4(cps4_card: CpsTestCard) -> None:
    with _open(cps4_card) as card:
        assert card.generation is CardGeneration.CPS4
        assert card.holder.profession is not None
        assert card.holder.profession.label == "Pharmacien"


def test_auth_and_sign_certificates_are_told_apart(cps_card: CpsTestCard) -> None:
    creds = cps_card.credentials
    with _open(cps_card) as card:
        assert card.certificate("auth") == creds.authentication.certificate
        assert card.certificate("sign") == creds.signature.certificate
        assert card.certificate(CertificateUsage.SIGNATURE) == creds.signature.certificate
        card.login(Pin(cps_card.pin))  # SoftHSM, like OpenSC, shows private keys after login
        tls = card.select()
        assert tls.certificate.label == LABEL_AUTH_CERT and tls.key.label == "CPS_PRIV_AUT"
        doc = card.select(CertificateCriteria.for_signing())
        assert doc.certificate.label == LABEL_SIGN_CERT and doc.key.label == "CPS_PRIV_SIG"
        assert tls.paired_by == doc.paired_by == "id"
        # CA certificates are on the card too, never selected as holder certificates.
        assert len(card.certificates()) == 4


def test_mismatch_explanations_from_the_card(cps_card: CpsTestCard) -> None:
    with _open(cps_card) as card:
        with pytest.raises(NoMatchingCertificate) as info:
            card.private_key(criteria=CertificateCriteria.for_signing(holder_id="812345678901"))
        err = info.value
        assert len(err.candidates) == 4
        text = str(err)
        assert "holder is 810001234567, wanted 812345678901" in text
        assert "usage is auth, wanted sign" in text
        assert "is a CA certificate" in text
        card.login(Pin(cps_card.pin))
        with pytest.raises(AmbiguousSelection):
            card.select(CertificateCriteria())
        with pytest.raises(InvalidInput):
            card.certificate("encrypt")


def test_login_then_sign_and_verify(cps_card: CpsTestCard) -> None:
    with _open(cps_card) as card:
        key = card.private_key("sign")
        with pytest.raises(NotLoggedIn):
            key.sign(b"document", padding.PKCS1v15(), hashes.SHA256())
        with pytest.raises(PinIncorrect) as wrong:
            card.login(Pin("0000"))
        assert wrong.value.tries_left == 2
        assert card.pin_status is PinStatus.COUNT_LOW
        card.login(Pin(cps_card.pin))
        assert card.is_logged_in
        assert card.pin_status is PinStatus.OK
        signature = key.sign(b"document", padding.PKCS1v15(), hashes.SHA256())
        public = card.certificate("sign").public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, b"document", padding.PKCS1v15(), hashes.SHA256())
    # Leaving the block closed the sessions: the holder is logged out.
    with _open(cps_card) as again:
        assert not again.is_logged_in


def test_open_card_needs_a_choice_when_several_cards(
    cps_card: CpsTestCard, cps4_card: CpsTestCard
) -> None:
    with pytest.raises(MultipleTokens) as info:
        open_card(module=test_token_module())
    assert cps_card.serial in str(info.value) and cps4_card.serial in str(info.value)


def test_ec_card_identity_and_key(cps_ec_card: CpsTestCard) -> None:
    with _open(cps_ec_card) as card:
        assert card.holder.adeli == cps_ec_card.holder.id_number
        key = card.private_key("auth")
        assert key.key_size == 256


def test_keys_hidden_until_login_are_paired_after_login(cps4_card: CpsTestCard) -> None:
    with open_card(module=test_token_module(), serial=cps4_card.serial) as card:
        if card.token.private_keys():
            pytest.skip("this token shows private keys before login")
        # Selecting a key before login says why nothing pairs, and what to do.
        with pytest.raises(NoMatchingCertificate) as info:
            card.select(CertificateCriteria.for_signing())
        assert info.value.hint is not None and "log in" in info.value.hint
        key = card.private_key("sign")  # handed out now, paired at the first signature
        card.login(Pin(cps4_card.pin))
        pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
        key.public_key().verify(key.sign(b"x", pss, hashes.SHA256()), b"x", pss, hashes.SHA256())
        assert card.select(CertificateCriteria.for_signing()).key.label == "CPS_PRIV_SIG"
