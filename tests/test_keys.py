"""Card-backed cryptography keys on SoftHSM CPS test cards (cps_middleware.pkcs11.keys)."""

from __future__ import annotations

import copy
import hashlib
import pickle
from collections.abc import Iterator

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from cps_middleware.card import CpsCard, open_card
from cps_middleware.errors import (
    CpsError,
    InvalidInput,
    MechanismUnsupported,
    PrivateKeyExportRefused,
)
from cps_middleware.pkcs11 import Pin
from cps_middleware.pkcs11.keys import (
    TokenECPrivateKey,
    TokenRSAPrivateKey,
    digest_info,
)
from cps_middleware.testing import CpsTestCard, test_token_module

MESSAGE = b"ordonnance: paracetamol 1 g, 3 fois par jour"
HASHES = [hashes.SHA1(), hashes.SHA224(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()]


def _logged_in(test_card: CpsTestCard) -> Iterator[CpsCard]:
    with open_card(module=test_token_module(), serial=test_card.serial) as card:
        card.login(Pin(test_card.pin))
        yield card


@pytest.fixture
def cps3(cps_card: CpsTestCard) -> Iterator[CpsCard]:
    yield from _logged_in(cps_card)


@pytest.fixture
def cps4(cps4_card: CpsTestCard) -> Iterator[CpsCard]:
    yield from _logged_in(cps4_card)


@pytest.fixture
def ec_card(cps_ec_card: CpsTestCard) -> Iterator[CpsCard]:
    yield from _logged_in(cps_ec_card)


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def _pss_variants(h: hashes.HashAlgorithm) -> list[padding.PSS]:
    return [
        padding.PSS(padding.MGF1(h), padding.PSS.DIGEST_LENGTH),
        padding.PSS(padding.MGF1(h), padding.PSS.MAX_LENGTH),
        padding.PSS(padding.MGF1(h), 0),
        padding.PSS(padding.MGF1(h), 20),
    ]


# -- RSA ---------------------------------------------------------------------------------


@pytest.mark.parametrize("usage", ["auth", "sign"])
@pytest.mark.parametrize("algorithm", HASHES, ids=lambda h: h.name)
def test_pkcs1v15_every_hash_message_and_prehashed(
    cps3: CpsCard, usage: str, algorithm: hashes.HashAlgorithm
) -> None:
    key = cps3.private_key(usage)
    assert isinstance(key, TokenRSAPrivateKey) and isinstance(key, rsa.RSAPrivateKey)
    public = cps3.certificate(usage).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    sig = key.sign(MESSAGE, padding.PKCS1v15(), algorithm)
    public.verify(sig, MESSAGE, padding.PKCS1v15(), algorithm)
    pre = key.sign(_digest(algorithm, MESSAGE), padding.PKCS1v15(), Prehashed(algorithm))
    public.verify(pre, MESSAGE, padding.PKCS1v15(), algorithm)
    assert pre == sig  # PKCS#1 v1.5 is deterministic: both paths sign the same DigestInfo


@pytest.mark.parametrize("algorithm", HASHES, ids=lambda h: h.name)
def test_pss_every_hash_and_salt_on_a_cps4(cps4: CpsCard, algorithm: hashes.HashAlgorithm) -> None:
    key = cps4.private_key("auth")
    public = key.public_key()
    for pss in _pss_variants(algorithm):
        sig = key.sign(MESSAGE, pss, algorithm)
        public.verify(sig, MESSAGE, pss, algorithm)
        pre = key.sign(_digest(algorithm, MESSAGE), pss, Prehashed(algorithm))
        public.verify(pre, MESSAGE, pss, algorithm)


def test_tls_bridge_style_call_on_a_cps4(cps4: CpsCard) -> None:
    key = cps4.private_key("auth")
    digest = hashlib.sha256(b"TLS 1.3, client CertificateVerify" + bytes(64)).digest()
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
    sig = key.sign(digest, pss, Prehashed(hashes.SHA256()))
    key.public_key().verify(sig, digest, pss, Prehashed(hashes.SHA256()))


def test_cps3_refuses_pss_with_a_typed_error(cps3: CpsCard) -> None:
    key = cps3.private_key("auth")
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
    for data, algorithm in (
        (MESSAGE, hashes.SHA256()),
        (_digest(hashes.SHA256(), MESSAGE), Prehashed(hashes.SHA256())),
    ):
        with pytest.raises(MechanismUnsupported) as info:
            key.sign(data, pss, algorithm)
        err = info.value
        assert "CKM_RSA_PKCS" in err.available and "CKM_SHA256_RSA_PKCS" in err.available
        assert not any("PSS" in m for m in err.available)
        assert "RSA-PSS" in str(err)
    # The same card still signs PKCS#1 v1.5.
    key.public_key().verify(
        key.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256()),
        MESSAGE,
        padding.PKCS1v15(),
        hashes.SHA256(),
    )


