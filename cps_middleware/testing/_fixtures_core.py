"""pytest fixtures: the test PKI and SoftHSM-backed CPS test cards.

* ``cps_pki`` (session) — a `TestPki` shaped like IGC-Santé TEST;
* ``cps_cards_dir`` (session) — a private cards directory, exported as
  ``CPS_TEST_CARDS_DIR`` so that the test-token module (in this process and in
  subprocesses) sees the cards made in it;
* ``cps_card_factory`` (session) — ``factory(**CpsTestCard kwargs)`` makes a card
  once per distinct set of arguments and hands it back in a fresh state
  (present, full PIN/PUK counters, no latency);
* ``cps_card`` — a CPS3 test card (PKCS#1 v1.5 only, like a real CPS3);
* ``cps4_card`` — a CPS4 test card (adds RSA-PSS);
* ``cps_ec_card`` — a test card with EC P-256 keys.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cps_middleware.testing.pki import TestHolder, TestPki

if TYPE_CHECKING:
    from cps_middleware.testing.testcard import CpsTestCard

CardFactory = Callable[..., "CpsTestCard"]


@pytest.fixture(scope="session")
def cps_pki() -> TestPki:
    return TestPki(seed="cps-middleware-tests")


@pytest.fixture(scope="session")
def cps_cards_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("cps-testcards")
    old = os.environ.get("CPS_TEST_CARDS_DIR")
    os.environ["CPS_TEST_CARDS_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("CPS_TEST_CARDS_DIR", None)
    else:
        os.environ["CPS_TEST_CARDS_DIR"] = old


@pytest.fixture(scope="session")
def cps_card_factory(cps_pki: TestPki, cps_cards_dir: Path) -> CardFactory:
    made: dict[str, CpsTestCard] = {}

    def factory(**kwargs: object) -> CpsTestCard:
        key = repr(sorted(kwargs.items()))
        card = made.get(key)
        if card is None:
            from cps_middleware.testing.testcard import CpsTestCard

            kwargs.setdefault("pki", cps_pki)
            card = CpsTestCard(cps_cards_dir, **kwargs).create()  # type: ignore[arg-type]
            made[key] = card
        else:
            card.insert()
            card.reset_counters()
            card.set_latency(int(kwargs.get("latency_ms", 0)))  # type: ignore[call-overload]
        return card

    return factory


@pytest.fixture
def cps_card(cps_card_factory: CardFactory) -> CpsTestCard:
    return cps_card_factory(generation="CPS3")


@pytest.fixture
def cps4_card(cps_card_factory: CardFactory) -> CpsTestCard:
    return cps_card_factory(
        generation="CPS4",
        holder=TestHolder(
            given_name="MARIE",
            surname="PHARMA-TEST",
            profession_code=21,
            id_number="10009876543",
            card_number="8025000001/2800000002",
        ),
    )


@pytest.fixture
def cps_ec_card(cps_card_factory: CardFactory) -> CpsTestCard:
    return cps_card_factory(
        generation="CPS4",
        key_type="p256",
        holder=TestHolder(
            given_name="PAUL",
            surname="INFIRMIER-TEST",
            profession_code=60,
            id_type="0",
            id_number="751234567",
            card_number="8025000001/2800000003",
        ),
    )
