"""pytest fixtures for PC/SC: the pcscd daemon and virtual cards on vpcd readers.

``pcscd`` adopts the running pcscd (``scripts/pcscd.sh`` / ``CPS_PCSCD_PIDFILE``)
or starts one for the session. ``virtual_card`` inserts cards and removes
them at teardown, waiting until the reader reports empty so that the next
test's insertion is not missed. ``virtual_cps3`` / ``virtual_cps4`` are ready
cards on ports 35963 / 35964 (``Virtual PCD 35963 00 00`` / ``00 01``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import pytest

from cps_middleware.testing.pcscd import PcscDaemon
from cps_middleware.testing.vpcd import CardModel, SimpleCpsCard, VirtualCard

VirtualCardFactory = Callable[..., VirtualCard]


@pytest.fixture(scope="session")
def pcscd() -> Iterator[PcscDaemon]:
    """The pcscd with vpcd readers (started for the session if none runs)."""
    daemon = PcscDaemon()
    if daemon.running:
        problem = daemon.layout_problem()
        if problem:  # only some readers work: say why, tests on the others still run
            warnings.warn(problem, pytest.PytestWarning, stacklevel=1)
        yield daemon
        return
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def virtual_card(pcscd: PcscDaemon) -> Iterator[VirtualCardFactory]:
    """``virtual_card(model, port=35963, insert=True)`` → an inserted :class:`VirtualCard`."""
    cards: list[VirtualCard] = []

    def make(model: CardModel, *, port: int = 35963, insert: bool = True) -> VirtualCard:
        card = VirtualCard(model, port=port)
        cards.append(card)
        if insert:
            card.insert()
        return card

    yield make
    for card in reversed(cards):
        if card.inserted:
            card.remove()


@pytest.fixture
def virtual_cps3(virtual_card: VirtualCardFactory) -> VirtualCard:
    return virtual_card(SimpleCpsCard.cps3(), port=35963)


@pytest.fixture
def virtual_cps4(virtual_card: VirtualCardFactory) -> VirtualCard:
    return virtual_card(SimpleCpsCard.cps4(), port=35964)
