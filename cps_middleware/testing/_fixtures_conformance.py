"""pytest fixtures: the same CPS card behind each PKCS#11 middleware (conformance suite).

* ``cps_backend`` — parametrised over :data:`BACKENDS`: a :class:`Backend` whose
  card is present, in the issued state (PIN ``1234``, PUK ``12345678``, full
  counters), alone in its middleware's view. Backends:

  - ``test-token``: the CPS test-token module over a SoftHSM-backed CPS3 test card;
  - ``opensc-cps3``: OpenSC's ``opensc-pkcs11.so`` over the virtual CPS3 (pcscd + vpcd);
  - ``ans-cps3``: the ANS Cryptolib CPS module over the virtual CPS3, through
    ``cps_ans_module`` (``$CPS_ANS_MODULE`` or ``../shared/ans-cryptolib/``;
    skipped, saying so, only when it is absent; private ``/etc/opt`` and
    ``/var/opt`` for the module, see ``testing.ansmodule``).

Adding a backend is one entry in :data:`BACKENDS`: a function of the pytest
request returning a :class:`Backend`. Each virtual card gets its own serial: the
ANS module caches card contents by serial.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cps_middleware.cards.atr import CardGeneration

if TYPE_CHECKING:
    from cryptography import x509

    from cps_middleware.testing.cps3image import VirtualCps3
    from cps_middleware.testing.testcard import CpsTestCard


@dataclass
class Backend:
    """One middleware driving one card, with what a scenario needs to act on the card.

    ``middleware`` is ``"test token"``, ``"OpenSC"`` or ``"ANS"``; the
    ``*_tries_left`` / ``pull`` / ``put_back`` / ``set_pin_tries`` / ``pull_on``
    callables act on the card itself (not through the middleware).
    """

    name: str
    middleware: str
    module: str
    generation: CardGeneration
    serial: str
    pin: str
    puk: str
    auth_certificate: x509.Certificate
    sign_certificate: x509.Certificate
    pull: Callable[[], None]
    put_back: Callable[[], None]
    set_pin_tries: Callable[[int], None]
    pin_tries_left: Callable[[], int]
    puk_tries_left: Callable[[], int]
    #: pull the card when a command APDU matches, before the card answers it (virtual
    #: cards; None for the test token, which has no APDUs)
    pull_on: Callable[[Callable[[bytes], bool]], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def open(self) -> Any:
        """The CpsCard of this backend's card."""
        from cps_middleware.card import open_card

        return open_card(self.module, serial=self.serial)


def _test_token(request: pytest.FixtureRequest) -> Backend:
    from cps_middleware.testing.testcard import test_token_module

    card: CpsTestCard = request.getfixturevalue("cps_card_factory")(generation="CPS3")
    creds = card.credentials

    def set_tries(n: int) -> None:
        from cps_middleware.testing import _tokenstate

        _tokenstate.update(card.directory, pin_tries_left=n)

    return Backend(
        name="test-token", middleware="test token", module=test_token_module(),
        generation=CardGeneration.CPS3, serial=card.serial, pin=card.pin, puk=card.puk,
        auth_certificate=creds.authentication.certificate,
        sign_certificate=creds.signature.certificate,
        pull=card.remove, put_back=card.insert, set_pin_tries=set_tries,
        pin_tries_left=lambda: card.state().pin_tries_left,
        puk_tries_left=lambda: card.state().puk_tries_left,
    )  # fmt: skip


def _virtual_cps3(
    request: pytest.FixtureRequest,
    *,
    name: str,
    middleware: str,
    module: str,
    serial: str,
    port: int,
    factory: str = "cps_iasecc_cps3_factory",
    generation: CardGeneration = CardGeneration.CPS3,
) -> Backend:
    # One reader per backend: OpenSC can miss a card swapped in the same reader.
    card: VirtualCps3 = request.getfixturevalue(factory)(serial=serial, port=port)
    token_serial = serial[:8] if middleware == "ANS" else serial  # the ANS module shows 8 digits
    return Backend(
        name=name, middleware=middleware, module=module, generation=generation,
        serial=token_serial, pin=card.pin, puk=card.puk,
        auth_certificate=card.objects.auth_certificate,
        sign_certificate=card.objects.sign_certificate,
        pull=card.remove, put_back=card.insert, set_pin_tries=card.set_pin_tries,
        pin_tries_left=lambda: card.pin_tries_left, puk_tries_left=lambda: card.puk_tries_left,
        pull_on=card.vpcd.pull_on, extra={"card": card},
    )  # fmt: skip


def _opensc_cps3(request: pytest.FixtureRequest) -> Backend:
    module = request.getfixturevalue("cps_opensc_module")
    return _virtual_cps3(
        request, name="opensc-cps3", middleware="OpenSC", module=module, serial="2800000101",
        port=35965,
    )  # fmt: skip


def _ans_cps3(request: pytest.FixtureRequest) -> Backend:
    # cps_ans_module skips, saying why, when the module is absent, and gives the
    # process throw-away /etc/opt and /var/opt (testing.ansmodule).
    module = request.getfixturevalue("cps_ans_module")
    return _virtual_cps3(
        request, name="ans-cps3", middleware="ANS", module=str(Path(module).resolve()),
        serial="2800000202", port=35967,
    )  # fmt: skip


def _ans_cps4(request: pytest.FixtureRequest) -> Backend:
    module = request.getfixturevalue("cps_ans_module")
    return _virtual_cps3(
        request, name="ans-cps4", middleware="ANS", module=str(Path(module).resolve()),
        serial="2800000404", port=35966, factory="cps_ans_cps4_factory",
        generation=CardGeneration.CPS4,
    )  # fmt: skip


#: name -> maker. A new backend (e.g. a virtual CPS4 through the ANS module) is one entry.
BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Backend]] = {
    "test-token": _test_token,
    "opensc-cps3": _opensc_cps3,
    "ans-cps3": _ans_cps3,
    "ans-cps4": _ans_cps4,
}


@pytest.fixture(params=list(BACKENDS))
def cps_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    backend = BACKENDS[request.param](request)
    yield backend
    # Leave no login behind for the next scenario: close this card's Token.
    from cps_middleware.pkcs11 import load_module

    for token in list(load_module(backend.module)._tokens.values()):
        token.close()
    card = backend.extra.get("card")
    if card is not None and card.inserted:
        card.remove()
