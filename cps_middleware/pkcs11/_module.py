"""Loaded PKCS#11 modules: one :class:`Module` per resolved path, one lock per module.

python-pkcs11 initialises a module with ``C_Initialize(NULL)``, which tells the
module that the application does no threading, and it releases the GIL during
every C call: two threads inside SoftHSM, OpenSC or Cryptolib CPS at once crash
the process. So every call into a module, from any object of this package,
runs under that module's lock (an ``RLock``); callers never see it.

A few calls go through ``ctypes`` on the module's own function list, because
python-pkcs11 gets them wrong: ``C_Login`` (it logs in only while opening a
session and leaks the session when the PIN is wrong), ``C_Logout``,
``C_SetPIN``/``C_InitPIN`` (to keep the return code), the slot and token
listing (one bad slot makes ``get_slots`` raise) and the re-initialisation of a
forked child (``C_Finalize`` + ``C_Initialize``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

import pkcs11 as _p11
import pkcs11.exceptions as _px

from cps_middleware.cards.profiles import PROFILES
from cps_middleware.errors import (
    CpsError,
    ModuleLoadError,
    MultipleTokens,
    NoSuchToken,
    Pkcs11Error,
    SessionLost,
)
from cps_middleware.pkcs11 import _ckr
from cps_middleware.pkcs11._discovery import candidate_paths, diagnose
from cps_middleware.pkcs11._pin import PinStatus

if TYPE_CHECKING:
    from cps_middleware.pkcs11._token import Token

__all__ = [
    "Module",
    "SlotReport",
    "TokenFlags",
    "TokenInfo",
    "load_module",
    "loaded_modules",
]

log = logging.getLogger("cps_middleware.pkcs11")
T = TypeVar("T")

CKR_OK: Final = 0
CKR_CRYPTOKI_ALREADY_INITIALIZED: Final = 0x191
CKR_BUFFER_TOO_SMALL: Final = 0x150
CKU_SO: Final = 0
CKU_USER: Final = 1
_UNAVAILABLE: Final = ctypes.c_ulong(-1).value  # CK_UNAVAILABLE_INFORMATION
# What a parent sees once a forked child's use of the module broke its sessions:
# CKR_GENERAL_ERROR, CKR_SLOT_ID_INVALID, CKR_DEVICE_ERROR, CKR_SESSION_CLOSED,
# CKR_SESSION_HANDLE_INVALID, CKR_TOKEN_NOT_PRESENT.
_FORK_SYMPTOMS: Final = frozenset({0x05, 0x03, 0x30, 0xB0, 0xB3, 0xE0})

# Token models / manufacturers / label prefixes of CPS cards (data, see DOMAIN.md).
CPS_MANUFACTURERS: Final = tuple({p.manufacturer for p in PROFILES.values()})
CPS_MODELS: Final = {m: p.generation for p in PROFILES.values() for m in p.models}
CPS_LABEL_PREFIXES: Final = tuple({p.token_label for p in PROFILES.values()})
CPS_PIN_TRIES: Final = PROFILES["CPS3"].pin_tries


# --- ctypes view of the module ------------------------------------------------

_PACK: Final = 1 if sys.platform == "win32" else 0  # Cryptoki structs are packed on Windows
_ulong = ctypes.c_ulong


class _Version(ctypes.Structure):
    _pack_ = _PACK
    _fields_ = (("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte))


class _CkInfo(ctypes.Structure):
    _pack_ = _PACK
    _fields_ = (
        ("cryptokiVersion", _Version),
        ("manufacturerID", ctypes.c_char * 32),
        ("flags", _ulong),
        ("libraryDescription", ctypes.c_char * 32),
        ("libraryVersion", _Version),
    )


class _CkSlotInfo(ctypes.Structure):
    _pack_ = _PACK
    _fields_ = (
        ("slotDescription", ctypes.c_char * 64),
        ("manufacturerID", ctypes.c_char * 32),
        ("flags", _ulong),
        ("hardwareVersion", _Version),
        ("firmwareVersion", _Version),
    )


class _CkTokenInfo(ctypes.Structure):
    _pack_ = _PACK
    _fields_ = (
        ("label", ctypes.c_char * 32),
        ("manufacturerID", ctypes.c_char * 32),
        ("model", ctypes.c_char * 16),
        ("serialNumber", ctypes.c_char * 16),
        ("flags", _ulong),
        ("ulMaxSessionCount", _ulong),
        ("ulSessionCount", _ulong),
        ("ulMaxRwSessionCount", _ulong),
        ("ulRwSessionCount", _ulong),
        ("ulMaxPinLen", _ulong),
        ("ulMinPinLen", _ulong),
        ("ulTotalPublicMemory", _ulong),
        ("ulFreePublicMemory", _ulong),
        ("ulTotalPrivateMemory", _ulong),
        ("ulFreePrivateMemory", _ulong),
        ("hardwareVersion", _Version),
        ("firmwareVersion", _Version),
        ("utcTime", ctypes.c_char * 16),
    )


_FUNCTIONS: Final = (
    "C_Initialize",
    "C_Finalize",
    "C_GetInfo",
    "C_GetFunctionList",
    "C_GetSlotList",
    "C_GetSlotInfo",
    "C_GetTokenInfo",
    "C_GetMechanismList",
    "C_GetMechanismInfo",
    "C_InitToken",
    "C_InitPIN",
    "C_SetPIN",
    "C_OpenSession",
    "C_CloseSession",
    "C_CloseAllSessions",
    "C_GetSessionInfo",
    "C_GetOperationState",
    "C_SetOperationState",
    "C_Login",
    "C_Logout",
    "C_CreateObject",
    "C_CopyObject",
    "C_DestroyObject",
    "C_GetObjectSize",
    "C_GetAttributeValue",
    "C_SetAttributeValue",
    "C_FindObjectsInit",
    "C_FindObjects",
    "C_FindObjectsFinal",
    "C_EncryptInit",
    "C_Encrypt",
    "C_EncryptUpdate",
    "C_EncryptFinal",
    "C_DecryptInit",
    "C_Decrypt",
    "C_DecryptUpdate",
    "C_DecryptFinal",
    "C_DigestInit",
    "C_Digest",
    "C_DigestUpdate",
    "C_DigestKey",
    "C_DigestFinal",
    "C_SignInit",
    "C_Sign",
)  # fmt: skip  (the order of CK_FUNCTION_LIST; the rest is not used here)


class _FunctionList(ctypes.Structure):
    _pack_ = _PACK
    _fields_ = (("version", _Version), *((name, ctypes.c_void_p) for name in _FUNCTIONS))


class CkMechanism(ctypes.Structure):
    _pack_ = _PACK
    _fields_ = (("mechanism", _ulong), ("pParameter", ctypes.c_void_p), ("ulParameterLen", _ulong))


class _CkMechanismInfo(ctypes.Structure):
    _pack_ = _PACK
    _fields_ = (("ulMinKeySize", _ulong), ("ulMaxKeySize", _ulong), ("flags", _ulong))


class _CkAttribute(ctypes.Structure):
    _pack_ = _PACK
    _fields_ = (("type", _ulong), ("pValue", ctypes.c_void_p), ("ulValueLen", _ulong))


_P = ctypes.c_void_p
_BUF = ctypes.c_char_p
_MECH = ctypes.POINTER(CkMechanism)
_SIGNATURES: Final[dict[str, tuple[Any, ...]]] = {
    "C_Initialize": (_P,),
    "C_Finalize": (_P,),
    "C_GetInfo": (ctypes.POINTER(_CkInfo),),
    "C_GetSlotList": (ctypes.c_ubyte, ctypes.POINTER(_ulong), ctypes.POINTER(_ulong)),
    "C_GetSlotInfo": (_ulong, ctypes.POINTER(_CkSlotInfo)),
    "C_GetTokenInfo": (_ulong, ctypes.POINTER(_CkTokenInfo)),
    "C_InitPIN": (_ulong, ctypes.c_char_p, _ulong),
    "C_SetPIN": (_ulong, ctypes.c_char_p, _ulong, ctypes.c_char_p, _ulong),
    "C_CloseSession": (_ulong,),
    "C_Login": (_ulong, _ulong, ctypes.c_char_p, _ulong),
    "C_Logout": (_ulong,),
    "C_GetSessionInfo": (_ulong, ctypes.POINTER(_ulong * 4)),
    "C_GetMechanismInfo": (_ulong, _ulong, ctypes.POINTER(_CkMechanismInfo)),
    "C_GetAttributeValue": (_ulong, _ulong, ctypes.POINTER(_CkAttribute), _ulong),
    "C_SignInit": (_ulong, _MECH, _ulong),
    "C_Sign": (_ulong, _BUF, _ulong, _P, ctypes.POINTER(_ulong)),
    "C_DecryptInit": (_ulong, _MECH, _ulong),
    "C_Decrypt": (_ulong, _BUF, _ulong, _P, ctypes.POINTER(_ulong)),
}


class _Raw:
    """The functions python-pkcs11 does not expose well, called through ctypes.

    ``ctypes.CDLL`` on the same file returns the handle the loader already has,
    so these calls reach the same module state as python-pkcs11's.
    """

    def __init__(self, path: str) -> None:
        self.dll = ctypes.CDLL(path)
        get_list = self.dll.C_GetFunctionList
        get_list.argtypes = (ctypes.POINTER(ctypes.POINTER(_FunctionList)),)
        get_list.restype = _ulong
        ptr = ctypes.POINTER(_FunctionList)()
        rv = get_list(ctypes.byref(ptr))
        if rv != CKR_OK or not ptr:
            raise _ckr.error_for(rv, function="C_GetFunctionList", module=path)
        table = ptr.contents
        self.fn: dict[str, Callable[..., int]] = {}
        for name, argtypes in _SIGNATURES.items():
            address = getattr(table, name)
            if address:
                self.fn[name] = ctypes.CFUNCTYPE(_ulong, *argtypes)(address)
        self._keep = ptr

    def __call__(self, name: str, *args: Any) -> int:
        fn = self.fn.get(name)
        if fn is None:
            return 0x54  # CKR_FUNCTION_NOT_SUPPORTED
        return int(fn(*args))


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace").rstrip(" ")


def _version(v: _Version) -> tuple[int, int]:
    return (int(v.major), int(v.minor))


def _count(value: int) -> int | None:
    return None if value == _UNAVAILABLE else int(value)


# --- token information ----------------------------------------------------------


@dataclass(frozen=True)
class TokenFlags:
    """CK_TOKEN_INFO flags as named booleans (``value`` keeps the raw bits)."""

    value: int
    rng: bool
    write_protected: bool
    login_required: bool
    user_pin_initialized: bool
    restore_key_not_needed: bool
    clock_on_token: bool
    protected_authentication_path: bool
    dual_crypto_operations: bool
    token_initialized: bool
    secondary_authentication: bool
    user_pin_count_low: bool
    user_pin_final_try: bool
    user_pin_locked: bool
    user_pin_to_be_changed: bool
    so_pin_count_low: bool
    so_pin_final_try: bool
    so_pin_locked: bool
    so_pin_to_be_changed: bool
    error_state: bool

    _BITS: ClassVar[dict[str, int]] = {
        "rng": 0x1, "write_protected": 0x2, "login_required": 0x4,
        "user_pin_initialized": 0x8, "restore_key_not_needed": 0x20, "clock_on_token": 0x40,
        "protected_authentication_path": 0x100, "dual_crypto_operations": 0x200,
        "token_initialized": 0x400, "secondary_authentication": 0x800,
        "user_pin_count_low": 0x10000, "user_pin_final_try": 0x20000,
        "user_pin_locked": 0x40000, "user_pin_to_be_changed": 0x80000,
        "so_pin_count_low": 0x100000, "so_pin_final_try": 0x200000,
        "so_pin_locked": 0x400000, "so_pin_to_be_changed": 0x800000, "error_state": 0x1000000,
    }  # fmt: skip

    @classmethod
    def from_int(cls, value: int) -> TokenFlags:
        return cls(value=value, **{n: bool(value & bit) for n, bit in cls._BITS.items()})

    def names(self) -> list[str]:
        """The names of the flags that are set."""
        return [f.name for f in fields(self) if f.name != "value" and getattr(self, f.name)]


def pin_status_of(flags: TokenFlags) -> PinStatus:
    if flags.user_pin_locked:
        return PinStatus.LOCKED
    if flags.user_pin_final_try:
        return PinStatus.FINAL_TRY
    if flags.user_pin_count_low:
        return PinStatus.COUNT_LOW
    if flags.protected_authentication_path:
        return PinStatus.PIN_PAD
    return PinStatus.OK


def tries_left_of(flags: TokenFlags, max_tries: int | None) -> int | None:
    """Holder-PIN tries left as far as the flags tell (None: unknown)."""
    if flags.user_pin_locked:
        return 0
    if flags.user_pin_final_try:
        return 1
    if flags.user_pin_count_low:
        # COUNT_LOW without FINAL_TRY on a 3-try card means exactly one wrong entry.
        return max_tries - 1 if max_tries == 3 else None
    return max_tries


def so_tries_left_of(flags: TokenFlags) -> int | None:
    """PUK tries left as far as the flags tell (None: unknown)."""
    if flags.so_pin_locked:
        return 0
    if flags.so_pin_final_try:
        return 1
    return None


@dataclass(frozen=True)
class TokenInfo:
    """What a slot's token says about itself (C_GetTokenInfo + C_GetSlotInfo)."""

    label: str
    serial: str
    manufacturer: str
    model: str
    flags: TokenFlags
    slot_id: int
    slot_description: str
    slot_manufacturer: str
    module_path: str
    hardware_version: tuple[int, int]
    firmware_version: tuple[int, int]
    session_count: int | None
    rw_session_count: int | None
    min_pin_len: int
    max_pin_len: int

    @property
    def is_cps(self) -> bool:
        """A CPS card (or the CPS test token): ANS manufacturer, IAS ECC / ChipDoc model,
        or a label starting with "CPS"."""
        return (
            self.manufacturer in CPS_MANUFACTURERS
            or self.model in CPS_MODELS
            or self.label.startswith(CPS_LABEL_PREFIXES)
        )

    @property
    def generation(self) -> str | None:
        """ "CPS3" or "CPS4" from the token model, when it tells."""
        return CPS_MODELS.get(self.model)

    @property
    def max_pin_tries(self) -> int | None:
        return CPS_PIN_TRIES if self.is_cps else None

    @property
    def pin_status(self) -> PinStatus:
        return pin_status_of(self.flags)

    @property
    def pin_tries_left(self) -> int | None:
        return tries_left_of(self.flags, self.max_pin_tries)

    @property
    def puk_tries_left(self) -> int | None:
        return so_tries_left_of(self.flags)

    def describe(self) -> str:
        """``label (serial ..., model)`` for messages."""
        return f"{self.label!r} serial {self.serial!r} ({self.model}) in slot {self.slot_id}"


