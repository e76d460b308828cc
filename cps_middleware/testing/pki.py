"""A test PKI shaped like IGC-Santé TEST, for test cards and validators.

``TEST AC RACINE IGC-SANTE FORT`` → ``TEST AC IGC-SANTE FORT PERSONNES``
(pathlen 0) and, made on first use, ``TEST AC IGC-SANTE FORT ORGANISATIONS``
(pathlen 0: the organisation / "ORG AUTH_CLI" certificates of software
vendors' servers, see :meth:`TestPki.issue_organisation`), with the same DN
pattern, key usages and extensions as the real CA certificates, and holder
certificates with the real card profile: subject
``C=FR, title=<profession>, GN+CN+SN`` as ONE multi-valued RDN, CN = PS_IdNat,
the NOS private extensions, an authentication certificate (digitalSignature +
keyEncipherment, clientAuth) and a signature certificate (nonRepudiation).

Everything is deterministic from the seed: the same seed gives the same keys,
serial numbers and certificates (dates follow the ``reference_time``, by
default the start of the current UTC day).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization.pkcs12 import serialize_key_and_certificates
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    NameOID,
    ObjectIdentifier,
)

from cps_middleware.errors import TestCardError
from cps_middleware.testing._keys import PrivateKey, deterministic_key

__all__ = [
    "CardCredentials",
    "CertifiedKey",
    "OrganisationCertificate",
    "Revocation",
    "TestHolder",
    "TestPki",
    "key_usage",
    "pkcs12",
]

# NOS private extensions of the health arc (DOMAIN.md).
OID_PROFESSION = ObjectIdentifier("1.2.250.1.71.1.2.7")
OID_CARD_TYPE = ObjectIdentifier("1.2.250.1.71.1.2.2")
OID_CARD_CATEGORY = ObjectIdentifier("1.2.250.1.71.1.2.5")
OID_CARD_NUMBER = ObjectIdentifier("1.2.250.1.71.1.2.3")
# Certificate policies: the signature one is the real TEST card's; the
# authentication one is its sibling arc (the real value is not public: uncertain).
POLICY_SIGNATURE = ObjectIdentifier("1.2.250.1.213.1.7.2.1.1.1.1")
POLICY_AUTHENTICATION = ObjectIdentifier("1.2.250.1.213.1.7.2.1.1.1.2")
# Organisation (ORG AUTH_CLI) certificates: a sibling arc again (real value not public: uncertain).
POLICY_ORGANISATION = ObjectIdentifier("1.2.250.1.213.1.7.2.1.1.3.1")

_BASE_DN = [
    x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ASIP-SANTE"),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "0002 187512751"),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "IGC-SANTE TEST"),
]
_CRL_BASE = "http://igc-sante.esante.gouv.fr/CRL/"
_KEY_USAGE_BITS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def key_usage(*usages: str) -> x509.KeyUsage:
    """A ``KeyUsage`` with the named bits set: ``key_usage("key_cert_sign", "crl_sign")``."""
    unknown = set(usages).difference(_KEY_USAGE_BITS)
    if unknown:
        raise ValueError(f"unknown key usage(s): {', '.join(sorted(unknown))}")
    return x509.KeyUsage(**{bit: bit in usages for bit in _KEY_USAGE_BITS})

# Profession codes (ANS table G15) the test PKI knows how to title. The full
# table lives in cps_middleware.cards.nomenclature; this is the subset whose
# titles appear on cards.
PROFESSIONS: dict[int, str] = {
    10: "Médecin",
    21: "Pharmacien",
    26: "Audioprothésiste",
    28: "Opticien-Lunetier",
    40: "Chirurgien-Dentiste",
    50: "Sage-Femme",
    60: "Infirmier",
    69: "Infirmier psychiatrique",
    70: "Masseur-Kinésithérapeute",
    80: "Pédicure-Podologue",
    81: "Orthoprothésiste",
    82: "Podo-Orthésiste",
    83: "Orthopédiste-Orthésiste",
    84: "Oculariste",
    85: "Epithésiste",
    86: "Technicien de laboratoire médical",
    91: "Orthophoniste",
    92: "Orthoptiste",
    94: "Ergothérapeute",
    95: "Diététicien",
    96: "Psychomotricien",
    98: "Manipulateur ERM",
}
# Identifier type digit of PS_IdNat → (name, number of digits after it or None)
ID_TYPES: dict[str, tuple[str, int | None]] = {
    "8": ("RPPS", 11),
    "0": ("ADELI", None),
    "3": ("FINESS", 9),
    "4": ("SIREN", 9),
    "5": ("SIRET", 14),
}


@dataclass(frozen=True)
class TestHolder:
    """Who a test card belongs to. Validated on creation (`TestCardError`)."""

    __test__ = False  # not a pytest test class

    given_name: str = "JEAN"
    surname: str = "MEDECIN-TEST"
    profession_code: int = 10
    id_type: str = "8"
    id_number: str = "10001234567"
    card_number: str = "8025000001/2800000001"
    card_type: int = 0  # G02: 0 = CPS
    card_category: int = 0x80  # G01: 0x80 = test card
    title: str | None = None

    def __post_init__(self) -> None:
        if self.profession_code not in PROFESSIONS:
            known = ", ".join(f"{c} {n}" for c, n in sorted(PROFESSIONS.items())[:6])
            raise TestCardError(
                f"unknown profession code {self.profession_code!r}",
                hint=f"use a code of ANS table G15, e.g. {known} ...",
            )
        if self.id_type not in ID_TYPES:
            raise TestCardError(
                f"unknown identifier type {self.id_type!r}",
                hint="use 8 (RPPS), 0 (ADELI), 3 (FINESS), 4 (SIREN) or 5 (SIRET)",
            )
        name, digits = ID_TYPES[self.id_type]
        number_ok = (
            self.id_number.isdigit() and len(self.id_number) == digits
            if digits is not None
            else self.id_number.isalnum() and 1 <= len(self.id_number) <= 11
        )
        if not number_ok:
            want = f"{digits} digits" if digits else "1 to 11 letters or digits"
            raise TestCardError(
                f"malformed {name} number {self.id_number!r}",
                hint=f"a {name} number is {want}",
            )
        for label, value in (("given name", self.given_name), ("surname", self.surname)):
            if not value or not value.strip():
                raise TestCardError(f"empty {label}", hint="give the holder a name")
        issuer, _, number = self.card_number.partition("/")
        if not (issuer.isdigit() and number.isdigit()):
            raise TestCardError(
                f"malformed card number {self.card_number!r}",
                hint="a card number is <issuer id>/<number>, e.g. 8025000001/2800636234",
            )

    @property
    def ps_idnat(self) -> str:
        """The national identifier: type digit followed by the number (the subject CN)."""
        return self.id_type + self.id_number

    @property
    def profession_title(self) -> str:
        return self.title or PROFESSIONS[self.profession_code]


@dataclass(frozen=True)
class CertifiedKey:
    """A certificate with its private key."""

    certificate: x509.Certificate
    private_key: PrivateKey

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def private_key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (test keys only)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True)
class OrganisationCertificate(CertifiedKey):
    """An ORG AUTH_CLI certificate with its key, structure identifier and CA chain."""

    structure_id: str
    service: str
    chain: tuple[x509.Certificate, ...]  # organisation CA, root

    def pkcs12(self, password: bytes | None = None) -> bytes:
        """The key, certificate and chain as a PKCS#12 file (see :func:`pkcs12`)."""
        return pkcs12(self, password, chain=self.chain, name=self.service)


