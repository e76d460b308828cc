"""PC/SC benchmark: discovery time with 2 virtual readers, insertion event latency.

Run: ``.venv/bin/python benchmarks/bench_pcsc.py`` (needs pcscd with the vpcd
readers: ``bash scripts/pcscd.sh start``). Goals: discovery < 50 ms excluding
card I/O; insertion event < 0.5 s; an APDU round trip through pcscd and a vpcd
virtual card < 5 ms (TCP_NODELAY + TCP_QUICKACK: no 40 ms delayed-ACK stall).
pyscard's own ``CardMonitor`` is measured in the same run for comparison.
"""

from __future__ import annotations

import statistics
import threading
import time

from smartcard.CardMonitoring import CardMonitor, CardObserver

from cps_middleware.discovery import discover
from cps_middleware.pcsc import CardConnection, CardWatcher, EventKind, list_readers
from cps_middleware.testing.vpcd import SimpleCpsCard, VirtualCard

PORTS = (35963, 35964)
ROUNDS = 5


def _ms(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:7.1f} ms  "
            f"max {max(values) * 1000:7.1f} ms  (n={len(values)})")


def bench_discovery(cards: list[VirtualCard]) -> list[float]:
    times = []
    for _ in range(50):
        t = time.perf_counter()
        found = discover(pkcs11=False)
        times.append(time.perf_counter() - t)
    assert {c.reader for c in found} >= {c.reader for c in cards}
    return times


def bench_list_readers() -> list[float]:
    times = []
    for _ in range(50):
        t = time.perf_counter()
        list_readers()
        times.append(time.perf_counter() - t)
    return times


def bench_apdu(card: VirtualCard) -> list[float]:
    times = []
    with CardConnection(card.reader) as conn:
        for _ in range(50):
            t = time.perf_counter()
            conn.transmit(bytes.fromhex("00200001"))  # VERIFY without data: tries left
            times.append(time.perf_counter() - t)
    return times


def bench_watcher(card: VirtualCard) -> tuple[list[float], list[float]]:
    inserted, removed = [], []
    with CardWatcher(readers=[card.reader], initial=False) as watcher:
        events = watcher.events(timeout=5)
        for _ in range(ROUNDS):
            card.insert(wait=False)
            assert card.inserted_at is not None
            ev = next(e for e in events if e.kind is EventKind.CARD_INSERTED)
            inserted.append(ev.timestamp - card.inserted_at)
            t = time.monotonic()
            card.remove(wait=False)
            ev = next(e for e in events if e.kind is EventKind.CARD_REMOVED)
            removed.append(ev.timestamp - t)
    return inserted, removed


class _Observer(CardObserver):  # type: ignore[misc]
    def __init__(self, reader: str) -> None:
        self.reader = reader
        self.added = threading.Event()
        self.added_at = 0.0

    def update(self, observable: object, handlers: tuple[list[object], list[object]]) -> None:
        added, _removed = handlers
        if any(str(c.reader) == self.reader for c in added):  # type: ignore[attr-defined]
            self.added_at = time.monotonic()
            self.added.set()


def bench_cardmonitor(card: VirtualCard) -> list[float]:
    latencies = []
    monitor = CardMonitor()
    observer = _Observer(card.reader)
    monitor.addObserver(observer)
    try:
        time.sleep(0.5)  # let the monitor see the initial state
        for _ in range(ROUNDS):
            observer.added.clear()
            card.insert(wait=False)
            assert card.inserted_at is not None
            if not observer.added.wait(10):
                raise RuntimeError("CardMonitor missed the insertion")
            latencies.append(observer.added_at - card.inserted_at)
            card.remove()
    finally:
        monitor.deleteObserver(observer)
    return latencies


def main() -> None:
    cards = [VirtualCard(SimpleCpsCard.cps3(), port=PORTS[0]),
             VirtualCard(SimpleCpsCard.cps4(), port=PORTS[1])]
    for c in cards:
        c.insert()
    try:
        disc = bench_discovery(cards)
        lr = bench_list_readers()
        apdu = bench_apdu(cards[0])
    finally:
        for c in cards:
            c.remove()
    ours, ours_removed = bench_watcher(cards[0])
    pyscard = bench_cardmonitor(cards[0])
    print("PC/SC benchmark (pcscd + vpcd, 2 virtual cards inserted)")
    print(f"  discover(pkcs11=False)     {_ms(disc)}   goal < 50 ms")
    print(f"  list_readers()             {_ms(lr)}")
    print(f"  APDU round trip (VERIFY)   {_ms(apdu)}   goal < 5 ms")
    print("insertion event latency (card connects to vpcd -> event delivered)")
    print(f"  CardWatcher (ours)         {_ms(ours)}   goal < 500 ms")
    print(f"  pyscard CardMonitor        {_ms(pyscard)}")
    print(f"removal event latency: CardWatcher {_ms(ours_removed)}")
    print("(pcscd polls a vpcd reader every 400 ms: both watchers wait for that poll)")


if __name__ == "__main__":
    main()
