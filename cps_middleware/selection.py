"""Which certificate and private key to use, with reasons when none (or several) fit.

A card holds several certificates (authentication, signature, CA certificates,
a technical one in contactless mode) and several keys. :func:`select` takes
what a token exposes, described as :class:`CertificateCandidate` and
:class:`KeyCandidate` (plain data, so this module does no I/O), and returns
exactly one certificate with its private key, or raises
:class:`~cps_middleware.errors.NoMatchingCertificate` /
:class:`~cps_middleware.errors.AmbiguousSelection` listing every candidate and
why it was rejected.

A key is paired with a certificate by CKA_ID when the ids match, else by label
and usage (``Certificat de Signature CPS`` goes with ``CPS_PRIV_SIG``), because
CKA_IDs differ between middlewares. When a key's public part is known it must
match the certificate's.

Defaults: the authentication certificate for TLS and login
(:meth:`CertificateCriteria.for_tls`), the signature certificate for signing
documents (:meth:`CertificateCriteria.for_signing`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Literal, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from cps_middleware.cards._x509 import is_ca, public_key_of
from cps_middleware.cards.identity import (
    CERTIFICATE_LABELS,
    PRIVATE_KEY_LABELS,
    CertificateUsage,
    Practitioner,
    practitioner_from_certificate,
)
from cps_middleware.errors import AmbiguousSelection, InvalidInput, NoMatchingCertificate

__all__ = [
    "CertificateCandidate",
    "CertificateCriteria",
    "KeyCandidate",
    "KeyType",
    "Selected",
    "key_type_of",
    "pair_key",
    "parse_usage",
    "select",
    "select_certificate",
]

_T = TypeVar("_T")

KeyType = Literal["RSA", "EC"]
UsageName = Literal["auth", "sign", "technical"]

_PUBLIC_KEY_TYPES = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)


def parse_usage(usage: CertificateUsage | str) -> CertificateUsage:
    """``"auth"``, ``"sign"``, ``"technical"`` (or the enum) -> :class:`CertificateUsage`."""
    if isinstance(usage, CertificateUsage):
        return usage
    aliases = {
        "auth": CertificateUsage.AUTHENTICATION,
        "authentication": CertificateUsage.AUTHENTICATION,
        "tls": CertificateUsage.AUTHENTICATION,
        "login": CertificateUsage.AUTHENTICATION,
        "sign": CertificateUsage.SIGNATURE,
        "signature": CertificateUsage.SIGNATURE,
        "document": CertificateUsage.SIGNATURE,
        "technical": CertificateUsage.TECHNICAL,
    }
    found = aliases.get(str(usage).lower())
    if found is None:
        raise InvalidInput(
            f"unknown certificate usage {usage!r}", hint="use 'auth', 'sign' or 'technical'"
        )
    return found


def key_type_of(public_key: object) -> KeyType | None:
    """``"RSA"``, ``"EC"`` ... for a ``cryptography`` public key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "EC"
    return None


@dataclass(frozen=True)
class CertificateCandidate:
    """A certificate as a token exposes it. ``handle`` is the token object (opaque here)."""

    certificate: x509.Certificate
    label: str = ""
    id: bytes = b""
    handle: object | None = field(default=None, compare=False, repr=False)

    @cached_property
    def holder(self) -> Practitioner:
        return practitioner_from_certificate(self.certificate, label=self.label or None)

    @property
    def usage(self) -> CertificateUsage:
        return self.holder.usage

    @property
    def is_authority(self) -> bool:
        return is_ca(self.certificate)

    def describe(self) -> str:
        """One line naming the candidate in error messages and reports."""
        name = self.label or _cn(self.certificate) or self.certificate.subject.rfc4514_string()
        bits = [repr(name)]
        holder = self.holder
        if not self.is_authority and holder.ps_id_nat:
            bits.append(f"{holder.display_name} ({holder.ps_id_nat})")
        bits.append(f"usage {holder.usage.value}")
        if self.id:
            bits.append(f"id {self.id.hex()}")
        return ", ".join(bits)


