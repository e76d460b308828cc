"""pcscd stopped → typed error with a hint; restarted → same process works again.

This test stops and restarts the shared pcscd (by PID) at once; keep it quick.
"""

from __future__ import annotations

from typing import Any

import pytest

from cps_middleware.cards.atr import CardGeneration
from cps_middleware.discovery import discover
from cps_middleware.errors import PcscServiceUnavailable
from cps_middleware.pcsc import CardWatcher, EventKind, default_context, list_readers
from cps_middleware.testing.pcscd import PcscDaemon
from cps_middleware.testing.vpcd import SimpleCpsCard, VirtualCard

pytestmark = pytest.mark.pcsc


def test_pcscd_stop_and_restart(cps_pcscd: PcscDaemon, cps_opensc_module: str) -> None:
    card = VirtualCard(SimpleCpsCard.cps3(), port=35963)
    card.insert()
    assert any(c.reader == card.reader for c in discover(pkcs11=False))
    generation_before = default_context().generation
    seen = []
    watcher = CardWatcher(seen.append, readers=[card.reader], retry_interval=0.1).start()
    try:
        cps_pcscd.stop()
        try:
            with pytest.raises(PcscServiceUnavailable) as info:
                list_readers()
            assert "start pcscd" in str(info.value)
            assert info.value.code_name == "SCARD_E_NO_SERVICE"
            with pytest.raises(PcscServiceUnavailable):
                discover(pkcs11=False)
            # A module that reads cards through PC/SC sees no token either: the
            # PC/SC error is reported, not an empty list.
            with pytest.raises(PcscServiceUnavailable):
                discover(module_path=cps_opensc_module)
        finally:
            cps_pcscd.start()
        card.remove(wait=False)  # pcscd dropped the connection; reconnect as a new card
        card.insert()
        found = [c for c in discover(pkcs11=False) if c.reader == card.reader]
        assert found and found[0].generation is CardGeneration.CPS3
        assert default_context().generation > generation_before  # a new context was made
    finally:
        watcher.stop()
        card.remove()
    kinds = [e.kind for e in seen if not e.initial]
    assert EventKind.SERVICE_LOST in kinds and EventKind.SERVICE_RESTORED in kinds
    assert kinds[-1] is EventKind.CARD_REMOVED or EventKind.CARD_INSERTED in kinds


def test_ans_module_sees_the_card_again_after_pcscd_restarts(
    cps_pcscd: PcscDaemon, cps_ans_module: str, cps_iasecc_cps3_factory: Any
) -> None:
    """The ANS module keeps the PC/SC context of its C_Initialize: after pcscd
    restarted it saw no reader (found when the conformance suite loaded it before
    this file's restart). The library starts it again when it sees no token."""
    from cps_middleware.pkcs11 import load_module

    card = cps_iasecc_cps3_factory(serial="2800000777", port=35967)
    try:
        module = load_module(cps_ans_module)
        serial = card.objects.serial[:8]  # the ANS module shows 8 digits
        assert module.open_token(serial=serial).info.serial == serial
        cps_pcscd.stop()
        cps_pcscd.start()
        card.vpcd.remove(wait=False)  # pcscd dropped the connection; reconnect as a new card
        card.insert()
        generation = module.generation
        assert module.open_token(serial=serial).info.serial == serial
        assert module.generation == generation + 1  # started again, once
    finally:
        card.remove()  # the reader is free for the next files