def test_mechanism_choice_follows_the_card(cps3: CpsCard) -> None:
    key = cps3.private_key("sign")
    offered = key.mechanisms
    from cps_middleware.pkcs11 import Mechanism

    # A CPS3 has CKM_SHA256_RSA_PKCS but no CKM_SHA384_RSA_PKCS: SHA-384 goes through
    # CKM_RSA_PKCS with a DigestInfo built on the host, and still verifies.
    assert Mechanism.SHA256_RSA_PKCS in offered
    assert Mechanism.SHA384_RSA_PKCS not in offered
    sig = key.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA384())
    key.public_key().verify(sig, MESSAGE, padding.PKCS1v15(), hashes.SHA384())


def test_bad_inputs_are_invalid_input(cps4: CpsCard) -> None:
    key = cps4.private_key("auth")
    with pytest.raises(InvalidInput):
        key.sign(b"short", padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    with pytest.raises(InvalidInput):
        key.sign(MESSAGE, padding.PKCS1v15(), hashes.MD5())
    with pytest.raises(InvalidInput):
        key.sign(
            MESSAGE,
            padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None),
            hashes.SHA256(),
        )
    with pytest.raises(InvalidInput):
        key.sign(MESSAGE, padding.PSS(padding.MGF1(hashes.SHA256()), 10_000), hashes.SHA256())
    with pytest.raises(InvalidInput):
        digest_info(hashes.SHA256(), b"\x00" * 20)


def test_private_material_never_leaves(cps3: CpsCard) -> None:
    key = cps3.private_key("sign")
    with pytest.raises(PrivateKeyExportRefused):
        key.private_numbers()
    with pytest.raises(PrivateKeyExportRefused):
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    with pytest.raises(PrivateKeyExportRefused):
        pickle.dumps(key)
    assert copy.copy(key) is key and copy.deepcopy(key) is key
    assert key.public_key() == cps3.certificate("sign").public_key()
    assert key.key_size == 2048
    assert "CPS_PRIV_SIG" in repr(key)


# -- EC ------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", HASHES, ids=lambda h: h.name)
def test_ecdsa_der_signatures(ec_card: CpsCard, algorithm: hashes.HashAlgorithm) -> None:
    key = ec_card.private_key("sign")
    assert isinstance(key, TokenECPrivateKey) and isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    public = key.public_key()
    sig = key.sign(MESSAGE, ec.ECDSA(algorithm))
    assert sig[0] == 0x30  # DER SEQUENCE, not raw r || s
    public.verify(sig, MESSAGE, ec.ECDSA(algorithm))
    pre = key.sign(_digest(algorithm, MESSAGE), ec.ECDSA(Prehashed(algorithm)))
    public.verify(pre, MESSAGE, ec.ECDSA(algorithm))


def test_ec_key_refuses_export_and_exchange(ec_card: CpsCard) -> None:
    key = ec_card.private_key("auth")
    with pytest.raises(PrivateKeyExportRefused):
        key.private_numbers()
    with pytest.raises(MechanismUnsupported):
        key.exchange(ec.ECDH(), ec.generate_private_key(ec.SECP256R1()).public_key())


# -- where cryptography keys are accepted ---------------------------------------------