def pkcs12(
    certified: CertifiedKey,
    password: bytes | None = None,
    *,
    chain: Sequence[x509.Certificate] = (),
    name: str | None = None,
) -> bytes:
    """*certified*'s key and certificate (and *chain*) as PKCS#12 (AES-256, PBKDF2).

    Without *password* the file is not encrypted (tests only).
    """
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return serialize_key_and_certificates(
        (name or "cps-middleware test").encode(),
        certified.private_key,
        certified.certificate,
        list(chain) or None,
        encryption,
    )


@dataclass(frozen=True)
class CardCredentials:
    """What a CPS card holds: the authentication and signature key pairs."""

    holder: TestHolder
    authentication: CertifiedKey
    signature: CertifiedKey
    chain: tuple[x509.Certificate, ...]  # intermediate, root


@dataclass(frozen=True)
class Revocation:
    serial_number: int
    reason: x509.ReasonFlags = x509.ReasonFlags.key_compromise
    date: _dt.datetime | None = None


def _day_start(t: _dt.datetime) -> _dt.datetime:
    return t.astimezone(_dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class TestPki:
    """IGC-Santé TEST-like hierarchy; see the module docstring.

    >>> pki = TestPki(seed="demo")
    >>> creds = pki.issue_card(TestHolder())
    """

    __test__ = False

    seed: str = "cps-middleware"
    ca_key_type: str = "rsa4096"
    reference_time: _dt.datetime = field(
        default_factory=lambda: _day_start(_dt.datetime.now(_dt.UTC))
    )
    root: CertifiedKey = field(init=False)
    intermediate: CertifiedKey = field(init=False)
    _revoked: dict[int, list[Revocation]] = field(init=False, default_factory=dict)
    _organisations: CertifiedKey | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.seed = str(self.seed)
        ca_from = _dt.datetime(2020, 1, 1, tzinfo=_dt.UTC)
        ca_to = _dt.datetime(2040, 1, 1, tzinfo=_dt.UTC)
        root_key = self._key("root", self.ca_key_type)
        root_name = x509.Name(
            [*_BASE_DN, x509.NameAttribute(NameOID.COMMON_NAME, "TEST AC RACINE IGC-SANTE FORT")]
        )
        root_cert = self._ca_certificate(
            root_name, root_key, root_name, root_key, None, ca_from, ca_to, "ACR-FO-TEST.crl"
        )
        self.root = CertifiedKey(root_cert, root_key)
        inter_key = self._key("intermediate", self.ca_key_type)
        inter_name = x509.Name(
            [*_BASE_DN, x509.NameAttribute(NameOID.COMMON_NAME, "TEST AC IGC-SANTE FORT PERSONNES")]
        )
        inter_cert = self._ca_certificate(
            inter_name, inter_key, root_name, root_key, 0, ca_from, ca_to, "ACR-FO-TEST.crl"
        )
        self.intermediate = CertifiedKey(inter_cert, inter_key)

    # -- keys and serials -------------------------------------------------------

    def _key(self, name: str, key_type: str) -> PrivateKey:
        return deterministic_key(f"{self.seed}/{name}", key_type)

    def _end_entity(
        self,
        ca: CertifiedKey,
        subject: x509.Name,
        key: PrivateKey,
        serial_label: str,
        not_before: _dt.datetime,
        not_after: _dt.datetime,
        usages: tuple[str, ...],
        policy: x509.ObjectIdentifier,
        eku: list[x509.ObjectIdentifier],
        crl_file: str,
    ) -> x509.CertificateBuilder:
        """An IGC-Santé-shaped end-entity certificate up to its CRL distribution point."""
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca.certificate.subject)
            .public_key(key.public_key())
            .serial_number(self._serial(f"{serial_label}/{_key_id(key)}"))
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
                False,
            )
            .add_extension(key_usage(*usages), critical=True)
            .add_extension(
                x509.CertificatePolicies(
                    [x509.PolicyInformation(policy, ["http://igc-sante.esante.gouv.fr/PC%20TEST"])]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
            .add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier(_CRL_BASE + crl_file)],
                            None,
                            None,
                            None,
                        )
                    ]
                ),
                critical=False,
            )
        )

    def _serial(self, label: str) -> int:
        digest = hashlib.sha256(f"{self.seed}/serial/{label}".encode()).digest()
        return int.from_bytes(digest[:16], "big") >> 1 or 1

    # -- CA certificates -------------------------------------------------------

    def _ca_certificate(
        self,
        subject: x509.Name,
        key: PrivateKey,
        issuer: x509.Name,
        issuer_key: PrivateKey,
        path_length: int | None,
        not_before: _dt.datetime,
        not_after: _dt.datetime,
        crl_name: str,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(self._serial(subject.rfc4514_string()))
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(key_usage("key_cert_sign", "crl_sign"), critical=True)
            .add_extension(
                x509.CertificatePolicies(
                    [
                        x509.PolicyInformation(
                            x509.ObjectIdentifier("2.5.29.32.0"),
                            ["http://igc-sante.esante.gouv.fr/PC%20TEST"],
                        )
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
            )
        )
        if issuer != subject:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier(_CRL_BASE + crl_name)], None, None, None
                        )
                    ]
                ),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    # -- holder certificates -----------------------------------------------------

    def issue_card(
        self,
        holder: TestHolder | None = None,
        *,
        key_type: str = "rsa2048",
        not_before: _dt.datetime | None = None,
        not_after: _dt.datetime | None = None,
        key_name: str | None = None,
    ) -> CardCredentials:
        """Authentication and signature certificates (with keys) for *holder*.

        Validity defaults to three years starting 30 days before ``reference_time``
        (real cards are issued for three years). *key_type* is ``rsa2048``
        (CPS3/CPS4) or ``p256`` / ``p384`` (EC test cards).
        """
        holder = holder or TestHolder()
        start = not_before or self.reference_time - _dt.timedelta(days=30)
        end = not_after or start + _dt.timedelta(days=3 * 365)
        if end <= start:
            raise TestCardError("not_after must be after not_before")
        base = key_name or f"card/{holder.card_number}/{holder.ps_idnat}"
        auth = self.issue(
            holder,
            usage="authentication",
            key=self._key(base + "/auth", key_type),
            not_before=start,
            not_after=end,
        )
        sign = self.issue(
            holder,
            usage="signature",
            key=self._key(base + "/sign", key_type),
            not_before=start,
            not_after=end,
        )
        return CardCredentials(
            holder, auth, sign, (self.intermediate.certificate, self.root.certificate)
        )

    def issue(
        self,
        holder: TestHolder,
        *,
        usage: str,
        key: PrivateKey,
        not_before: _dt.datetime,
        not_after: _dt.datetime,
        issuer: CertifiedKey | None = None,
        extra_extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    ) -> CertifiedKey:
        """One holder certificate with the real card profile (usage: authentication/signature)."""
        if usage not in ("authentication", "signature"):
            raise TestCardError(
                f"unknown certificate usage {usage!r}", hint="use 'authentication' or 'signature'"
            )
        ca = issuer or self.intermediate
        subject = x509.Name(
            [
                x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]),
                x509.RelativeDistinguishedName(
                    [x509.NameAttribute(NameOID.TITLE, holder.profession_title)]
                ),
                x509.RelativeDistinguishedName(
                    [
                        x509.NameAttribute(NameOID.GIVEN_NAME, holder.given_name),
                        x509.NameAttribute(NameOID.COMMON_NAME, holder.ps_idnat),
                        x509.NameAttribute(NameOID.SURNAME, holder.surname),
                    ]
                ),
            ]
        )
        is_auth = usage == "authentication"
        if not is_auth:
            usages: tuple[str, ...] = ("content_commitment",)
        elif isinstance(key, rsa.RSAPrivateKey):
            usages = ("digital_signature", "key_encipherment")
        else:
            usages = ("digital_signature",)
        eku = (
            [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]
            if is_auth
            else [ExtendedKeyUsageOID.EMAIL_PROTECTION]
        )
        policy = POLICY_AUTHENTICATION if is_auth else POLICY_SIGNATURE
        builder = self._end_entity(
            ca, subject, key,
            f"{holder.card_number}/{usage}/{not_before.isoformat()}/{not_after.isoformat()}",
            not_before, not_after, usages, policy, eku, "ACI-FO-PP-TEST.crl",
        )  # fmt: skip
        builder = (
            builder
            .add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier("http://ocsp.esante.gouv.fr"),
                        ),
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.CA_ISSUERS,
                            x509.UniformResourceIdentifier(
                                "http://igc-sante.esante.gouv.fr/AC%20TEST/ACI-FO-PP-TEST.cer"
                            ),
                        ),
                    ]
                ),
                critical=False,
            )
        )
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            *((ext, False) for ext in nos_extensions(holder)),
            *extra_extensions,
        ]
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return CertifiedKey(builder.sign(ca.private_key, hashes.SHA256()), key)

    # -- revocation ------------------------------------------------------------------

    def revoke(
        self,
        certificate: x509.Certificate,
        reason: x509.ReasonFlags = x509.ReasonFlags.key_compromise,
        date: _dt.datetime | None = None,
    ) -> None:
        """Record *certificate* as revoked: the next `crl()` of its issuer lists it."""
        issuer = self._ca_for(certificate)
        entries = self._revoked.setdefault(issuer.certificate.serial_number, [])
        entries.append(
            Revocation(
                certificate.serial_number,
                reason,
                date or self.reference_time - _dt.timedelta(days=1),
            )
        )

    def crl(
        self,
        ca: str = "intermediate",
        *,
        this_update: _dt.datetime | None = None,
        next_update: _dt.datetime | None = None,
        extra: Iterable[Revocation] = (),
    ) -> x509.CertificateRevocationList:
        """The CRL of the ``"root"`` or ``"intermediate"`` CA, listing what was revoked."""
        cas = {"root": self.root, "intermediate": self.intermediate}
        if ca == "organisations":
            cas[ca] = self.organisation_ca
        issuer = cas.get(ca)
        if issuer is None:
            raise TestCardError(
                f"unknown CA {ca!r}", hint="use 'root', 'intermediate' or 'organisations'"
            )
        start = this_update or self.reference_time - _dt.timedelta(hours=1)
        end = next_update or start + _dt.timedelta(days=7)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.certificate.subject)
            .last_update(start)
            .next_update(end)
            .add_extension(x509.CRLNumber(int(start.timestamp())), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.private_key.public_key()),
                False,
            )
        )
        for entry in [*self._revoked.get(issuer.certificate.serial_number, []), *extra]:
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(entry.serial_number)
                .revocation_date(entry.date or start)
                .add_extension(x509.CRLReason(entry.reason), critical=False)
                .build()
            )
            builder = builder.add_revoked_certificate(revoked)
        return builder.sign(issuer.private_key, hashes.SHA256())

    def ocsp_responder(
        self,
        ca: str = "intermediate",
        *,
        name: str = "TEST OCSP IGC-SANTE FORT PERSONNES",
        key_type: str = "p256",
        ocsp_signing: bool = True,
    ) -> CertifiedKey:
        """A delegated OCSP responder certificate issued by the ``"root"`` or
        ``"intermediate"`` CA: id-kp-OCSPSigning (unless *ocsp_signing* is false,
        to test a responder the CA did not authorise), id-pkix-ocsp-nocheck,
        valid from 30 days before ``reference_time`` for one year."""
        issuer = {"root": self.root, "intermediate": self.intermediate}.get(ca)
        if issuer is None:
            raise TestCardError(f"unknown CA {ca!r}", hint="use 'root' or 'intermediate'")
        key = self._key(f"ocsp/{ca}/{name}/{key_type}", key_type)
        start = self.reference_time - _dt.timedelta(days=30)
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name([*_BASE_DN, x509.NameAttribute(NameOID.COMMON_NAME, name)])
            )
            .issuer_name(issuer.certificate.subject)
            .public_key(key.public_key())
            .serial_number(self._serial(f"ocsp/{ca}/{name}/{key_type}/{ocsp_signing}"))
            .not_valid_before(start)
            .not_valid_after(start + _dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage("digital_signature"), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.private_key.public_key()),
                False,
            )
            .add_extension(x509.OCSPNoCheck(), critical=False)
        )
        if ocsp_signing:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False
            )
        return CertifiedKey(builder.sign(issuer.private_key, hashes.SHA256()), key)

    def _ca_for(self, certificate: x509.Certificate) -> CertifiedKey:
        cas = [self.intermediate, self.root]
        if self._organisations is not None:
            cas.insert(0, self._organisations)
        for ca in cas:
            try:
                certificate.verify_directly_issued_by(ca.certificate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return ca
        raise TestCardError(
            "this certificate was not issued by this test PKI",
            hint="revoke certificates issued by the same TestPki",
        )

    # -- organisation (ORG AUTH_CLI) certificates ------------------------------------

    @property
    def organisation_ca(self) -> CertifiedKey:
        """``TEST AC IGC-SANTE FORT ORGANISATIONS`` (under the root), made on first use."""
        if self._organisations is None:
            key = self._key("organisations", self.ca_key_type)
            name = x509.Name(
                [
                    *_BASE_DN,
                    x509.NameAttribute(
                        NameOID.COMMON_NAME, "TEST AC IGC-SANTE FORT ORGANISATIONS"
                    ),
                ]
            )
            cert = self._ca_certificate(
                name,
                key,
                self.root.certificate.subject,
                self.root.private_key,
                0,
                _dt.datetime(2020, 1, 1, tzinfo=_dt.UTC),
                _dt.datetime(2040, 1, 1, tzinfo=_dt.UTC),
                "ACR-FO-TEST.crl",
            )
            self._organisations = CertifiedKey(cert, key)
        return self._organisations

    def issue_organisation(
        self,
        structure_id: str = "3990000016",
        service: str = "PROXY LPS TEST",
        *,
        organisation: str = "STRUCTURE DE TEST",
        key_type: str = "rsa2048",
        not_before: _dt.datetime | None = None,
        not_after: _dt.datetime | None = None,
        key_name: str | None = None,
    ) -> OrganisationCertificate:
        """An IGC-Santé-shaped ORG AUTH_CLI certificate for a structure's server.

        Subject ``C=FR, O=<organisation>, OU=<structure_id>, CN=<service>``: the
        OU carries the structure identifier (type digit + number, as
        ``PS_IdNat`` does for people: 3 FINESS, 4 SIREN, 5 SIRET), the CN a free
        label naming the service (the authorisation server maps the DN to its
        client id). TLS client authentication only (clientAuth, digitalSignature
        + keyEncipherment for RSA). Validity: three years from 30 days before
        ``reference_time`` unless given.
        """
        id_type, number = structure_id[:1], structure_id[1:]
        digits = ID_TYPES.get(id_type, ("", 0))[1] if id_type in "345" else 0
        if not (number.isdigit() and len(number) == digits):
            raise TestCardError(
                f"malformed structure identifier {structure_id!r}",
                hint="a structure identifier is 3 + FINESS (9 digits), 4 + SIREN (9) "
                "or 5 + SIRET (14)",
            )
        if not service.strip() or not organisation.strip():
            raise TestCardError("empty service or organisation name")
        ca = self.organisation_ca
        key = self._key(key_name or f"org/{structure_id}/{service}", key_type)
        start = not_before or self.reference_time - _dt.timedelta(days=30)
        end = not_after or start + _dt.timedelta(days=3 * 365)
        if end <= start:
            raise TestCardError("not_after must be after not_before")
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, structure_id),
                x509.NameAttribute(NameOID.COMMON_NAME, service),
            ]
        )
        usages = (
            ("digital_signature", "key_encipherment")
            if isinstance(key, rsa.RSAPrivateKey)
            else ("digital_signature",)
        )
        builder = self._end_entity(
            ca, subject, key,
            f"org/{structure_id}/{service}/{start.isoformat()}/{end.isoformat()}",
            start, end, usages, POLICY_ORGANISATION, [ExtendedKeyUsageOID.CLIENT_AUTH],
            "ACI-FO-ORG-TEST.crl",
        )  # fmt: skip
        cert = builder.sign(ca.private_key, hashes.SHA256())
        return OrganisationCertificate(
            cert, key, structure_id, service, (ca.certificate, self.root.certificate)
        )

    @property
    def ca_certificates(self) -> tuple[x509.Certificate, x509.Certificate]:
        """(root, intermediate)."""
        return (self.root.certificate, self.intermediate.certificate)


def nos_extensions(holder: TestHolder) -> list[x509.UnrecognizedExtension]:
    """The four NOS private extensions of a CPS holder certificate, DER-encoded as on cards."""
    return [
        x509.UnrecognizedExtension(OID_CARD_CATEGORY, _der_octets(bytes([holder.card_category]))),
        x509.UnrecognizedExtension(OID_CARD_TYPE, _der_integer(holder.card_type)),
        x509.UnrecognizedExtension(
            OID_CARD_NUMBER, _der_tlv(0x13, holder.card_number.encode("ascii"))
        ),
        x509.UnrecognizedExtension(OID_PROFESSION, _der_integer(holder.profession_code)),
    ]


def _der_tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + value


def _der_integer(value: int) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
    return _der_tlv(0x02, raw)


def _der_octets(value: bytes) -> bytes:
    return _der_tlv(0x04, value)


def _key_id(key: PrivateKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"ec{key.public_key().public_numbers().x:x}"[:24]
    return f"rsa{key.public_key().public_numbers().n:x}"[:24]
