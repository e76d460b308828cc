"""Who holds a CPS card, read from one of its certificates.

:class:`Practitioner` is the one identity object of the library (CLI,
diagnostics, TLS test all show it). :func:`practitioner_from_certificate`
builds it from an X.509 certificate:

* the subject's given name, common name and surname form ONE multi-valued RDN
  on real cards (``GN=OLIVIER + CN=00B6087510 + SN=INFIRMCS ADELI8751``), so
  attributes are read by OID wherever they sit, never by splitting a DN string;
* the common name of a holder is the national identifier "PS_IdNat": the
  identifier type digit (table G08: ``8`` RPPS, ``0`` ADELI ...) then the number;
* the health "NOS" private extensions give the profession (G15), the card type
  (G02), the card category (G01: ``80`` is a test card) and the card number.
  Their encodings vary between generations, so any of INTEGER, OCTET STRING
  or a character string is accepted.

Nothing here raises for a certificate that is not a CPS one: fields it lacks
are ``None`` and undecodable extensions are listed in ``problems``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtensionOID, NameOID, ObjectIdentifier

from cps_middleware.cards import nomenclature as nom
from cps_middleware.cards._x509 import certificate_from_bytes, extensions_of
from cps_middleware.cards.oids import (
    NOS_CARD_CATEGORY,
    NOS_CARD_NUMBER,
    NOS_CARD_TYPE,
    NOS_PROFESSION,
    UID,
)
from cps_middleware.errors import InvalidInput

__all__ = [
    "CERTIFICATE_LABELS",
    "PRIVATE_KEY_LABELS",
    "CertificateUsage",
    "Practitioner",
    "parse_ps_id_nat",
    "practitioner_from_certificate",
    "usage_from_key_usage",
]


class CertificateUsage(enum.Enum):
    """What a holder certificate is for."""

    AUTHENTICATION = "auth"  # TLS client authentication, login (digitalSignature)
    SIGNATURE = "sign"  # qualified signature (nonRepudiation)
    TECHNICAL = "technical"  # contactless "Certificat Technique CPS"
    UNKNOWN = "unknown"


# Labels exactly as the ANS middleware exposes the objects (DOMAIN.md).
CERTIFICATE_LABELS: Mapping[str, CertificateUsage] = {
    "Certificat d'Authentification CPS": CertificateUsage.AUTHENTICATION,
    "Certificat de Signature CPS": CertificateUsage.SIGNATURE,
    "Certificat Technique CPS": CertificateUsage.TECHNICAL,
}
PRIVATE_KEY_LABELS: Mapping[str, CertificateUsage] = {
    "CPS_PRIV_AUT": CertificateUsage.AUTHENTICATION,
    "CPS_PRIV_SIG": CertificateUsage.SIGNATURE,
    "CPS_PRIV_TECH_AUT": CertificateUsage.TECHNICAL,
}

# G01 categories of test material (test card, test security module, test
# software certificate): the high bit of the category byte.
_TEST_CATEGORY_BIT = 0x80
_TEST_ISSUER_MARK = "IGC-SANTE TEST"
# Identifier type digit, then at least 4 characters of number.
_PS_ID_NAT = re.compile(r"^([0-9])([0-9A-Za-z]{4,})$")


@dataclass(frozen=True)
class Practitioner:
    """A card holder as one certificate describes them.

    ``ps_id_nat`` is the national identifier as printed in the CN
    (``810002813839``); ``id_type`` its G08 entry and ``id_number`` the number
    after the type digit. ``rpps`` / ``adeli`` repeat ``id_number`` when the
    type says so. ``profession``, ``card_type`` and ``card_category`` are
    nomenclature entries (their ``unknown`` flag is set for codes missing from
    the shipped nomenclature). Certificate facts (usage, validity, issuer,
    serial, SHA-256 fingerprint) say which certificate the identity came from.
    """

    given_name: str | None
    surname: str | None
    common_name: str | None
    title: str | None
    ps_id_nat: str | None
    id_type: nom.NomenclatureEntry | None
    id_number: str | None
    profession: nom.NomenclatureEntry | None
    card_type: nom.NomenclatureEntry | None
    card_category: nom.NomenclatureEntry | None
    card_number: str | None
    is_test_card: bool
    usage: CertificateUsage
    not_before: datetime
    not_after: datetime
    issuer: str
    issuer_cn: str | None
    serial_number: int
    fingerprint_sha256: str
    organization: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def rpps(self) -> str | None:
        """The 11-digit RPPS number when the identifier is of type 8."""
        return self.id_number if self.id_type is not None and self.id_type.code == "8" else None

    @property
    def adeli(self) -> str | None:
        """The ADELI number when the identifier is of type 0."""
        return self.id_number if self.id_type is not None and self.id_type.code == "0" else None

    @property
    def display_name(self) -> str:
        """``GIVEN SURNAME`` as printed on the card, else the CN, else the identifier."""
        parts = [p for p in (self.given_name, self.surname) if p]
        if parts:
            return " ".join(parts)
        return self.common_name or self.ps_id_nat or "?"

    @property
    def card_issuer_id(self) -> str | None:
        """The card issuer part of ``card_number`` (``8025000001`` for ANS)."""
        if self.card_number is None or "/" not in self.card_number:
            return None
        return self.card_number.split("/", 1)[0]

    @property
    def card_serial(self) -> str | None:
        """The card serial part of ``card_number`` (after the ``/``)."""
        if self.card_number is None:
            return None
        return self.card_number.split("/", 1)[-1]

    def is_valid_at(self, when: datetime | None = None) -> bool:
        """Whether ``when`` (default: now, UTC) is inside the certificate's validity."""
        moment = when or datetime.now(UTC)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return self.not_before <= moment <= self.not_after

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form (dates as ISO 8601, enums and entries as plain values)."""
        out: dict[str, object] = {}
        for key, value in asdict(self).items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
            elif isinstance(value, CertificateUsage):
                out[key] = value.value
            elif isinstance(value, tuple):
                out[key] = list(value)
            else:
                out[key] = value
        out["usage"] = self.usage.value
        out.update(rpps=self.rpps, adeli=self.adeli, display_name=self.display_name)
        return out

    def __str__(self) -> str:
        bits = [self.display_name]
        if self.profession is not None:
            bits.append(f"{self.profession.label} ({self.profession.code})")
        if self.ps_id_nat:
            bits.append(self.ps_id_nat)
        if self.is_test_card:
            bits.append("TEST card")
        return ", ".join(bits)

    def describe(self, lang: str | None = None) -> str:
        """Like ``str()``, in ``lang`` (default: the catalogue's default language)."""
        from cps_middleware.messages import text

        bits = [self.display_name]
        if self.profession is not None:
            bits.append(f"{self.profession.label} ({self.profession.code})")
        if self.ps_id_nat:
            bits.append(self.ps_id_nat)
        if self.is_test_card:
            bits.append(text("common.test_card", lang))
        return ", ".join(bits)


def parse_ps_id_nat(value: str) -> tuple[nom.NomenclatureEntry, str] | None:
    """Split a PS_IdNat into (identifier type entry, number); None if it is not one."""
    match = _PS_ID_NAT.match(value.strip())
    if match is None:
        return None
    return nom.identifier_type(match.group(1)), match.group(2)


def usage_from_key_usage(
    key_usage: x509.KeyUsage | None, label: str | None = None
) -> CertificateUsage:
    """The usage a holder certificate serves.

    nonRepudiation means the qualified signature certificate; digitalSignature
    the authentication one. The contactless technical certificate cannot be told
    from an authentication one by its key usage, so the token label decides it
    when given.
    """
    by_label = CERTIFICATE_LABELS.get(label) if label is not None else None
    if by_label is CertificateUsage.TECHNICAL:
        return by_label
    if key_usage is not None:
        if key_usage.content_commitment:
            return CertificateUsage.SIGNATURE
        if key_usage.digital_signature:
            return CertificateUsage.AUTHENTICATION
    return by_label or CertificateUsage.UNKNOWN


def practitioner_from_certificate(
    certificate: x509.Certificate | bytes, *, label: str | None = None
) -> Practitioner:
    """Read the holder identity from a certificate (object or DER bytes).

    ``label`` is the token label of the certificate when known; it only serves
    to recognise the contactless technical certificate.
    Raises :class:`InvalidInput` only when ``certificate`` is not a certificate.
    """
    cert = _load(certificate)
    subject = cert.subject
    problems: list[str] = []

    given = _first(subject, NameOID.GIVEN_NAME)
    surname = _first(subject, NameOID.SURNAME)
    title = _first(subject, NameOID.TITLE)
    organization = _first(subject, NameOID.ORGANIZATION_NAME)
    common_names = _all(subject, NameOID.COMMON_NAME)
    common_name = common_names[0] if common_names else None

    ps_id_nat: str | None = None
    id_type: nom.NomenclatureEntry | None = None
    id_number: str | None = None
    for candidate in (
        *common_names,
        *_all(subject, NameOID.SERIAL_NUMBER),
        *_all(subject, UID),
    ):
        parsed = parse_ps_id_nat(candidate)
        if parsed is not None:
            ps_id_nat = candidate.strip()
            id_type, id_number = parsed
            break

    extensions = {ext.oid: ext.value for ext in extensions_of(cert)}
    profession_code = _nos_value(extensions, NOS_PROFESSION, _decimal_code, problems)
    card_type_code = _nos_value(extensions, NOS_CARD_TYPE, _two_digit_code, problems)
    category_code = _nos_value(extensions, NOS_CARD_CATEGORY, _hex_code, problems)
    card_number = _nos_value(extensions, NOS_CARD_NUMBER, _text_value, problems)

    card_category = nom.card_category(category_code) if category_code is not None else None
    issuer = cert.issuer.rfc4514_string()
    if category_code is not None and _is_hex(category_code):
        is_test = bool(int(category_code, 16) & _TEST_CATEGORY_BIT)
    else:
        # No (readable) category: fall back to the test hierarchy's issuer DN.
        units = _all(cert.issuer, NameOID.ORGANIZATIONAL_UNIT_NAME)
        is_test = any(_TEST_ISSUER_MARK in unit for unit in units)

    key_usage_ext = extensions.get(ExtensionOID.KEY_USAGE)
    key_usage = key_usage_ext if isinstance(key_usage_ext, x509.KeyUsage) else None

    return Practitioner(
        given_name=given,
        surname=surname,
        common_name=common_name,
        title=title,
        ps_id_nat=ps_id_nat,
        id_type=id_type,
        id_number=id_number,
        profession=nom.profession(profession_code) if profession_code is not None else None,
        card_type=nom.card_type(card_type_code) if card_type_code is not None else None,
        card_category=card_category,
        card_number=card_number,
        is_test_card=is_test,
        usage=usage_from_key_usage(key_usage, label),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        issuer=issuer,
        issuer_cn=_first(cert.issuer, NameOID.COMMON_NAME),
        serial_number=cert.serial_number,
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        organization=organization,
        problems=tuple(problems),
    )


def _load(certificate: x509.Certificate | bytes) -> x509.Certificate:
    cert = certificate_from_bytes(certificate, unreadable="not an X.509 certificate: {exc}")
    if cert is None:
        raise InvalidInput(
            f"expected an x509.Certificate or DER bytes, got {type(certificate).__name__}"
        )
    return cert


def _all(name: x509.Name, oid: ObjectIdentifier) -> list[str]:
    values: list[str] = []
    for attribute in name.get_attributes_for_oid(oid):
        value = attribute.value
        values.append(value if isinstance(value, str) else bytes(value).decode("latin-1"))
    return values


def _first(name: x509.Name, oid: ObjectIdentifier) -> str | None:
    values = _all(name, oid)
    return values[0] if values else None


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)