def _csr_with(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
) -> x509.CertificateSigningRequest:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.COMMON_NAME, "renouvellement carte CPS"),
        ]
    )
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())


@pytest.mark.parametrize("fixture", ["cps3", "cps4", "ec_card"])
def test_csr_signed_by_the_card_key(fixture: str, request: pytest.FixtureRequest) -> None:
    card: CpsCard = request.getfixturevalue(fixture)
    key = card.private_key("auth")
    csr = _csr_with(key)
    assert csr.is_signature_valid
    assert csr.public_key() == card.certificate("auth").public_key()
    reloaded = x509.load_der_x509_csr(csr.public_bytes(serialization.Encoding.DER))
    assert reloaded.is_signature_valid


def test_pss_csr_on_a_cps4_and_not_on_a_cps3(cps4: CpsCard, cps3: CpsCard) -> None:
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pss")])
    )
    assert builder.sign(
        cps4.private_key("auth"), hashes.SHA256(), rsa_padding=pss
    ).is_signature_valid
    with pytest.raises(MechanismUnsupported):
        builder.sign(cps3.private_key("auth"), hashes.SHA256(), rsa_padding=pss)


@pytest.mark.parametrize("fixture", ["cps3", "ec_card"])
def test_cms_detached_signature(fixture: str, request: pytest.FixtureRequest) -> None:
    card: CpsCard = request.getfixturevalue(fixture)
    key = card.private_key("sign")
    cert = card.certificate("sign")
    der = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(MESSAGE)
        .add_signer(cert, key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature])
    )
    # Verify it independently: the signed attributes' digest and the signature over them.
    signed = cms.ContentInfo.load(der)["content"]
    signer = signed["signer_infos"][0]
    attrs = {a["type"].native: a["values"][0].native for a in signer["signed_attrs"]}
    assert attrs["message_digest"] == hashlib.sha256(MESSAGE).digest()
    to_verify = signer["signed_attrs"].untag().dump(force=True)
    to_verify = b"\x31" + to_verify[1:]  # signed attributes are signed as a SET
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signer["signature"].native, to_verify, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signer["signature"].native, to_verify, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize(
    ("fixture", "algorithm"),
    [("cps3", "RS256"), ("cps4", "PS256"), ("cps4", "RS512"), ("ec_card", "ES256")],
)
def test_jwt_signed_by_the_card(
    fixture: str, algorithm: str, request: pytest.FixtureRequest
) -> None:
    jwt = pytest.importorskip("jwt")
    card: CpsCard = request.getfixturevalue(fixture)
    key = card.private_key("auth")
    token = jwt.encode({"sub": card.holder.ps_id_nat, "aud": "dmp"}, key, algorithm=algorithm)
    claims = jwt.decode(token, key.public_key(), algorithms=[algorithm], audience="dmp")
    assert claims["sub"] == card.holder.ps_id_nat


def test_jwt_ps256_refused_by_a_cps3(cps3: CpsCard) -> None:
    jwt = pytest.importorskip("jwt")
    with pytest.raises(MechanismUnsupported):
        jwt.encode({"sub": "x"}, cps3.private_key("auth"), algorithm="PS256")


# -- decryption with the authentication key -------------------------------------------


def test_decrypt_with_the_authentication_key(cps3: CpsCard) -> None:
    key = cps3.private_key("auth")
    secret = b"cle de session 0123456789abcdef"
    ciphertext = key.public_key().encrypt(secret, padding.PKCS1v15())
    assert key.decrypt(ciphertext, padding.PKCS1v15()) == secret
    # A CPS offers no OAEP: said with a typed error naming what it has.
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    with pytest.raises(MechanismUnsupported) as info:
        key.decrypt(key.public_key().encrypt(secret, oaep), oaep)
    assert "CKM_RSA_PKCS" in info.value.available


def test_signature_key_does_not_decrypt(cps3: CpsCard) -> None:
    key = cps3.private_key("sign")
    ciphertext = key.public_key().encrypt(b"x", padding.PKCS1v15())
    with pytest.raises(CpsError):
        key.decrypt(ciphertext, padding.PKCS1v15())
