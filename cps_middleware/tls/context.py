"""``ssl.SSLContext`` whose client key is on the card (or any private key object).

:func:`client_context` returns a standard ``ssl.SSLContext`` (a subclass:
``isinstance(ctx, ssl.SSLContext)`` holds, so urllib, requests/urllib3,
httpx, aiohttp and asyncio take it unchanged). The certificate, its chain and
a bridge key are installed into the ``SSL_CTX`` behind it; the key's private
operations go to the key object's ``sign()``.

Defaults are the safe ones and are never relaxed silently: the server is
verified (system CAs, or the CA file / data given), the host name checked,
TLS 1.2 at least. For a PKCS#1-only key (a CPS3: no RSA-PSS on the card) the
client signature algorithms are RSA+SHA256/384/512 and TLS 1.2 is the
maximum: TLS 1.3 requires PSS and OpenSSL would otherwise send an empty
certificate; in TLS 1.2 it would also pick PSS whenever the server offers it.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cps_middleware.cards._x509 import certificate_from_bytes, public_key_of
from cps_middleware.errors import BridgeUnavailable, InvalidInput
from cps_middleware.tls import _native

__all__ = [
    "PKCS1_CLIENT_SIGALGS",
    "CardSSLContext",
    "ClientCredentials",
    "client_context",
    "resolve_credentials",
]

PKCS1_CLIENT_SIGALGS = "RSA+SHA256:RSA+SHA384:RSA+SHA512"
_PKCS11_RSA_PKCS_PSS = 0x000D  # CKM_RSA_PKCS_PSS: PSS on a digest, what TLS needs


_T = TypeVar("_T")


def _signing(call: Callable[..., _T], *args: Any) -> _T:
    """*call*, with an ``SSLError`` that a failing signer caused re-raised as the signer's own."""
    try:
        return call(*args)
    except ssl.SSLError:
        _native.raise_signer_error()
        raise


class _CardSSLSocket(ssl.SSLSocket):
    """SSLSocket that re-raises the signer's own error instead of "EVP lib"."""

    def do_handshake(self, block: bool = False) -> None:
        _native.clear_signer_error()
        _signing(super().do_handshake, block)

    # TLS 1.2 renegotiation or TLS 1.3 post-handshake authentication sign here.
    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        return _signing(super().read, len, buffer)

    def write(self, data: Any) -> int:
        return _signing(super().write, data)


class _CardSSLObject(ssl.SSLObject):
    """SSLObject (memory BIO: asyncio, anyio) with the same error translation."""

    def do_handshake(self) -> None:
        _native.clear_signer_error()
        _signing(super().do_handshake)

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        return _signing(super().read, len, buffer)

    def write(self, data: Any) -> int:
        return _signing(super().write, data)


@dataclass(frozen=True)
class ClientCredentials:
    """What goes into the context: the key object, its certificate and chain."""

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    pss: bool  # may the key sign RSA-PSS (TLS 1.3 with RSA)? True for EC keys

    @property
    def key_type(self) -> Literal["RSA", "EC"]:
        return "RSA" if isinstance(self.key, rsa.RSAPrivateKey) else "EC"


class CardSSLContext(ssl.SSLContext):
    """An ``ssl.SSLContext`` holding a bridge key; see :func:`client_context`."""

    sslsocket_class = _CardSSLSocket
    sslobject_class = _CardSSLObject
    credentials: ClientCredentials

    # ssl.SSLContext.__new__ takes the protocol; keep that signature.
    def __new__(cls, protocol: int = ssl.PROTOCOL_TLS_CLIENT, *args: Any, **kwargs: Any) -> Any:
        return super().__new__(cls, protocol, *args, **kwargs)


def _certificate(value: object) -> x509.Certificate:
    cert = certificate_from_bytes(value, unreadable="cannot parse the client certificate")
    if cert is not None:
        return cert
    if isinstance(value, str | os.PathLike):
        with open(value, "rb") as fh:
            return _certificate(fh.read())
    raise InvalidInput(f"a certificate is expected, got {type(value).__name__}")


def _key_can_pss(key: object) -> bool:
    mechanisms = getattr(key, "mechanisms", None)
    if mechanisms is None:
        return True  # a software key can do everything
    return _PKCS11_RSA_PKCS_PSS in {int(m) for m in mechanisms}