def _nos_value(
    extensions: Mapping[ObjectIdentifier, x509.ExtensionType],
    oid: ObjectIdentifier,
    convert: Callable[[core.Asn1Value], str | None],
    problems: list[str],
) -> str | None:
    value = extensions.get(oid)
    if value is None:
        return None
    if not isinstance(value, x509.UnrecognizedExtension):
        problems.append(f"{oid.dotted_string}: unexpected extension type {type(value).__name__}")
        return None
    try:
        parsed = core.load(value.value, strict=True)
        result = convert(parsed)
    except (ValueError, TypeError, OverflowError) as exc:
        problems.append(f"{oid.dotted_string}: cannot decode {value.value.hex()}: {exc}")
        return None
    if result is None:
        problems.append(
            f"{oid.dotted_string}: unexpected encoding {type(parsed).__name__}"
            f" ({value.value.hex()})"
        )
    return result


_STRING_TYPES: tuple[type[core.Asn1Value], ...] = (
    core.PrintableString,
    core.UTF8String,
    core.IA5String,
    core.VisibleString,
    core.TeletexString,
    core.NumericString,
    core.BMPString,
)


def _text_value(value: core.Asn1Value) -> str | None:
    if isinstance(value, _STRING_TYPES):
        return str(value.native).strip()
    if isinstance(value, core.OctetString):
        return bytes(value.native).decode("latin-1").strip()
    return None


def _decimal_code(value: core.Asn1Value) -> str | None:
    """Profession code: INTEGER 60 -> ``60``; a string keeps its text."""
    if isinstance(value, core.Integer):
        return str(value.native)
    if isinstance(value, core.OctetString):
        raw = bytes(value.native)
        return str(int.from_bytes(raw, "big")) if raw else None
    return _text_value(value)


def _two_digit_code(value: core.Asn1Value) -> str | None:
    """Card type code: INTEGER 0 -> ``00`` as G02 writes it."""
    code = _decimal_code(value)
    return code.zfill(2) if code is not None and code.isdigit() else code


def _hex_code(value: core.Asn1Value) -> str | None:
    """Card category: OCTET STRING 80 -> ``80`` (G01 codes are the byte in hex)."""
    if isinstance(value, core.OctetString):
        raw = bytes(value.native)
        return raw.hex().upper() if raw else None
    if isinstance(value, core.Integer):
        return f"{value.native:02X}"
    return _text_value(value)
