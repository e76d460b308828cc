"""The card watcher against a real pcscd: events, iterators, clean stop.

The event latency (goal < 0.5 s) is measured by ``benchmarks/bench_pcsc.py``.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time

import pytest

from cps_middleware.cards.atr import CardGeneration
from cps_middleware.pcsc import CardEvent, CardWatcher, EventKind
from cps_middleware.testing.vpcd import SimpleCpsCard, VirtualCard

pytestmark = pytest.mark.pcsc

READER = "Virtual PCD 35963 00 00"


def _watcher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cps-card-watcher"]


def test_insert_remove_events(cps_pcscd) -> None:  # type: ignore[no-untyped-def]
    card = VirtualCard(SimpleCpsCard.cps3(), port=35963)
    seen: list[CardEvent] = []
    with CardWatcher(seen.append, readers=[READER]) as watcher:
        events = watcher.events(timeout=5)
        for _ in range(3):
            card.insert(wait=False)
            assert card.inserted_at is not None
            ev = next(events)
            assert ev.kind is EventKind.CARD_INSERTED and ev.reader == READER
            assert ev.identification is not None
            assert ev.identification.generation is CardGeneration.CPS3
            card.remove(wait=False)
            ev = next(events)
            assert ev.kind is EventKind.CARD_REMOVED
    assert not _watcher_threads()
    kinds = [e.kind for e in seen if not e.initial]
    assert kinds == [EventKind.CARD_INSERTED, EventKind.CARD_REMOVED] * 3
    assert seen[0].kind is EventKind.READER_ADDED and seen[0].initial


def test_initial_card_reported(cps_virtual_cps4: VirtualCard) -> None:
    with CardWatcher(readers=[cps_virtual_cps4.reader]) as watcher:
        first = list(watcher.events(timeout=0.2))
    assert not first  # the iterator starts after start(): initial events went before
    seen: list[CardEvent] = []
    with CardWatcher(seen.append, readers=[cps_virtual_cps4.reader]):
        pass
    inserted = [e for e in seen if e.kind is EventKind.CARD_INSERTED]
    assert len(inserted) == 1 and inserted[0].initial
    assert inserted[0].atr == cps_virtual_cps4.model.atr


def test_no_busy_wait_and_prompt_stop(cps_pcscd) -> None:  # type: ignore[no-untyped-def]
    watcher = CardWatcher(readers=[READER]).start()
    cpu0 = time.process_time()
    time.sleep(1.0)
    cpu = time.process_time() - cpu0
    t = time.monotonic()
    watcher.stop()
    stop_time = time.monotonic() - t
    assert cpu < 0.05, f"watcher used {cpu:.3f} s CPU in 1 s idle"
    assert stop_time < 0.5
    assert not watcher.running and not _watcher_threads()
    assert all(not t.daemon for t in threading.enumerate() if t.name == "cps-card-watcher")


def test_iterator_ends_on_stop(cps_pcscd) -> None:  # type: ignore[no-untyped-def]
    watcher = CardWatcher(readers=[READER], initial=False).start()
    it = iter(watcher)
    threading.Timer(0.2, watcher.stop).start()
    t = time.monotonic()
    assert list(it) == []
    assert time.monotonic() - t < 2


def test_async_iterator(cps_pcscd) -> None:  # type: ignore[no-untyped-def]
    card = VirtualCard(SimpleCpsCard.cps3(), port=35963)

    async def scenario() -> list[EventKind]:
        kinds: list[EventKind] = []
        with CardWatcher(readers=[READER], initial=False) as watcher:
            loop = asyncio.get_running_loop()
            aiter_ = watcher.aevents()
            loop.call_later(0.05, functools.partial(card.insert, wait=False))
            async for ev in aiter_:
                kinds.append(ev.kind)
                if ev.kind is EventKind.CARD_INSERTED:
                    await loop.run_in_executor(None, functools.partial(card.remove, wait=False))
                else:
                    break
        return kinds

    try:
        kinds = asyncio.run(asyncio.wait_for(scenario(), 10))
    finally:
        if card.inserted:
            card.remove()
    assert kinds == [EventKind.CARD_INSERTED, EventKind.CARD_REMOVED]


def test_callback_error_does_not_kill_watcher(cps_pcscd) -> None:  # type: ignore[no-untyped-def]
    def bad(_ev: CardEvent) -> None:
        raise RuntimeError("consumer bug")

    with CardWatcher(bad, readers=[READER]) as watcher:
        assert watcher.running
    assert watcher.callback_errors and isinstance(watcher.callback_errors[0], RuntimeError)