@dataclass(frozen=True)
class SlotReport:
    """One slot of a scan: its token, or why it could not be read (``error``)."""

    slot_id: int
    description: str
    token: TokenInfo | None
    error: str | None = None
    code_name: str | None = None


# --- the module ------------------------------------------------------------------


class Module:
    """A loaded PKCS#11 module. Get it from :func:`load_module`; never build it yourself.

    Thread-safe: every call into the module holds its lock.
    """

    def __init__(self, path: str, resolved: str, source: str) -> None:
        self.path = path
        self.resolved_path = resolved
        self.source = source
        self._lock = threading.RLock()
        self._needs_reinit = False
        self._forks = 0  # forks of this process since load (bumped in the parent)
        self._forks_seen = 0
        self.generation = 0  # bumped when the module is re-initialised (forked child)
        self._tokens: dict[str, Token] = {}
        self._raw = _Raw(resolved)
        self._lib = self._load_lib()
        info = _CkInfo()
        rv = self._raw("C_GetInfo", ctypes.byref(info))
        if rv != CKR_OK:
            raise _ckr.error_for(rv, function="C_GetInfo", module=self.resolved_path)
        self.manufacturer = _text(info.manufacturerID)
        self.description = _text(info.libraryDescription)
        self.cryptoki_version = _version(info.cryptokiVersion)
        self.library_version = _version(info.libraryVersion)

    def _load_lib(self) -> Any:
        # python-pkcs11 keeps its own cache keyed by the path string: share its
        # object when someone (a benchmark, pyHanko) already loaded this file.
        loaded: dict[str, Any] = getattr(_p11, "_loaded", {})
        for so, lib in list(loaded.items()):
            if os.path.realpath(so) == self.resolved_path:
                if not lib.initialized:
                    lib.initialize()
                return lib
        try:
            return _p11.lib(self.resolved_path)
        except _px.PKCS11Error as exc:
            code = _ckr.code_of(exc)
            if code == CKR_CRYPTOKI_ALREADY_INITIALIZED:
                # Another user of this process initialised it: use it as it is.
                from pkcs11 import _pkcs11

                log.debug("%s was already initialised in this process", self.resolved_path)
                return _pkcs11.lib.__new__(_pkcs11.lib, self.resolved_path)  # type: ignore[call-arg]
            if code is None:
                raise ModuleLoadError(
                    f"cannot load {self.resolved_path}: {exc}", module=self.resolved_path
                ) from exc
            raise _ckr.error_for(code, function="C_Initialize", module=self.resolved_path) from exc

    def __repr__(self) -> str:
        return f"<Module {self.resolved_path!r} {self.manufacturer!r} {self.description!r}>"

    @property
    def middleware(self) -> str:
        """Which middleware this is: ``"ANS"`` (Cryptolib CPS), ``"OpenSC"``, ``"test token"``
        (the CPS test token of cps_middleware.testing), else its manufacturer."""
        file = os.path.basename(self.resolved_path).casefold()
        said = f"{self.manufacturer} {self.description}".casefold()
        if "opensc" in said or "opensc" in file:
            return "OpenSC"
        if file.startswith("libcps") or "cps3 pkcs#11" in said or "cryptolib" in said:
            return "ANS"
        if file.startswith("_cpstoken"):
            return "test token"
        return self.manufacturer or file

    @property
    def middleware_version(self) -> str:
        """The library version the module reports (C_GetInfo.libraryVersion)."""
        return "{}.{}".format(*self.library_version)

    def middleware_name(self, lang: str | None = None) -> str:
        """The middleware and its version in words (French by default)."""
        from cps_middleware.messages import text

        code = {"ANS": "ans", "OpenSC": "opensc", "test token": "test_token"}.get(
            self.middleware, "other"
        )
        return text(f"pkcs11.middleware_{code}", lang, name=self.middleware,
                    version=self.middleware_version)  # fmt: skip

    # -- calling into the module -------------------------------------------------

    def _reinit_in_child(self) -> None:
        # A forked child inherits the parent's module state but not its sessions'
        # meaning (cards, pcscd connections): start again, as PKCS#11 asks, with
        # C_Initialize alone. OpenSC and the ANS module notice the new process
        # and drop the inherited state without releasing the parent's PC/SC
        # context; a C_Finalize here would release it (the pcscd socket is
        # shared with the parent) and break the parent's sessions. Only a module
        # that says it is initialised already (no fork detection: SoftHSM, the
        # test token, no PC/SC) is finalised first.
        rv = self._raw("C_Initialize", None)
        if rv == CKR_CRYPTOKI_ALREADY_INITIALIZED:
            self._raw("C_Finalize", None)
            rv = self._raw("C_Initialize", None)
        if rv not in (CKR_OK, CKR_CRYPTOKI_ALREADY_INITIALIZED):
            raise _ckr.error_for(rv, function="C_Initialize", module=self.resolved_path)
        self._needs_reinit = False
        self._forks_seen = self._forks
        self.generation += 1
        log.debug("re-initialised %s in forked child %d", self.resolved_path, os.getpid())

    def ensure_initialized(self) -> None:
        """Re-initialise now if this is a forked child that has not yet (see _reinit_in_child)."""
        with self._lock:
            if self._needs_reinit:
                self._reinit_in_child()

    def _child_symptom(self, code: int | None, function: str) -> CpsError | None:
        """After a fork, the child's use of the module can kill the parent's PC/SC
        context (the ANS module then answers CKR_SESSION_HANDLE_INVALID, then
        CKR_GENERAL_ERROR, then CKR_TOKEN_NOT_PRESENT / CKR_SLOT_ID_INVALID for a
        card still there). Such a code in the parent after a fork: start the
        module again (every session and the login are gone) and return the
        SessionLost to raise; None otherwise."""
        if code not in _FORK_SYMPTOMS or self._forks == self._forks_seen or self._needs_reinit:
            return None
        with self._lock:
            if self._still_answers():
                return None  # the card's own answer (a CPS4 refusing a mechanism ...)
            self._forks_seen = self._forks
            rv = self._restart()
        log.warning(
            "%s failed with %s after a fork: module started again, a new login is needed",
            function, _ckr.code_name(code),
        )
        if rv not in (CKR_OK, CKR_CRYPTOKI_ALREADY_INITIALIZED):
            return _ckr.error_for(rv, function="C_Initialize", module=self.resolved_path)
        return SessionLost(
            "the card's sessions were lost: another process (a forked child?) used the "
            "card through this module",
            function=function, code=code, code_name=_ckr.code_name(code),
            module=self.resolved_path,
        )  # fmt: skip

    def _restart(self) -> int:
        """C_Finalize then C_Initialize (lock held): every session and login are
        gone, and the Tokens notice through ``generation``. Returns the CKR of
        C_Initialize."""
        self._raw("C_Finalize", None)
        rv = self._raw("C_Initialize", None)
        self.generation += 1
        return int(rv)

    def _still_answers(self) -> bool:
        """Whether the module still answers C_GetTokenInfo for a token open through
        it: after a child broke the module it answers for none (the ANS module says
        CKR_GENERAL_ERROR), while a card's own refusal leaves it working. (A token
        pulled since it was opened answers no more: one that answers is enough.)"""
        slots = {t.slot_id for t in list(self._tokens.values()) if not t.closed}
        info = _CkTokenInfo()
        return any(
            self._raw("C_GetTokenInfo", _ulong(slot), ctypes.byref(info)) == CKR_OK
            for slot in slots
        )

    def _restart_blind_middleware(self) -> bool:
        """Start a PC/SC middleware again when it sees no token at all.

        The ANS module keeps the PC/SC context it made at C_Initialize: once
        pcscd restarts (a service restart, an update, a reader driver reload) it
        sees no reader until it is started again, while a new process sees the
        card. With no token visible no session or login can be lost, so start it
        again (the Tokens notice through ``generation``). Not for the test token,
        which does not use PC/SC.
        """
        if self.middleware not in ("ANS", "OpenSC"):
            return False
        with self._lock:
            if self._needs_reinit:
                return False
            rv = self._restart()
        log.info("%s saw no token: started again (PC/SC context renewed)", self.resolved_path)
        return rv in (CKR_OK, CKR_CRYPTOKI_ALREADY_INITIALIZED)

    @contextmanager
    def _guard(self, function: str) -> Iterator[None]:
        """Hold the module lock and turn python-pkcs11 errors into CpsError."""
        with self._lock:
            if self._needs_reinit:
                self._reinit_in_child()
            try:
                yield
            except _px.PKCS11Error as exc:
                raise self._error(exc, function) from exc

    def _call(self, function: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` (a python-pkcs11 call) under the module lock."""
        with self._guard(function):
            return fn(*args, **kwargs)

    def _raw_call(self, function: str, *args: Any) -> int:
        """A ctypes call under the module lock; returns the CKR code."""
        with self._lock:
            if self._needs_reinit:
                self._reinit_in_child()
            return self._raw(function, *args)

    def _check(self, function: str, *args: Any) -> None:
        """A ctypes call under the module lock; raises the mapped error unless CKR_OK."""
        rv = self._raw_call(function, *args)
        if rv != CKR_OK:
            raise self.error_for(rv, function)

    def error_for(self, code: int, function: str) -> CpsError:
        """The error for a CKR code of this module (SessionLost when a forked child
        broke the sessions: see :meth:`_child_symptom`)."""
        lost = self._child_symptom(code, function)
        if lost is not None:
            return lost
        return _ckr.error_for(code, function=function, module=self.resolved_path)

    def _error(self, exc: BaseException, function: str) -> CpsError:
        code = _ckr.code_of(exc)
        lost = self._child_symptom(code, function)
        if lost is not None:
            return lost
        if code is None:
            return Pkcs11Error(
                f"{function} failed: {exc}", function=function, module=self.resolved_path
            )
        return _ckr.error_for(code, function=function, module=self.resolved_path)

    def mechanism_flags(self, slot_id: int, mechanism: int) -> int | None:
        """CK_MECHANISM_INFO.flags of ``mechanism`` in a slot (None when the module does
        not say)."""
        mi = _CkMechanismInfo()
        rv = self._raw_call("C_GetMechanismInfo", _ulong(slot_id), _ulong(mechanism),
                            ctypes.byref(mi))  # fmt: skip
        return int(mi.flags) if rv == CKR_OK else None

    def allowed_mechanisms(self, session: int, obj: int) -> tuple[int, ...] | None:
        """CKA_ALLOWED_MECHANISMS of an object (None when it has none; python-pkcs11
        cannot decode this attribute)."""
        attr = _CkAttribute(0x40000600, None, 0)
        with self._lock:
            rv = self._raw_call("C_GetAttributeValue", _ulong(session), _ulong(obj),
                                ctypes.byref(attr), 1)  # fmt: skip
            n = int(attr.ulValueLen)
            if rv != CKR_OK or n in (0, _UNAVAILABLE) or n % ctypes.sizeof(_ulong):
                return None
            values = (_ulong * (n // ctypes.sizeof(_ulong)))()
            attr.pValue = ctypes.cast(values, ctypes.c_void_p)
            rv = self._raw_call("C_GetAttributeValue", _ulong(session), _ulong(obj),
                                ctypes.byref(attr), 1)  # fmt: skip
        return tuple(int(v) for v in values) if rv == CKR_OK else None

    # -- slots and tokens ----------------------------------------------------------

    def _token_info(self, slot_id: int, slot: _CkSlotInfo) -> TokenInfo:
        ti = _CkTokenInfo()
        self._check("C_GetTokenInfo", _ulong(slot_id), ctypes.byref(ti))
        return TokenInfo(
            label=_text(ti.label),
            serial=_text(ti.serialNumber),
            manufacturer=_text(ti.manufacturerID),
            model=_text(ti.model),
            flags=TokenFlags.from_int(int(ti.flags)),
            slot_id=slot_id,
            slot_description=_text(slot.slotDescription),
            slot_manufacturer=_text(slot.manufacturerID),
            module_path=self.resolved_path,
            hardware_version=_version(ti.hardwareVersion),
            firmware_version=_version(ti.firmwareVersion),
            session_count=_count(ti.ulSessionCount),
            rw_session_count=_count(ti.ulRwSessionCount),
            min_pin_len=int(ti.ulMinPinLen),
            max_pin_len=int(ti.ulMaxPinLen),
        )

    def token_info(self, slot_id: int) -> TokenInfo:
        """Fresh token information of one slot (raises when the slot has no token)."""
        with self._lock:
            slot = _CkSlotInfo()
            self._check("C_GetSlotInfo", _ulong(slot_id), ctypes.byref(slot))
            return self._token_info(slot_id, slot)

    def slot_has_token(self, slot_id: int) -> bool:
        """Whether the slot holds a token now (C_GetSlotInfo, CKF_TOKEN_PRESENT)."""
        with self._lock:
            slot = _CkSlotInfo()
            self._check("C_GetSlotInfo", _ulong(slot_id), ctypes.byref(slot))
            return bool(slot.flags & 0x1)

    def _slot_ids(self, token_present: bool) -> list[int]:
        with self._lock:
            for _ in range(3):  # the list may grow between the two calls (a reader plugged)
                count = _ulong(0)
                self._check(
                    "C_GetSlotList", ctypes.c_ubyte(token_present), None, ctypes.byref(count)
                )
                if count.value == 0:
                    return []
                ids = (_ulong * count.value)()
                rv = self._raw_call(
                    "C_GetSlotList", ctypes.c_ubyte(token_present), ids, ctypes.byref(count)
                )
                if rv == CKR_BUFFER_TOO_SMALL:
                    continue
                if rv != CKR_OK:
                    raise _ckr.error_for(rv, function="C_GetSlotList", module=self.resolved_path)
                return [int(ids[i]) for i in range(count.value)]
        raise _ckr.error_for(
            CKR_BUFFER_TOO_SMALL, function="C_GetSlotList", module=self.resolved_path
        )

    def scan_slots(self, *, token_present: bool = True) -> list[SlotReport]:
        """Every slot with its token, or why it could not be read; one bad slot
        never hides the others."""
        reports = []
        with self._lock:
            for slot_id in self._slot_ids(token_present):
                slot = _CkSlotInfo()
                try:
                    self._check("C_GetSlotInfo", _ulong(slot_id), ctypes.byref(slot))
                    description = _text(slot.slotDescription)
                    token = self._token_info(slot_id, slot) if slot.flags & 0x1 else None
                    reports.append(SlotReport(slot_id, description, token))
                except CpsError as exc:
                    log.warning("slot %d skipped: %s", slot_id, exc)
                    reports.append(
                        SlotReport(
                            slot_id, _text(slot.slotDescription), None, str(exc), exc.code_name
                        )
                    )
        return reports

    def tokens(self) -> list[TokenInfo]:
        """The tokens present, in slot order (unreadable slots are skipped and logged)."""
        return [r.token for r in self.scan_slots() if r.token is not None]

    def open_token(
        self,
        *,
        serial: str | None = None,
        label: str | None = None,
        slot_id: int | None = None,
        cps_only: bool = False,
    ) -> Token:
        """The one token matching every criterion given; NoSuchToken / MultipleTokens
        otherwise, naming the tokens seen. The same Token object (and login) is
        returned for the same card."""
        from cps_middleware.pkcs11._token import Token

        def matching(seen: list[TokenInfo]) -> list[TokenInfo]:
            return [
                t
                for t in seen
                if (serial is None or t.serial == serial)
                and (label is None or t.label == label)
                and (slot_id is None or t.slot_id == slot_id)
                and (not cps_only or t.is_cps)
            ]

        seen = self.tokens()
        fits = matching(seen)
        if not fits:
            # The ANS module notices a card inserted since its last slot listing
            # only on the next one: look once more before saying there is none.
            seen = self.tokens()
            fits = matching(seen)
        if not seen and self._restart_blind_middleware():
            seen = self.tokens()
            fits = matching(seen)
        wanted = ", ".join(
            f"{k}={v!r}"
            for k, v in (("serial", serial), ("label", label), ("slot_id", slot_id))
            if v is not None
        ) + (", CPS only" if cps_only else "")
        listing = "; ".join(t.describe() for t in seen) or "none"
        if not fits:
            raise NoSuchToken(
                f"no token matches ({wanted or 'any'}); tokens seen: {listing}",
                module=self.resolved_path,
            )
        if len(fits) > 1:
            raise MultipleTokens(
                f"{len(fits)} tokens match ({wanted or 'any'}): "
                + "; ".join(t.describe() for t in fits),
                module=self.resolved_path,
            )
        info = fits[0]
        key = info.serial or f"slot:{info.slot_id}"
        with self._lock:
            token = self._tokens.get(key)
            if token is None or token.closed:
                token = Token(self, info)
                self._tokens[key] = token
                return token
        # The card may have been pulled and put back (or reset) since this Token
        # last talked to it: let it notice now, not at the caller's first call.
        # Outside the module lock: a Token takes its own lock, then the module's.
        token._revalidate()
        return token

    def _px_token(self, slot_id: int) -> Any:
        """python-pkcs11's Token object of a slot."""
        last: BaseException | None = None
        with self._lock:
            for _ in range(3):  # get_slots raises if any slot fails: retry a racing reader
                try:
                    slots = self._call("C_GetSlotList", self._lib.get_slots, token_present=True)
                except CpsError as exc:
                    last = exc
                    continue
                for slot in slots:
                    if slot.slot_id == slot_id:
                        return self._call("C_GetTokenInfo", slot.get_token)
                break
        if last is not None:
            raise last
        raise _ckr.error_for(0xE0, function="C_GetTokenInfo", module=self.resolved_path)


# --- registry ---------------------------------------------------------------------

_REGISTRY: dict[str, Module] = {}
_REGISTRY_LOCK = threading.RLock()
_ALL: weakref.WeakSet[Module] = weakref.WeakSet()


def load_module(path: str | os.PathLike[str] | None = None) -> Module:
    """The PKCS#11 module: ``path`` if given, else ``$CPS_PKCS11_MODULE``, else the
    ANS Cryptolib CPS, else OpenSC. Loaded once per resolved path.

    Raises ModuleLoadError listing every path tried and why it failed.
    """
    tried: list[tuple[str, str]] = []
    for cand in candidate_paths(path):
        resolved = os.path.realpath(cand.path)
        with _REGISTRY_LOCK:
            module = _REGISTRY.get(resolved)
            if module is not None:
                return module
        why = diagnose(cand.path)
        if why is not None:
            tried.append((cand.path, why))
            continue
        with _REGISTRY_LOCK:
            module = _REGISTRY.get(resolved)
            if module is not None:
                return module
            try:
                module = Module(cand.path, resolved, cand.source)
            except CpsError as exc:
                tried.append(
                    (cand.path, f"{exc.function or 'load'} failed: {exc.code_name or exc}")
                )
                continue
            _REGISTRY[resolved] = module
            _ALL.add(module)
            log.debug("loaded PKCS#11 module %s (%s)", resolved, module.description)
            return module
    raise ModuleLoadError("no PKCS#11 module could be loaded", attempts=tried)


def loaded_modules() -> Sequence[Module]:
    """The modules loaded so far, by resolved path."""
    with _REGISTRY_LOCK:
        return list(_REGISTRY.values())


def _before_fork() -> None:
    # Fork only while no thread is inside a module, so the child inherits a
    # consistent module state.
    _REGISTRY_LOCK.acquire()
    for module in _REGISTRY.values():
        module._lock.acquire()


def _after_fork_parent() -> None:
    for module in _REGISTRY.values():
        module._forks += 1
        module._lock.release()
    _REGISTRY_LOCK.release()


def _after_fork_child() -> None:
    global _REGISTRY_LOCK
    _REGISTRY_LOCK = threading.RLock()
    for module in _REGISTRY.values():
        module._lock = threading.RLock()
        module._needs_reinit = True
        for token in module._tokens.values():
            token._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child
    )
