"""The organisation certificate a server authenticates with (RFC 8705 ``tls_client_auth``).

PSC and the national authorisation servers authenticate the software
vendor's server ("proxy LPS") by mutual TLS with an IGC-Santé ORG AUTH_CLI
certificate; the subject DN maps to the client id. The key is in a PKCS#12
file or on a PKCS#11 token (an HSM or a card): both go through
:func:`cps_middleware.tls.client_context`, whose bridge key signs the
handshake with whatever key object it is given, so the key of a token never
leaves it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization.pkcs12 import load_pkcs12
from cryptography.x509.oid import NameOID

from cps_middleware.errors import InvalidInput
from cps_middleware.tls.context import client_context, resolve_credentials

__all__ = ["OrganisationCredentials", "x5t_s256"]


def x5t_s256(certificate: x509.Certificate) -> str:
    """The RFC 8705 thumbprint: base64url(SHA-256(DER)), no padding."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class OrganisationCredentials:
    """Key object, certificate and chain of an organisation (or any TLS client)."""

    key: object = field(repr=False)
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    @classmethod
    def from_pkcs12(
        cls, data_or_path: bytes | str | os.PathLike[str], password: bytes | str | None = None
    ) -> OrganisationCredentials:
        """From a PKCS#12 (``.p12`` / ``.pfx``) file or its bytes."""
        data = (
            data_or_path
            if isinstance(data_or_path, bytes)
            else Path(data_or_path).read_bytes()
        )
        secret = password.encode() if isinstance(password, str) else password
        try:
            loaded = load_pkcs12(data, secret)
        except ValueError as exc:
            raise InvalidInput(
                "cannot open the PKCS#12 file",
                hint="check the file and its password",
            ) from exc
        finally:
            del secret
        if loaded.key is None or loaded.cert is None:
            raise InvalidInput("the PKCS#12 file holds no private key with its certificate")
        if not isinstance(loaded.key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise InvalidInput("only RSA and EC keys are supported for TLS client authentication")
        return cls(
            loaded.key,
            loaded.cert.certificate,
            tuple(c.certificate for c in loaded.additional_certs),
        )

    @classmethod
    def from_pkcs11(
        cls, key_or_card: object, certificate: object = None, *, usage: str = "auth",
        chain: tuple[x509.Certificate, ...] = (),
    ) -> OrganisationCredentials:
        """From a PKCS#11 key object (HSM, card) or a card facade (``CpsCard``).

        The key stays on the token: the handshake signature goes to its ``sign()``.
        """
        creds = resolve_credentials(key_or_card, certificate, chain=chain, usage=usage)
        return cls(creds.key, creds.certificate, creds.chain)

    @property
    def thumbprint(self) -> str:
        """``x5t#S256`` of the certificate (what certificate-bound tokens carry)."""
        return x5t_s256(self.certificate)

    @property
    def subject_dn(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @property
    def structure_id(self) -> str | None:
        """The structure identifier (the subject's OU) of an IGC-Santé ORG certificate."""
        units = self.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        return str(units[0].value) if units else None

    def ssl_context(
        self,
        *,
        cafile: str | os.PathLike[str] | None = None,
        cadata: str | bytes | None = None,
    ) -> ssl.SSLContext:
        """A client ``ssl.SSLContext`` presenting this certificate (server verified)."""
        return client_context(self.key, self.certificate, chain=self.chain,
                              cafile=cafile, cadata=cadata)
