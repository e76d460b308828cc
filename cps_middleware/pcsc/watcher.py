"""Watch readers and cards come and go: callbacks, an iterator and an async iterator.

One thread blocks in ``SCardGetStatusChange`` (``INFINITE`` timeout) on a
context of its own, with pcsc-lite's ``\\\\?PnP?\\Notification`` pseudo-reader
so that reader plug/unplug wakes it too. Nothing polls: :meth:`CardWatcher.stop`
wakes the thread with ``SCardCancel`` and joins it. The thread is not a daemon
thread; it is also stopped at interpreter shutdown if the caller forgot.

While pcscd is down the watcher retries establishing a context every
``retry_interval`` seconds (there is nothing to block on) and emits
``SERVICE_LOST`` / ``SERVICE_RESTORED``; after a restart it compares the
readers it knew with the new ones, so no insertion or removal goes unreported.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import queue
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass

from smartcard import scard

from cps_middleware.cards.atr import AtrIdentification, identify_atr
from cps_middleware.errors import NoReaders, PcscError, PcscServiceUnavailable
from cps_middleware.pcsc import _codes
from cps_middleware.pcsc.context import PNP_READER, PcscContext

__all__ = ["CardEvent", "CardWatcher", "EventKind"]

_INFINITE = 0xFFFFFFFF


class EventKind(enum.Enum):
    """What happened in a reader: a card inserted or removed, a reader added or removed."""
    READER_ADDED = "reader added"
    READER_REMOVED = "reader removed"
    CARD_INSERTED = "card inserted"
    CARD_REMOVED = "card removed"
    SERVICE_LOST = "PC/SC service lost"
    SERVICE_RESTORED = "PC/SC service restored"


@dataclass(frozen=True)
class CardEvent:
    """One change. ``timestamp`` is ``time.monotonic()`` when the watcher saw it."""

    kind: EventKind
    reader: str | None
    atr: bytes | None = None
    identification: AtrIdentification | None = None
    timestamp: float = 0.0
    initial: bool = False  #: the card/reader was already there when the watcher started


_Callback = Callable[[CardEvent], object]
_STOP = object()


class CardWatcher:
    """Report reader and card changes; use :meth:`start`/:meth:`stop` or ``with``.

    ``readers``: names to watch (default: every reader). ``initial``: report
    cards and readers already present as ``CARD_INSERTED`` / ``READER_ADDED``
    events with ``initial=True``. Events go to every callback (called in the
    watcher thread; an exception there is kept in :attr:`callback_errors`) and
    to every open iterator.
    """

    def __init__(
        self,
        callback: _Callback | None = None,
        *,
        readers: Iterable[str] | None = None,
        initial: bool = True,
        retry_interval: float = 0.5,
    ) -> None:
        self._callbacks: list[_Callback] = [callback] if callback else []
        self._filter = frozenset(readers) if readers is not None else None
        self._initial = initial
        self._retry_interval = retry_interval
        self._ctx = PcscContext()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._lock = threading.Lock()
        self._queues: list[queue.Queue[object]] = []
        self._async_queues: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[object]]] = []
        self._states: dict[str, int] = {}
        self._pnp_state = scard.SCARD_STATE_UNAWARE
        self.callback_errors: list[BaseException] = []
        self.error: BaseException | None = None  #: what ended the thread, if not stop()
        self.last_error: BaseException | None = None  #: last PC/SC error the thread got over

    # -- life cycle -----------------------------------------------------------------

    def add_callback(self, callback: _Callback) -> None:
        """Also call ``callback`` with every event from now on."""
        with self._lock:
            self._callbacks.append(callback)

    def start(self) -> CardWatcher:
        """Start the thread; returns once the first state of every reader is known."""
        if self._thread is not None:
            raise PcscError("the watcher is already started")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="cps-card-watcher")
        self._thread.start()
        _register_shutdown(self)
        self._started.wait()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """Wake the thread (SCardCancel), join it, end every iterator."""
        self._stopping.set()
        thread = self._thread
        if thread is None:
            return
        if thread is threading.current_thread():  # stop() from a callback: just wake up
            self._ctx.cancel()
            return
        while thread.is_alive():
            self._ctx.cancel()
            thread.join(0.05 if timeout is None else min(0.05, timeout))
            if timeout is not None:
                timeout -= 0.05
                if timeout <= 0:
                    break
        self._thread = None
        self._ctx.release()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> CardWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- consumers ------------------------------------------------------------------

    def events(self, timeout: float | None = None) -> Iterator[CardEvent]:
        """Iterate over events from this call on; ends when the watcher stops.

        With ``timeout``, the iteration also ends after ``timeout`` seconds
        without an event.
        """
        q: queue.Queue[object] = queue.Queue()
        with self._lock:  # subscribe now, not at the first next()
            self._queues.append(q)
        return self._iterate(q, timeout)

    def _iterate(self, q: queue.Queue[object], timeout: float | None) -> Iterator[CardEvent]:
        try:
            while self.running or not q.empty():
                try:
                    item = q.get(timeout=timeout)
                except queue.Empty:
                    return
                if item is _STOP:
                    return
                assert isinstance(item, CardEvent)
                yield item
        finally:
            with self._lock:
                self._queues.remove(q)

    def __iter__(self) -> Iterator[CardEvent]:
        return self.events()

    def aevents(self) -> AsyncIterator[CardEvent]:
        """``async for`` over events from this call on; ends when the watcher stops.

        Call it from the event loop that will consume the events.
        """
        entry = (asyncio.get_running_loop(), asyncio.Queue[object]())
        with self._lock:
            self._async_queues.append(entry)
        return self._aiterate(entry)

    async def _aiterate(
        self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Queue[object]]
    ) -> AsyncIterator[CardEvent]:
        q = entry[1]
        try:
            while self.running or not q.empty():
                item = await q.get()
                if item is _STOP:
                    return
                assert isinstance(item, CardEvent)
                yield item
        finally:
            with self._lock:
                self._async_queues.remove(entry)

    def __aiter__(self) -> AsyncIterator[CardEvent]:
        return self.aevents()

    def _emit(self, event: CardEvent) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
            queues = list(self._queues)
            aqueues = list(self._async_queues)
        for cb in callbacks:
            try:
                cb(event)
            except Exception as exc:  # a consumer's bug must not kill the watcher
                self.callback_errors.append(exc)
        self._deliver(event, queues, aqueues)

    def _deliver(
        self,
        item: object,
        queues: list[queue.Queue[object]],
        aqueues: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[object]]],
    ) -> None:
        for q in queues:
            q.put(item)
        for loop, aq in aqueues:
            with contextlib.suppress(RuntimeError):  # that loop is closed: iterator gone
                loop.call_soon_threadsafe(aq.put_nowait, item)

    # -- the thread -------------------------------------------------------------------

    def _watched(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if self._filter is None or n in self._filter]

    def _run(self) -> None:
        first = True
        service_up = True
        try:
            while not self._stopping.is_set():
                try:
                    self._sync_readers(initial=first)
                    if not service_up:
                        service_up = True
                        self._emit(CardEvent(EventKind.SERVICE_RESTORED, None, timestamp=_now()))
                    first = False
                    self._started.set()
                    self._wait_loop()
                except PcscServiceUnavailable:
                    self._started.set()
                    first = False
                    if service_up:
                        service_up = False
                        self._emit(CardEvent(EventKind.SERVICE_LOST, None, timestamp=_now()))
                    self._ctx.renew()
                    # No context to block on while pcscd is down: wait, then try again.
                    self._stopping.wait(self._retry_interval)
                except PcscError as exc:
                    # Anything else (odd codes when pcscd dies under a blocked call):
                    # start over with a new context; a service that is really gone
                    # shows up as PcscServiceUnavailable on the next round.
                    self.last_error = exc
                    self._started.set()
                    first = False
                    self._ctx.renew()
                    self._stopping.wait(self._retry_interval)
        except BaseException as exc:  # pragma: no cover - reported to the caller
            self.error = exc
        finally:
            self._started.set()
            with self._lock:
                queues, aqueues = list(self._queues), list(self._async_queues)
            self._deliver(_STOP, queues, aqueues)

    def _sync_readers(self, *, initial: bool) -> None:
        """Compare the reader list (and each reader's card) with what we knew."""
        names = self._watched(self._ctx.list_reader_names())
        now = _now()
        for gone in [n for n in self._states if n not in names]:
            if self._states.pop(gone) & scard.SCARD_STATE_PRESENT:
                self._emit(CardEvent(EventKind.CARD_REMOVED, gone, timestamp=now))
            self._emit(CardEvent(EventKind.READER_REMOVED, gone, timestamp=now))
        new = [n for n in names if n not in self._states]
        if new:
            try:
                _rc, states = self._ctx.get_status_change(
                    0, [(n, scard.SCARD_STATE_UNAWARE) for n in new]
                )
            except NoReaders:
                return  # a reader vanished meanwhile: the next sync sees it
            now = _now()
            for name, state, atr in states:
                self._states[name] = state & ~scard.SCARD_STATE_CHANGED
                if initial and not self._initial:
                    continue
                self._emit(CardEvent(EventKind.READER_ADDED, name, timestamp=now, initial=initial))
                if state & scard.SCARD_STATE_PRESENT and atr:
                    self._emit(_inserted(name, atr, now, initial=initial))
        _rc, pnp = self._ctx.get_status_change(0, [(PNP_READER, scard.SCARD_STATE_UNAWARE)])
        self._pnp_state = pnp[0][1] & ~scard.SCARD_STATE_CHANGED

    def _wait_loop(self) -> None:
        while not self._stopping.is_set():
            names = list(self._states)
            request = [(n, self._states[n]) for n in names] + [(PNP_READER, self._pnp_state)]
            try:
                rc, states = self._ctx.get_status_change(_INFINITE, request)
            except NoReaders:
                self._sync_readers(initial=False)  # a watched reader disappeared
                continue
            if rc == _codes.SCARD_E_CANCELLED or self._stopping.is_set():
                return
            now = _now()
            resync = False
            for name, state, atr in states:
                if name == PNP_READER:
                    if state & scard.SCARD_STATE_CHANGED:
                        resync = True
                        self._pnp_state = state & ~scard.SCARD_STATE_CHANGED
                    continue
                if not state & scard.SCARD_STATE_CHANGED:
                    continue
                self._compare(name, self._states[name], state, atr, now)
                self._states[name] = state & ~scard.SCARD_STATE_CHANGED
                if state & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE):
                    resync = True
            if resync:
                self._sync_readers(initial=False)

    def _compare(self, name: str, old: int, new: int, atr: list[int], now: float) -> None:
        was = bool(old & scard.SCARD_STATE_PRESENT)
        now_present = bool(new & scard.SCARD_STATE_PRESENT)
        # pcsc-lite counts card events in the high word: a jump of 2 or more while
        # "present" both times is a removal and an insertion between two wake-ups.
        swapped = was and now_present and ((new >> 16) - (old >> 16)) & 0xFFFF >= 2
        if was and (not now_present or swapped):
            self._emit(CardEvent(EventKind.CARD_REMOVED, name, timestamp=now))
        if now_present and (not was or swapped) and atr:
            self._emit(_inserted(name, atr, now))


def _inserted(name: str, atr: list[int], now: float, *, initial: bool = False) -> CardEvent:
    raw = bytes(atr)
    return CardEvent(
        EventKind.CARD_INSERTED, name, raw, identify_atr(raw), timestamp=now, initial=initial
    )


def _now() -> float:
    return time.monotonic()


_live: weakref.WeakSet[CardWatcher] = weakref.WeakSet()
_hook_installed = False
_hook_lock = threading.Lock()


def _register_shutdown(watcher: CardWatcher) -> None:
    """Stop forgotten watchers before the interpreter joins non-daemon threads."""
    global _hook_installed
    _live.add(watcher)
    with _hook_lock:
        if _hook_installed:
            return
        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            register(_stop_all)
            _hook_installed = True


def _stop_all() -> None:
    for watcher in list(_live):
        watcher.stop(timeout=2.0)
