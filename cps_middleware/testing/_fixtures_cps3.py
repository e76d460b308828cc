"""pytest fixtures: a virtual CPS3 (IAS-ECC) in a vpcd reader, for real middleware.

* ``cps_iasecc_cps3_credentials`` (session) — the holder's keys and certificates
  from the ``cps_pki`` test PKI;
* ``cps_iasecc_cps3_factory`` (session) — ``factory(port=..., **build_cps3 kwargs)``
  returns an inserted :class:`VirtualCps3` in the issued state (PIN ``1234``,
  PUK ``12345678``, full counters); every card it made is removed at the end;
* ``cps_iasecc_cps3`` — the card in the default reader, in the issued state (it
  stays inserted between tests; the factory removes it at the end)
  (``cps_virtual_cps3`` is the simpler ``SimpleCpsCard`` of ``_fixtures_pcsc``);
* ``cps_opensc_module`` (session) — the path of OpenSC's PKCS#11 module (skips
  the test when OpenSC is not installed).

The reader is ``Virtual PCD 35965 00 00`` (TCP 35965) unless
``CPS_VIRTUAL_CPS3_PORT`` (and, for another reader layout,
``CPS_VIRTUAL_CPS3_READER``) say otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from cps_middleware.testing.cps3image import VirtualCps3
    from cps_middleware.testing.pki import CardCredentials, TestPki

OPENSC_MODULE_PATHS = (
    "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so",
    "/usr/lib/aarch64-linux-gnu/pkcs11/opensc-pkcs11.so",
    "/usr/lib/pkcs11/opensc-pkcs11.so",
    "/usr/lib64/pkcs11/opensc-pkcs11.so",
    "/usr/local/lib/opensc-pkcs11.so",
    "/opt/homebrew/lib/opensc-pkcs11.so",
)

IasEccCps3Factory = Callable[..., "VirtualCps3"]


def virtual_cps3_port() -> int:
    return int(os.environ.get("CPS_VIRTUAL_CPS3_PORT", "35965"))


def virtual_cps3_reader(port: int) -> str | None:
    """The reader name for *port*: ``CPS_VIRTUAL_CPS3_READER`` or the pcscd.sh layout."""
    if port == virtual_cps3_port():
        return os.environ.get("CPS_VIRTUAL_CPS3_READER") or None
    return None


@pytest.fixture(scope="session")
def cps_iasecc_cps3_credentials(cps_pki: TestPki) -> CardCredentials:
    from cps_middleware.testing.pki import TestHolder

    return cps_pki.issue_card(
        TestHolder(given_name="CLAIRE", surname="IASECC-TEST", profession_code=10,
                   id_number="10009876543", card_number="8025000001/2800009876"),
    )  # fmt: skip


@pytest.fixture(scope="session")
def cps_iasecc_cps3_factory(
    cps_pcscd: object, cps_iasecc_cps3_credentials: CardCredentials
) -> Iterator[IasEccCps3Factory]:
    from cps_middleware.testing.cps3image import VirtualCps3

    made: dict[tuple[int, str], VirtualCps3] = {}

    def factory(*, port: int | None = None, **image: Any) -> VirtualCps3:
        port = virtual_cps3_port() if port is None else port
        key = (port, repr(sorted(image.items())))
        card = made.get(key)
        for (p, _), other in made.items():  # one card per reader
            if p == port and other is not card and other.inserted:
                other.remove()
        if card is None:
            card = VirtualCps3(
                cps_iasecc_cps3_credentials, port=port, reader=virtual_cps3_reader(port), **image
            )
            made[key] = card
        else:
            card.reset()
        if not card.inserted:
            card.insert()
        return card

    yield factory
    for card in made.values():
        if card.inserted:
            card.remove()


@pytest.fixture
def cps_iasecc_cps3(cps_iasecc_cps3_factory: IasEccCps3Factory) -> Iterator[VirtualCps3]:
    from cps_middleware.testing.cps3image import Cps3Layout

    # Without the PUK in the AODF: OpenSC then unblocks with C_InitPIN in an SO
    # session (init_pin_in_so_session), what these OpenSC tests check. With the
    # PUK object (the default image, what the ANS module needs) OpenSC refuses
    # that (CKR_FUNCTION_NOT_SUPPORTED) and unblocks only with
    # user_pin_unblock_style = set_pin_in_unlogged_session (C_SetPIN(PUK, new)).
    card = cps_iasecc_cps3_factory(layout=Cps3Layout(puk_in_aodf=False))
    yield card
    if card.inserted:
        card.remove()


@pytest.fixture(scope="session")
def cps_opensc_module() -> str:
    for path in (os.environ.get("CPS_OPENSC_MODULE"), *OPENSC_MODULE_PATHS):
        if path and Path(path).is_file():
            return path
    pytest.skip("OpenSC's PKCS#11 module (opensc-pkcs11.so) is not installed")
