"""Readers and cards over a real pcscd with vpcd: listing, ATR identification, PIN tries."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from cps_middleware.cards.atr import CardGeneration, CardInterface
from cps_middleware.errors import CardInUse, NoCardPresent, NoReaders
from cps_middleware.pcsc import CardConnection, PinStatusKind, list_readers, read_pin_tries
from cps_middleware.testing.vpcd import NON_CPS_ATR, SimpleCpsCard, VirtualCard

pytestmark = pytest.mark.pcsc


def _reader(name: str):  # type: ignore[no-untyped-def]
    return next(r for r in list_readers() if r.name == name)


def test_readers_listed(cps_pcscd) -> None:  # type: ignore[no-untyped-def]
    names = [r.name for r in list_readers()]
    for expected in ("Virtual PCD 35963 00 00", "Virtual PCD 35963 00 01"):
        assert expected in names


def test_cps3_and_cps4_identified(
    cps_virtual_cps3: VirtualCard, cps_virtual_cps4: VirtualCard
) -> None:
    r3, r4 = _reader(cps_virtual_cps3.reader), _reader(cps_virtual_cps4.reader)
    assert r3.card_present and r3.atr == cps_virtual_cps3.model.atr
    assert r3.generation is CardGeneration.CPS3 and r3.is_cps
    assert r3.identification is not None
    assert r3.identification.interface is CardInterface.CONTACT
    assert r4.generation is CardGeneration.CPS4
    assert not r3.exclusive


def test_non_cps_card(cps_virtual_card) -> None:  # type: ignore[no-untyped-def]
    card = cps_virtual_card(SimpleCpsCard.cps3(atr=NON_CPS_ATR), port=35964)
    r = _reader(card.reader)
    assert r.card_present and r.atr == NON_CPS_ATR
    assert r.generation is CardGeneration.NOT_CPS and not r.is_cps
    assert read_pin_tries(card.reader).status is PinStatusKind.NOT_CPS
    assert card.apdu_log == []  # nothing was sent to a card that is not a CPS


def test_empty_reader(cps_pcscd) -> None:  # type: ignore[no-untyped-def]
    r = _reader("Virtual PCD 35963 00 01")
    if r.card_present:
        pytest.fail("reader 35964 should be empty at the start of this test")
    assert r.atr is None and r.generation is None
    with pytest.raises(NoCardPresent) as info:
        read_pin_tries("Virtual PCD 35963 00 01")
    assert info.value.code_name == "SCARD_E_NO_SMARTCARD" and info.value.hint


def test_unknown_reader(cps_pcscd) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NoReaders) as info:
        CardConnection("No Such Reader 00 00")
    assert info.value.code_name == "SCARD_E_UNKNOWN_READER"


def test_exclusive_use_reported(cps_virtual_card) -> None:  # type: ignore[no-untyped-def]
    # Reader 35968 is beyond the 16 slots OpenSC shows by default: an OpenSC
    # module loaded by an earlier test keeps (stale) shared handles on the
    # readers it saw, which pcscd counts against an exclusive connection.
    card = cps_virtual_card(SimpleCpsCard.cps3(), port=35968)
    with CardConnection(card.reader, exclusive=True):
        assert _reader(card.reader).exclusive
        with pytest.raises(CardInUse) as info:
            read_pin_tries(card.reader)
        assert "another program" in str(info.value)
    assert not _reader(card.reader).exclusive


def test_pin_tries_without_spending(cps_virtual_card) -> None:  # type: ignore[no-untyped-def]
    model = SimpleCpsCard.cps3(pin="1234")
    card = cps_virtual_card(model, port=35963)
    for _ in range(3):
        res = read_pin_tries(card.reader)
        assert res.status is PinStatusKind.TRIES_LEFT and res.tries_left == 3
    assert model.tries_left == 3
    model.tries_left = 1  # as after two wrong PINs
    res = read_pin_tries(card.reader)
    assert res.tries_left == 1 and res.final_try
    model.tries_left = 0
    assert read_pin_tries(card.reader).status is PinStatusKind.BLOCKED
    # Never a PIN on the wire: every VERIFY sent was a 4-byte status query.
    verifies = [c for c, _r in card.apdu_log if c[1] == 0x20]
    assert verifies and all(len(c) == 4 for c in verifies)


def test_pin_tries_cps4(cps_virtual_cps4: VirtualCard) -> None:
    res = read_pin_tries(cps_virtual_cps4.reader)
    assert res.tries_left == 3 and res.sw is not None and res.sw.value == 0x63C3


@pytest.mark.skipif(shutil.which("pcsc_scan") is None, reason="pcsc-tools not installed")
def test_pcsc_scan_sees_the_same_atr(cps_virtual_cps3: VirtualCard) -> None:
    # -c: list the cards once and exit; -n: no ATR analysis (no network lookups).
    proc = subprocess.run(
        ["pcsc_scan", "-c", "-n"], capture_output=True, text=True, timeout=20, check=False
    )
    atr_hex = cps_virtual_cps3.model.atr.hex(" ").upper()
    assert cps_virtual_cps3.reader in proc.stdout, proc.stdout
    assert atr_hex in proc.stdout, proc.stdout


def test_pin_tries_on_the_iasecc_cps3(cps_iasecc_cps3_factory) -> None:  # type: ignore[no-untyped-def]
    # The full IAS-ECC engine (what OpenSC and the ANS module drive) answers the same query.
    cps3 = cps_iasecc_cps3_factory(port=35963)
    try:
        before = cps3.pin_tries_left
        res = read_pin_tries(cps3.reader)
        assert res.status is PinStatusKind.TRIES_LEFT and res.tries_left == before == 3
        assert cps3.pin_tries_left == before
        cps3.block_pin()
        assert read_pin_tries(cps3.reader).status is PinStatusKind.BLOCKED
    finally:
        cps3.reset()
        cps3.remove()
