"""pytest fixtures: a virtual CPS4 (ChipDoc) in a vpcd reader, driven by the ANS module.

* ``cps_ans_module`` (session) — the path of the ANS Cryptolib module
  (``$CPS_ANS_MODULE`` or ``../shared/ans-cryptolib/`` beside the project root),
  loaded later in this process with private ``/etc/opt`` and ``/var/opt``
  (see :mod:`cps_middleware.testing.ansmodule`; ``CPS_ANS_TRACES=1`` turns its
  traces on); skips when the module or the mount namespace is not available;
* ``cps_ans_cps4_credentials`` (session) — the holder's keys and certificates;
* ``cps_ans_cps4_factory`` (session) — ``factory(port=..., **build_cps4 kwargs)``
  returns an inserted :class:`VirtualCps4` in the issued state (PIN ``1234``,
  PUK ``12345678``); ``factory.remove_all()`` empties the readers (a test
  module calls it at its end); every card it made is removed at the end;
* ``cps_ans_cps4`` — the card in its default reader, issued state;
* ``cps_ans_cps4_backend`` — a :class:`Backend` (module path + card): the shape
  a backend-parametrised conformance suite takes.

The reader is ``Virtual PCD 35965 00 01`` (TCP 35966) unless
``CPS_VIRTUAL_CPS4_PORT`` says otherwise, so that a virtual CPS3 (35965) and a
CPS4 can be inserted together.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from cps_middleware.testing.cps4image import VirtualCps4
    from cps_middleware.testing.pki import CardCredentials, TestPki

def virtual_cps4_port() -> int:
    return int(os.environ.get("CPS_VIRTUAL_CPS4_PORT", "35966"))


@dataclass(frozen=True)
class Backend:
    """One middleware + card pair for conformance scenarios."""

    name: str  #: e.g. ``"ans-cps4"``
    module: str  #: PKCS#11 module path
    card: Any  #: the virtual card (``VirtualCps4``: ``pin``, ``puk``, ``objects``, ``reader``)
    generation: str  #: ``"CPS3"`` / ``"CPS4"``
    pss: bool  #: the card signs RSA-PSS (TLS 1.3 possible)


@pytest.fixture(scope="session")
def cps_ans_module(request: pytest.FixtureRequest) -> str:
    from cps_middleware.errors import TestCardError
    from cps_middleware.testing.ansmodule import ans_module_path, configure_ans

    path = ans_module_path(request.config.rootpath)
    if path is None:
        pytest.skip("the ANS Cryptolib module (libcps3_pkcs11_lux.so) is not available")
    try:
        configure_ans(traces=os.environ.get("CPS_ANS_TRACES", "") not in ("", "0"))
    except TestCardError as exc:
        pytest.skip(f"no private /etc/opt for the ANS module: {exc}")
    return str(path)


@pytest.fixture(scope="session")
def cps_ans_cps4_credentials(cps_pki: TestPki) -> CardCredentials:
    from cps_middleware.testing.pki import TestHolder

    return cps_pki.issue_card(
        TestHolder(given_name="LOUISE", surname="CHIPDOC-TEST", profession_code=21,
                   id_number="10004444444", card_number="8025000001/2900004444"),
    )  # fmt: skip


class VirtualCps4Factory:
    """``factory(port=..., **image)``: an inserted :class:`VirtualCps4` in the issued state.

    Cards are built once per (port, image) and reused; :meth:`remove_all` pulls
    every card out (a test module that used them calls it at its end, so that
    the readers are empty for the next module).
    """

    def __init__(self, credentials: CardCredentials) -> None:
        self._credentials = credentials
        self._made: dict[tuple[int, str], VirtualCps4] = {}

    def __call__(self, *, port: int | None = None, **image: Any) -> VirtualCps4:
        from cps_middleware.testing.cps4image import VirtualCps4
        from cps_middleware.testing.vpcd import vpcd_reader_name

        port = virtual_cps4_port() if port is None else port
        key = (port, repr(sorted(image.items())))
        card = self._made.get(key)
        for (p, _), other in self._made.items():  # one card per reader
            if p == port and other is not card and other.inserted:
                other.remove()
        if card is None:
            card = VirtualCps4(self._credentials, port=port, reader=vpcd_reader_name(port),
                               **image)  # fmt: skip
            self._made[key] = card
        elif card.reset() and card.inserted:
            card.reinsert()  # the middleware keeps the old PIN state until then
        if not card.inserted:
            card.insert()
        return card

    def remove_all(self) -> None:
        for card in self._made.values():
            if card.inserted:
                card.remove()


@pytest.fixture(scope="session")
def cps_ans_cps4_factory(
    cps_pcscd: object, cps_ans_cps4_credentials: CardCredentials
) -> Iterator[VirtualCps4Factory]:
    factory = VirtualCps4Factory(cps_ans_cps4_credentials)
    yield factory
    factory.remove_all()


@pytest.fixture
def cps_ans_cps4(cps_ans_cps4_factory: VirtualCps4Factory) -> VirtualCps4:
    return cps_ans_cps4_factory()


@pytest.fixture
def cps_ans_cps4_backend(cps_ans_module: str, cps_ans_cps4: VirtualCps4) -> Backend:
    return Backend("ans-cps4", cps_ans_module, cps_ans_cps4, "CPS4", pss=True)
