"""The ChipDoc CPS4 card model, APDU by APDU (no PC/SC): the forms of the ANS CPS4 driver."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cps_middleware.errors import TestCardError
from cps_middleware.testing.cps4image import (
    CPS4_PROFILE,
    ChipDocCard,
    Cps4Layout,
    Cps4Objects,
    build_cps4_from_credentials,
)
from cps_middleware.testing.iasecc import digest_info
from cps_middleware.testing.pki import CardCredentials, TestPki

SELECT_CHIPDOC = bytes.fromhex("01A4040C08") + CPS4_PROFILE.chipdoc_aid


@pytest.fixture(scope="module")
def creds(cps_pki: TestPki) -> CardCredentials:
    return cps_pki.issue_card()


@pytest.fixture
def built(creds: CardCredentials) -> tuple[ChipDocCard, Cps4Objects]:
    return build_cps4_from_credentials(creds)


def _run(card: ChipDocCard, apdu: str | bytes) -> tuple[bytes, int]:
    """Send one APDU, follow 61xx with GET RESPONSE on the same channel."""
    raw = bytes.fromhex(apdu) if isinstance(apdu, str) else apdu
    r = card.process(raw)
    data, sw = r[:-2], int.from_bytes(r[-2:], "big")
    while sw >> 8 == 0x61:
        r = card.process(bytes([raw[0] & 0x03, 0xC0, 0, 0, sw & 0xFF]))
        data, sw = data + r[:-2], int.from_bytes(r[-2:], "big")
    return data, sw


def _login(card: ChipDocCard) -> None:
    assert _run(card, SELECT_CHIPDOC)[1] == 0x9000
    assert _run(card, "0120000104" + b"1234".hex())[1] == 0x9000


def _pub(objects: Cps4Objects, which: str) -> rsa.RSAPublicKey:
    cert = objects.auth_certificate if which == "auth" else objects.sign_certificate
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def test_ef_sn_icc_on_channel_1(built: tuple[ChipDocCard, Cps4Objects]) -> None:
    card, objects = built
    assert card.atr == bytes.fromhex("3B9B188001001225006480040100009044")
    assert _run(card, SELECT_CHIPDOC)[1] == 0x9000
    fci, sw = _run(card, "01A4080002D00300")
    assert sw == 0x9000 and fci[0] == 0x6F  # P2 = 00: FCI template
    data, sw = _run(card, "01B000000C")
    assert sw == 0x9000
    assert data == bytes.fromhex("5A0A8025000001") + bytes.fromhex(objects.serial)
    assert objects.serial.startswith("29") and objects.generation == "CPS4"


def test_channels_keep_their_own_current_file(built: tuple[ChipDocCard, Cps4Objects]) -> None:
    card, _ = built
    assert _run(card, "01A4080C022F00")[1] == 0x9000  # EF.DIR on channel 1
    assert _run(card, "00A4080C02D003")[1] == 0x9000  # EF.SN.ICC on channel 0
    data, _ = _run(card, "01B0000004")
    assert data[:1] == b"\x61"  # still EF.DIR on channel 1


def test_pin_status_counts_even_when_verified(built: tuple[ChipDocCard, Cps4Objects]) -> None:
    card, _ = built
    assert _run(card, "01200001")[1] == 0x63C3
    assert _run(card, "012000010439393939")[1] == 0x63C2
    _login(card)
    assert _run(card, "01200001")[1] == 0x63C3  # what the ANS driver needs (not 90 00)
    card.block_pin()
    assert _run(card, "01200001")[1] == 0x6983


def test_unblock_then_new_pin_with_24_01(built: tuple[ChipDocCard, Cps4Objects]) -> None:
    card, _ = built
    card.block_pin()
    assert _run(card, "0124010104" + b"4321".hex())[1] == 0x6983  # blocked
    assert _run(card, "012C0381")[1] == 0x6982  # the PUK first
    assert _run(card, "0120000208" + b"12345678".hex())[1] == 0x9000
    assert _run(card, "012C0381")[1] == 0x9000
    assert _run(card, "0124010104" + b"4321".hex())[1] == 0x9000
    assert _run(card, "0124010104" + b"5555".hex())[1] == 0x6982  # only once
    assert _run(card, "0120000104" + b"4321".hex())[1] == 0x9000
    assert card.pin(2).uses_left == 99


@pytest.mark.parametrize(
    ("alg", "algorithm", "pss"),
    [(0x28, "sha256", False), (0x0A, "sha1", False), (0x2C, "sha256", True), (0x15, "sha1", True)],
)
@pytest.mark.parametrize("which", ["auth", "sign"])
def test_pso_cds(
    built: tuple[ChipDocCard, Cps4Objects], alg: int, algorithm: str, pss: bool, which: str
) -> None:
    card, objects = built
    _login(card)
    layout = Cps4Layout()
    ref = (layout.auth_key_ref if which == "auth" else layout.sign_key_ref) | 0x80
    assert _run(card, bytes.fromhex("012281B6049102") + bytes([alg, ref]))[1] == 0x9000
    message = os.urandom(100)
    digest = hashlib.new(algorithm, message).digest()
    sig, sw = _run(card, bytes.fromhex("012A9E9A") + bytes([len(digest)]) + digest)
    assert sw == 0x9000 and len(sig) == 256
    h = hashes.SHA256() if algorithm == "sha256" else hashes.SHA1()
    pad = padding.PSS(padding.MGF1(h), len(digest)) if pss else padding.PKCS1v15()
    _pub(objects, which).verify(sig, message, pad, h)


def test_unimplemented_algorithm_and_wrong_length(built: tuple[ChipDocCard, Cps4Objects]) -> None:
    card, _ = built
    _login(card)
    for alg in CPS4_PROFILE.unimplemented_algorithms:
        assert _run(card, bytes.fromhex("012281B6049102") + bytes([alg, 0xA1]))[1] == 0x6A80
    assert _run(card, "012281B60491022CA1")[1] == 0x9000
    assert _run(card, "012A9E9A14" + "00" * 20)[1] == 0x6700  # a SHA-1 size for SHA-256


def test_sign_key_refuses_raw_decipher(built: tuple[ChipDocCard, Cps4Objects]) -> None:
    card, _ = built
    _login(card)
    assert _run(card, "012241B8038301A1")[1] == 0x9000
    block = bytes(256)
    assert _run(card, bytes.fromhex("112A8086FF") + block[:255])[1] == 0x9000
    assert _run(card, bytes.fromhex("012A808601") + block[255:])[1] == 0x6985


def test_chained_raw_decipher_and_authentication(built: tuple[ChipDocCard, Cps4Objects]) -> None:
    card, objects = built
    assert _run(card, "012241B803830120")[1] == 0x9000
    secret = os.urandom(32)
    cryptogram = _pub(objects, "auth").encrypt(secret, padding.PKCS1v15())
    first = bytes.fromhex("112A8086FF") + cryptogram[:255]
    last = bytes.fromhex("012A808601") + cryptogram[255:] + b"\x00"
    assert _run(card, first)[1] == 0x9000
    assert _run(card, last)[1] == 0x6982  # the PIN first
    _login(card)
    assert _run(card, first)[1] == 0x9000
    block, sw = _run(card, last)
    assert sw == 0x9000 and block[:2] == b"\x00\x02" and block.endswith(secret)
    # authentication = the host's PKCS#1 type-1 block through the same raw operation
    message = b"TLS 1.2 transcript"
    di = digest_info("sha256", hashlib.sha256(message).digest())
    padded = b"\x00\x01" + b"\xff" * (256 - 3 - len(di)) + b"\x00" + di
    assert _run(card, bytes.fromhex("112A8086FF") + padded[:255])[1] == 0x9000
    sig, sw = _run(card, bytes.fromhex("012A808601") + padded[255:] + b"\x00")
    assert sw == 0x9000
    _pub(objects, "auth").verify(sig, message, padding.PKCS1v15(), hashes.SHA256())


def test_image_checks(creds: CardCredentials) -> None:
    with pytest.raises(TestCardError):
        build_cps4_from_credentials(creds, layout=Cps4Layout(auth_key_ref=0x21))
    with pytest.raises(TestCardError):
        build_cps4_from_credentials(creds, layout=Cps4Layout(sign_key_ref=0x20))
    a, _ = build_cps4_from_credentials(creds, serial="2900000001")
    assert _run(a, "00A4080C02D003")[1] == 0x9000
    assert _run(a, "00B000000C")[0].endswith(bytes.fromhex("2900000001"))


def test_ans_trace_parser(tmp_path: Path) -> None:
    from cps_middleware.testing.ansmodule import ans_traces

    (tmp_path / "cps3opsc_1_2.log").write_text(
        "Sun Dec  6 13:04:14.766 : \n"
        "Outgoing APDU data [    5 bytes] =====================================\n"
        "01 B0 00 00 0C .....\n"
        "======================================================================\n"
        "Incoming APDU data [   18 bytes] =====================================\n"
        "5A 0A 80 25 00 00 01 29 03 92 83 38 90 00 39 30 Z..%...)...8..90\n"
        "90 00                                           ..\n"
        "======================================================================\n"
    )
    assert ans_traces(tmp_path) == [
        ("out", bytes.fromhex("01B000000C")),
        ("in", bytes.fromhex("5A0A80250000012903928338900039309000")),
    ]