@dataclass(frozen=True)
class KeyCandidate:
    """A private key as a token exposes it (no secret: label, id, type, flags).

    ``public_key`` is the key's public part when the token shows it (CKA_MODULUS /
    CKA_EC_POINT); it then has to match the certificate.
    """

    label: str = ""
    id: bytes = b""
    key_type: KeyType | None = None
    can_sign: bool = True
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | None = field(
        default=None, compare=False
    )
    handle: object | None = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        """The key as messages show it (label and id)."""
        bits = [repr(self.label or "(no label)")]
        if self.key_type:
            bits.append(self.key_type)
        if self.id:
            bits.append(f"id {self.id.hex()}")
        return ", ".join(bits)


@dataclass(frozen=True)
class Selected:
    """The chosen certificate and its private key."""

    certificate: CertificateCandidate
    key: KeyCandidate
    paired_by: Literal["id", "label"]

    @property
    def holder(self) -> Practitioner:
        return self.certificate.holder


@dataclass(frozen=True)
class CertificateCriteria:
    """What the wanted certificate must be; every field left ``None`` is not checked.

    ``issuer`` matches the issuer's CN or its whole RFC 4514 DN; ``holder_id``
    matches the PS_IdNat (``810002813839``) or the bare RPPS/ADELI number.
    ``mismatches(candidate)`` says, in words, what does not fit.
    """

    usage: CertificateUsage | None = None
    label: str | None = None
    cka_id: bytes | None = None
    issuer: str | None = None
    valid_at: datetime | None = None
    key_type: KeyType | None = None
    holder_id: str | None = None
    include_authorities: bool = False

    @classmethod
    def for_usage(cls, usage: CertificateUsage | str, **kw: object) -> CertificateCriteria:
        return cls(usage=parse_usage(usage), **kw)  # type: ignore[arg-type]

    @classmethod
    def for_tls(cls, **kw: object) -> CertificateCriteria:
        """The default for TLS client authentication and login: the authentication certificate."""
        return cls.for_usage(CertificateUsage.AUTHENTICATION, **kw)

    @classmethod
    def for_signing(cls, **kw: object) -> CertificateCriteria:
        """The default for signing documents: the (non-repudiation) signature certificate."""
        return cls.for_usage(CertificateUsage.SIGNATURE, **kw)

    def with_(self, **changes: object) -> CertificateCriteria:
        """A copy with the given fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def mismatches(self, candidate: CertificateCandidate) -> list[str]:
        """Why ``candidate`` does not fit (an empty list when it does)."""
        cert = candidate.certificate
        why: list[str] = []
        if candidate.is_authority and not self.include_authorities:
            return ["is a CA certificate, not a holder certificate"]  # nothing else matters
        holder = candidate.holder
        if self.usage is not None and holder.usage is not self.usage:
            why.append(f"usage is {holder.usage.value}, wanted {self.usage.value}")
        if self.label is not None and candidate.label != self.label:
            why.append(f"label is {candidate.label!r}, wanted {self.label!r}")
        if self.cka_id is not None and candidate.id != self.cka_id:
            why.append(f"CKA_ID is {candidate.id.hex() or '(none)'}, wanted {self.cka_id.hex()}")
        if self.issuer is not None:
            issuer_dn = cert.issuer.rfc4514_string()
            if self.issuer not in (holder.issuer_cn, issuer_dn):
                why.append(f"issuer is {holder.issuer_cn or issuer_dn!r}, wanted {self.issuer!r}")
        if self.valid_at is not None:
            when = self.valid_at if self.valid_at.tzinfo else self.valid_at.replace(tzinfo=UTC)
            if when < holder.not_before:
                why.append(f"not valid before {holder.not_before.isoformat()}")
            elif when > holder.not_after:
                why.append(f"expired on {holder.not_after.isoformat()}")
        if self.key_type is not None:
            actual = key_type_of(public_key_of(cert))
            if actual != self.key_type:
                why.append(f"key type is {actual or 'other'}, wanted {self.key_type}")
        if self.holder_id is not None:
            ids = {holder.ps_id_nat, holder.id_number} - {None}
            if self.holder_id not in ids:
                shown = holder.ps_id_nat or "(no national identifier)"
                why.append(f"holder is {shown}, wanted {self.holder_id}")
        return why


def pair_key(
    certificate: CertificateCandidate, keys: Iterable[KeyCandidate]
) -> tuple[KeyCandidate, Literal["id", "label"]] | str:
    """The private key that goes with ``certificate``, or the reason there is none."""
    keys = [k for k in keys if k.can_sign and _public_key_agrees(certificate, k)]
    if certificate.id:
        by_id = [k for k in keys if k.id == certificate.id]
        if len(by_id) == 1:
            return by_id[0], "id"
        if len(by_id) > 1:
            return f"{len(by_id)} signing keys share its CKA_ID {certificate.id.hex()}"
    by_label = [k for k in keys if _labels_pair(certificate, k)]
    if len(by_label) == 1:
        return by_label[0], "label"
    if len(by_label) > 1:
        return f"{len(by_label)} signing keys pair with its label {certificate.label!r}"
    return "no private key on the token pairs with it (by CKA_ID, label or usage)"


def select(
    certificates: Iterable[CertificateCandidate],
    keys: Iterable[KeyCandidate],
    criteria: CertificateCriteria,
) -> Selected:
    """Exactly one certificate fitting ``criteria`` and its private key.

    Raises :class:`NoMatchingCertificate` when none fits and
    :class:`AmbiguousSelection` when several do; both list every candidate
    with the reasons it was rejected (``fits`` for the ones that fit).
    """
    key_list = list(keys)
    report: list[tuple[str, Sequence[str]]] = []
    fitting: list[Selected] = []
    for cert in certificates:
        why = criteria.mismatches(cert)
        paired = pair_key(cert, key_list)
        if isinstance(paired, str):
            if not why or not cert.is_authority:
                why.append(paired)
        elif not why:
            fitting.append(Selected(cert, paired[0], paired[1]))
        report.append((cert.describe(), why))
    return _exactly_one(fitting, report, criteria)


def select_certificate(
    certificates: Iterable[CertificateCandidate], criteria: CertificateCriteria
) -> CertificateCandidate:
    """Like :func:`select` without looking for the private key (to show or export a
    certificate, or read the holder identity)."""
    report: list[tuple[str, Sequence[str]]] = []
    fitting: list[CertificateCandidate] = []
    for cert in certificates:
        why = criteria.mismatches(cert)
        if not why:
            fitting.append(cert)
        report.append((cert.describe(), why))
    return _exactly_one(fitting, report, criteria)


def _exactly_one(
    fitting: list[_T], report: list[tuple[str, Sequence[str]]], criteria: CertificateCriteria
) -> _T:
    if len(fitting) == 1:
        return fitting[0]
    wanted = _describe_criteria(criteria)
    if not fitting:
        if not report:
            raise NoMatchingCertificate(f"the token holds no certificate ({wanted})")
        raise NoMatchingCertificate(f"no certificate fits ({wanted})", candidates=report)
    raise AmbiguousSelection(f"{len(fitting)} certificates fit ({wanted})", candidates=report)


def _describe_criteria(criteria: CertificateCriteria) -> str:
    parts = []
    for name in ("usage", "label", "cka_id", "issuer", "valid_at", "key_type", "holder_id"):
        value = getattr(criteria, name)
        if value is None:
            continue
        if isinstance(value, CertificateUsage):
            value = value.value
        elif isinstance(value, bytes):
            value = value.hex()
        elif isinstance(value, datetime):
            value = value.isoformat()
        parts.append(f"{name}={value}")
    return "wanted " + (", ".join(parts) if parts else "any holder certificate")


def _labels_pair(certificate: CertificateCandidate, key: KeyCandidate) -> bool:
    if certificate.label and key.label == certificate.label:
        return True  # OpenSC and most middlewares give a key its certificate's label
    cert_usage = CERTIFICATE_LABELS.get(certificate.label)
    key_usage = PRIVATE_KEY_LABELS.get(key.label)
    if cert_usage is not None and key_usage is not None:
        return cert_usage is key_usage
    if key_usage is not None and cert_usage is None:
        # Certificate without a known label: fall back on its keyUsage.
        return certificate.usage is key_usage
    return False


def _public_key_agrees(certificate: CertificateCandidate, key: KeyCandidate) -> bool:
    cert_key = public_key_of(certificate.certificate)
    if key.key_type is not None and key.key_type != key_type_of(cert_key):
        return False
    if key.public_key is None or not isinstance(cert_key, _PUBLIC_KEY_TYPES):
        return True
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return bool(key.public_key.public_bytes(enc, fmt) == cert_key.public_bytes(enc, fmt))


def _cn(certificate: x509.Certificate) -> str | None:
    values = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None
