"""Trust stores (IGC-Santé production and TEST) and loaders for certificates and CRLs.

A :class:`TrustStore` is a set of trust anchors plus the intermediate CA
certificates that may complete a path. ``igc_sante()`` is the production
hierarchy shipped as package data; ``igc_sante_test()`` is the TEST hierarchy,
which is not shipped: it is built from certificates or a directory you give
(for example ``cps_middleware.testing.TestPki().ca_certificates()``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.oid import NameOID

from cps_middleware.errors import ValidationSetupError

__all__ = [
    "CertificateSource",
    "TrustStore",
    "igc_sante",
    "igc_sante_test",
    "load_certificates",
    "load_crls",
]

CertificateSource = bytes | x509.Certificate
_CERT_SUFFIXES = {".cer", ".crt", ".der", ".pem", ".p7b", ".p7c"}
_CRL_SUFFIXES = {".crl", ".der", ".pem"}

# SHA-256 fingerprints of the nine IGC-Santé production CA certificates (2013
# generation). The store refuses to load if the package data does not match.
IGC_SANTE_FINGERPRINTS: dict[str, str] = {
    "ACR_ELEMENTAIRE_20130625.cer": (
        "2d9e22ca19f777c6b745257c723ecb8df3c35fa6f1f6ec36b83600c97346967f"
    ),
    "ACR_FORT_20130625.cer": ("53d30a19570826bde0c0762501f1f1c7a659f976c6c023123df5239df34a4eea"),
    "ACR_STANDARD_20130625.cer": (
        "5891815e864506c662afb32f8de5b8de38bffa1af721780b69e19a0c050386c3"
    ),
    "AC_ELEMENTAIRE_ORGANISATIONS_20130625.cer": (
        "d834ee5b40686b73573f60547bf6052c6d404d942a5665cdb2c0b9137b5d27b2"
    ),
    "AC_ELEMENTAIRE_PERSONNES_20130625.cer": (
        "19c1eaeab477b6fbc233cda3b53fbdbc3f4e9bf6cf6973e46f7dfaef89c06c6c"
    ),
    "AC_FORT_ORGANISATIONS_20130625.cer": (
        "23f69674002d1dd4b018baecd908dc92687942bb48e5140ff895e2f56bc49c0d"
    ),
    "AC_FORT_PERSONNES_20130625.cer": (
        "38284e4f6107456e70c7439c85da7d564d0fe1fe1a968c9eb6d43e1fc0d63c3a"
    ),
    "AC_STANDARD_ORGANISATIONS_20130625.cer": (
        "c0520a2b14fb68836a807bf86ab2b3e07d1b6061d91bc9c7b86a6f8de4b5638e"
    ),
    "AC_STANDARD_PERSONNES_20130625.cer": (
        "6c339ebcb3e1b0102b143c9694225c2a4ab2ef6fedf7d364da8db305e7f7d997"
    ),
}


@dataclass(frozen=True)
class TrustStore:
    """Trust anchors and the intermediate CA certificates that complete paths."""

    anchors: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    name: str = "custom"

    @classmethod
    def from_certificates(
        cls, certs: Iterable[CertificateSource], *, name: str = "custom"
    ) -> TrustStore:
        """Self-signed certificates become anchors, the others intermediates."""
        anchors: list[x509.Certificate] = []
        inter: list[x509.Certificate] = []
        for c in _as_certificates(certs):
            (anchors if _self_signed(c) else inter).append(c)
        if not anchors:
            raise ValidationSetupError(
                f"trust store {name!r}: no self-signed (root) certificate among "
                f"{len(inter)} certificate(s)",
                function="TrustStore.from_certificates",
            )
        return cls(tuple(anchors), tuple(inter), name)

    @classmethod
    def from_directory(cls, path: str | os.PathLike[str], *, name: str | None = None) -> TrustStore:
        """Every certificate file in ``path`` (DER, PEM bundles, PKCS#7)."""
        certs: list[x509.Certificate] = []
        for f in _files(path, _CERT_SUFFIXES, "TrustStore.from_directory"):
            certs.extend(load_certificates(f))
        return cls.from_certificates(certs, name=name or str(path))

    def __add__(self, other: TrustStore) -> TrustStore:
        return TrustStore(
            self.anchors + other.anchors,
            self.intermediates + other.intermediates,
            f"{self.name}+{other.name}",
        )


def igc_sante() -> TrustStore:
    """The IGC-Santé production hierarchy: 3 roots, 6 intermediate CAs (package data)."""
    import hashlib

    data = resources.files("cps_middleware.validation") / "data"
    certs: list[x509.Certificate] = []
    for fname, fp in sorted(IGC_SANTE_FINGERPRINTS.items()):
        der = (data / fname).read_bytes()
        if hashlib.sha256(der).hexdigest() != fp:
            raise ValidationSetupError(
                f"package data {fname} does not match its pinned SHA-256 fingerprint",
                function="igc_sante",
                hint="reinstall cps-middleware: its IGC-Santé certificates were altered",
            )
        certs.append(x509.load_der_x509_certificate(der))
    return TrustStore.from_certificates(certs, name="IGC-Santé")


def igc_sante_test(
    source: str | os.PathLike[str] | Iterable[CertificateSource] | None = None,
) -> TrustStore:
    """The IGC-Santé TEST hierarchy (``TEST AC RACINE IGC-SANTE FORT`` ...).

    Not shipped with the package: give the certificates (DER/PEM bytes or
    ``cryptography`` objects, e.g. ``TestPki().ca_certificates()``) or a
    directory holding them; without an argument the directory named by the
    ``CPS_IGC_SANTE_TEST_DIR`` environment variable is used. Every certificate
    must be a TEST CA (common name starting with ``TEST AC``), so that a
    production CA cannot slip into a test store.
    """
    if source is None:
        env = os.environ.get("CPS_IGC_SANTE_TEST_DIR")
        if not env:
            raise ValidationSetupError(
                "no IGC-Santé TEST certificates given",
                function="igc_sante_test",
                hint="pass the TEST CA certificates or a directory, or set CPS_IGC_SANTE_TEST_DIR",
            )
        source = env
    if isinstance(source, str | os.PathLike):
        store = TrustStore.from_directory(source, name="IGC-Santé TEST")
    else:
        store = TrustStore.from_certificates(source, name="IGC-Santé TEST")
    for c in store.anchors + store.intermediates:
        try:
            cns = c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        except ValueError:  # a subject cryptography cannot read
            cns = []
        cn = str(cns[0].value) if cns else ""
        if not cn.startswith("TEST AC"):
            raise ValidationSetupError(
                f"{cn or 'a certificate without a readable common name'} "
                "is not an IGC-Santé TEST CA",
                function="igc_sante_test",
                hint="the TEST store takes only 'TEST AC ...' certificates",
            )
    return store


def load_certificates(source: str | os.PathLike[str] | bytes) -> list[x509.Certificate]:
    """Certificates from a file path or bytes: DER, PEM (one or a bundle), or PKCS#7."""
    data = _read(source, "load_certificates")
    try:
        if b"-----BEGIN PKCS7-----" in data:
            return list(pkcs7.load_pem_pkcs7_certificates(data))
        if b"-----BEGIN" in data:
            return list(x509.load_pem_x509_certificates(data))
        try:
            return [x509.load_der_x509_certificate(data)]
        except Exception:
            return list(pkcs7.load_der_pkcs7_certificates(data))
    except Exception as exc:
        raise ValidationSetupError(
            f"no certificate could be read from {_label(source)}",
            function="load_certificates",
        ) from exc


def load_crls(source: str | os.PathLike[str] | bytes) -> list[bytes]:
    """DER bytes of the CRLs in a file, a directory, or bytes (DER or PEM, several PEMs ok)."""
    if isinstance(source, str | os.PathLike) and Path(source).is_dir():
        out: list[bytes] = []
        for f in _files(source, _CRL_SUFFIXES, "load_crls"):
            out.extend(load_crls(f))
        return out
    data = _read(source, "load_crls")
    try:
        if b"-----BEGIN" in data:
            crls: list[bytes] = []
            for block in data.split(b"-----BEGIN X509 CRL-----")[1:]:
                pem = b"-----BEGIN X509 CRL-----" + block.split(b"-----END X509 CRL-----")[0]
                pem += b"-----END X509 CRL-----\n"
                crls.append(_checked_crl(x509.load_pem_x509_crl(pem).public_bytes(Encoding.DER)))
            if not crls:
                raise ValueError("no X509 CRL block")
            return crls
        return [_checked_crl(data)]
    except Exception as exc:
        raise ValidationSetupError(
            f"no CRL could be read from {_label(source)}", function="load_crls"
        ) from exc


# --- helpers --------------------------------------------------------------------


def _checked_crl(der: bytes) -> bytes:
    """The CRL's DER if cryptography reads all of it (lazily parsed parts included)."""
    crl = x509.load_der_x509_crl(der)
    crl.extensions  # noqa: B018 (read for its errors: duplicates, bad values)
    crl.last_update_utc  # noqa: B018
    crl.next_update_utc  # noqa: B018
    for entry in crl:
        entry.revocation_date_utc  # noqa: B018
        entry.extensions  # noqa: B018
    return der


def _as_certificates(certs: Iterable[CertificateSource]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for c in certs:
        if isinstance(c, x509.Certificate):
            out.append(c)
        elif isinstance(c, bytes | bytearray | memoryview):
            out.extend(load_certificates(bytes(c)))
        else:
            raise ValidationSetupError(
                f"not a certificate: {type(c).__name__}", function="TrustStore"
            )
    return out


def _self_signed(c: x509.Certificate) -> bool:
    if c.issuer != c.subject:
        return False
    try:
        c.verify_directly_issued_by(c)
    except Exception:  # InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm ...
        return False
    return True


def _files(path: str | os.PathLike[str], suffixes: set[str], function: str) -> list[Path]:
    p = Path(path)
    if not p.is_dir():
        raise ValidationSetupError(f"{p} is not a directory", function=function)
    return sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in suffixes)


def _read(source: str | os.PathLike[str] | bytes, function: str) -> bytes:
    if isinstance(source, bytes | bytearray):
        return bytes(source)
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise ValidationSetupError(f"cannot read {source}: {exc}", function=function) from exc


def _label(source: str | os.PathLike[str] | bytes) -> str:
    return f"{len(source)} bytes" if isinstance(source, bytes | bytearray) else str(source)
