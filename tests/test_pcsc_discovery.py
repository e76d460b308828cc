"""discover(): PC/SC view, then PC/SC + PKCS#11 (OpenSC) merged into one entry per card."""

from __future__ import annotations

import time

import pytest

from cps_middleware.cards.atr import CardGeneration, CardInterface
from cps_middleware.discovery import DiscoveredCard, discover, match_reader
from cps_middleware.testing.vpcd import NON_CPS_ATR, SimpleCpsCard, VirtualCard

R0, R1 = "Virtual PCD 35963 00 00", "Virtual PCD 35963 00 01"


def test_match_reader() -> None:
    names = [R0, R1, "Virtual PCD 35965 00 00"]
    assert match_reader(R1, names) == R1
    assert match_reader(R0 + "   ", names) == R0  # space-padded PKCS#11 text
    assert match_reader(R1 + " (slot 1)", names) == R1
    assert match_reader("SoftHSM slot ID 0x1", names) is None
    assert match_reader("Virtual PCD", names) is None  # never a guess among several


def _mine(cards: list[DiscoveredCard]) -> dict[str, DiscoveredCard]:
    return {c.reader: c for c in cards if c.reader in (R0, R1)}


@pytest.mark.pcsc
def test_discover_pcsc_only(cps_virtual_cps3: VirtualCard, cps_virtual_cps4: VirtualCard) -> None:
    t = time.perf_counter()
    cards = discover(pkcs11=False)
    elapsed = time.perf_counter() - t
    mine = _mine(cards)
    assert set(mine) == {R0, R1}
    assert mine[R0].generation is CardGeneration.CPS3 and mine[R0].is_cps
    assert mine[R0].interface is CardInterface.CONTACT
    assert mine[R0].atr == cps_virtual_cps3.model.atr
    assert mine[R1].generation is CardGeneration.CPS4
    assert mine[R0].token is None and mine[R0].pkcs11_error is None
    assert not cps_virtual_cps3.apdu_log  # no card I/O in PC/SC-only discovery
    assert elapsed < 0.05


@pytest.mark.pcsc
def test_discover_non_cps(cps_virtual_card) -> None:  # type: ignore[no-untyped-def]
    cps_virtual_card(SimpleCpsCard.cps3(atr=NON_CPS_ATR), port=35964)
    card = _mine(discover(pkcs11=False))[R1]
    assert card.generation is CardGeneration.NOT_CPS and not card.is_cps


@pytest.mark.pcsc
def test_discover_with_opensc_merges_token_and_holder(
    cps_iasecc_cps3_factory, cps_opensc_module: str, cps_virtual_card  # type: ignore[no-untyped-def]
) -> None:
    cps3 = cps_iasecc_cps3_factory(port=35963)
    try:
        cps_virtual_card(SimpleCpsCard.cps4(), port=35964)
        cards = discover(module_path=cps_opensc_module)
        mine = [c for c in cards if c.reader in (R0, R1)]
        assert sorted(c.reader for c in mine) == [R0, R1]  # one entry per card, not two views
        by_reader = {c.reader: c for c in mine}
        cps3_entry = by_reader[R0]
        assert cps3_entry.generation is CardGeneration.CPS3
        assert cps3_entry.token is not None, cps3_entry.pkcs11_error
        assert cps3_entry.token.slot_description.strip() == R0
        assert cps3_entry.holder is not None
        assert cps3_entry.holder.surname == "IASECC-TEST"
        assert cps3_entry.holder.ps_id_nat == "810009876543"
        assert cps3_entry.pkcs11_module is not None
        # OpenSC has no CPS4 driver: the card is listed from PC/SC with the reason.
        cps4_entry = by_reader[R1]
        assert cps4_entry.generation is CardGeneration.CPS4
        assert cps4_entry.token is None and cps4_entry.pkcs11_error
        # No PKCS#11-only duplicate of our readers.
        assert not [c for c in cards if c.token and c.reader is None
                    and c.token.slot_description.strip() in (R0, R1)]
    finally:
        cps3.remove()


@pytest.mark.pcsc
def test_test_card_in_a_reader_is_one_card_with_token_and_holder(
    cps_virtual_card, cps_pki, cps_cards_dir  # type: ignore[no-untyped-def]
) -> None:
    """A test card "in" a vpcd reader (its slot named after the reader) and the virtual
    card inserted there: one entry, with the reader's ATR and the test token."""
    from cps_middleware.testing.testcard import CpsTestCard, test_token_module

    chip = cps_virtual_card(SimpleCpsCard.cps3(), port=35964)
    card = CpsTestCard(
        cps_cards_dir, name="discovery-in-reader", pki=cps_pki, serial="2899000099",
        label="CPS DISCOVERY", reader=chip.reader,
    ).create()  # fmt: skip
    try:
        def entries() -> list[DiscoveredCard]:
            return [
                c for c in discover(module_path=test_token_module())
                if c.reader == R1 or (c.token is not None and c.token.serial == card.serial)
            ]  # fmt: skip

        found = entries()
        assert len(found) == 1, found  # one card, not a PC/SC view and a PKCS#11 view
        one = found[0]
        assert one.reader == R1 and one.atr == chip.model.atr
        assert one.generation is CardGeneration.CPS3
        assert one.token is not None and one.token.serial == card.serial
        assert one.token.slot_description == R1  # the padding is gone, the name is whole
        assert one.holder is not None and one.holder.ps_id_nat == card.holder.ps_idnat
        assert one.pkcs11_error is None

        card.set_reader(None)  # back in its own test reader: two views again
        found = entries()
        assert len(found) == 2
        pcsc_only = next(c for c in found if c.reader == R1)
        token_only = next(c for c in found if c.reader is None)
        assert pcsc_only.token is None and pcsc_only.pkcs11_error
        assert token_only.token is not None and token_only.token.serial == card.serial
        assert token_only.token.slot_description == "CPS test reader discovery-in-reader"
    finally:
        card.destroy()
