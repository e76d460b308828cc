"""A PC/SC context that survives pcscd restarts.

pcsc-lite invalidates every context when pcscd stops or restarts (calls then
fail with ``SCARD_E_NO_SERVICE`` or ``SCARD_E_INVALID_HANDLE``). A
:class:`PcscContext` notices those codes, establishes a new context and retries
the call once, so a long-running process keeps working after the service comes
back. While the service is down the call raises
:class:`~cps_middleware.errors.PcscServiceUnavailable` with a hint.

pyscard is used through its low-level ``smartcard.scard`` module: return codes
come back as numbers, mapped to the error tree by one table (``_codes``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from smartcard import scard

from cps_middleware.errors import PcscError
from cps_middleware.pcsc import _codes

__all__ = ["PNP_READER", "PcscContext", "default_context"]

#: The pseudo-reader whose state changes when a reader is plugged or unplugged.
PNP_READER = "\\\\?PnP?\\Notification"

_T = TypeVar("_T")


class PcscContext:
    """One PC/SC context, (re-)established on demand; thread-safe.

    pcsc-lite serialises the calls made on one context, so a thread that waits
    for events (the watcher) uses a context of its own; :meth:`cancel` may be
    called from any thread to wake it.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._handle: int | None = None
        self.generation = 0  #: how many times a context was established (for tests and logs)

    # -- life cycle -----------------------------------------------------------

    def handle(self) -> int:
        """The PC/SC context handle, established on first use."""
        with self._lock:
            if self._handle is None:
                try:
                    rc, handle = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
                except scard.error as exc:  # pragma: no cover - pyscard raises only on misuse
                    raise PcscError(str(exc), function="SCardEstablishContext") from exc
                if rc != _codes.SCARD_S_SUCCESS:
                    raise _codes.error_for("SCardEstablishContext", rc)
                self._handle = handle
                self.generation += 1
            return self._handle

    def renew(self, failed: int | None = None) -> None:
        """Drop the current context (if any); the next call makes a new one.

        With ``failed``, only if that handle is still the current one: another
        thread may already have replaced it.
        """
        with self._lock:
            if failed is not None and failed != self._handle:
                return
            old, self._handle = self._handle, None
        if old is not None:
            # The old context may belong to a pcscd that is gone: ignore the answer.
            scard.SCardReleaseContext(old)

    def release(self) -> None:
        """Release the PC/SC context (idempotent)."""
        self.renew()

    def cancel(self) -> None:
        """Wake a thread blocked in :meth:`get_status_change` on this context."""
        handle = self._handle
        if handle is not None:
            scard.SCardCancel(handle)

    def __enter__(self) -> PcscContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- calls ------------------------------------------------------------------

    def call(
        self,
        function: str,
        op: Callable[[int], tuple[int, _T]],
        *,
        reader: str | None = None,
        ok: Sequence[int] = (),
    ) -> tuple[int, _T]:
        """Run ``op(handle)`` → ``(rc, value)``; renew the context once if pcscd went away.

        Codes in ``ok`` are returned to the caller instead of raised.
        """
        for attempt in (0, 1):
            handle = self.handle()
            try:
                rc, value = op(handle)
            except scard.error as exc:  # pragma: no cover - pyscard raises only on misuse
                raise PcscError(str(exc), function=function, module=reader) from exc
            rc &= 0xFFFFFFFF
            if rc == _codes.SCARD_S_SUCCESS or rc in ok:
                return rc, value
            if rc in _codes.CONTEXT_LOST and attempt == 0:
                self.renew(handle)
                continue
            err = _codes.error_for(function, rc, reader=reader)
            raise err
        raise AssertionError("unreachable")  # pragma: no cover

    def list_reader_names(self) -> list[str]:
        """Reader names; an empty list when pcscd has no reader."""
        rc, names = self.call(
            "SCardListReaders",
            lambda h: _pair(scard.SCardListReaders(h, [])),
            ok=(_codes.SCARD_E_NO_READERS_AVAILABLE,),
        )
        return [] if rc else list(names)

    def get_status_change(
        self, timeout_ms: int, states: list[tuple[str, int]] | list[tuple[str, int, list[int]]]
    ) -> tuple[int, list[tuple[str, int, list[int]]]]:
        """SCardGetStatusChange; returns ``(rc, states)``, rc being 0, TIMEOUT or CANCELLED."""
        return self.call(
            "SCardGetStatusChange",
            lambda h: _pair(scard.SCardGetStatusChange(h, timeout_ms, states)),
            ok=(_codes.SCARD_E_TIMEOUT, _codes.SCARD_E_CANCELLED),
        )


def _pair(result: Any) -> tuple[int, Any]:
    rc, value = result
    return int(rc), value


_default: PcscContext | None = None
_default_lock = threading.Lock()


def default_context() -> PcscContext:
    """The process-wide context used when a function is not given one."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PcscContext()
        return _default
