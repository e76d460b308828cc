"""Holder identity read from CPS certificates (cps_middleware.cards.identity)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cps_middleware.cards import nomenclature as nom
from cps_middleware.cards.identity import (
    CertificateUsage,
    Practitioner,
    parse_ps_id_nat,
    practitioner_from_certificate,
    usage_from_key_usage,
)
from cps_middleware.cards.oids import (
    NOS_CARD_CATEGORY,
    NOS_CARD_NUMBER,
    NOS_CARD_TYPE,
    NOS_PROFESSION,
)
from cps_middleware.errors import InvalidInput
from cps_middleware.testing.pki import key_usage

SAMPLE = Path(__file__).parent / "data" / "test-cpx-signature-infirmier.der"
_KEY = ec.generate_private_key(ec.SECP256R1())
_ISSUER = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ASIP-SANTE"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "0002 187512751"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "IGC-SANTE TEST"),
        x509.NameAttribute(NameOID.COMMON_NAME, "TEST AC IGC-SANTE FORT PERSONNES"),
    ]
)


def _key_usage(*, digital_signature: bool = False, non_repudiation: bool = False) -> x509.KeyUsage:
    auth = ("digital_signature", "key_encipherment") if digital_signature else ()
    return key_usage(*auth, *(("content_commitment",) if non_repudiation else ()))


def _certificate(
    subject: x509.Name,
    *,
    issuer: x509.Name = _ISSUER,
    key_usage: x509.KeyUsage | None = None,
    extensions: dict[x509.ObjectIdentifier, bytes] | None = None,
) -> x509.Certificate:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3 * 365))
    )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    for oid, der in (extensions or {}).items():
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, der), critical=False)
    return builder.sign(_KEY, hashes.SHA256())


# -- the real TEST card certificate ----------------------------------------------------


def test_real_test_card_signature_certificate() -> None:
    p = practitioner_from_certificate(SAMPLE.read_bytes())
    assert p.given_name == "OLIVIER"
    assert p.surname == "INFIRMCS ADELI8751"
    assert p.display_name == "OLIVIER INFIRMCS ADELI8751"
    assert p.title == "Infirmier"
    assert p.ps_id_nat == "00B6087510"
    assert p.id_type is not None and p.id_type.code == "0" and "ADELI" in p.id_type.label
    assert p.adeli == "0B6087510" and p.rpps is None
    assert p.profession == nom.NomenclatureEntry("G15", "60", "Infirmier")
    assert p.card_type is not None and p.card_type.code == "00"
    assert p.card_type.label == "Carte de Professionnel de Santé (CPS)"
    assert p.card_category is not None and p.card_category.code == "80"
    assert "TEST" in p.card_category.label
    assert p.is_test_card
    assert p.card_number == "8025000001/2800636234"
    assert (p.card_issuer_id, p.card_serial) == ("8025000001", "2800636234")
    assert p.usage is CertificateUsage.SIGNATURE
    assert p.issuer_cn == "TEST AC IGC-SANTE FORT PERSONNES"
    assert p.not_before == dt.datetime(2020, 9, 15, 12, 20, tzinfo=dt.UTC)
    assert p.not_after == dt.datetime(2023, 9, 15, 12, 20, tzinfo=dt.UTC)
    assert p.is_valid_at(dt.datetime(2022, 1, 1)) and not p.is_valid_at()
    assert p.problems == ()
    assert "Infirmier (60)" in str(p) and "TEST" in str(p)


def test_certificate_object_pem_and_der_give_the_same_identity() -> None:
    der = SAMPLE.read_bytes()
    cert = x509.load_der_x509_certificate(der)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    assert (
        practitioner_from_certificate(cert)
        == practitioner_from_certificate(der)
        == practitioner_from_certificate(pem)
    )


def test_practitioner_is_frozen_hashable_and_json_friendly() -> None:
    import json

    p = practitioner_from_certificate(SAMPLE.read_bytes())
    with pytest.raises(AttributeError):
        p.surname = "X"  # type: ignore[misc]
    assert {p: 1}[p] == 1
    data = json.loads(json.dumps(p.to_dict()))
    assert data["usage"] == "sign" and data["adeli"] == "0B6087510"
    assert data["profession"]["label"] == "Infirmier"


def test_not_a_certificate_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        practitioner_from_certificate(b"\x30\x03\x02\x01\x00")
    with pytest.raises(InvalidInput):
        practitioner_from_certificate("not bytes")  # type: ignore[arg-type]


# -- subject styles ------------------------------------------------------------------


def test_production_subject_rpps() -> None:
    subject = x509.Name(
        [
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]),
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.TITLE, "Médecin")]),
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "810002813839"),
                    x509.NameAttribute(NameOID.SURNAME, "DUPONT-MARTIN"),
                    x509.NameAttribute(NameOID.GIVEN_NAME, "JEAN PIERRE"),
                ]
            ),
        ]
    )
    # The multi-valued RDN really is one RDN (what breaks naive DN parsers).
    assert len(subject.rdns[2]) == 3
    cert = _certificate(
        subject,
        key_usage=_key_usage(digital_signature=True),
        extensions={
            NOS_PROFESSION: core.Integer(10).dump(),
            NOS_CARD_TYPE: core.Integer(0).dump(),
            NOS_CARD_CATEGORY: core.OctetString(b"\x00").dump(),
            NOS_CARD_NUMBER: core.PrintableString("8025000001/2800000042").dump(),
        },
    )
    p = practitioner_from_certificate(cert)
    assert (p.given_name, p.surname) == ("JEAN PIERRE", "DUPONT-MARTIN")
    assert p.ps_id_nat == "810002813839" and p.rpps == "10002813839" and p.adeli is None
    assert p.id_type is not None and p.id_type.label == "N° RPPS"
    assert p.profession is not None and p.profession.label == "Médecin"
    assert p.card_category is not None and p.card_category.code == "00"
    assert not p.is_test_card
    assert p.usage is CertificateUsage.AUTHENTICATION


def test_old_style_subject_separate_rdns_and_string_encodings() -> None:
    # Older profiles: one attribute per RDN, id in serialNumber, NOS values as strings.
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CABINET DU DR DUPONT"),
            x509.NameAttribute(NameOID.COMMON_NAME, "DR MARIE CURIE"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, "899700023838"),
            x509.NameAttribute(NameOID.SURNAME, "CURIE"),
            x509.NameAttribute(NameOID.GIVEN_NAME, "MARIE"),
        ]
    )
    cert = _certificate(
        subject,
        issuer=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "GIP-CPS CLASSE-1")]),
        key_usage=_key_usage(non_repudiation=True),
        extensions={
            NOS_PROFESSION: core.UTF8String("21").dump(),
            NOS_CARD_TYPE: core.PrintableString("0").dump(),
            NOS_CARD_CATEGORY: core.Integer(0).dump(),
        },
    )
    p = practitioner_from_certificate(cert)
    assert p.common_name == "DR MARIE CURIE"
    assert p.ps_id_nat == "899700023838" and p.rpps == "99700023838"
    assert p.profession is not None and p.profession.label == "Pharmacien"
    assert p.card_type is not None and p.card_type.code == "00"
    assert p.organization == "CABINET DU DR DUPONT"
    assert p.usage is CertificateUsage.SIGNATURE
    assert p.card_number is None and p.card_issuer_id is None
    assert not p.is_test_card


def test_non_cps_certificate_gives_nones_and_no_exception() -> None:
    cert = _certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.org")]),
        issuer=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some CA")]),
    )
    p = practitioner_from_certificate(cert)
    assert p.ps_id_nat is None and p.profession is None and p.card_category is None
    assert p.usage is CertificateUsage.UNKNOWN
    assert p.display_name == "www.example.org"
    assert not p.is_test_card


def test_undecodable_extension_is_reported_not_raised() -> None:
    cert = _certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "810002813839")]),
        extensions={NOS_PROFESSION: b"\x02\x05\x01", NOS_CARD_TYPE: core.Null().dump()},
    )
    p = practitioner_from_certificate(cert)
    assert p.profession is None and p.card_type is None
    assert len(p.problems) == 2
    assert any("1.2.250.1.71.1.2.7" in why for why in p.problems)


def test_unknown_profession_code_is_flagged_not_raised() -> None:
    cert = _certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "810002813839")]),
        extensions={NOS_PROFESSION: core.Integer(77).dump()},
    )
    p = practitioner_from_certificate(cert)
    assert p.profession is not None and p.profession.unknown and p.profession.code == "77"


def test_test_card_recognised_by_issuer_when_no_category() -> None:
    cert = _certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "810002813839")]))
    assert practitioner_from_certificate(cert).is_test_card


def test_usage_rules() -> None:
    sign = _key_usage(non_repudiation=True)
    auth = _key_usage(digital_signature=True)
    assert usage_from_key_usage(sign) is CertificateUsage.SIGNATURE
    assert usage_from_key_usage(auth) is CertificateUsage.AUTHENTICATION
    assert usage_from_key_usage(auth, "Certificat Technique CPS") is CertificateUsage.TECHNICAL
    assert usage_from_key_usage(None, "Certificat de Signature CPS") is CertificateUsage.SIGNATURE
    assert usage_from_key_usage(None) is CertificateUsage.UNKNOWN


def test_parse_ps_id_nat() -> None:
    parsed = parse_ps_id_nat("810002813839")
    assert parsed is not None and parsed[0].code == "8" and parsed[1] == "10002813839"
    finess = parse_ps_id_nat("3750000001")
    assert finess is not None and finess[0].label.startswith("FINESS")
    assert parse_ps_id_nat("DR DUPONT") is None
    assert parse_ps_id_nat("8") is None


# -- property-based: generated subjects and extensions --------------------------------

_names = st.text(
    alphabet=st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZÉÈÏ -'"), min_size=1, max_size=30
).filter(lambda s: s.strip() == s and s.strip())
_id = st.one_of(
    st.tuples(st.just("8"), st.from_regex(r"\A[0-9]{11}\Z")),
    st.tuples(st.just("0"), st.from_regex(r"\A[0-9A-Z]{9}\Z")),
    st.tuples(st.sampled_from("345"), st.from_regex(r"\A[0-9]{9,14}\Z")),
)
_profession_codes = st.sampled_from(nom.nomenclature().table("G15").codes())
_category_codes = st.sampled_from([0x00, 0x02, 0x03, 0x80, 0x82, 0x83])


@st.composite
def _subjects(draw: st.DrawFn) -> tuple[x509.Name, str, str, str]:
    given_name, surname = draw(_names), draw(_names)
    id_type, number = draw(_id)
    ps_id_nat = id_type + number
    trio = [
        x509.NameAttribute(NameOID.GIVEN_NAME, given_name),
        x509.NameAttribute(NameOID.COMMON_NAME, ps_id_nat),
        x509.NameAttribute(NameOID.SURNAME, surname),
    ]
    trio = draw(st.permutations(trio))
    head = [
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.TITLE, "Infirmier")]),
    ]
    if draw(st.booleans()):  # production: one multi-valued RDN
        rdns = [*head, x509.RelativeDistinguishedName(trio)]
    else:  # old style: one attribute per RDN, in any order
        rdns = [*head, *(x509.RelativeDistinguishedName([a]) for a in trio)]
    return x509.Name(rdns), given_name, surname, ps_id_nat


def _encode_integer_code(value: int, style: str) -> bytes:
    if style == "integer":
        return core.Integer(value).dump()
    if style == "printable":
        return core.PrintableString(str(value)).dump()
    return core.UTF8String(str(value)).dump()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=_subjects(),
    profession=_profession_codes,
    profession_style=st.sampled_from(["integer", "printable", "utf8"]),
    card_type=st.integers(min_value=0, max_value=3),
    category=_category_codes,
    category_as_integer=st.booleans(),
    card_serial=st.from_regex(r"\A[0-9]{10}\Z"),
    signature=st.booleans(),
)
def test_generated_certificates_round_trip(
    subject: tuple[x509.Name, str, str, str],
    profession: str,
    profession_style: str,
    card_type: int,
    category: int,
    category_as_integer: bool,
    card_serial: str,
    signature: bool,
) -> None:
    name, given_name, surname, ps_id_nat = subject
    category_der = (
        core.Integer(category).dump()
        if category_as_integer
        else core.OctetString(bytes([category])).dump()
    )
    card_number = f"8025000001/{card_serial}"
    cert = _certificate(
        name,
        issuer=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AC IGC-SANTE FORT PERSONNES")]),
        key_usage=_key_usage(digital_signature=not signature, non_repudiation=signature),
        extensions={
            NOS_PROFESSION: _encode_integer_code(int(profession), profession_style),
            NOS_CARD_TYPE: core.Integer(card_type).dump(),
            NOS_CARD_CATEGORY: category_der,
            NOS_CARD_NUMBER: core.PrintableString(card_number).dump(),
        },
    )
    p = practitioner_from_certificate(cert)
    assert isinstance(p, Practitioner)
    assert (p.given_name, p.surname, p.ps_id_nat) == (given_name, surname, ps_id_nat)
    assert p.id_type is not None and p.id_type.code == ps_id_nat[0]
    assert p.id_number == ps_id_nat[1:]
    assert (p.rpps is not None) == (ps_id_nat[0] == "8")
    assert (p.adeli is not None) == (ps_id_nat[0] == "0")
    assert p.profession is not None and not p.profession.unknown
    assert p.profession.code == profession
    assert p.card_type is not None and p.card_type.code == f"{card_type:02d}"
    assert not p.card_type.unknown
    assert p.card_category is not None and p.card_category.code == f"{category:02X}"
    assert not p.card_category.unknown
    assert p.is_test_card == bool(category & 0x80)
    assert p.card_number == card_number and p.card_serial == card_serial
    expected = CertificateUsage.SIGNATURE if signature else CertificateUsage.AUTHENTICATION
    assert p.usage is expected
    assert p.problems == ()


@settings(max_examples=40, deadline=None)
@given(der=st.binary(max_size=12))
def test_arbitrary_extension_bytes_never_raise(der: bytes) -> None:
    cert = _certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "810002813839")]),
        extensions={NOS_PROFESSION: der, NOS_CARD_CATEGORY: der},
    )
    p = practitioner_from_certificate(cert)
    assert p.ps_id_nat == "810002813839"
    if p.profession is None:
        assert any("1.2.250.1.71.1.2.7" in why for why in p.problems)


def test_lead_test_pki_certificates_parse() -> None:
    from cps_middleware.testing.pki import TestHolder, TestPki

    pki = TestPki(seed="identity-tests", ca_key_type="p256")
    holder = TestHolder(
        given_name="ALICE",
        surname="SAGE-FEMME-TEST",
        profession_code=50,
        id_type="8",
        id_number="10009999999",
    )
    creds = pki.issue_card(holder, key_type="p256")
    auth = practitioner_from_certificate(creds.authentication.certificate)
    sign = practitioner_from_certificate(creds.signature.certificate)
    assert auth.usage is CertificateUsage.AUTHENTICATION
    assert sign.usage is CertificateUsage.SIGNATURE
    for p in (auth, sign):
        assert p.display_name == "ALICE SAGE-FEMME-TEST"
        assert p.rpps == "10009999999"
        assert p.profession is not None and p.profession.label == "Sage-Femme"
        assert p.is_test_card and p.card_number == holder.card_number
