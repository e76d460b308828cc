"""Loading the native bridge and turning any ``cryptography`` private key into its signer.

The bridge (``cps_middleware._bridge``) must run on the very libssl/libcrypto
that the interpreter's ``_ssl`` module uses, otherwise the ``SSL_CTX*`` it
touches belongs to another library. That is checked once, at first use, and
reported as :class:`~cps_middleware.errors.BridgeUnavailable`.

The signer handed to the bridge receives the exact operation — digest name,
digest bytes, padding (``"pkcs1"``, ``"pss"`` or ``None`` for ECDSA), PSS salt
length and MGF1 digest — and calls ``key.sign(digest, padding,
Prehashed(hash))`` or ``key.sign(digest, ECDSA(Prehashed(hash)))``: a file
key, or a card-backed key of :mod:`cps_middleware.pkcs11.keys`, alike.
"""

from __future__ import annotations

import atexit
import os
import ssl
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as _padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from cps_middleware.errors import BridgeUnavailable, CpsError, SignatureFailed

__all__ = ["Signer", "bridge", "make_signer", "raise_signer_error"]

Signer = Callable[[str, bytes, "str | None", int, "str | None"], bytes]

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(),
    "sha224": hashes.SHA224(),
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}

_lock = threading.Lock()
_module: ModuleType | None = None


def _real(path: str) -> str:
    try:
        return os.path.realpath(path)
    except OSError:  # pragma: no cover - a vanished file: compare names then
        return path


def bridge() -> Any:
    """The native module, checked against the interpreter's ``_ssl``."""
    global _module
    if _module is not None:
        return _module
    with _lock:
        if _module is not None:
            return _module
        try:
            from cps_middleware import _bridge
        except ImportError as exc:
            raise BridgeUnavailable(
                "the native bridge cps_middleware._bridge is not built",
                hint="build it: python setup.py build_ext --inplace (needs libssl-dev)",
            ) from exc
        if _bridge.openssl_version_number() != ssl.OPENSSL_VERSION_NUMBER:
            raise BridgeUnavailable(
                f"the bridge runs with {_bridge.openssl_version()} but Python's ssl "
                f"module with {ssl.OPENSSL_VERSION}"
            )
        loaded = {_real(p) for p in _bridge.loaded_openssl()}
        libssl = {p for p in loaded if os.path.basename(p).startswith("libssl.so")}
        libcrypto = {p for p in loaded if os.path.basename(p).startswith("libcrypto.so")}
        if len(libssl) != 1 or len(libcrypto) != 1:
            raise BridgeUnavailable(
                "several OpenSSL libraries are loaded in this process: " + ", ".join(sorted(loaded))
            )
        atexit.register(_bridge.shutdown)
        _module = _bridge
        return _module


def _hash(name: str) -> hashes.HashAlgorithm:
    try:
        return _HASHES[name]
    except KeyError:  # pragma: no cover - the bridge only sends the names above
        raise SignatureFailed(f"unexpected digest {name!r} from the bridge") from None


def make_signer(key: object) -> Signer:
    """The bridge callback for *key* (an RSA or EC private key object)."""
    if isinstance(key, rsa.RSAPrivateKey):
        rsa_key = key

        def sign_rsa(
            digest_name: str, digest: bytes, padding: str | None, salt: int, mgf1: str | None
        ) -> bytes:
            algorithm = _hash(digest_name)
            pad: _padding.AsymmetricPadding
            if padding == "pss":
                pad = _padding.PSS(_padding.MGF1(_hash(mgf1 or digest_name)), salt)
            else:
                pad = _padding.PKCS1v15()
            return rsa_key.sign(digest, pad, Prehashed(algorithm))

        return sign_rsa
    if isinstance(key, ec.EllipticCurvePrivateKey):
        ec_key = key

        def sign_ec(
            digest_name: str, digest: bytes, padding: str | None, salt: int, mgf1: str | None
        ) -> bytes:
            return ec_key.sign(digest, ec.ECDSA(Prehashed(_hash(digest_name))))

        return sign_ec
    raise TypeError(
        f"expected an RSAPrivateKey or EllipticCurvePrivateKey, got {type(key).__name__}"
    )


def raise_signer_error() -> None:
    """Raise the exception of this thread's last failing signature, if any.

    A :class:`CpsError` (``CardRemoved``, ``PinError`` ...) or a
    ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``) is
    raised as it is; anything else becomes :class:`SignatureFailed` with the
    original as ``__cause__``.
    """
    module = _module
    if module is None:
        return
    error = module.take_error()
    if error is None:
        return
    if isinstance(error, CpsError) or not isinstance(error, Exception):
        raise error
    raise SignatureFailed(f"the key failed to sign: {error!r}") from error


def clear_signer_error() -> None:
    """Forget a stale signer error of this thread (before a new operation)."""
    module = _module
    if module is not None:
        module.take_error()
