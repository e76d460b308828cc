"""PKCS#11 return codes (CKR_*): one table giving each code its name, error class and hint.

python-pkcs11 turns return values into its own exception classes and loses the
number; :func:`code_of` gets it back (a second table, class -> code), and
:func:`error_for` builds the :class:`~cps_middleware.errors.CpsError` to raise.
Every code of PKCS#11 2.40 / 3.0 / 3.1 is in ``CKR``, plus the two vendor codes
of the ANS Cryptolib CPS module.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

import pkcs11.exceptions as _px

from cps_middleware.errors import (
    CardRemoved,
    CpsError,
    MechanismUnsupported,
    NotLoggedIn,
    PinEntryCancelled,
    PinError,
    PinFormatError,
    PinIncorrect,
    PinLocked,
    Pkcs11Error,
    PrivateKeyExportRefused,
    TokenUnusable,
)

__all__ = ["CKR", "CKR_VENDOR_DEFINED", "CkrInfo", "code_name", "code_of", "error_for"]

CKR_VENDOR_DEFINED: Final = 0x80000000


class CkrInfo(NamedTuple):
    name: str
    error: type[CpsError]
    hint: str


_E = Pkcs11Error
_BUG = "a programming error in the caller or in cps-middleware; please report it"
_CARD = "the card or the reader failed: take the card out, put it back and try again"
_BUSY = "the card is busy with another operation: try again"

CKR: Final[dict[int, CkrInfo]] = {
    0x000: CkrInfo("CKR_OK", _E, "no error"),
    0x001: CkrInfo("CKR_CANCEL", _E, "the operation was cancelled"),
    0x002: CkrInfo("CKR_HOST_MEMORY", _E, "the computer is out of memory"),
    0x003: CkrInfo("CKR_SLOT_ID_INVALID", CardRemoved, "the reader is gone: plug it back in"),
    0x005: CkrInfo("CKR_GENERAL_ERROR", _E, "the middleware failed: restart the application"),
    0x006: CkrInfo("CKR_FUNCTION_FAILED", _E, _CARD),
    0x007: CkrInfo("CKR_ARGUMENTS_BAD", _E, _BUG),
    0x008: CkrInfo("CKR_NO_EVENT", _E, "no slot event happened"),
    0x009: CkrInfo("CKR_NEED_TO_CREATE_THREADS", _E, "the middleware needs OS threads"),
    0x00A: CkrInfo("CKR_CANT_LOCK", _E, "the middleware cannot lock as asked"),
    0x010: CkrInfo("CKR_ATTRIBUTE_READ_ONLY", _E, "this attribute of the card object is read-only"),
    0x011: CkrInfo(
        "CKR_ATTRIBUTE_SENSITIVE", PrivateKeyExportRefused, "the value is secret on the card"
    ),
    0x012: CkrInfo("CKR_ATTRIBUTE_TYPE_INVALID", _E, "this object has no such attribute"),
    0x013: CkrInfo("CKR_ATTRIBUTE_VALUE_INVALID", _E, _BUG),
    0x01B: CkrInfo("CKR_ACTION_PROHIBITED", _E, "the card's policy forbids this action"),
    0x020: CkrInfo("CKR_DATA_INVALID", _E, "the card refused the data (wrong format)"),
    0x021: CkrInfo(
        "CKR_DATA_LEN_RANGE", _E, "the data has the wrong length for this mechanism and key"
    ),
    0x030: CkrInfo("CKR_DEVICE_ERROR", _E, _CARD),
    0x031: CkrInfo("CKR_DEVICE_MEMORY", _E, "the card's memory is full"),
    0x032: CkrInfo("CKR_DEVICE_REMOVED", CardRemoved, CardRemoved.default_hint),
    0x040: CkrInfo("CKR_ENCRYPTED_DATA_INVALID", _E, "the encrypted data is not valid"),
    0x041: CkrInfo("CKR_ENCRYPTED_DATA_LEN_RANGE", _E, "the encrypted data has the wrong length"),
    0x042: CkrInfo("CKR_AEAD_DECRYPT_FAILED", _E, "authenticated decryption failed"),
    0x050: CkrInfo("CKR_FUNCTION_CANCELED", PinEntryCancelled, PinEntryCancelled.default_hint),
    0x051: CkrInfo("CKR_FUNCTION_NOT_PARALLEL", _E, "no parallel operation on this token"),
    0x054: CkrInfo(
        "CKR_FUNCTION_NOT_SUPPORTED", _E, "the middleware does not implement this function"
    ),
    0x060: CkrInfo("CKR_KEY_HANDLE_INVALID", _E, "the key is gone: open the card again"),
    0x062: CkrInfo("CKR_KEY_SIZE_RANGE", _E, "the key size is not supported"),
    0x063: CkrInfo(
        "CKR_KEY_TYPE_INCONSISTENT", _E, "this key type cannot be used with this mechanism"
    ),
    0x064: CkrInfo("CKR_KEY_NOT_NEEDED", _E, _BUG),
    0x065: CkrInfo("CKR_KEY_CHANGED", _E, "the key changed: open the card again"),
    0x066: CkrInfo("CKR_KEY_NEEDED", _E, _BUG),
    0x067: CkrInfo("CKR_KEY_INDIGESTIBLE", _E, "this key cannot be digested"),
    0x068: CkrInfo(
        "CKR_KEY_FUNCTION_NOT_PERMITTED", _E, "this key may not be used for this operation"
    ),
    0x069: CkrInfo("CKR_KEY_NOT_WRAPPABLE", _E, "this key cannot be wrapped"),
    0x06A: CkrInfo(
        "CKR_KEY_UNEXTRACTABLE", PrivateKeyExportRefused, PrivateKeyExportRefused.default_hint
    ),
    0x070: CkrInfo(
        "CKR_MECHANISM_INVALID", MechanismUnsupported, MechanismUnsupported.default_hint
    ),
    0x071: CkrInfo("CKR_MECHANISM_PARAM_INVALID", _E, "the mechanism parameters were refused"),
    0x082: CkrInfo("CKR_OBJECT_HANDLE_INVALID", _E, "the object is gone: open the card again"),
    0x090: CkrInfo("CKR_OPERATION_ACTIVE", _E, _BUSY),
    0x091: CkrInfo("CKR_OPERATION_NOT_INITIALIZED", _E, _BUG),
    0x0A0: CkrInfo("CKR_PIN_INCORRECT", PinIncorrect, "the PIN was wrong"),
    0x0A1: CkrInfo("CKR_PIN_INVALID", PinFormatError, "the card refused the PIN's characters"),
    0x0A2: CkrInfo("CKR_PIN_LEN_RANGE", PinFormatError, "the card refused the PIN's length"),
    0x0A3: CkrInfo("CKR_PIN_EXPIRED", PinError, "the PIN has expired: change it"),
    0x0A4: CkrInfo("CKR_PIN_LOCKED", PinLocked, PinLocked.default_hint),
    0x0B0: CkrInfo(
        "CKR_SESSION_CLOSED", CardRemoved, "the session was closed: open the card again"
    ),
    0x0B1: CkrInfo("CKR_SESSION_COUNT", _E, "too many sessions are open on the card"),
    0x0B3: CkrInfo(
        "CKR_SESSION_HANDLE_INVALID", CardRemoved, "the session is gone: open the card again"
    ),
    0x0B4: CkrInfo("CKR_SESSION_PARALLEL_NOT_SUPPORTED", _E, _BUG),
    0x0B5: CkrInfo("CKR_SESSION_READ_ONLY", _E, "the session is read-only"),
    0x0B6: CkrInfo("CKR_SESSION_EXISTS", _E, "close the sessions open on this card first"),
    0x0B7: CkrInfo(
        "CKR_SESSION_READ_ONLY_EXISTS",
        _E,
        "a read-only session is open on the card (another application?): close it first",
    ),
    0x0B8: CkrInfo("CKR_SESSION_READ_WRITE_SO_EXISTS", _E, "an SO session is open on the card"),
    0x0C0: CkrInfo("CKR_SIGNATURE_INVALID", _E, "the signature does not verify"),
    0x0C1: CkrInfo("CKR_SIGNATURE_LEN_RANGE", _E, "the signature has the wrong length"),
    0x0D0: CkrInfo("CKR_TEMPLATE_INCOMPLETE", _E, _BUG),
    0x0D1: CkrInfo("CKR_TEMPLATE_INCONSISTENT", _E, _BUG),
    0x0E0: CkrInfo("CKR_TOKEN_NOT_PRESENT", CardRemoved, "insert the CPS card in the reader"),
    0x0E1: CkrInfo(
        "CKR_TOKEN_NOT_RECOGNIZED",
        TokenUnusable,
        "the middleware does not recognise this card (a CPS4 needs Cryptolib CPS >= 5.2)",
    ),
    0x0E2: CkrInfo("CKR_TOKEN_WRITE_PROTECTED", _E, "the card is write-protected"),
    0x0F0: CkrInfo("CKR_UNWRAPPING_KEY_HANDLE_INVALID", _E, _BUG),
    0x0F1: CkrInfo("CKR_UNWRAPPING_KEY_SIZE_RANGE", _E, "the unwrapping key has the wrong size"),
    0x0F2: CkrInfo("CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT", _E, _BUG),
    0x100: CkrInfo("CKR_USER_ALREADY_LOGGED_IN", _E, "the card is already logged in"),
    0x101: CkrInfo("CKR_USER_NOT_LOGGED_IN", NotLoggedIn, NotLoggedIn.default_hint),
    0x102: CkrInfo("CKR_USER_PIN_NOT_INITIALIZED", TokenUnusable, "the card has no holder PIN set"),
    0x103: CkrInfo("CKR_USER_TYPE_INVALID", _E, _BUG),
    0x104: CkrInfo(
        "CKR_USER_ANOTHER_ALREADY_LOGGED_IN",
        _E,
        "another user (holder or unblocking code) is logged in: log out first",
    ),
    0x105: CkrInfo("CKR_USER_TOO_MANY_TYPES", _E, "too many users logged in at once"),
    0x110: CkrInfo("CKR_WRAPPED_KEY_INVALID", _E, "the wrapped key is not valid"),
    0x112: CkrInfo("CKR_WRAPPED_KEY_LEN_RANGE", _E, "the wrapped key has the wrong length"),
    0x113: CkrInfo("CKR_WRAPPING_KEY_HANDLE_INVALID", _E, _BUG),
    0x114: CkrInfo("CKR_WRAPPING_KEY_SIZE_RANGE", _E, "the wrapping key has the wrong size"),
    0x115: CkrInfo("CKR_WRAPPING_KEY_TYPE_INCONSISTENT", _E, _BUG),
    0x120: CkrInfo("CKR_RANDOM_SEED_NOT_SUPPORTED", _E, "the card cannot be seeded"),
    0x121: CkrInfo("CKR_RANDOM_NO_RNG", _E, "the card has no random generator"),
    0x130: CkrInfo("CKR_DOMAIN_PARAMS_INVALID", _E, "the domain parameters are not valid"),
    0x140: CkrInfo("CKR_CURVE_NOT_SUPPORTED", MechanismUnsupported, "the card lacks this curve"),
    0x150: CkrInfo("CKR_BUFFER_TOO_SMALL", _E, _BUG),
    0x160: CkrInfo("CKR_SAVED_STATE_INVALID", _E, "the saved operation state is not valid"),
    0x170: CkrInfo("CKR_INFORMATION_SENSITIVE", _E, "the information is secret"),
    0x180: CkrInfo("CKR_STATE_UNSAVEABLE", _E, "the operation state cannot be saved"),
    0x190: CkrInfo("CKR_CRYPTOKI_NOT_INITIALIZED", _E, "the middleware is not initialised"),
    0x191: CkrInfo("CKR_CRYPTOKI_ALREADY_INITIALIZED", _E, "the middleware is already initialised"),
    0x1A0: CkrInfo("CKR_MUTEX_BAD", _E, _BUG),
    0x1A1: CkrInfo("CKR_MUTEX_NOT_LOCKED", _E, _BUG),
    0x1B0: CkrInfo("CKR_NEW_PIN_MODE", _E, "the token asks for a new PIN"),
    0x1B1: CkrInfo("CKR_NEXT_OTP", _E, "the token asks for the next one-time password"),
    0x1B5: CkrInfo("CKR_EXCEEDED_MAX_ITERATIONS", _E, "too many iterations"),
    0x1B6: CkrInfo("CKR_FIPS_SELF_TEST_FAILED", TokenUnusable, "the module's self-test failed"),
    0x1B7: CkrInfo("CKR_LIBRARY_LOAD_FAILED", _E, "the middleware could not load a library"),
    0x1B8: CkrInfo("CKR_PIN_TOO_WEAK", PinFormatError, "choose a less obvious PIN"),
    0x1B9: CkrInfo("CKR_PUBLIC_KEY_INVALID", _E, "the public key is not valid"),
    0x200: CkrInfo("CKR_FUNCTION_REJECTED", _E, "the card or the user refused the operation"),
    0x201: CkrInfo("CKR_TOKEN_RESOURCE_EXCEEDED", _E, "the card ran out of resources"),
    0x202: CkrInfo("CKR_OPERATION_CANCEL_FAILED", _E, "the operation could not be cancelled"),
    0x203: CkrInfo("CKR_KEY_EXHAUSTED", _E, "the key may not be used any more"),
    CKR_VENDOR_DEFINED: CkrInfo("CKR_VENDOR_DEFINED", _E, "a middleware-specific error"),
    # ANS Cryptolib CPS vendor codes (DOMAIN.md).
    CKR_VENDOR_DEFINED + 1: CkrInfo(
        "CKR_VENDOR_DEFINED+1 (ANS: card unusable)",
        TokenUnusable,
        "the card is recognised but unusable after an interrupted update: contact ANS card "
        "support, monserviceclient.cartes@asipsante.fr, 0 825 852 000",
    ),
    CKR_VENDOR_DEFINED + 2: CkrInfo(
        "CKR_VENDOR_DEFINED+2 (ANS: re-initialisation needed)",
        TokenUnusable,
        "the CPS middleware must be re-initialised: close every application using the card "
        "and start again",
    ),
}

_BY_NAME: Final = {info.name.split(" ", 1)[0]: code for code, info in CKR.items()}

# python-pkcs11 exception class -> return code (it keeps no number).
_PX_CODES: Final[dict[type[BaseException], int]] = {
    getattr(_px, cls): _BY_NAME[name]
    for cls, name in {
        "AnotherUserAlreadyLoggedIn": "CKR_USER_ANOTHER_ALREADY_LOGGED_IN",
        "AttributeTypeInvalid": "CKR_ATTRIBUTE_TYPE_INVALID",
        "AttributeValueInvalid": "CKR_ATTRIBUTE_VALUE_INVALID",
        "AttributeReadOnly": "CKR_ATTRIBUTE_READ_ONLY",
        "AttributeSensitive": "CKR_ATTRIBUTE_SENSITIVE",
        "ArgumentsBad": "CKR_ARGUMENTS_BAD",
        "DataInvalid": "CKR_DATA_INVALID",
        "DataLenRange": "CKR_DATA_LEN_RANGE",
        "DomainParamsInvalid": "CKR_DOMAIN_PARAMS_INVALID",
        "DeviceError": "CKR_DEVICE_ERROR",
        "DeviceMemory": "CKR_DEVICE_MEMORY",
        "DeviceRemoved": "CKR_DEVICE_REMOVED",
        "EncryptedDataInvalid": "CKR_ENCRYPTED_DATA_INVALID",
        "EncryptedDataLenRange": "CKR_ENCRYPTED_DATA_LEN_RANGE",
        "ExceededMaxIterations": "CKR_EXCEEDED_MAX_ITERATIONS",
        "FunctionCancelled": "CKR_FUNCTION_CANCELED",
        "FunctionFailed": "CKR_FUNCTION_FAILED",
        "FunctionRejected": "CKR_FUNCTION_REJECTED",
        "FunctionNotSupported": "CKR_FUNCTION_NOT_SUPPORTED",
        "KeyHandleInvalid": "CKR_KEY_HANDLE_INVALID",
        "KeyIndigestible": "CKR_KEY_INDIGESTIBLE",
        "KeyNeeded": "CKR_KEY_NEEDED",
        "KeyNotNeeded": "CKR_KEY_NOT_NEEDED",
        "KeyNotWrappable": "CKR_KEY_NOT_WRAPPABLE",
        "KeySizeRange": "CKR_KEY_SIZE_RANGE",
        "KeyTypeInconsistent": "CKR_KEY_TYPE_INCONSISTENT",
        "KeyUnextractable": "CKR_KEY_UNEXTRACTABLE",
        "GeneralError": "CKR_GENERAL_ERROR",
        "HostMemory": "CKR_HOST_MEMORY",
        "MechanismInvalid": "CKR_MECHANISM_INVALID",
        "MechanismParamInvalid": "CKR_MECHANISM_PARAM_INVALID",
        "NoEvent": "CKR_NO_EVENT",
        "ObjectHandleInvalid": "CKR_OBJECT_HANDLE_INVALID",
        "OperationActive": "CKR_OPERATION_ACTIVE",
        "OperationNotInitialized": "CKR_OPERATION_NOT_INITIALIZED",
        "PinExpired": "CKR_PIN_EXPIRED",
        "PinIncorrect": "CKR_PIN_INCORRECT",
        "PinInvalid": "CKR_PIN_INVALID",
        "PinLenRange": "CKR_PIN_LEN_RANGE",
        "PinLocked": "CKR_PIN_LOCKED",
        "PinTooWeak": "CKR_PIN_TOO_WEAK",
        "PublicKeyInvalid": "CKR_PUBLIC_KEY_INVALID",
        "RandomNoRNG": "CKR_RANDOM_NO_RNG",
        "RandomSeedNotSupported": "CKR_RANDOM_SEED_NOT_SUPPORTED",
        "SessionClosed": "CKR_SESSION_CLOSED",
        "SessionCount": "CKR_SESSION_COUNT",
        "SessionExists": "CKR_SESSION_EXISTS",
        "SessionHandleInvalid": "CKR_SESSION_HANDLE_INVALID",
        "SessionReadOnly": "CKR_SESSION_READ_ONLY",
        "SessionReadOnlyExists": "CKR_SESSION_READ_ONLY_EXISTS",
        "SessionReadWriteSOExists": "CKR_SESSION_READ_WRITE_SO_EXISTS",
        "SignatureLenRange": "CKR_SIGNATURE_LEN_RANGE",
        "SignatureInvalid": "CKR_SIGNATURE_INVALID",
        "SlotIDInvalid": "CKR_SLOT_ID_INVALID",
        "TemplateIncomplete": "CKR_TEMPLATE_INCOMPLETE",
        "TemplateInconsistent": "CKR_TEMPLATE_INCONSISTENT",
        "TokenNotPresent": "CKR_TOKEN_NOT_PRESENT",
        "TokenNotRecognised": "CKR_TOKEN_NOT_RECOGNIZED",
        "TokenWriteProtected": "CKR_TOKEN_WRITE_PROTECTED",
        "UnwrappingKeyHandleInvalid": "CKR_UNWRAPPING_KEY_HANDLE_INVALID",
        "UnwrappingKeySizeRange": "CKR_UNWRAPPING_KEY_SIZE_RANGE",
        "UnwrappingKeyTypeInconsistent": "CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT",
        "UserAlreadyLoggedIn": "CKR_USER_ALREADY_LOGGED_IN",
        "UserNotLoggedIn": "CKR_USER_NOT_LOGGED_IN",
        "UserPinNotInitialized": "CKR_USER_PIN_NOT_INITIALIZED",
        "UserTooManyTypes": "CKR_USER_TOO_MANY_TYPES",
        "WrappedKeyInvalid": "CKR_WRAPPED_KEY_INVALID",
        "WrappedKeyLenRange": "CKR_WRAPPED_KEY_LEN_RANGE",
        "WrappingKeyHandleInvalid": "CKR_WRAPPING_KEY_HANDLE_INVALID",
        "WrappingKeySizeRange": "CKR_WRAPPING_KEY_SIZE_RANGE",
        "WrappingKeyTypeInconsistent": "CKR_WRAPPING_KEY_TYPE_INCONSISTENT",
    }.items()
}

# The generic PKCS11Error of python-pkcs11 carries these messages for the codes
# it has no class for.
_PX_MESSAGES: Final = (
    (re.compile(r"Unmapped error code (0x[0-9a-fA-F]+)"), None),
    (re.compile(r"Buffer was too small"), "CKR_BUFFER_TOO_SMALL"),
    (re.compile(r"already initialized"), "CKR_CRYPTOKI_ALREADY_INITIALIZED"),
    (re.compile(r"not initialized"), "CKR_CRYPTOKI_NOT_INITIALIZED"),
    (re.compile(r"Parallel not supported"), "CKR_SESSION_PARALLEL_NOT_SUPPORTED"),
    (re.compile(r"User type invalid"), "CKR_USER_TYPE_INVALID"),
)


def code_name(code: int) -> str:
    """The CKR_* name of a return code (vendor codes as ``CKR_VENDOR_DEFINED+n``)."""
    info = CKR.get(code)
    if info is not None:
        return info.name
    if code > CKR_VENDOR_DEFINED:
        return f"CKR_VENDOR_DEFINED+0x{code - CKR_VENDOR_DEFINED:X}"
    return f"CKR_0x{code:X} (unknown)"


def code_of(exc: BaseException) -> int | None:
    """The CKR code behind a python-pkcs11 exception, or None when it is not one."""
    for cls in type(exc).__mro__:
        if cls in _PX_CODES:
            return _PX_CODES[cls]
    if isinstance(exc, _px.PKCS11Error):
        text = str(exc)
        for pattern, name in _PX_MESSAGES:
            m = pattern.search(text)
            if m:
                return int(m.group(1), 16) if name is None else _BY_NAME[name]
    return None


def error_for(
    code: int, *, function: str, module: str | None, message: str | None = None
) -> CpsError:
    """The CpsError for ``code`` returned by ``function`` of the module at ``module``."""
    info = CKR.get(code)
    if info is None:
        cls: type[CpsError] = Pkcs11Error
        hint = "the CPS middleware reported an error this library does not know"
        if code > CKR_VENDOR_DEFINED:
            hint = "a middleware-specific error: see the middleware's documentation"
    else:
        cls, hint = info.error, info.hint
    return cls(
        message or f"{function} failed",
        function=function,
        code=code,
        code_name=code_name(code),
        module=module,
        hint=hint,
    )
