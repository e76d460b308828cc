"""What each CPS card generation looks like through its PKCS#11 middleware, as data.

One :class:`CardProfile` per generation (``CPS3``, ``CPS4``): labels, PIN and
PUK rules, the token information the ANS module reports, and the mechanisms it
offers per key. ``pkcs11/`` reads it to recognise a CPS token; ``testing/``
makes the test token and the virtual cards behave alike. The CPS3 values were
read from the ANS Cryptolib CPS 5.2.2 module driving the virtual CPS3
(``tests/test_conformance.py`` pins them against the module when it is there).
Pure data, no I/O (layer 1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

__all__ = ["CPS3", "CPS4", "PROFILES", "CardProfile", "profile_for_model"]

# CK_TOKEN_INFO flags: CKF_RNG | CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED |
# CKF_TOKEN_INITIALIZED (what the ANS module reports for a CPS3 with full counters).
_ANS_TOKEN_FLAGS: Final = 0x1 | 0x4 | 0x8 | 0x400


@dataclass(frozen=True)
class CardProfile:
    """The facts of one CPS generation an application can observe through PKCS#11."""

    generation: str
    #: CK_TOKEN_INFO.model values the middlewares show for it
    models: tuple[str, ...]
    manufacturer: str
    token_label: str
    auth_key_label: str
    sign_key_label: str
    pin_tries: int
    puk_tries: int
    pin_min_len: int
    pin_max_len: int
    puk_len: int
    #: CK_TOKEN_INFO flags with full counters (the counter flags come on top)
    token_flags: int
    hardware_version: tuple[int, int]
    firmware_version: tuple[int, int]
    #: the slot's mechanism list through the ANS module (CKM_* names)
    mechanisms: tuple[str, ...]
    #: what each key accepts through the ANS module (the rest is refused with
    #: CKR_KEY_TYPE_INCONSISTENT); CKM_RSA_PKCS on the signature key takes a
    #: DigestInfo of one of ``sign_key_hashes`` only
    auth_key_mechanisms: tuple[str, ...]
    sign_key_mechanisms: tuple[str, ...]
    sign_key_hashes: tuple[str, ...]
    #: what the CPS test token offers for this generation
    test_token_mechanisms: tuple[str, ...]

    @property
    def model(self) -> str:
        return self.models[0]


CPS3: Final = CardProfile(
    generation="CPS3",
    models=("IAS ECC", "IAS-ECC"),
    manufacturer="ANS",
    token_label="CPS",
    auth_key_label="CPS_PRIV_AUT",
    sign_key_label="CPS_PRIV_SIG",
    pin_tries=3,
    puk_tries=10,
    pin_min_len=4,
    pin_max_len=8,
    puk_len=8,
    token_flags=_ANS_TOKEN_FLAGS,
    hardware_version=(0, 0),
    firmware_version=(0, 0),
    mechanisms=(
        "CKM_SHA_1",
        "CKM_RSA_PKCS",
        "CKM_SHA256_RSA_PKCS",
        "CKM_RSA_X_509",
        "CKM_SHA1_RSA_PKCS",
        "CKM_SHA256",
    ),
    auth_key_mechanisms=("CKM_RSA_PKCS", "CKM_RSA_X_509"),
    sign_key_mechanisms=("CKM_RSA_PKCS", "CKM_SHA1_RSA_PKCS", "CKM_SHA256_RSA_PKCS"),
    sign_key_hashes=("sha1", "sha256"),
    # No PSS (no TLS 1.3 client authentication with a CPS3).
    test_token_mechanisms=(
        "CKM_RSA_PKCS",
        "CKM_RSA_X_509",
        "CKM_SHA1_RSA_PKCS",
        "CKM_SHA256_RSA_PKCS",
    ),
)

# What a CPS4 adds to a CPS3: RSA-PSS (TLS 1.3 client authentication).
_PSS = ("CKM_RSA_PKCS_PSS", "CKM_SHA1_RSA_PKCS_PSS", "CKM_SHA256_RSA_PKCS_PSS")
CPS4: Final = replace(
    CPS3,
    generation="CPS4",
    models=("ChipDoc",),
    mechanisms=(*CPS3.mechanisms, *_PSS),
    auth_key_mechanisms=(*CPS3.auth_key_mechanisms, "CKM_RSA_PKCS_PSS"),
    test_token_mechanisms=(*CPS3.test_token_mechanisms, *_PSS),
)

PROFILES: Final = {p.generation: p for p in (CPS3, CPS4)}


def profile_for_model(model: str) -> CardProfile | None:
    """The profile whose middleware model name is ``model`` (None: not a CPS model)."""
    for p in PROFILES.values():
        if model in p.models:
            return p
    return None
