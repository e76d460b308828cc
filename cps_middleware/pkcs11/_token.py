"""One token (a CPS card in a reader): sessions, holder PIN, objects, signing.

Session model: a *main* session per token, shared by the whole process, carries
the login (PKCS#11 login state is per token, so every session of the process
is logged in with it) and serves object lookups; a small *pool* of extra
sessions serves concurrent signatures/decryptions. When the card is pulled the
module invalidates every handle: the Token notices (CKR_TOKEN_NOT_PRESENT,
CKR_DEVICE_REMOVED, CKR_SESSION_HANDLE_INVALID ...), forgets its sessions and
handles and raises :class:`~cps_middleware.errors.CardRemoved`. After the card
is put back the next :meth:`Token.login` (with the PIN asked again: it is never
kept) opens fresh sessions and keys are found again by label/CKA_ID.

A card pulled and put back (or reset by another process) while this process
looked away leaves the Token with dead sessions. What needs no login (token
information, PIN status, mechanisms, certificates, public keys, data objects)
opens a new session and tries once more, so nobody sees the dead session.
What needs the login (private keys, signing, decrypting, private objects)
raises CardRemoved once, saying to log in again, and then NotLoggedIn until the
holder logs in: the PIN is never kept, so the library cannot log in by itself.

The PIN rules of DOMAIN.md hold here: flags are read before every login; a
blocked PIN is refused without calling C_Login; the final try is spent only
with ``allow_final_try=True``; nothing is ever retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

import pkcs11 as _p11
from cryptography import x509

from cps_middleware.errors import (
    CardRemoved,
    CpsError,
    FinalTryRefused,
    InvalidInput,
    MechanismUnsupported,
    MultipleObjects,
    NoSuchObject,
    NotLoggedIn,
    PinFormatError,
    PinIncorrect,
    PinLocked,
    Pkcs11Error,
    PukIncorrect,
    PukLocked,
    SessionLost,
    UnblockNotSupported,
)
from cps_middleware.pkcs11 import _ckr
from cps_middleware.pkcs11._mechanisms import (
    OaepParams,
    PssParams,
    check_params,
    mechanism_name,
    p11_mechanism,
)
from cps_middleware.pkcs11._module import (
    CKR_OK,
    CKU_SO,
    CKU_USER,
    TokenInfo,
    so_tries_left_of,
    tries_left_of,
)
from cps_middleware.pkcs11._pin import Pin, PinStatus, Puk

if TYPE_CHECKING:
    from cps_middleware.pkcs11._module import Module

__all__ = ["DataObject", "KeyRef", "StoredCertificate", "Token"]

log = logging.getLogger("cps_middleware.pkcs11")

T = TypeVar("T")

CKR_FUNCTION_NOT_SUPPORTED: Final = 0x54
CKR_PIN_INCORRECT: Final = 0xA0
CKR_PIN_LOCKED: Final = 0xA4
CKR_USER_ALREADY_LOGGED_IN: Final = 0x100
CKR_USER_NOT_LOGGED_IN: Final = 0x101
CKR_TOKEN_WRITE_PROTECTED: Final = 0xE2
_A = _p11.Attribute
_OC = _p11.ObjectClass


@dataclass(frozen=True)
class StoredCertificate:
    """A certificate object of the token."""

    label: str
    id: bytes
    der: bytes
    certificate: x509.Certificate


@dataclass(frozen=True)
class KeyRef:
    """A key on the token, named by label and CKA_ID; pass it to :meth:`Token.sign`.

    It stays valid across a card removal: the Token finds the key again by
    label/CKA_ID in the new sessions.
    """

    label: str
    id: bytes
    object_class: str  # "private" or "public"
    key_type: str  # "RSA", "EC", ...
    bits: int | None
    can_sign: bool
    can_decrypt: bool
    always_authenticate: bool
    modulus: int | None = None
    public_exponent: int | None = None
    ec_params: bytes | None = None
    #: CKA_ALLOWED_MECHANISMS when the token sets it (None: not said).
    allowed_mechanisms: tuple[int, ...] | None = None


@dataclass(frozen=True)
class DataObject:
    """A CKO_DATA object (CPS_ID_CARD, CPS_NAME_PS ...)."""

    label: str
    application: str
    value: bytes
    private: bool


class _Pooled:
    __slots__ = ("broken", "epoch", "keys", "session")

    def __init__(self, session: Any, epoch: int) -> None:
        self.session = session
        self.epoch = epoch
        self.keys: dict[tuple[str, bytes, str], Any] = {}
        self.broken = False  # an operation may be left active: close, never reuse


# Mechanism refusals remembered per key: CKR_FUNCTION_NOT_SUPPORTED (OpenSC's
# qualified signature), CKR_KEY_TYPE_INCONSISTENT (the ANS module, hash-and-sign
# on the authentication key), CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_MECHANISM_INVALID
# (OpenSC).
_REFUSALS: Final = frozenset({0x54, 0x63, 0x68, 0x70})
CKR_GENERAL_ERROR: Final = 0x05
CKR_DATA_INVALID: Final = 0x20
# What both real modules answer when the card is pulled while the reader waits for
# its answer (general error; function failed and device error from other drivers)
_CARD_MAY_BE_GONE: Final = frozenset({0x05, 0x06, 0x30})
# pcscd notices a pulled card at its next poll of the reader (0.3-0.5 s seen)
_GONE_WAIT: Final = 0.8
# CKR_SESSION_CLOSED, CKR_SESSION_HANDLE_INVALID, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT
_SESSION_GONE: Final = frozenset({0xB0, 0xB3, 0x32, 0xE0})
_HASH_AND_SIGN: Final = frozenset({0x06, 0x0E, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47})
_RAW_RSA: Final = frozenset({0x1, 0x3})  # CKM_RSA_PKCS, CKM_RSA_X_509: the input tells the hash
_CKU_CONTEXT_SPECIFIC: Final = 2
_CKF_DECRYPT: Final = 0x200
_CKF_SIGN: Final = 0x800


def _ck_mechanism(struct: Any, mechanism: int, param: Any) -> tuple[Any, Any]:
    """A CK_MECHANISM for ctypes (and what must stay alive with it) from the
    python-pkcs11 parameter made by check_params."""
    if param is None:
        return None, struct(mechanism, None, 0)
    p: Any
    if len(param) == 3 and not isinstance(param[2], bytes | None):  # PSS
        p = (ctypes.c_ulong * 3)(int(param[0]), int(param[1]), int(param[2]))
    else:  # OAEP: hashAlg, mgf, source (CKZ_DATA_SPECIFIED), label
        label = param[2] or b""
        buf = ctypes.create_string_buffer(label, max(len(label), 1))

        class _Oaep(ctypes.Structure):
            _fields_ = (("h", ctypes.c_ulong), ("m", ctypes.c_ulong), ("s", ctypes.c_ulong),
                        ("d", ctypes.c_void_p), ("n", ctypes.c_ulong))  # fmt: skip

        p = _Oaep(int(param[0]), int(param[1]), 1 if label else 0,
                  ctypes.cast(buf, ctypes.c_void_p) if label else None, len(label))  # fmt: skip
        return (p, buf), struct(mechanism, ctypes.cast(ctypes.pointer(p), ctypes.c_void_p),
                                ctypes.sizeof(p))  # fmt: skip
    return p, struct(mechanism, ctypes.cast(p, ctypes.c_void_p), ctypes.sizeof(p))


def _int(value: Any) -> int | None:
    if isinstance(value, bytes | bytearray):
        return int.from_bytes(value, "big") if value else None
    return int(value) if value is not None else None


class Token:
    """A token of a loaded module. Get it from :meth:`Module.open_token` or :func:`open_token`.

    Thread-safe; the same object serves every user of the same card in the
    process. Signing from many threads uses up to ``pool_size`` sessions.
    """

    pool_size: int = 4

    def __init__(self, module: Module, info: TokenInfo) -> None:
        self._module = module
        self._info = info
        self.serial = info.serial
        self.label = info.label
        self._slot_id = info.slot_id
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._epoch = 0  # bumped each time sessions are lost (card pulled, fork)
        self._px_token: Any = None
        self._main: Any = None
        self._idle: list[_Pooled] = []
        self._pool_open = 0
        # Epochs whose pooled sessions are still known to the module: a session
        # of such an epoch that was in use when the pool was emptied is closed
        # when it comes back.
        self._close_on_return: set[int] = set()
        self._logged_in = False
        # The login was lost to a card removal/reset nobody was told about yet:
        # the next operation that needs it raises CardRemoved (once).
        self._login_lost = False
        self._forked = False
        self._generation = module.generation  # the module's, when the sessions were opened
        self._mechanisms: frozenset[int] | None = None
        # Per slot insertion: CK_MECHANISM_INFO flags, and per key the mechanisms
        # the module refused for it (CKR_KEY_TYPE_INCONSISTENT ...).
        self._mech_flags: dict[int, int] = {}
        # (mechanism, None) refuses the mechanism; (CKM_RSA_PKCS, n) only inputs of
        # n bytes (the ANS module signs a SHA-1/SHA-256 DigestInfo with the CPS3
        # signature key and refuses a SHA-384/512 one); the value is the CKR code.
        self._refused: dict[tuple[str, bytes], dict[tuple[int, int | None], int]] = {}
        self.closed = False

    def __repr__(self) -> str:
        state = "logged in" if self._logged_in else "not logged in"
        return f"<Token {self.label!r} serial {self.serial!r} slot {self._slot_id} ({state})>"

    def __enter__(self) -> Token:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state ---------------------------------------------------------------

    @property
    def module(self) -> Module:
        return self._module

    @property
    def slot_id(self) -> int:
        return self._slot_id

    @property
    def is_logged_in(self) -> bool:
        """Whether the holder is logged in. After a fork of this process, asks the
        module (one C_GetSessionInfo): a child may have broken the login."""
        with self._lock:
            self._check_fork()
            if self._logged_in and self._module._forks != self._module._forks_seen:
                self._still_logged_in()
            return self._logged_in

    @property
    def login_lost(self) -> bool:
        """The holder was logged in, and the card was pulled or reset since: the next
        operation that needs the login raises CardRemoved (once)."""
        with self._lock:
            return self._login_lost

    @property
    def info(self) -> TokenInfo:
        """Fresh token information (one C_GetTokenInfo; no login, no PIN try)."""
        with self._lock:
            self._check_fork()
            try:
                self._info = self._module.token_info(self._slot_id)
            except CardRemoved:
                self._lost(close=False)
                if not self._relocate():  # put back in another reader?
                    raise
            return self._info

    @property
    def pin_status(self) -> PinStatus:
        """The holder-PIN state from the token flags, without logging in."""
        return self.info.pin_status

    @property
    def pin_tries_left(self) -> int | None:
        return self.info.pin_tries_left

    def _after_fork(self) -> None:
        # Called in a forked child: the parent's threads may have held these locks.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._forked = True

    def _check_fork(self) -> None:
        if self._forked:
            self._forked = False
            # The child re-initialises the module: the handles mean nothing now,
            # and closing them could close someone else's new session.
            self._drop(close=False)
            self._login_lost = False  # the login was the parent's, not this process's
            self._module.ensure_initialized()
            self._generation = self._module.generation
        elif self._generation != self._module.generation:
            # The module was started again (a forked child broke its sessions,
            # see Module._child_symptom): same as a card reset for this token.
            self._generation = self._module.generation
            if self._logged_in:
                self._login_lost = True
            self._drop(close=False)

    def _close_quietly(self, session: Any) -> None:
        try:
            self._module._call("C_CloseSession", session.close)
        except CpsError as exc:
            log.debug("closing a session of %r: %s", self.label, exc.code_name)

    def _empty_pool(self, *, close: bool) -> None:
        """Forget the signing sessions (closing them if ``close``); those in use are
        closed (if ``close``) or forgotten when they come back."""
        if close:
            for p in self._idle:
                self._close_quietly(p.session)
            if self._pool_open > len(self._idle):
                self._close_on_return.add(self._epoch)
        self._idle = []
        self._pool_open = 0
        self._epoch += 1
        self._cond.notify_all()

    def _drop(self, *, close: bool) -> None:
        """Forget every session (closing them if ``close``) and the login."""
        self._empty_pool(close=close)
        main, self._main = self._main, None
        if close and main is not None:
            self._close_quietly(main)
        self._px_token = None
        self._logged_in = False
        self._mechanisms = None
        self._mech_flags = {}

    def _lost(self, *, close: bool) -> None:
        # The module reported the card gone: handles are invalid from now on.
        # Only close them while the module still knows them (DEVICE_REMOVED /
        # TOKEN_NOT_PRESENT); after SESSION_HANDLE_INVALID the numbers may
        # already belong to someone else's new session.
        with self._lock:
            if self._logged_in or self._main is not None or self._idle:
                log.info("card %r removed: sessions dropped, a new login is needed", self.label)
            if self._logged_in:
                self._login_lost = True
            self._drop(close=close)

    def _login_lost_error(self, function: str) -> SessionLost:
        """The one SessionLost (a CardRemoved) telling that the login died with the card
        (and forgetting it: from now on the token is simply not logged in)."""
        self._login_lost = False
        return SessionLost(
            f"card {self.label!r} was pulled out or reset (or used by another process) "
            "since the holder logged in: the login is lost",
            function=function,
            module=self._module.resolved_path,
        )

    def _revalidate(self) -> None:
        """Notice now whether the card was pulled / reset since the sessions were opened
        (one C_GetSessionInfo), so that a Token handed out again starts clean."""
        with self._lock:
            self._check_fork()
            if self._main is not None and not self.closed:
                self._main_session()

    def _public(self, op: Callable[[], T]) -> T:
        """Run an operation that needs no login; when it meets a dead session (the card
        was pulled and put back, or reset, since), open a new one and try once more.
        A second CardRemoved is real (the card is out) and propagates."""
        with self._lock:
            self._check_fork()
            try:
                return op()
            except CardRemoved as exc:
                log.debug("%r: %s on a dead session; trying once more", self.label,
                          exc.code_name)  # fmt: skip
                if self._main is not None:  # _handle dropped it unless the error came earlier
                    self._lost(close=False)
            return op()

    def _private(self, op: Callable[[], T]) -> T:
        """Run an operation that needs the login: a CardRemoved it meets is the one that
        tells the caller the login is lost; the next call says NotLoggedIn."""
        try:
            return op()
        except CardRemoved:
            with self._lock:
                self._login_lost = False
            raise

    def _handle(self, exc: CpsError) -> None:
        """Bookkeeping for an error seen by an operation; the caller re-raises."""
        if isinstance(exc, SessionLost):
            # The module was started again: its old handles mean nothing.
            self._generation = self._module.generation
            self._lost(close=False)
        elif isinstance(exc, CardRemoved):
            self._lost(close=exc.code in (0x32, 0xE0))
        elif exc.code == CKR_USER_NOT_LOGGED_IN:
            with self._lock:
                self._logged_in = False

    # -- sessions ----------------------------------------------------------------

    def _token_obj(self) -> Any:
        if self._px_token is None:
            try:
                self._px_token = self._module._px_token(self._slot_id)
            except CardRemoved:
                if not self._relocate():
                    raise
                self._px_token = self._module._px_token(self._slot_id)
        return self._px_token

    def _relocate(self) -> bool:
        """Find the card again by serial after it moved to another slot (re-inserted
        in another reader)."""
        if not self.serial:
            return False
        for t in self._module.tokens():
            if t.serial == self.serial and t.label == self.label:
                self._slot_id = t.slot_id
                self._info = t
                return True
        return False

    def _open(self, *, rw: bool) -> Any:
        tok = self._token_obj()
        try:
            return self._module._call("C_OpenSession", tok.open, rw=rw)
        except CpsError as exc:
            if rw and exc.code == CKR_TOKEN_WRITE_PROTECTED:
                return self._module._call("C_OpenSession", tok.open, rw=False)
            self._handle(exc)
            raise

    def _main_state(self) -> int | None:
        """CK_STATE of the main session, or None — after forgetting every session —
        when the module no longer knows it (the card was pulled, maybe put back)."""
        if self._main is None:
            return None
        info = (ctypes.c_ulong * 4)()  # CK_SESSION_INFO: slot, state, flags, device error
        rv = self._module._raw_call("C_GetSessionInfo", ctypes.c_ulong(self._main.handle), info)
        if rv == CKR_OK and int(info[0]) == self._slot_id:
            return int(info[1])
        # Gone; or the module gave the number to a new session of another slot
        # (OpenSC reuses freed handles): not ours to close. After a fork, a dead
        # session may mean a dead module: start it again (Module._child_symptom).
        if self._module._child_symptom(rv, "C_GetSessionInfo") is not None:
            self._generation = self._module.generation
        self._lost(close=rv in (0x32, 0xE0))
        return None

    def _main_session(self) -> Any:
        """The main session, opened on first use (read/write: CPS_DATA is writable) and
        opened again when the card came back since."""
        state = self._main_state()
        if state is None:
            self._main = self._open(rw=True)
        elif self._logged_in and state not in (1, 3):
            # The session survived but its login did not (the card was reset:
            # OpenSC keeps the session and forgets the login).
            log.info("card %r was reset: the login is lost", self.label)
            self._logged_in = False
            self._login_lost = True
            self._empty_pool(close=True)
        return self._main

    def _checkout(self, function: str) -> _Pooled:
        with self._cond:
            while True:
                self._check_fork()
                if self.closed:
                    raise Pkcs11Error("the token was closed", module=self._module.resolved_path)
                if not self._logged_in:
                    if self._login_lost:
                        raise self._login_lost_error(function)
                    raise NotLoggedIn(
                        f"card {self.label!r} is not logged in (or was removed, or this "
                        "process was forked since): log in with the holder PIN",
                        function=function,
                        module=self._module.resolved_path,
                    )
                if self._idle:
                    return self._idle.pop()
                if self._pool_open < self.pool_size:
                    self._pool_open += 1
                    epoch = self._epoch
                    try:
                        # Read-only: an SO login (PUK) is refused while R/O sessions
                        # exist, and unblock() closes these first.
                        return _Pooled(self._open(rw=False), epoch)
                    except BaseException:
                        if epoch == self._epoch:
                            self._pool_open -= 1
                        raise
                self._cond.wait()

    def _checkin(self, pooled: _Pooled) -> None:
        with self._cond:
            if pooled.broken:
                self._close_quietly(pooled.session)
                if pooled.epoch == self._epoch:
                    self._pool_open -= 1
            elif pooled.epoch == self._epoch and not self.closed:
                self._idle.append(pooled)
            elif pooled.epoch in self._close_on_return:
                self._close_quietly(pooled.session)
            self._cond.notify()

    # -- holder PIN ------------------------------------------------------------------

    def _pin_guard(self, info: TokenInfo, function: str, allow_final_try: bool) -> None:
        flags = info.flags
        if flags.user_pin_locked:
            raise PinLocked(
                "the holder PIN is blocked (nothing was sent to the card)",
                function=function,
                code=CKR_PIN_LOCKED,
                code_name="CKF_USER_PIN_LOCKED",
                module=self._module.resolved_path,
            )
        if flags.user_pin_final_try and not allow_final_try:
            raise FinalTryRefused(
                "one holder-PIN try is left: a wrong PIN now blocks the card "
                "(nothing was sent to the card)",
                function=function,
                code_name="CKF_USER_PIN_FINAL_TRY",
                module=self._module.resolved_path,
            )

    def _wrong_pin(self, rv: int, function: str) -> CpsError:
        """The error for a refused holder PIN, with the tries left read afterwards."""
        try:
            after = self._module.token_info(self._slot_id)
        except CpsError:
            after = None
        left = tries_left_of(after.flags, after.max_pin_tries) if after else None
        mod = self._module.resolved_path
        name = _ckr.code_name(rv)
        if rv == CKR_PIN_LOCKED or (after is not None and after.flags.user_pin_locked):
            return PinLocked(
                "wrong holder PIN: the PIN is now blocked" if rv == CKR_PIN_INCORRECT
                else "the holder PIN is blocked",
                function=function, code=rv, code_name=name, module=mod,
            )  # fmt: skip
        if rv == CKR_PIN_INCORRECT:
            return PinIncorrect(
                "wrong holder PIN", tries_left=left, function=function, code=rv,
                code_name=name, module=mod,
            )  # fmt: skip
        return self._module.error_for(rv, function)

    def login(self, pin: Pin | None = None, *, allow_final_try: bool = False) -> None:
        """Log the holder in; every session of the process then is.

        ``pin`` is None only with a PIN-pad reader (the holder types the PIN on
        the reader). Raises PinIncorrect (with ``tries_left`` when the flags tell),
        PinLocked, or FinalTryRefused when one try is left and
        ``allow_final_try`` is not set — in the last two cases C_Login is not
        called. Never retries. A no-op when already logged in.
        """
        if pin is not None and not isinstance(pin, Pin):
            raise PinFormatError("give the holder PIN as a cps_middleware.pkcs11.Pin")
        with self._lock:
            self._check_fork()
            if self._logged_in and self._still_logged_in():
                return
            info = self.info
            pad = info.flags.protected_authentication_path
            if pin is None and not pad:
                raise PinFormatError("a holder PIN is needed (the reader has no PIN pad)")
            self._pin_guard(info, "C_Login", allow_final_try)
            fresh = self._main is None
            session = self._main_session()
            self._login_lost = False  # the caller is logging in again: nothing left to tell
            if pad:
                log.info("waiting for the PIN on the reader's PIN pad (%r)", self.label)
                rv = self._module._raw_call(
                    "C_Login", ctypes.c_ulong(session.handle), CKU_USER, None, 0
                )
            else:
                assert pin is not None
                digits = pin._reveal()
                log.debug("logging in to %r", self.label)
                rv = self._module._raw_call(
                    "C_Login", ctypes.c_ulong(session.handle), CKU_USER, digits, len(digits)
                )
                del digits
            if rv in (CKR_OK, CKR_USER_ALREADY_LOGGED_IN):
                if rv == CKR_USER_ALREADY_LOGGED_IN:
                    # Another user of the module in this process logged in: the
                    # card did not check this PIN.
                    log.warning("%r was already logged in; the PIN was not checked", self.label)
                self._logged_in = True
                log.debug("logged in to %r", self.label)
                return
            # No session may outlive a failed login.
            if fresh:
                self._close_main()
            err = self._wrong_pin(rv, "C_Login")
            self._handle(err)
            log.debug("login to %r refused: %s", self.label, err.code_name)
            raise err

    def _still_logged_in(self) -> bool:
        """Whether the main session is still logged in (the card may have been pulled
        and put back, or another user of the module logged out, since)."""
        state = self._main_state()
        if state in (1, 3):  # CKS_RO_USER_FUNCTIONS, CKS_RW_USER_FUNCTIONS
            return True
        if self._logged_in:
            self._login_lost = True  # the next private operation says so, once
        self._logged_in = False
        return False

    async def login_async(self, pin: Pin | None = None, *, allow_final_try: bool = False) -> None:
        """:meth:`login` in a worker thread: the event loop keeps running meanwhile
        (a PIN-pad login waits for the holder)."""
        await asyncio.to_thread(self.login, pin, allow_final_try=allow_final_try)

    def _close_main(self) -> None:
        main, self._main = self._main, None
        if main is not None:
            self._close_quietly(main)

    def logout(self) -> None:
        """Log out (C_Logout) and close the signing sessions."""
        with self._lock:
            self._check_fork()
            self._login_lost = False
            if not self._logged_in or self._main is None:
                self._logged_in = False
                return
            rv = self._module._raw_call("C_Logout", ctypes.c_ulong(self._main.handle))
            self._logged_in = False
            self._empty_pool(close=True)
            if rv not in (CKR_OK, CKR_USER_NOT_LOGGED_IN):
                err = self._module.error_for(rv, "C_Logout")
                self._handle(err)
                raise err

    def change_pin(self, old: Pin, new: Pin, *, allow_final_try: bool = False) -> None:
        """Change the holder PIN (C_SetPIN). A wrong ``old`` PIN spends a try, so the
        same guards as :meth:`login` apply."""
        if not isinstance(old, Pin) or not isinstance(new, Pin):
            raise PinFormatError("give the PINs as cps_middleware.pkcs11.Pin")
        with self._lock:
            self._check_fork()
            info = self.info
            self._pin_guard(info, "C_SetPIN", allow_final_try)
            fresh = self._main is None
            session = self._main_session()
            a, b = old._reveal(), new._reveal()
            rv = self._module._raw_call(
                "C_SetPIN", ctypes.c_ulong(session.handle), a, len(a), b, len(b)
            )
            del a, b
            if rv == CKR_OK:
                log.info("holder PIN of %r changed", self.label)
                return
            if fresh and not self._logged_in:
                self._close_main()
            err = self._wrong_pin(rv, "C_SetPIN")
            self._handle(err)
            raise err

    def unblock(self, puk: Puk, new_pin: Pin, *, allow_final_try: bool = False) -> None:
        """Unblock the holder PIN with the unblocking code: SO login with the PUK, then
        C_InitPIN with ``new_pin``. Closes this token's sessions first (an SO login
        is refused while a read-only session is open); log in again afterwards.

        Raises PukIncorrect (``tries_left`` when the flags tell), PukLocked, or
        FinalTryRefused when one PUK try is left and ``allow_final_try`` is not set;
        UnblockNotSupported when OpenSC is not configured to unblock (its hint says
        the setting to add). Through OpenSC, a card that lists its unblocking code
        (a CPS3 as issued) is unblocked with C_SetPIN(PUK, new PIN) in an unlogged
        session when C_InitPIN is refused (``set_pin_in_unlogged_session``).
        """
        if not isinstance(puk, Puk) or not isinstance(new_pin, Pin):
            raise PinFormatError("give a cps_middleware.pkcs11.Puk and a Pin")
        mod = self._module.resolved_path
        with self._lock:
            self._check_fork()
            flags = self.info.flags
            if flags.so_pin_locked:
                raise PukLocked(
                    "the unblocking code is blocked (nothing was sent to the card)",
                    function="C_Login", code_name="CKF_SO_PIN_LOCKED", module=mod,
                )  # fmt: skip
            if flags.so_pin_final_try and not allow_final_try:
                raise FinalTryRefused(
                    "one unblocking-code try is left: a wrong code now makes the card "
                    "unusable (nothing was sent to the card)",
                    function="C_Login", code_name="CKF_SO_PIN_FINAL_TRY", module=mod,
                    hint="make sure of the unblocking code, then call again with "
                    "allow_final_try=True",
                )  # fmt: skip
            self._drop(close=True)
            self._login_lost = False
            session = self._open(rw=True)
            try:
                p = puk._reveal()
                rv = self._module._raw_call(
                    "C_Login", ctypes.c_ulong(session.handle), CKU_SO, p, len(p)
                )
                del p
                if rv not in (CKR_OK, CKR_USER_ALREADY_LOGGED_IN):
                    raise self._wrong_puk(rv)
                try:
                    n = new_pin._reveal()
                    rv = self._module._raw_call(
                        "C_InitPIN", ctypes.c_ulong(session.handle), n, len(n)
                    )
                    del n
                    opensc_refused = rv == CKR_FUNCTION_NOT_SUPPORTED and self._is_opensc()
                    if rv != CKR_OK and not opensc_refused:
                        raise _ckr.error_for(rv, function="C_InitPIN", module=mod)
                finally:
                    self._module._raw_call("C_Logout", ctypes.c_ulong(session.handle))
                if opensc_refused:
                    self._unblock_unlogged(puk, new_pin, pin_locked=flags.user_pin_locked)
            except CpsError as exc:
                self._handle(exc)
                raise
            finally:
                with contextlib.suppress(CpsError):
                    self._module._call("C_CloseSession", session.close)
            log.info("holder PIN of %r unblocked", self.label)

    def _unblock_unlogged(self, puk: Puk, new_pin: Pin, *, pin_locked: bool) -> None:
        """OpenSC's other unblock: C_SetPIN(PUK, new PIN) in a session nobody is logged
        in to — what OpenSC does for a card that lists its unblocking code as a
        PKCS#15 object (a CPS3 as issued) when configured with
        ``user_pin_unblock_style = set_pin_in_unlogged_session``. Without that setting
        OpenSC takes the call for a PIN change and checks the PUK as the *PIN*: tried
        only when the PIN is blocked, where that check spends nothing (the card
        answers "blocked"). The PUK was checked right by the SO login before."""
        mod = self._module.resolved_path
        rv = CKR_FUNCTION_NOT_SUPPORTED
        if pin_locked:
            session = self._open(rw=True)
            try:
                p, n = puk._reveal(), new_pin._reveal()
                rv = self._module._raw_call(
                    "C_SetPIN", ctypes.c_ulong(session.handle), p, len(p), n, len(n)
                )
                del p, n
            finally:
                with contextlib.suppress(CpsError):
                    self._module._call("C_CloseSession", session.close)
            if rv == CKR_OK:
                return
            if rv not in (CKR_PIN_LOCKED, CKR_FUNCTION_NOT_SUPPORTED):
                raise _ckr.error_for(rv, function="C_SetPIN", module=mod)
        raise UnblockNotSupported(
            f"OpenSC refused to unblock the holder PIN of {self.label!r}: it is not "
            "configured to (the PIN is still blocked)",
            function="C_InitPIN", code=CKR_FUNCTION_NOT_SUPPORTED,
            code_name=_ckr.code_name(CKR_FUNCTION_NOT_SUPPORTED), module=mod,
        )  # fmt: skip

    def _is_opensc(self) -> bool:
        m = self._module
        return "OpenSC" in m.manufacturer or "opensc" in m.resolved_path.rsplit("/", 1)[-1]

    def _wrong_puk(self, rv: int) -> CpsError:
        mod = self._module.resolved_path
        try:
            flags = self._module.token_info(self._slot_id).flags
        except CpsError:
            flags = None
        if rv == CKR_PIN_LOCKED or (flags is not None and flags.so_pin_locked):
            return PukLocked(
                "wrong unblocking code: it is now blocked" if rv == CKR_PIN_INCORRECT
                else "the unblocking code is blocked",
                function="C_Login", code=rv, code_name=_ckr.code_name(rv), module=mod,
            )  # fmt: skip
        if rv == CKR_PIN_INCORRECT:
            return PukIncorrect(
                "wrong unblocking code",
                tries_left=so_tries_left_of(flags) if flags else None,
                function="C_Login", code=rv, code_name=_ckr.code_name(rv), module=mod,
            )  # fmt: skip
        return self._module.error_for(rv, "C_Login")

    # -- mechanisms ---------------------------------------------------------------

    def mechanisms(self) -> frozenset[int]:
        """The CKM_* values the token offers (C_GetMechanismList), cached per insertion."""
        with self._lock:
            self._check_fork()
            if self._mechanisms is None:

                def read() -> frozenset[int]:
                    tok = self._token_obj()
                    try:
                        mechs = self._module._call("C_GetMechanismList", tok.slot.get_mechanisms)
                    except CpsError as exc:
                        self._handle(exc)
                        raise
                    return frozenset(int(m) for m in mechs)

                self._mechanisms = self._public(read)
            return self._mechanisms

    def mechanism_names(self) -> list[str]:
        """The names of the mechanisms the token offers (``CKM_...``)."""
        return sorted(mechanism_name(m) for m in self.mechanisms())

    def _mechanism_flags(self, mechanism: int) -> int | None:
        with self._lock:
            if mechanism not in self._mech_flags:
                flags = self._module.mechanism_flags(self._slot_id, mechanism)
                if flags is None:
                    return None
                self._mech_flags[mechanism] = flags
            return self._mech_flags[mechanism]

    def key_mechanisms(self, key: KeyRef, purpose: str = "sign") -> frozenset[int]:
        """The mechanisms ``key`` can be used with for ``purpose`` ("sign" or "decrypt"),
        as far as the module tells: its mechanism list, those whose
        C_GetMechanismInfo flags allow the purpose, narrowed by the key's
        CKA_ALLOWED_MECHANISMS when set, less those the module refused for this
        key before (the ANS module lists CKM_SHA256_RSA_PKCS, then refuses it on
        the authentication key with CKR_KEY_TYPE_INCONSISTENT)."""
        want = _CKF_SIGN if purpose == "sign" else _CKF_DECRYPT
        offered = set()
        for m in self.mechanisms():
            flags = self._mechanism_flags(m)
            if flags is None or flags & want:
                offered.add(m)
        if key.allowed_mechanisms is not None:
            offered &= set(key.allowed_mechanisms)
        with self._lock:
            refused = self._refused.get((key.label, key.id), {})
            offered -= {m for m, variant in refused if variant is None}
        return frozenset(offered)

    def _require(self, mechanism: int, function: str) -> None:
        if mechanism not in self.mechanisms():
            raise MechanismUnsupported(
                f"card {self.label!r} cannot do {mechanism_name(mechanism)}",
                available=self.mechanism_names(),
                function=function,
                module=self._module.resolved_path,
            )

    # -- objects -------------------------------------------------------------------

    def _search(self, session: Any, template: dict[Any, Any]) -> list[Any]:
        try:
            return self._module._call("C_FindObjects", lambda: list(session.get_objects(template)))
        except CpsError as exc:
            self._handle(exc)
            raise

    def _attrs(self, obj: Any, keys: Iterable[Any]) -> dict[Any, Any]:
        try:
            return dict(self._module._call("C_GetAttributeValue", obj.get_attributes, list(keys)))
        except CpsError as exc:
            self._handle(exc)
            raise

    def _objects(self, cls: Any, label: str | None, id: bytes | None) -> list[Any]:
        with self._lock:
            self._check_fork()
            template: dict[Any, Any] = {_A.CLASS: cls}
            if label is not None:
                template[_A.LABEL] = label
            if id is not None:
                template[_A.ID] = bytes(id)
            session = self._main_session()
            if cls == _OC.PRIVATE_KEY and self._login_lost:
                raise self._login_lost_error("C_FindObjects")
            return self._search(session, template)

    def _one(self, kind: str, found: list[Any], label: str | None, id: bytes | None) -> Any:
        what = ", ".join(
            f"{k}={v!r}" for k, v in (("label", label), ("CKA_ID", id)) if v is not None
        )
        if not found:
            raise NoSuchObject(
                f"no {kind} with {what or 'any attribute'} on card {self.label!r}",
                module=self._module.resolved_path,
            )
        if len(found) > 1:
            raise MultipleObjects(
                f"{len(found)} {kind}s with {what or 'any attribute'} on card {self.label!r}",
                module=self._module.resolved_path,
            )
        return found[0]

    def _certificate(self, obj: Any) -> StoredCertificate:
        a = self._attrs(obj, (_A.LABEL, _A.ID, _A.VALUE))
        der = bytes(a.get(_A.VALUE, b""))
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise Pkcs11Error(
                f"certificate {a.get(_A.LABEL)!r} on the card is not valid DER: {exc}",
                module=self._module.resolved_path,
            ) from exc
        return StoredCertificate(str(a.get(_A.LABEL, "")), bytes(a.get(_A.ID, b"")), der, cert)

    def certificates(self) -> list[StoredCertificate]:
        """Every certificate object (no login needed)."""
        return self._public(
            lambda: [self._certificate(o) for o in self._objects(_OC.CERTIFICATE, None, None)]
        )

    def certificate(self, label: str | None = None, id: bytes | None = None) -> StoredCertificate:
        """The one certificate with this label and/or CKA_ID (NoSuchObject / MultipleObjects)."""
        return self._public(
            lambda: self._certificate(
                self._one("certificate", self._objects(_OC.CERTIFICATE, label, id), label, id)
            )
        )

    def _keyref(self, obj: Any, object_class: str) -> KeyRef:
        a = self._attrs(
            obj,
            (_A.LABEL, _A.ID, _A.KEY_TYPE, _A.SIGN, _A.DECRYPT, _A.ALWAYS_AUTHENTICATE,
             _A.MODULUS, _A.MODULUS_BITS, _A.PUBLIC_EXPONENT, _A.EC_PARAMS, _A.VERIFY,
             _A.ENCRYPT),
        )  # fmt: skip
        allowed = self._module.allowed_mechanisms(obj.wrapper.session.handle, obj.handle)
        kt = a.get(_A.KEY_TYPE)
        key_type = kt.name if isinstance(kt, _p11.KeyType) else str(kt)
        modulus = _int(a.get(_A.MODULUS))
        bits = _int(a.get(_A.MODULUS_BITS)) or (modulus.bit_length() if modulus else None)
        sign = bool(a.get(_A.SIGN if object_class == "private" else _A.VERIFY, False))
        decrypt = bool(a.get(_A.DECRYPT if object_class == "private" else _A.ENCRYPT, False))
        ec = a.get(_A.EC_PARAMS)
        return KeyRef(
            label=str(a.get(_A.LABEL, "")),
            id=bytes(a.get(_A.ID, b"")),
            object_class=object_class,
            key_type=key_type,
            bits=bits,
            can_sign=sign,
            can_decrypt=decrypt,
            always_authenticate=bool(a.get(_A.ALWAYS_AUTHENTICATE, False)),
            modulus=modulus,
            public_exponent=_int(a.get(_A.PUBLIC_EXPONENT)),
            ec_params=bytes(ec) if ec else None,
            allowed_mechanisms=allowed or None,
        )

    def private_keys(self) -> list[KeyRef]:
        """Every private key the session can see (log in first: most tokens hide them).

        Raises CardRemoved (once) when the login was lost to a card removal/reset."""
        return self._private(
            lambda: [self._keyref(o, "private") for o in self._objects(_OC.PRIVATE_KEY, None, None)]
        )

    def private_key(self, label: str | None = None, id: bytes | None = None) -> KeyRef:
        """The one private key with this label and/or CKA_ID."""

        def find() -> KeyRef:
            found = self._objects(_OC.PRIVATE_KEY, label, id)
            return self._keyref(self._one("private key", found, label, id), "private")

        return self._private(find)

    def public_keys(self) -> list[KeyRef]:
        """The public key objects on the token."""
        return self._public(
            lambda: [self._keyref(o, "public") for o in self._objects(_OC.PUBLIC_KEY, None, None)]
        )

    def public_key(self, label: str | None = None, id: bytes | None = None) -> KeyRef:
        """The one public key matching ``label`` or ``id``."""
        def find() -> KeyRef:
            found = self._objects(_OC.PUBLIC_KEY, label, id)
            return self._keyref(self._one("public key", found, label, id), "public")

        return self._public(find)

    def _data(self, label: str | None) -> list[DataObject]:
        out = []
        for o in self._objects(_OC.DATA, label, None):
            a = self._attrs(o, (_A.LABEL, _A.APPLICATION, _A.VALUE, _A.PRIVATE))
            out.append(
                DataObject(
                    str(a.get(_A.LABEL, "")),
                    str(a.get(_A.APPLICATION, "") or ""),
                    bytes(a.get(_A.VALUE, b"") or b""),
                    bool(a.get(_A.PRIVATE, False)),
                )
            )
        return out

    def data_objects(self) -> list[DataObject]:
        """Every data object visible (the private ones only after login)."""
        return self._public(lambda: self._data(None))

    def data_object(self, label: str) -> bytes:
        """The value of the one data object with this label (CPS_ID_CARD ...).

        A private object after the login was lost to a card removal/reset:
        CardRemoved (once), not NoSuchObject."""
        found = self._public(lambda: self._data(label))
        if not found and self._login_lost:
            raise self._login_lost_error("C_FindObjects")
        return self._one("data object", found, label, None).value  # type: ignore[no-any-return]

    # -- private-key operations ------------------------------------------------------

    def _key_on(self, pooled: _Pooled, key: KeyRef) -> Any:
        ident = (key.label, key.id, key.object_class)
        obj = pooled.keys.get(ident)
        if obj is None:
            cls = _OC.PRIVATE_KEY if key.object_class == "private" else _OC.PUBLIC_KEY
            template: dict[Any, Any] = {_A.CLASS: cls, _A.LABEL: key.label}
            if key.id:
                template[_A.ID] = key.id
            obj = self._one(key.object_class + " key", self._search(pooled.session, template),
                            key.label, key.id or None)  # fmt: skip
            pooled.keys[ident] = obj
        return obj

    def _operate(
        self,
        function: str,
        method: str,
        key: KeyRef,
        mechanism: int,
        data: bytes,
        param: Any,
        pin: Pin | None = None,
        allow_final_try: bool = False,
    ) -> bytes:
        if not isinstance(key, KeyRef):
            raise InvalidInput("key must be a KeyRef from this token")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInput("data must be bytes")
        if key.always_authenticate:
            # The card asks the PIN again for each use of this key (C_Login
            # CKU_CONTEXT_SPECIFIC): the same rules as a login apply.
            pad = False
            if not isinstance(pin, Pin):
                pad = self.info.flags.protected_authentication_path
                if not pad:
                    raise NotLoggedIn(
                        f"key {key.label!r} needs the holder PIN for each use: pass pin=Pin(...)",
                        function=function, module=self._module.resolved_path,
                    )  # fmt: skip
            self._pin_guard(self.info, "C_Login", allow_final_try)
        elif pin is not None:
            raise InvalidInput(f"key {key.label!r} does not take a PIN per use")
        self._require(mechanism, function)
        mech = p11_mechanism(mechanism)
        variant = len(data) if mechanism in _RAW_RSA else None
        with self._lock:
            code = self._refused.get((key.label, key.id), {}).get((mechanism, variant))
        if code is not None:  # refused before: do not ask the card again
            raise self._refusal(function, key, mechanism, code, _ckr.code_name(code))
        pooled = self._checkout(function)
        try:
            obj = self._key_on(pooled, key)
            if key.always_authenticate:
                return self._operate_with_pin(
                    function, pooled, key, obj, mechanism, data, param, pin
                )
            op = getattr(obj, method, None)
            if op is None:
                raise InvalidInput(f"key {key.label!r} cannot be used for {function}")
            try:
                result: bytes = self._module._call(
                    function, op, bytes(data), mechanism=mech, mechanism_param=param
                )
                return result
            except CpsError as exc:
                err = self._operation_error(exc, function, key, mechanism, variant)
                if err is exc:
                    raise
                raise err from exc
        finally:
            self._checkin(pooled)

    def _operation_error(
        self, exc: CpsError, function: str, key: KeyRef, mechanism: int, variant: int | None
    ) -> CpsError:
        """The error to raise for a failed sign/decrypt, after the bookkeeping: a
        mechanism refused for this key is remembered (the next choice skips it);
        a login lost behind the library's back becomes SessionLost."""
        refused = (
            exc.code in _REFUSALS
            or isinstance(exc, MechanismUnsupported)
            or (
                # the ANS module answers a hash-and-sign mechanism on a CPS4's
                # authentication key with CKR_GENERAL_ERROR
                exc.code == CKR_GENERAL_ERROR and mechanism in _HASH_AND_SIGN
            )
            or (
                # ... and a SHA-384/512 DigestInfo with CKM_RSA_PKCS on a CPS4's
                # signature key with CKR_DATA_INVALID (its qualified signature
                # finishes a SHA-1/SHA-256 hash only)
                exc.code == CKR_DATA_INVALID and mechanism in _RAW_RSA and not key.can_decrypt
            )
        )
        if exc.code is not None and refused and not isinstance(exc, CardRemoved):
            with self._lock:
                self._refused.setdefault((key.label, key.id), {})[(mechanism, variant)] = exc.code
            return self._refusal(function, key, mechanism, exc.code, exc.code_name)
        if exc.code in _CARD_MAY_BE_GONE and self._pulled_out():
            removed = CardRemoved(
                f"card {self.label!r} was pulled out during {function}",
                function=function, code=exc.code, code_name=exc.code_name, module=exc.module,
            )  # fmt: skip
            self._handle(removed)
            return removed
        if exc.code == CKR_USER_NOT_LOGGED_IN:
            with self._lock:
                was = self._logged_in
                self._logged_in = False
                self._empty_pool(close=True)
            if was:
                return SessionLost(
                    f"card {self.label!r} forgot the holder's login (it was reset, or "
                    "another process used it)",
                    function=function, code=exc.code, code_name=exc.code_name,
                    module=exc.module,
                )  # fmt: skip
        self._handle(exc)
        return exc

    def _pulled_out(self) -> bool:
        """After a card operation failed for no stated reason: is the card gone? The
        modules learn it from pcscd, which notices at its next poll of the reader,
        so look for a little while (an error path only)."""
        deadline = time.monotonic() + _GONE_WAIT
        info = (ctypes.c_ulong * 4)()  # CK_SESSION_INFO
        while True:
            try:
                if not self._module.slot_has_token(self._slot_id):
                    return True
            except CpsError:
                return True  # the slot itself is gone (reader unplugged)
            main = self._main
            if main is not None:  # the ANS module drops the sessions before the slot
                rv = self._module._raw_call(
                    "C_GetSessionInfo", ctypes.c_ulong(main.handle), info
                )
                if rv in _SESSION_GONE:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _refusal(
        self, function: str, key: KeyRef, mechanism: int, code: int, code_name: str | None
    ) -> MechanismUnsupported:
        if self._is_opensc() and not key.can_decrypt:
            hint = (
                "OpenSC cannot sign with the CPS signature (non-repudiation) key; "
                "signing documents needs the ANS middleware (Cryptolib CPS)"
            )
        elif mechanism in _RAW_RSA:
            hint = "the middleware refuses this hash with this key: sign SHA-256 digests"
        else:
            hint = "the middleware refuses this mechanism with this key"
        return MechanismUnsupported(
            f"card {self.label!r} refused {mechanism_name(mechanism)} with key {key.label!r}",
            function=function, code=code, code_name=code_name,
            module=self._module.resolved_path, hint=hint,
        )  # fmt: skip

    def _operate_with_pin(
        self,
        function: str,
        pooled: _Pooled,
        key: KeyRef,
        obj: Any,
        mechanism: int,
        data: bytes,
        param: Any,
        pin: Pin | None,
    ) -> bytes:
        """C_SignInit / C_DecryptInit, C_Login(CKU_CONTEXT_SPECIFIC), C_Sign / C_Decrypt
        through ctypes, under the module lock. The PIN's digits are only ever an
        argument of the ctypes call, never a local of a frame an exception could
        carry (tracebacks, pytest --showlocals, Sentry)."""
        from cps_middleware.pkcs11._module import CkMechanism

        raw = self._module._raw_call
        h = ctypes.c_ulong(pooled.session.handle)
        keep, m = _ck_mechanism(CkMechanism, mechanism, param)
        init, run = ("C_SignInit", "C_Sign") if function == "C_Sign" else (
            "C_DecryptInit", "C_Decrypt")  # fmt: skip
        blob = bytes(data)
        with self._module._lock:
            rv = raw(init, h, ctypes.byref(m), ctypes.c_ulong(obj.handle))
            if rv != CKR_OK:
                err = self._module.error_for(rv, init)
                raise self._operation_error(
                    err, function, key, mechanism, len(blob) if mechanism in _RAW_RSA else None
                )
            if pin is None:  # PIN pad: the holder types it on the reader
                rv = raw("C_Login", h, _CKU_CONTEXT_SPECIFIC, None, 0)
            else:
                rv = raw("C_Login", h, _CKU_CONTEXT_SPECIFIC, pin._reveal(), len(pin))
            if rv != CKR_OK:
                # The operation may stay active on this session: never reuse it.
                pooled.broken = True
                raise self._wrong_pin(rv, "C_Login")
            size = ctypes.c_ulong(0)
            rv = raw(run, h, blob, len(blob), None, ctypes.byref(size))
            out = ctypes.create_string_buffer(max(int(size.value), 1))
            if rv == CKR_OK:
                rv = raw(run, h, blob, len(blob), out, ctypes.byref(size))
        del keep
        if rv != CKR_OK:
            pooled.broken = True
            err = self._module.error_for(rv, run)
            raise self._operation_error(
                err, function, key, mechanism, len(blob) if mechanism in _RAW_RSA else None
            )
        return out.raw[: size.value]

    def sign(
        self,
        key: KeyRef,
        mechanism: int,
        data: bytes,
        *,
        pss_params: PssParams | None = None,
        pin: Pin | None = None,
        allow_final_try: bool = False,
    ) -> bytes:
        """Sign ``data`` with ``key`` and exactly ``mechanism`` (a CKM_* value).

        * ``CKM_RSA_PKCS``: ``data`` is the DER DigestInfo (the card pads);
        * ``CKM_SHA256_RSA_PKCS`` etc.: ``data`` is the message (the card hashes);
        * ``CKM_RSA_PKCS_PSS``: ``data`` is the digest, ``pss_params`` required;
        * ``CKM_ECDSA``: ``data`` is the digest; the result is r || s.

        ``pin`` only for a key with CKA_ALWAYS_AUTHENTICATE (the PIN is asked for
        each signature; the guards of :meth:`login` apply, ``allow_final_try`` too).

        Raises MechanismUnsupported (listing what the card offers), NotLoggedIn,
        CardRemoved, or the mapped error of the failing call.
        """
        param = check_params(int(mechanism), pss_params)
        return self._private(
            lambda: self._operate(
                "C_Sign", "sign", key, int(mechanism), data, param, pin, allow_final_try
            )
        )

    def decrypt(
        self,
        key: KeyRef,
        mechanism: int,
        data: bytes,
        *,
        oaep_params: OaepParams | None = None,
    ) -> bytes:
        """Decrypt ``data`` with ``key`` (``CKM_RSA_PKCS`` or ``CKM_RSA_PKCS_OAEP``)."""
        param = check_params(int(mechanism), None, oaep_params)
        return self._private(
            lambda: self._operate("C_Decrypt", "decrypt", key, int(mechanism), data, param)
        )

    async def sign_async(
        self,
        key: KeyRef,
        mechanism: int,
        data: bytes,
        *,
        pss_params: PssParams | None = None,
        pin: Pin | None = None,
        allow_final_try: bool = False,
    ) -> bytes:
        """:meth:`sign` in a worker thread (a card takes 100–500 ms per signature)."""
        return await asyncio.to_thread(
            self.sign, key, mechanism, data,
            pss_params=pss_params, pin=pin, allow_final_try=allow_final_try,
        )  # fmt: skip

    # -- end -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close every session of this token (which also logs out)."""
        with self._lock:
            self._check_fork()
            self._drop(close=True)
            self._login_lost = False
            self.closed = True
            key = self.serial or f"slot:{self._slot_id}"
            if self._module._tokens.get(key) is self:
                del self._module._tokens[key]
