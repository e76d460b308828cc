"""CpsTestCard (issue 2): every object read back by label through the library, both
keys sign and their certificates verify, and bad input is a typed error.

The cards are real SoftHSM tokens behind the CPS test-token module, read with
``cps_middleware.pkcs11`` as an application would read a card.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from cps_middleware.errors import (
    CpsError,
    NoSuchObject,
    PinFormatError,
    TestCardError,
)
from cps_middleware.pkcs11 import Mechanism, Pin, PssParams, Token, load_module
from cps_middleware.testing.pki import TestHolder, TestPki
from cps_middleware.testing.testcard import (
    LABEL_AUTH_CERT,
    LABEL_AUTH_KEY,
    LABEL_SIGN_CERT,
    LABEL_SIGN_KEY,
    CpsTestCard,
    list_cards,
)

CardFactory = Callable[..., CpsTestCard]

PUBLIC_DATA = ("CPS_ID_CARD", "CPS_NAME_PS", "CPS_LANG_PS", "CPS_INFO_PS", "CPS_DATA")
PRIVATE_DATA = ("CPS_ACTIVITY_01_PS", "CPS_SIT_FACT")


def _token(card: CpsTestCard) -> Token:
    return load_module(card.module_path).open_token(serial=card.serial)


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


@pytest.fixture
def rsa_card(cps_card_factory: CardFactory) -> CpsTestCard:
    holder = TestHolder(given_name="ALICE", surname="READBACK-TEST", profession_code=40,
                        id_number="10000000404", card_number="8025000001/2899000404")  # fmt: skip
    return cps_card_factory(name="tc-readback", holder=holder, label="CPS ALICE READBACK")


def test_every_object_reads_back_by_label(rsa_card: CpsTestCard) -> None:
    card, creds = rsa_card, rsa_card.credentials
    token = _token(card)
    token.logout()
    info = token.info
    assert (info.label, info.serial, info.manufacturer, info.model) == (
        "CPS ALICE READBACK", card.serial, "ANS", "IAS ECC"
    )
    assert info.is_cps and info.generation == "CPS3"

    # Certificates, by label, without a login: the holder's two and the CAs.
    auth = token.certificate(label=LABEL_AUTH_CERT)
    sign = token.certificate(label=LABEL_SIGN_CERT)
    assert auth.certificate == creds.authentication.certificate
    assert sign.certificate == creds.signature.certificate
    assert _cn(auth.certificate) == "810000000404"
    for ca in creds.chain:
        stored = token.certificate(label=_cn(ca))
        assert stored.certificate == ca
    assert len(token.certificates()) == 2 + len(creds.chain)
    assert {_cn(c) for c in creds.chain} == {
        "TEST AC IGC-SANTE FORT PERSONNES", "TEST AC RACINE IGC-SANTE FORT"
    }

    # Public data objects without a login; private ones hidden until then.
    values = {label: token.data_object(label) for label in PUBLIC_DATA}
    assert values["CPS_NAME_PS"] == b"ALICE READBACK-TEST"
    assert values["CPS_LANG_PS"] == b"fr"
    assert values["CPS_INFO_PS"] == b"idnat=810000000404;profession=40"
    assert b"number=8025000001/2899000404" in values["CPS_ID_CARD"]
    assert values["CPS_DATA"] == b""
    for label in PRIVATE_DATA:
        with pytest.raises(NoSuchObject):
            token.data_object(label)
    for label in (LABEL_AUTH_KEY, LABEL_SIGN_KEY):
        with pytest.raises(NoSuchObject):
            token.private_key(label=label)

    token.login(Pin(card.pin))
    try:
        assert token.data_object("CPS_ACTIVITY_01_PS") == b"activity=cabinet;mode=liberal"
        assert token.data_object("CPS_SIT_FACT") == b""
        listed = {d.label: d for d in token.data_objects()}
        assert set(listed) == {*PUBLIC_DATA, *PRIVATE_DATA}
        assert all(listed[label].private for label in PRIVATE_DATA)
        assert not any(listed[label].private for label in PUBLIC_DATA)

        # Each private key pairs with its certificate by CKA_ID and by public numbers.
        for key_label, cert in ((LABEL_AUTH_KEY, auth), (LABEL_SIGN_KEY, sign)):
            key = token.private_key(label=key_label)
            assert key.id == cert.id and key.key_type == "RSA" and key.bits == 2048
            public = cert.certificate.public_key()
            assert isinstance(public, rsa.RSAPublicKey)
            assert key.modulus == public.public_numbers().n
        assert token.private_key(label=LABEL_AUTH_KEY).can_decrypt
        assert not token.private_key(label=LABEL_SIGN_KEY).can_decrypt
    finally:
        token.logout()


def test_both_keys_sign_and_the_certificates_verify(rsa_card: CpsTestCard) -> None:
    token = _token(rsa_card)
    token.login(Pin(rsa_card.pin))
    try:
        for key_label, cert_label in ((LABEL_AUTH_KEY, LABEL_AUTH_CERT),
                                      (LABEL_SIGN_KEY, LABEL_SIGN_CERT)):  # fmt: skip
            data = f"signed with {key_label}".encode()
            signature = token.sign(token.private_key(label=key_label),
                                   Mechanism.SHA256_RSA_PKCS, data)  # fmt: skip
            public = token.certificate(label=cert_label).certificate.public_key()
            assert isinstance(public, rsa.RSAPublicKey)
            public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidSignature
                public.verify(signature, data + b"!", padding.PKCS1v15(), hashes.SHA256())
    finally:
        token.logout()


def test_cps4_keys_sign_pss(cps4_card: CpsTestCard) -> None:
    token = _token(cps4_card)
    token.login(Pin(cps4_card.pin))
    try:
        digest = hashes.Hash(hashes.SHA256())
        digest.update(b"pss")
        value = digest.finalize()
        for key_label, cert_label in ((LABEL_AUTH_KEY, LABEL_AUTH_CERT),
                                      (LABEL_SIGN_KEY, LABEL_SIGN_CERT)):  # fmt: skip
            pss = PssParams.for_hash(Mechanism.SHA256)
            key = token.private_key(label=key_label)
            signature = token.sign(key, Mechanism.RSA_PKCS_PSS, value, pss_params=pss)
            public = token.certificate(label=cert_label).certificate.public_key()
            assert isinstance(public, rsa.RSAPublicKey)
            pad = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
            public.verify(signature, b"pss", pad, hashes.SHA256())
    finally:
        token.logout()


def test_ec_card_keys_sign_ecdsa(cps_card_factory: CardFactory) -> None:
    holder = TestHolder(given_name="EVE", surname="EC-TEST", id_number="10000000505",
                        card_number="8025000001/2899000505")  # fmt: skip
    card = cps_card_factory(name="tc-ec", holder=holder, key_type="p256", label="CPS EVE EC")
    token = _token(card)
    token.login(Pin(card.pin))
    try:
        digest = hashes.Hash(hashes.SHA256())
        digest.update(b"ec")
        value = digest.finalize()
        for key_label, cert_label in ((LABEL_AUTH_KEY, LABEL_AUTH_CERT),
                                      (LABEL_SIGN_KEY, LABEL_SIGN_CERT)):  # fmt: skip
            raw = token.sign(token.private_key(label=key_label), Mechanism.ECDSA, value)
            r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
            public = token.certificate(label=cert_label).certificate.public_key()
            assert isinstance(public, ec.EllipticCurvePublicKey)
            public.verify(encode_dss_signature(r, s), b"ec", ec.ECDSA(hashes.SHA256()))
    finally:
        token.logout()


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "text"),
    [
        (lambda d: CpsTestCard(d, holder=TestHolder(profession_code=999)), TestCardError,
         "unknown profession code 999"),
        (lambda d: CpsTestCard(d, holder=TestHolder(id_number="1234")), TestCardError,
         "malformed RPPS number '1234'"),
        (lambda d: CpsTestCard(d, holder=TestHolder(id_number="1000123456X")), TestCardError,
         "malformed RPPS number"),
        (lambda d: CpsTestCard(d, pin="123"), PinFormatError, "PIN of a test card must be 4 to 8"),
        (lambda d: CpsTestCard(d, pin="123456789"), PinFormatError, "4 to 8 digits"),
        (lambda d: CpsTestCard(d, pin="12a4"), PinFormatError, "4 to 8 digits"),
        (lambda d: CpsTestCard(d, puk="1234567"), PinFormatError, "unblocking code (PUK)"),
        (lambda d: CpsTestCard(d, generation="CPS5"), TestCardError,
         "unknown card generation 'CPS5'"),
        (lambda d: CpsTestCard(d, key_type="rsa1024"), TestCardError, "unknown key type"),
        (lambda d: CpsTestCard(d, name="../escape"), TestCardError, "invalid card name"),
        (lambda d: CpsTestCard(d, reader="R" * 65), TestCardError, "invalid reader name"),
    ],
    ids=["profession", "rpps-short", "rpps-letter", "pin-short", "pin-long", "pin-letters",
         "puk-7", "generation", "key-type", "name", "reader"],
)  # fmt: skip
def test_bad_input_is_a_typed_error_with_a_clear_message(
    tmp_path: Path, make: Callable[[Path], Any], error: type[CpsError], text: str
) -> None:
    with pytest.raises(error) as info:
        make(tmp_path)
    assert isinstance(info.value, CpsError)
    assert text in str(info.value)
    assert not any(tmp_path.iterdir())  # nothing was written


def test_pin_digits_never_show_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(PinFormatError) as info:
        CpsTestCard(tmp_path, pin="98x")
    assert "98x" not in str(info.value) and "98x" not in repr(info.value)


def test_an_existing_card_name_is_refused(
    tmp_path: Path, cps_pki: TestPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = CpsTestCard(tmp_path, name="twice", pki=cps_pki).create()
    try:
        with pytest.raises(TestCardError) as info:
            CpsTestCard(tmp_path, name="twice", pki=cps_pki).create()
        assert "a test card named 'twice' already exists" in str(info.value)
        assert info.value.hint and "delete it first" in info.value.hint
        assert [c["name"] for c in list_cards(tmp_path)] == ["twice"]  # the first one is intact
        assert first.exists
    finally:
        first.destroy()
    assert list_cards(tmp_path) == []
