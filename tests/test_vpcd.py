"""The virtual card: the SimpleCpsCard model (no pcscd) and the vpcd transport (pcscd)."""

from __future__ import annotations

import pytest
from smartcard import scard

from cps_middleware.pcsc import CardConnection
from cps_middleware.testing.vpcd import (
    CPS3_AID,
    CPS4_AID_CHIPDOC,
    CardModel,
    SimpleCpsCard,
    VirtualCard,
    vpcd_reader_name,
)


def _sw(resp: bytes) -> int:
    return int.from_bytes(resp[-2:], "big")


def test_model_is_a_card_model() -> None:
    assert isinstance(SimpleCpsCard.cps3(), CardModel)


def test_select_read_sn_icc() -> None:
    card = SimpleCpsCard.cps3(serial="0000012345")
    assert _sw(card.process(bytes.fromhex("00A4040C0D") + CPS3_AID)) == 0x9000
    fcp = card.process(bytes.fromhex("00A4080402D00300"))  # path from the MF
    assert fcp[0] == 0x62 and _sw(fcp) == 0x9000
    resp = card.process(bytes.fromhex("00B000000C"))
    assert resp[:-2] == bytes.fromhex("5A0A8025000001") + bytes.fromhex("0000012345")
    assert _sw(card.process(bytes.fromhex("00B0000010"))) == 0x6282  # past the end
    assert _sw(card.process(bytes.fromhex("00B0001000"))) == 0x6B00  # offset outside


def test_t0_style_get_response() -> None:
    card = SimpleCpsCard.cps3()
    resp = card.process(bytes.fromhex("00A4020402D003"))  # case 4 without Le
    assert resp[0] == 0x61
    data = card.process(bytes([0x00, 0xC0, 0x00, 0x00, resp[1]]))
    assert data[0] == 0x62 and _sw(data) == 0x9000
    assert _sw(card.process(bytes.fromhex("00C0000010"))) == 0x6985  # nothing pending


def test_verify_counter_and_status_query() -> None:
    card = SimpleCpsCard.cps3(pin="4321")
    status = bytes.fromhex("00200001")
    assert _sw(card.process(status)) == 0x63C3
    assert _sw(card.process(status)) == 0x63C3  # the query spends nothing
    wrong = bytes.fromhex("002000010431313131")
    assert _sw(card.process(wrong)) == 0x63C2
    assert _sw(card.process(wrong)) == 0x63C1
    assert _sw(card.process(status)) == 0x63C1
    right = bytes.fromhex("002000010434333231")
    assert _sw(card.process(right)) == 0x9000
    assert _sw(card.process(status)) == 0x9000  # verified
    card.reset()
    assert _sw(card.process(status)) == 0x63C3  # reset clears "verified", counter back to 3
    for _ in range(3):
        card.process(wrong)
    assert _sw(card.process(status)) == 0x6983
    assert _sw(card.process(right)) == 0x6983  # blocked even with the right PIN
    card.reset()
    assert _sw(card.process(status)) == 0x6983  # the counter survives a reset


def test_unknown_commands() -> None:
    card = SimpleCpsCard.cps4()
    assert _sw(card.process(bytes.fromhex("00FE0000"))) == 0x6D00
    assert _sw(card.process(bytes.fromhex("80A40000"))) == 0x6E00
    assert _sw(card.process(bytes.fromhex("00A4040C08") + bytes(8))) == 0x6A82
    assert _sw(card.process(bytes.fromhex("00B00000"))) == 0x6986  # no EF selected
    assert _sw(card.process(bytes.fromhex("00200002"))) == 0x6A88  # unknown PIN ref
    assert _sw(card.process(b"\x00")) == 0x6700
    # CPS4 ChipDoc applet on logical channel 1, as the ANS middleware probes it.
    assert _sw(card.process(bytes.fromhex("01A4040C08") + CPS4_AID_CHIPDOC)) == 0x9000


def test_reader_names() -> None:
    assert vpcd_reader_name(35963) == "Virtual PCD 35963 00 00"
    assert vpcd_reader_name(35964) == "Virtual PCD 35963 00 01"
    assert vpcd_reader_name(35968) == "Virtual PCD 35967 00 01"


@pytest.mark.pcsc
def test_apdus_through_pcscd(cps_virtual_cps3: VirtualCard) -> None:
    with CardConnection(cps_virtual_cps3.reader) as conn:
        assert conn.atr == cps_virtual_cps3.model.atr
        data, sw = conn.transmit(bytes.fromhex("00A4020402D003"))  # 61xx → GET RESPONSE
        assert sw.value == 0x9000 and data[0] == 0x62
        _data, sw = conn.transmit(bytes.fromhex("00200001"))
        assert sw.tries_left == 3
    logged = [c for c, _r in cps_virtual_cps3.apdu_log]
    assert bytes.fromhex("00C0000017") in logged
    # The round-trip time per APDU (goal < 5 ms) is measured by benchmarks/bench_pcsc.py.


@pytest.mark.pcsc
def test_reset_reaches_the_model(cps_virtual_cps3: VirtualCard) -> None:
    model = cps_virtual_cps3.model
    assert isinstance(model, SimpleCpsCard)
    with CardConnection(cps_virtual_cps3.reader) as conn:
        conn.transmit(bytes.fromhex("002000010431323334"))
        assert model.pin_verified
    from smartcard.scard import SCardConnect, SCardDisconnect, SCardEstablishContext

    _rc, ctx = SCardEstablishContext(scard.SCARD_SCOPE_USER)
    _rc, h, _p = SCardConnect(ctx, cps_virtual_cps3.reader, scard.SCARD_SHARE_SHARED,
                              scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
    SCardDisconnect(h, scard.SCARD_RESET_CARD)
    scard.SCardReleaseContext(ctx)
    assert not model.pin_verified
