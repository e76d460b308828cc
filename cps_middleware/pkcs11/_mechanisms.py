"""Mechanisms and their parameters, always explicit.

python-pkcs11 has defaults that are wrong for a CPS card (RSA signing defaults
to SHA512-RSA-PKCS, PSS to SHA-1 with a 20-byte salt): this package never uses
them. A PSS or OAEP mechanism needs its :class:`PssParams` / :class:`OaepParams`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import pkcs11 as _p11

from cps_middleware.errors import InvalidInput, MechanismUnsupported

__all__ = ["Mechanism", "Mgf", "OaepParams", "PssParams", "mechanism_name"]


class Mechanism(enum.IntEnum):
    """The CKM_* values a CPS application uses (any other int is accepted too)."""

    RSA_PKCS = 0x0001
    RSA_X_509 = 0x0003
    SHA1_RSA_PKCS = 0x0006
    RSA_PKCS_OAEP = 0x0009
    RSA_PKCS_PSS = 0x000D
    SHA1_RSA_PKCS_PSS = 0x000E
    SHA256_RSA_PKCS = 0x0040
    SHA384_RSA_PKCS = 0x0041
    SHA512_RSA_PKCS = 0x0042
    SHA256_RSA_PKCS_PSS = 0x0043
    SHA384_RSA_PKCS_PSS = 0x0044
    SHA512_RSA_PKCS_PSS = 0x0045
    SHA224_RSA_PKCS = 0x0046
    SHA224_RSA_PKCS_PSS = 0x0047
    SHA_1 = 0x0220
    SHA256 = 0x0250
    SHA224 = 0x0255
    SHA384 = 0x0260
    SHA512 = 0x0270
    ECDSA = 0x1041
    ECDSA_SHA1 = 0x1042
    ECDSA_SHA224 = 0x1043
    ECDSA_SHA256 = 0x1044
    ECDSA_SHA384 = 0x1045
    ECDSA_SHA512 = 0x1046


class Mgf(enum.IntEnum):
    """CKG_MGF1_* mask generation functions."""

    MGF1_SHA1 = 0x1
    MGF1_SHA256 = 0x2
    MGF1_SHA384 = 0x3
    MGF1_SHA512 = 0x4
    MGF1_SHA224 = 0x5


PSS_MECHANISMS = frozenset(
    {
        Mechanism.RSA_PKCS_PSS,
        Mechanism.SHA1_RSA_PKCS_PSS,
        Mechanism.SHA224_RSA_PKCS_PSS,
        Mechanism.SHA256_RSA_PKCS_PSS,
        Mechanism.SHA384_RSA_PKCS_PSS,
        Mechanism.SHA512_RSA_PKCS_PSS,
    }
)
_HASH_MGF = {
    Mechanism.SHA_1: Mgf.MGF1_SHA1,
    Mechanism.SHA224: Mgf.MGF1_SHA224,
    Mechanism.SHA256: Mgf.MGF1_SHA256,
    Mechanism.SHA384: Mgf.MGF1_SHA384,
    Mechanism.SHA512: Mgf.MGF1_SHA512,
}
_HASH_LEN = {
    Mechanism.SHA_1: 20,
    Mechanism.SHA224: 28,
    Mechanism.SHA256: 32,
    Mechanism.SHA384: 48,
    Mechanism.SHA512: 64,
}


@dataclass(frozen=True)
class PssParams:
    """CK_RSA_PKCS_PSS_PARAMS: the hash, the MGF1 hash and the salt length in bytes."""

    hash: Mechanism
    mgf: Mgf
    salt_length: int

    @classmethod
    def for_hash(cls, hash: Mechanism, salt_length: int | None = None) -> PssParams:
        """MGF1 with the same hash; salt as long as the digest unless given (TLS 1.3's choice)."""
        hash = Mechanism(hash)
        if hash not in _HASH_MGF:
            raise InvalidInput(f"{hash.name} is not a hash mechanism")
        return cls(hash, _HASH_MGF[hash], _HASH_LEN[hash] if salt_length is None else salt_length)

    def _as_p11(self) -> tuple[Any, Any, int]:
        return (_p11.Mechanism(int(self.hash)), _p11.MGF(int(self.mgf)), int(self.salt_length))


@dataclass(frozen=True)
class OaepParams:
    """CK_RSA_PKCS_OAEP_PARAMS: the hash, the MGF1 hash and the optional label."""

    hash: Mechanism
    mgf: Mgf
    label: bytes | None = None

    @classmethod
    def for_hash(cls, hash: Mechanism, label: bytes | None = None) -> OaepParams:
        hash = Mechanism(hash)
        if hash not in _HASH_MGF:
            raise InvalidInput(f"{hash.name} is not a hash mechanism")
        return cls(hash, _HASH_MGF[hash], label)

    def _as_p11(self) -> tuple[Any, Any, bytes | None]:
        return (_p11.Mechanism(int(self.hash)), _p11.MGF(int(self.mgf)), self.label)


def mechanism_name(code: int) -> str:
    """``CKM_SHA256_RSA_PKCS`` for 0x40; vendor or unknown values in hex."""
    for enum_cls in (Mechanism, _p11.Mechanism):
        try:
            return "CKM_" + enum_cls(code).name
        except ValueError:
            continue
    if code >= 0x80000000:
        return f"CKM_VENDOR_DEFINED+0x{code - 0x80000000:X}"
    return f"CKM_0x{code:X}"


def p11_mechanism(code: int) -> Any:
    """python-pkcs11's Mechanism for ``code`` (it accepts only its enum)."""
    try:
        return _p11.Mechanism(int(code))
    except ValueError:
        raise MechanismUnsupported(
            f"{mechanism_name(code)} cannot be passed through python-pkcs11"
        ) from None


def check_params(
    mechanism: int, pss_params: PssParams | None, oaep_params: OaepParams | None = None
) -> Any:
    """The python-pkcs11 parameter for ``mechanism``, refusing implicit defaults."""
    if mechanism in PSS_MECHANISMS:
        if pss_params is None:
            raise InvalidInput(
                f"{mechanism_name(mechanism)} needs explicit pss_params "
                "(e.g. PssParams.for_hash(Mechanism.SHA256))"
            )
        if oaep_params is not None:
            raise InvalidInput("oaep_params given for a PSS mechanism")
        return pss_params._as_p11()
    if mechanism == Mechanism.RSA_PKCS_OAEP:
        if oaep_params is None:
            raise InvalidInput("CKM_RSA_PKCS_OAEP needs explicit oaep_params")
        if pss_params is not None:
            raise InvalidInput("pss_params given for an OAEP mechanism")
        return oaep_params._as_p11()
    if pss_params is not None or oaep_params is not None:
        raise InvalidInput(f"{mechanism_name(mechanism)} takes no parameters")
    return None
