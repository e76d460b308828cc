"""pytest fixtures for PC/SC: the pcscd daemon and virtual cards on vpcd readers.

``cps_pcscd`` adopts the running pcscd (``scripts/pcscd.sh`` /
``CPS_PCSCD_PIDFILE``); it starts one for the session only when allowed (ini
``cps_start_pcscd = true``, ``--cps-start-pcscd`` or ``CPS_START_PCSCD=1``),
else the test is skipped. ``cps_virtual_card`` inserts cards and removes them
at teardown, waiting until the reader reports empty so that the next test's
insertion is not missed. ``cps_virtual_cps3`` / ``cps_virtual_cps4`` are ready
cards on ports 35963 / 35964 (``Virtual PCD 35963 00 00`` / ``00 01``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator

import pytest

from cps_middleware.testing.pcscd import PcscDaemon
from cps_middleware.testing.vpcd import CardModel, SimpleCpsCard, VirtualCard

VirtualCardFactory = Callable[..., VirtualCard]


def may_start_pcscd(config: pytest.Config) -> bool:
    """Whether this run allows the fixtures to start a pcscd (opt-in, see the module doc)."""
    option = config.getoption("cps_start_pcscd", default=None)
    if option:
        return True
    if os.environ.get("CPS_START_PCSCD", "").lower() in ("1", "true", "yes", "on"):
        return True
    try:
        return bool(config.getini("cps_start_pcscd"))
    except ValueError:  # the plugin's ini option is not registered (plugin loaded late)
        return False


@pytest.fixture(scope="session")
def cps_pcscd(pytestconfig: pytest.Config) -> Iterator[PcscDaemon]:
    """The pcscd with vpcd readers: the running one, else one started for the session (opt-in)."""
    daemon = PcscDaemon()
    if daemon.running:
        problem = daemon.layout_problem()
        if problem:  # only some readers work: say why, tests on the others still run
            warnings.warn(problem, pytest.PytestWarning, stacklevel=1)
        yield daemon
        return
    if not may_start_pcscd(pytestconfig):
        pytest.skip("no pcscd runs; set the ini option cps_start_pcscd = true (or "
                    "--cps-start-pcscd, or CPS_START_PCSCD=1) to let the tests start one")
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def cps_virtual_card(cps_pcscd: PcscDaemon) -> Iterator[VirtualCardFactory]:
    """``cps_virtual_card(model, port=35963, insert=True)`` → an inserted :class:`VirtualCard`."""
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
def cps_virtual_cps3(cps_virtual_card: VirtualCardFactory) -> VirtualCard:
    return cps_virtual_card(SimpleCpsCard.cps3(), port=35963)


@pytest.fixture
def cps_virtual_cps4(cps_virtual_card: VirtualCardFactory) -> VirtualCard:
    return cps_virtual_card(SimpleCpsCard.cps4(), port=35964)
