"""Card-backed private keys that ``cryptography`` accepts wherever it takes a key.

:class:`TokenRSAPrivateKey` and :class:`TokenECPrivateKey` implement
``cryptography``'s ``RSAPrivateKey`` / ``EllipticCurvePrivateKey`` for signing:
``x509.CertificateSigningRequestBuilder().sign(key, SHA256())``, CMS/PKCS#7
and JWT libraries, and the TLS bridge (``key.sign(digest, padding,
Prehashed(hash))``) all work with them. The private part never leaves the card:
``private_numbers()``, ``private_bytes()`` and ``exchange()`` raise
:class:`~cps_middleware.errors.PrivateKeyExportRefused`; ``public_key()`` comes
from the certificate.

Mechanism choice follows what the token offers (a CPS3 has no PSS):

* PKCS#1 v1.5: ``CKM_<HASH>_RSA_PKCS`` on the data when offered and the data is
  not prehashed, else ``CKM_RSA_PKCS`` on a DigestInfo built here;
* PSS: ``CKM_<HASH>_RSA_PKCS_PSS`` on the data, else ``CKM_RSA_PKCS_PSS`` on the
  digest, with explicit hash, MGF1 hash and salt length (never a default);
* ECDSA: ``CKM_ECDSA`` on the digest (``CKM_ECDSA_<HASH>`` when only that is
  offered), the raw ``r || s`` re-encoded as DER.

What the token cannot do raises :class:`~cps_middleware.errors.MechanismUnsupported`
naming the mechanisms it has. ``decrypt()`` (PKCS#1 v1.5 or OAEP) works with the
authentication key when the card offers the mechanism. The card access itself goes through a
:class:`TokenSigner`; :func:`card_private_key` makes one over a
:class:`~cps_middleware.pkcs11.Token` key (whose calls hold the module's lock).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, Protocol, cast, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric import padding as _pad
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.utils import Buffer

from cps_middleware.errors import (
    CpsError,
    InvalidInput,
    MechanismUnsupported,
    Pkcs11Error,
    PrivateKeyExportRefused,
)
from cps_middleware.pkcs11._mechanisms import (
    Mechanism,
    Mgf,
    OaepParams,
    PssParams,
    mechanism_name,
)
from cps_middleware.pkcs11._token import KeyRef, Token

M = Mechanism

__all__ = [
    "TokenECPrivateKey",
    "TokenPrivateKey",
    "TokenRSAPrivateKey",
    "TokenSigner",
    "card_private_key",
    "digest_info",
    "token_private_key",
]


@runtime_checkable
class TokenSigner(Protocol):
    """One private key on a token, as the PKCS#11 layer exposes it for signing.

    ``mechanisms`` are the CKM_* values this key can be used with (the
    token's mechanism list, narrowed by CKA_ALLOWED_MECHANISMS when set).
    ``sign`` performs C_SignInit + C_Sign and raises the library's errors
    (PIN not entered, card removed ...). ``description`` names the key in errors.
    """

    @property
    def mechanisms(self) -> frozenset[int]: ...

    @property
    def description(self) -> str: ...

    def sign(self, mechanism: int, data: bytes, params: PssParams | None = None) -> bytes:
        """Sign ``data`` with ``mechanism`` (``CKM_...``) and, for PSS, ``params``."""
        ...


# utils.NoDigestInfo exists from cryptography 47 on.
_NO_DIGEST_INFO: type | None = getattr(utils, "NoDigestInfo", None)

# DER prefix of DigestInfo for each hash (RFC 8017 section 9.2, note 1).
_DIGEST_INFO_PREFIX: dict[str, bytes] = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha224": bytes.fromhex("302d300d06096086480165030402040500041c"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_HashEntry = tuple[Mechanism, Mgf, Mechanism, Mechanism, Mechanism]
# PKCS#11 values per cryptography hash name: (hash, MGF1, hash-and-sign PKCS#1 v1.5,
# hash-and-sign PSS, hash-and-sign ECDSA).
_BY_HASH: dict[str, _HashEntry] = {
    "sha1": (M.SHA_1, Mgf.MGF1_SHA1, M.SHA1_RSA_PKCS, M.SHA1_RSA_PKCS_PSS, M.ECDSA_SHA1),
    "sha224": (
        M.SHA224, Mgf.MGF1_SHA224, M.SHA224_RSA_PKCS, M.SHA224_RSA_PKCS_PSS, M.ECDSA_SHA224
    ),
    "sha256": (
        M.SHA256, Mgf.MGF1_SHA256, M.SHA256_RSA_PKCS, M.SHA256_RSA_PKCS_PSS, M.ECDSA_SHA256
    ),
    "sha384": (
        M.SHA384, Mgf.MGF1_SHA384, M.SHA384_RSA_PKCS, M.SHA384_RSA_PKCS_PSS, M.ECDSA_SHA384
    ),
    "sha512": (
        M.SHA512, Mgf.MGF1_SHA512, M.SHA512_RSA_PKCS, M.SHA512_RSA_PKCS_PSS, M.ECDSA_SHA512
    ),
}  # fmt: skip


def _hash_entry(
    algorithm: hashes.HashAlgorithm,
) -> tuple[Mechanism, Mgf, Mechanism, Mechanism, Mechanism]:
    entry = _BY_HASH.get(algorithm.name)
    if entry is None:
        raise InvalidInput(
            f"hash {algorithm.name} is not supported for card signatures",
            hint="use SHA-256, SHA-384, SHA-512 (or SHA-1 / SHA-224)",
        )
    return entry


def digest_info(algorithm: hashes.HashAlgorithm, digest: bytes) -> bytes:
    """The DER DigestInfo that PKCS#1 v1.5 signs (for CKM_RSA_PKCS)."""
    prefix = _DIGEST_INFO_PREFIX.get(algorithm.name)
    if prefix is None:
        raise InvalidInput(f"no PKCS#1 v1.5 DigestInfo for hash {algorithm.name}")
    if len(digest) != algorithm.digest_size:
        raise InvalidInput(
            f"a {algorithm.name} digest is {algorithm.digest_size} bytes, got {len(digest)}"
        )
    return prefix + digest


def _split_hash(
    data: Buffer, algorithm: Prehashed | hashes.HashAlgorithm
) -> tuple[hashes.HashAlgorithm, bytes | None, bytes]:
    """(hash, the data when not prehashed, the digest)."""
    if isinstance(algorithm, Prehashed):
        hash_alg: hashes.HashAlgorithm = algorithm._algorithm  # no public accessor
        if len(data) != hash_alg.digest_size:
            raise InvalidInput(
                f"a prehashed {hash_alg.name} digest is {hash_alg.digest_size} bytes, "
                f"got {len(data)}"
            )
        return hash_alg, None, bytes(data)
    if not isinstance(algorithm, hashes.HashAlgorithm):
        raise InvalidInput(f"expected a hash algorithm, got {type(algorithm).__name__}")
    h = hashes.Hash(algorithm)
    h.update(data)
    return algorithm, bytes(data), h.finalize()


def _refuse_export(what: str, description: str) -> NoReturn:
    raise PrivateKeyExportRefused(f"{what} of the card key {description} is not possible")


class _TokenKeyBase:
    """What RSA and EC card keys share: the certificate, the signer, refusals."""

    def __init__(self, signer: TokenSigner, certificate: x509.Certificate) -> None:
        self._signer = signer
        self._certificate = certificate

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def signer(self) -> TokenSigner:
        return self._signer

    @property
    def mechanisms(self) -> frozenset[int]:
        return self._signer.mechanisms

    def _need(
        self, wanted: Iterable[int], operation: str, function: str = "C_SignInit"
    ) -> NoReturn:
        raise MechanismUnsupported(
            f"{self._signer.description} cannot {operation} (needs "
            + " or ".join(mechanism_name(m) for m in wanted)
            + ")",
            available=[mechanism_name(m) for m in sorted(self._signer.mechanisms)],
            function=function,
        )

    def private_numbers(self) -> NoReturn:
        _refuse_export("private_numbers()", self._signer.description)

    def private_bytes(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse_export("private_bytes()", self._signer.description)

    def __copy__(self) -> Any:
        return self  # the card key is one object; copies would share it anyway

    def __deepcopy__(self, memo: dict[int, object]) -> Any:
        return self

    def __reduce__(self) -> NoReturn:
        _refuse_export("pickling", self._signer.description)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._signer.description}>"


class TokenRSAPrivateKey(_TokenKeyBase, rsa.RSAPrivateKey):
    """An RSA key on the card; signs with PKCS#1 v1.5 or PSS (when the card has PSS)."""

    def __init__(self, signer: TokenSigner, certificate: x509.Certificate) -> None:
        public = certificate.public_key()
        if not isinstance(public, rsa.RSAPublicKey):
            raise InvalidInput("the certificate of an RSA card key must hold an RSA key")
        super().__init__(signer, certificate)
        self._public = public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def decrypt(self, ciphertext: bytes, padding: _pad.AsymmetricPadding) -> bytes:
        """Decrypt on the card (PKCS#1 v1.5 or OAEP), when the key and the card allow it."""
        decrypt = getattr(self._signer, "decrypt", None)
        if decrypt is None:
            raise MechanismUnsupported(
                f"{self._signer.description} is used for signing only here",
                hint="open the key through CpsCard.private_key() to decrypt with it",
            )
        offered: frozenset[int] = getattr(
            self._signer, "decrypt_mechanisms", self._signer.mechanisms
        )
        if isinstance(padding, _pad.PKCS1v15):
            if M.RSA_PKCS not in offered:
                self._need([M.RSA_PKCS], "decrypt with PKCS#1 v1.5", "C_DecryptInit")
            result: bytes = decrypt(M.RSA_PKCS, bytes(ciphertext), None)
            return result
        if isinstance(padding, _pad.OAEP):
            mgf = getattr(padding, "_mgf", None)
            if not isinstance(mgf, _pad.MGF1):
                raise InvalidInput("RSA-OAEP needs MGF1")
            hash_alg: hashes.HashAlgorithm = padding._algorithm  # no public accessor
            params = OaepParams(
                _hash_entry(hash_alg)[0],
                _hash_entry(mgf._algorithm)[1],
                padding._label or None,
            )
            if M.RSA_PKCS_OAEP not in offered:
                self._need([M.RSA_PKCS_OAEP], "decrypt with RSA-OAEP", "C_DecryptInit")
            result = decrypt(M.RSA_PKCS_OAEP, bytes(ciphertext), params)
            return result
        raise InvalidInput(
            f"padding {getattr(padding, 'name', type(padding).__name__)} cannot decrypt",
            hint="use PKCS1v15() or OAEP(...)",
        )

    def sign(
        self,
        data: bytes,
        padding: _pad.AsymmetricPadding,
        algorithm: Prehashed | hashes.HashAlgorithm | utils.NoDigestInfo,
    ) -> bytes:
        if _NO_DIGEST_INFO is not None and isinstance(algorithm, _NO_DIGEST_INFO):
            # The caller built what is signed (e.g. a DigestInfo of its own).
            if not isinstance(padding, _pad.PKCS1v15):
                raise InvalidInput("NoDigestInfo goes with PKCS1v15 only")
            if M.RSA_PKCS not in self._signer.mechanisms:
                self._need([M.RSA_PKCS], "sign raw PKCS#1 v1.5 data")
            return self._signer.sign(M.RSA_PKCS, bytes(data))
        hash_alg, message, digest = _split_hash(
            data, cast("Prehashed | hashes.HashAlgorithm", algorithm)
        )
        _hash, _mgf, with_pkcs1, with_pss, _ecdsa = _hash_entry(hash_alg)
        if isinstance(padding, _pad.PKCS1v15):
            # Hash-and-sign on the card when the module offers it for this key,
            # else (or when it refuses: CPS3 authentication keys through the ANS
            # module and OpenSC) hash here and sign the DigestInfo with CKM_RSA_PKCS.
            return self._first_accepted(
                [
                    *([(with_pkcs1, message, None)] if message is not None else []),
                    (M.RSA_PKCS, digest_info(hash_alg, digest), None),
                ],
                f"sign with PKCS#1 v1.5 and {hash_alg.name}",
            )
        if isinstance(padding, _pad.PSS):
            params = self._pss_params(padding, hash_alg)
            return self._first_accepted(
                [
                    *([(with_pss, message, params)] if message is not None else []),
                    (M.RSA_PKCS_PSS, digest, params),
                ],
                f"sign with RSA-PSS and {hash_alg.name}",
            )
        raise InvalidInput(
            f"padding {getattr(padding, 'name', type(padding).__name__)} cannot sign",
            hint="use PKCS1v15() or PSS(...)",
        )

    def _first_accepted(
        self, attempts: list[tuple[int, bytes, PssParams | None]], operation: str
    ) -> bytes:
        """Sign with the first mechanism of ``attempts`` the key offers and the module
        accepts; a refusal (remembered by the token for this key) moves on to the
        next one."""
        refused: MechanismUnsupported | None = None
        for mechanism, data, params in attempts:
            if mechanism not in self._signer.mechanisms:
                continue
            try:
                return self._signer.sign(mechanism, data, params)
            except MechanismUnsupported as exc:
                if exc.code is None:
                    raise
                refused = exc
        if refused is not None:
            raise refused
        self._need([m for m, _, _ in attempts], operation)

    def _pss_params(self, pss: _pad.PSS, hash_alg: hashes.HashAlgorithm) -> PssParams:
        mgf = pss.mgf
        if not isinstance(mgf, _pad.MGF1):
            raise InvalidInput("RSA-PSS needs MGF1")
        mgf_hash: hashes.HashAlgorithm = mgf._algorithm  # no public accessor
        mgf_value = _hash_entry(mgf_hash)[1]
        hash_value = _hash_entry(hash_alg)[0]
        salt = pss._salt_length  # no public accessor
        em_len = math.ceil((self.key_size - 1) / 8)
        max_salt = em_len - hash_alg.digest_size - 2
        if isinstance(salt, _pad._MaxLength):
            salt_len = max_salt
        elif isinstance(salt, _pad._DigestLength):
            salt_len = hash_alg.digest_size
        elif isinstance(salt, int) and not isinstance(salt, bool):
            salt_len = salt
        else:
            raise InvalidInput(
                "RSA-PSS signing needs an explicit salt length",
                hint="use PSS.DIGEST_LENGTH, PSS.MAX_LENGTH or a number of bytes",
            )
        if not 0 <= salt_len <= max_salt:
            raise InvalidInput(f"PSS salt length {salt_len} is out of range 0..{max_salt}")
        return PssParams(hash_value, mgf_value, salt_len)


class TokenECPrivateKey(_TokenKeyBase, ec.EllipticCurvePrivateKey):
    """An EC key on the card; signs ECDSA with a DER-encoded signature."""

    def __init__(self, signer: TokenSigner, certificate: x509.Certificate) -> None:
        public = certificate.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise InvalidInput("the certificate of an EC card key must hold an EC key")
        super().__init__(signer, certificate)
        self._public = public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise MechanismUnsupported(
            f"key agreement with the card key {self._signer.description} is not offered here",
            hint="cps-middleware uses card keys for signing only",
        )

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise InvalidInput("EC card keys sign with ECDSA only")
        hash_alg, message, digest = _split_hash(data, signature_algorithm.algorithm)
        offered = self._signer.mechanisms
        if M.ECDSA in offered:
            raw = self._signer.sign(M.ECDSA, digest)
        else:
            with_ecdsa = _hash_entry(hash_alg)[4]
            if message is None or with_ecdsa not in offered:
                self._need(
                    [M.ECDSA] if message is None else [M.ECDSA, with_ecdsa],
                    f"sign with ECDSA and {hash_alg.name}",
                )
            raw = self._signer.sign(with_ecdsa, message)
        if len(raw) % 2:
            raise Pkcs11Error(
                f"the card returned a malformed ECDSA signature ({len(raw)} bytes)",
                function="C_Sign",
            )
        half = len(raw) // 2
        r = int.from_bytes(raw[:half], "big")
        s = int.from_bytes(raw[half:], "big")
        return utils.encode_dss_signature(r, s)


TokenPrivateKey = TokenRSAPrivateKey | TokenECPrivateKey


def token_private_key(signer: TokenSigner, certificate: x509.Certificate) -> TokenPrivateKey:
    """The RSA or EC card key object matching ``certificate``'s public key."""
    public = certificate.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        return TokenRSAPrivateKey(signer, certificate)
    if isinstance(public, ec.EllipticCurvePublicKey):
        return TokenECPrivateKey(signer, certificate)
    raise InvalidInput(f"card keys are RSA or EC, not {type(public).__name__}")


KeyResolver = Callable[[], KeyRef]


#: what a module answers when one key refuses a mechanism the token lists
class _TokenKeySigner:
    """A :class:`TokenSigner` over a :class:`~cps_middleware.pkcs11.Token` key.

    The key may be given late, as a resolver called at the first signature:
    many tokens (SoftHSM, OpenSC) show private keys only after login, while
    the key object is handed out before.
    """

    def __init__(self, token: Token, key: KeyRef | KeyResolver, name: str) -> None:
        self._token = token
        self._key = key if isinstance(key, KeyRef) else None
        self._resolver = None if isinstance(key, KeyRef) else key
        self._name = name
        self._lock = threading.Lock()

    @property
    def mechanisms(self) -> frozenset[int]:
        """What this key signs with, as the module tells (see Token.key_mechanisms);
        the token's whole list while the key is not found yet (before login)."""
        with self._lock:
            key = self._key
        if key is None:
            try:
                key = self._ref()
            except CpsError:
                return self._token.mechanisms()
        return self._token.key_mechanisms(key, "sign")

    @property
    def decrypt_mechanisms(self) -> frozenset[int]:
        return self._token.key_mechanisms(self._ref(), "decrypt")

    @property
    def description(self) -> str:
        return f"{self._name!r} on card {self._token.label!r}"

    def _ref(self) -> KeyRef:
        with self._lock:
            if self._key is None:
                assert self._resolver is not None
                key = self._resolver()
                if key.object_class != "private":
                    raise InvalidInput(f"{key.label!r} is a {key.object_class} key")
                self._key = key
            return self._key

    def sign(self, mechanism: int, data: bytes, params: PssParams | None = None) -> bytes:
        return self._token.sign(self._ref(), mechanism, data, pss_params=params)

    def decrypt(self, mechanism: int, data: bytes, params: OaepParams | None = None) -> bytes:
        return self._token.decrypt(self._ref(), mechanism, data, oaep_params=params)


def card_private_key(
    token: Token,
    key: KeyRef | KeyResolver,
    certificate: x509.Certificate,
    *,
    name: str | None = None,
) -> TokenPrivateKey:
    """The ``cryptography`` key object for ``key`` on ``token``, whose certificate is given.

    ``key`` is a :class:`~cps_middleware.pkcs11.KeyRef`, or a callable returning
    it at the first signature (for tokens that hide private keys until login).
    ``name`` names the key in errors (default: its label). Signing needs the
    holder logged in on ``token`` (:class:`~cps_middleware.errors.NotLoggedIn`).
    """
    if isinstance(key, KeyRef):
        if key.object_class != "private":
            raise InvalidInput(f"{key.label!r} is a {key.object_class} key, not a private key")
        name = name or key.label
    return token_private_key(_TokenKeySigner(token, key, name or "private key"), certificate)