def resolve_credentials(
    key_or_card: object,
    certificate: object = None,
    *,
    chain: Iterable[object] = (),
    pss: bool | None = None,
    usage: str = "auth",
) -> ClientCredentials:
    """Key, certificate, chain and PSS capability from a key or a card facade.

    *key_or_card* is a ``cryptography`` RSA/EC private key (a file key or a
    card-backed key) or a card object with ``private_key(usage)`` and
    ``certificate(usage)`` (the ``CpsCard`` facade). *certificate* defaults to
    the key's own ``certificate`` attribute (card keys have one).
    """
    key: object = key_or_card
    if not isinstance(key_or_card, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) and callable(
        getattr(key_or_card, "private_key", None)
    ):
        key = key_or_card.private_key(usage)  # type: ignore[attr-defined]
        if certificate is None and callable(getattr(key_or_card, "certificate", None)):
            certificate = key_or_card.certificate(usage)  # type: ignore[attr-defined]
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise InvalidInput(
            "client_context needs a card, or an RSA / EC private key object, "
            f"not {type(key_or_card).__name__}"
        )
    if certificate is None:
        certificate = getattr(key, "certificate", None)
    if certificate is None:
        raise InvalidInput("the client certificate is missing (pass certificate=...)")
    cert = _certificate(certificate)
    cert_key = public_key_of(cert)
    if cert_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise InvalidInput("the private key does not belong to the certificate")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in {"secp256r1", "secp384r1", "secp521r1"}:
            raise InvalidInput(f"unsupported EC curve {key.curve.name} (P-256, P-384, P-521)")
        can_pss = True
    else:
        can_pss = _key_can_pss(key) if pss is None else bool(pss)
    return ClientCredentials(key, cert, tuple(_certificate(c) for c in chain), can_pss)


def client_context(
    key_or_card: object,
    certificate: object = None,
    *,
    chain: Sequence[object] = (),
    cafile: str | os.PathLike[str] | None = None,
    capath: str | os.PathLike[str] | None = None,
    cadata: str | bytes | None = None,
    pss: bool | None = None,
    usage: str = "auth",
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    maximum_version: ssl.TLSVersion | None = None,
    alpn_protocols: Sequence[str] | None = None,
) -> CardSSLContext:
    """An ``ssl.SSLContext`` that authenticates the client with the card's key.

    Server verification is on: the system CAs, or only *cafile* / *capath* /
    *cadata* when one is given. Host names are checked. *pss* says whether the
    RSA key can sign RSA-PSS; by default it is read from the token's mechanism
    list (card keys) and is true for software keys. ``pss=False`` (a CPS3)
    restricts the client signature to RSA PKCS#1 v1.5 and TLS to 1.2.
    """
    return _client_context(
        key_or_card, certificate, chain=chain, cafile=cafile, capath=capath, cadata=cadata,
        pss=pss, usage=usage, minimum_version=minimum_version, maximum_version=maximum_version,
        alpn_protocols=alpn_protocols,
    )


def _client_context(
    key_or_card: object,
    certificate: object = None,
    *,
    chain: Sequence[object] = (),
    cafile: str | os.PathLike[str] | None = None,
    capath: str | os.PathLike[str] | None = None,
    cadata: str | bytes | None = None,
    pss: bool | None = None,
    usage: str = "auth",
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    maximum_version: ssl.TLSVersion | None = None,
    alpn_protocols: Sequence[str] | None = None,
    wrap_signer: Callable[[_native.Signer], _native.Signer] | None = None,
) -> CardSSLContext:
    """:func:`client_context`, and ``wrap_signer`` to watch the signatures (the Test SSL)."""
    creds = resolve_credentials(key_or_card, certificate, chain=chain, pss=pss, usage=usage)
    if minimum_version < ssl.TLSVersion.TLSv1_2:
        raise InvalidInput("TLS versions below 1.2 are refused")
    native = _native.bridge()
    ctx: CardSSLContext = CardSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    if cafile is None and capath is None and cadata is None:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        if isinstance(cadata, bytes) and cadata.lstrip().startswith(b"-----BEGIN"):
            cadata = cadata.decode("ascii")  # PEM given as bytes (ssl takes bytes as DER)
        ctx.load_verify_locations(cafile=cafile, capath=capath, cadata=cadata)
    ctx.minimum_version = minimum_version
    pkcs1_only = creds.key_type == "RSA" and not creds.pss
    if pkcs1_only:
        if maximum_version is not None and maximum_version > ssl.TLSVersion.TLSv1_2:
            raise InvalidInput(
                "a key without RSA-PSS (CPS3) cannot authenticate in TLS 1.3",
                hint="leave maximum_version unset (TLS 1.2 is used)",
            )
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif maximum_version is not None:
        ctx.maximum_version = maximum_version
    if alpn_protocols:
        ctx.set_alpn_protocols(list(alpn_protocols))
    # A server may ask for the certificate after the handshake (TLS 1.3).
    ctx.post_handshake_auth = True
    der = creds.certificate.public_bytes(serialization.Encoding.DER)
    try:
        signer = _native.make_signer(creds.key)
        if wrap_signer is not None:  # the Test SSL watches the signatures
            signer = wrap_signer(signer)
        key = native.new_key(der, signer)
        native.install(
            ctx,
            key,
            der,
            [c.public_bytes(serialization.Encoding.DER) for c in creds.chain],
            PKCS1_CLIENT_SIGALGS if pkcs1_only else None,
        )
    except native.Error as exc:
        raise BridgeUnavailable(str(exc)) from exc
    ctx.credentials = creds
    return ctx
