"""Reading X.509 certificates: from PEM or DER bytes, their extensions and key (shared helpers).

``cryptography`` parses extensions and the public key only when asked; what it
cannot read then raises ``ValueError`` / ``UnsupportedAlgorithm``. These helpers
turn that into :class:`~cps_middleware.errors.InvalidInput`.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from cps_middleware.errors import InvalidInput

__all__ = ["certificate_from_bytes", "extensions_of", "is_ca", "public_key_of", "readable_name"]


def certificate_from_bytes(value: object, *, unreadable: str) -> x509.Certificate | None:
    """The certificate *value* holds, or ``None`` when it is neither a certificate nor bytes.

    Bytes-like values are read as PEM when they start with ``-----BEGIN``, as
    DER otherwise; unreadable bytes raise :class:`InvalidInput` with the
    message *unreadable* (``{exc}`` in it is replaced by the parser's reason).
    """
    if isinstance(value, x509.Certificate):
        return value
    if not isinstance(value, bytes | bytearray | memoryview):
        return None
    data = bytes(value)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise InvalidInput(unreadable.format(exc=exc)) from exc


def extensions_of(cert: x509.Certificate) -> x509.Extensions:
    """``cert.extensions``; an extension that cannot be read raises :class:`InvalidInput`."""
    try:
        return cert.extensions
    except ValueError as exc:
        raise InvalidInput(f"unreadable certificate extensions: {exc}") from exc


def public_key_of(cert: x509.Certificate) -> CertificatePublicKeyTypes:
    """``cert.public_key()``; a key that cannot be read raises :class:`InvalidInput`."""
    try:
        return cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(f"unreadable certificate public key: {exc}") from exc


def is_ca(cert: x509.Certificate) -> bool:
    """Whether basicConstraints says CA (``False`` without the extension)."""
    try:
        return extensions_of(cert).get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


# Short names for the attributes of CPS and server certificates that RFC 4514 leaves as OIDs.
_NAME_LABELS = {
    x509.ObjectIdentifier("2.5.4.42"): "GN",
    x509.ObjectIdentifier("2.5.4.4"): "SN",
    x509.ObjectIdentifier("2.5.4.12"): "T",
    x509.ObjectIdentifier("2.5.4.5"): "serialNumber",
    x509.ObjectIdentifier("2.5.4.97"): "organizationIdentifier",
    x509.ObjectIdentifier("1.2.840.113549.1.9.1"): "emailAddress",
    x509.ObjectIdentifier("2.5.4.15"): "businessCategory",
}


def readable_name(name: x509.Name) -> str:
    """A distinguished name as RFC 4514 text with short attribute names
    (``GN=JEAN+CN=810001234567+SN=MEDECIN-TEST,T=Médecin,C=FR``), not raw OIDs."""
    return name.rfc4514_string(_NAME_LABELS)
