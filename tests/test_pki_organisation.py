"""The test PKI's organisation branch: ORG AUTH_CLI certificates and PKCS#12 export."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization.pkcs12 import load_pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cps_middleware.errors import TestCardError
from cps_middleware.testing.pki import TestPki

PEM = serialization.Encoding.PEM


def test_organisation_certificate_has_the_org_auth_cli_shape(cps_pki: TestPki) -> None:
    org = cps_pki.issue_organisation("3990000016", "PROXY LPS TEST")
    cert = org.certificate
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == (
        "3990000016"
    )
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "PROXY LPS TEST"
    ca = cps_pki.organisation_ca.certificate
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "TEST AC IGC-SANTE FORT ORGANISATIONS"
    )
    assert cert.issuer == ca.subject and ca.issuer == cps_pki.root.certificate.subject
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.serial_number > 0
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert ski.digest and aki.key_identifier == (
        ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    )


def test_openssl_verifies_the_organisation_chain_for_tls_clients(
    cps_pki: TestPki, tmp_path: Path
) -> None:
    org = cps_pki.issue_organisation()
    (tmp_path / "root.pem").write_bytes(cps_pki.root.certificate.public_bytes(PEM))
    (tmp_path / "ca.pem").write_bytes(cps_pki.organisation_ca.certificate.public_bytes(PEM))
    (tmp_path / "leaf.pem").write_bytes(org.pem)
    out = subprocess.run(
        ["openssl", "verify", "-purpose", "sslclient", "-x509_strict",
         "-CAfile", tmp_path / "root.pem", "-untrusted", tmp_path / "ca.pem",
         tmp_path / "leaf.pem"],
        capture_output=True, text=True, check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_pkcs12_export_opens_with_its_password_only(cps_pki: TestPki, tmp_path: Path) -> None:
    org = cps_pki.issue_organisation()
    data = org.pkcs12(b"s3cret")
    loaded = load_pkcs12(data, b"s3cret")
    assert loaded.cert is not None and loaded.cert.certificate == org.certificate
    assert [c.certificate for c in loaded.additional_certs] == list(org.chain)
    with pytest.raises(ValueError):
        load_pkcs12(data, b"wrong")
    (tmp_path / "org.p12").write_bytes(data)
    out = subprocess.run(
        ["openssl", "pkcs12", "-in", tmp_path / "org.p12", "-passin", "pass:s3cret",
         "-nokeys", "-clcerts"],
        capture_output=True, text=True, check=False,
    )
    assert out.returncode == 0 and "PROXY LPS TEST" in out.stdout, out.stderr


def test_revoked_organisation_certificate_is_in_the_organisations_crl(cps_pki: TestPki) -> None:
    pki = TestPki(seed=cps_pki.seed)
    org = pki.issue_organisation(service="REVOKED SERVICE")
    assert pki.crl("organisations").get_revoked_certificate_by_serial_number(
        org.certificate.serial_number) is None
    pki.revoke(org.certificate)
    assert pki.crl("organisations").get_revoked_certificate_by_serial_number(
        org.certificate.serial_number) is not None


@pytest.mark.parametrize("structure_id", ["", "3", "399000001", "9990000016", "3ABCDEFGHI"])
def test_malformed_structure_identifier_is_refused(cps_pki: TestPki, structure_id: str) -> None:
    with pytest.raises(TestCardError):
        cps_pki.issue_organisation(structure_id)
