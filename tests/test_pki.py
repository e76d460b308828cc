"""The test PKI: IGC-Santé TEST shape, real profile, CRLs, determinism, bad input."""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cps_middleware.errors import CpsError, TestCardError
from cps_middleware.testing.pki import TestHolder, TestPki


def _verify_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    cert.verify_directly_issued_by(issuer)


def test_hierarchy_has_the_igc_sante_test_shape(cps_pki: TestPki) -> None:
    root, inter = cps_pki.ca_certificates
    assert root.subject.rfc4514_string() == (
        "CN=TEST AC RACINE IGC-SANTE FORT,OU=IGC-SANTE TEST,OU=0002 187512751,O=ASIP-SANTE,C=FR"
    )
    assert inter.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "TEST AC IGC-SANTE FORT PERSONNES"
    )
    bc = inter.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    _verify_signed_by(inter, root)
    _verify_signed_by(root, root)


def test_holder_certificates_follow_the_card_profile(cps_pki: TestPki) -> None:
    holder = TestHolder(given_name="OLIVIER", surname="INFIRMCS ADELI8751",
                        profession_code=60, id_type="0", id_number="0B6087510",
                        card_number="8025000001/2800636234")
    creds = cps_pki.issue_card(holder)
    auth, sign = creds.authentication.certificate, creds.signature.certificate
    for cert in (auth, sign):
        _verify_signed_by(cert, cps_pki.intermediate.certificate)
        rdns = cert.subject.rdns
        assert len(rdns) == 3 and len(rdns[2]) == 3  # GN+CN+SN is one multi-valued RDN
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "00B6087510"
        assert cert.subject.get_attributes_for_oid(NameOID.TITLE)[0].value == "Infirmier"
        nos = {e.oid.dotted_string: e.value.value for e in cert.extensions
               if e.oid.dotted_string.startswith("1.2.250.1.71")}
        assert nos["1.2.250.1.71.1.2.7"] == bytes.fromhex("02013c")  # profession 60
        assert nos["1.2.250.1.71.1.2.5"] == bytes.fromhex("040180")  # test card
        assert nos["1.2.250.1.71.1.2.3"][2:] == b"8025000001/2800636234"
    ku_auth = auth.extensions.get_extension_for_class(x509.KeyUsage).value
    ku_sign = sign.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku_auth.digital_signature and not ku_auth.content_commitment
    assert ku_sign.content_commitment and not ku_sign.digital_signature
    eku = auth.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku


def test_same_seed_same_pki_and_other_seed_other_keys() -> None:
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    a = TestPki(seed="determinism", ca_key_type="rsa2048", reference_time=when)
    b = TestPki(seed="determinism", ca_key_type="rsa2048", reference_time=when)
    c = TestPki(seed="other", ca_key_type="rsa2048", reference_time=when)
    assert a.issue_card().authentication.der == b.issue_card().authentication.der
    assert a.root.der != c.root.der


def test_crl_lists_revoked_certificates_and_is_signed(cps_pki: TestPki) -> None:
    pki = TestPki(seed=cps_pki.seed)  # own revocation list, same keys
    creds = pki.issue_card(TestHolder(card_number="8025000001/2800009999"))
    pki.revoke(creds.signature.certificate, x509.ReasonFlags.cessation_of_operation)
    crl = pki.crl()
    assert crl.is_signature_valid(pki.intermediate.certificate.public_key())
    entry = crl.get_revoked_certificate_by_serial_number(creds.signature.certificate.serial_number)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.cessation_of_operation
    assert crl.get_revoked_certificate_by_serial_number(
        creds.authentication.certificate.serial_number) is None
    root_crl = pki.crl("root")
    assert root_crl.is_signature_valid(pki.root.certificate.public_key())
    assert len(root_crl) == 0


def test_openssl_verifies_the_chain_with_crls(cps_pki: TestPki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.serialization import Encoding

    pki = TestPki(seed=cps_pki.seed)
    good = pki.issue_card(TestHolder(card_number="8025000001/2800000100"))
    bad = pki.issue_card(TestHolder(card_number="8025000001/2800000101"))
    pki.revoke(bad.authentication.certificate)
    (tmp_path / "ca.pem").write_bytes(pki.root.pem + pki.intermediate.pem)
    (tmp_path / "crl.pem").write_bytes(pki.crl().public_bytes(Encoding.PEM)
                                       + pki.crl("root").public_bytes(Encoding.PEM))
    (tmp_path / "good.pem").write_bytes(good.authentication.pem)
    (tmp_path / "bad.pem").write_bytes(bad.authentication.pem)

    def verify(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["openssl", "verify", "-crl_check_all", "-CAfile", str(tmp_path / "ca.pem"),
             "-CRLfile", str(tmp_path / "crl.pem"), str(tmp_path / name)],
            capture_output=True, text=True,
        )

    assert verify("good.pem").returncode == 0
    revoked = verify("bad.pem")
    assert revoked.returncode != 0 and "revoked" in revoked.stdout + revoked.stderr


def test_ec_cards_sign_with_ecdsa(cps_pki: TestPki) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    creds = cps_pki.issue_card(TestHolder(card_number="8025000001/2800000200"), key_type="p256")
    key = creds.authentication.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    sig = key.sign(b"data", ec.ECDSA(hashes.SHA256()))
    pub = creds.authentication.certificate.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    pub.verify(sig, b"data", ec.ECDSA(hashes.SHA256()))
    rsa_pub = cps_pki.intermediate.certificate.public_key()
    rsa_pub.verify(  # type: ignore[union-attr,call-arg]
        creds.authentication.certificate.signature,
        creds.authentication.certificate.tbs_certificate_bytes,
        padding.PKCS1v15(), hashes.SHA256(),
    )


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"profession_code": 999}, "unknown profession code"),
        ({"id_number": "123"}, "malformed RPPS number"),
        ({"id_number": "1000123456X"}, "malformed RPPS number"),
        ({"id_type": "7"}, "unknown identifier type"),
        ({"card_number": "nope"}, "malformed card number"),
        ({"given_name": " "}, "empty given name"),
    ],
)
def test_bad_holder_input_is_a_typed_error(kwargs: dict[str, object], text: str) -> None:
    with pytest.raises(TestCardError) as info:
        TestHolder(**kwargs)  # type: ignore[arg-type]
    assert text in str(info.value)
    assert isinstance(info.value, CpsError) and info.value.hint


def test_unknown_ca_and_foreign_certificate_are_typed_errors(cps_pki: TestPki) -> None:
    with pytest.raises(TestCardError):
        cps_pki.crl("nope")
    other = TestPki(seed="foreign", ca_key_type="rsa2048")
    with pytest.raises(TestCardError):
        cps_pki.revoke(other.issue_card().authentication.certificate)
