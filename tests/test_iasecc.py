"""The IAS-ECC engine and the CPS3 image, APDU by APDU (no PC/SC needed)."""

from __future__ import annotations

import hashlib
import random

import pytest
from asn1crypto import parser
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cps_middleware.errors import TestCardError
from cps_middleware.testing.cps3image import (
    AUTH_CERT_LABEL,
    AUTH_KEY_LABEL,
    SIGN_CERT_LABEL,
    SIGN_KEY_LABEL,
    build_cps3_from_credentials,
)
from cps_middleware.testing.iasecc import (
    IasEccCard,
    digest_info,
    sha_resume,
    sha_state,
)
from cps_middleware.testing.pki import CardCredentials, TestPki
from cps_middleware.testing.vpcd import CPS3_AID, CPS3_ATR


@pytest.fixture(scope="module")
def creds(cps_pki: TestPki) -> CardCredentials:
    return cps_pki.issue_card()


@pytest.fixture
def card(creds: CardCredentials) -> IasEccCard:
    return build_cps3_from_credentials(creds)[0]


def tx(card: IasEccCard, apdu: str) -> tuple[bytes, int]:
    """Send one APDU (hex); follow 61xx with GET RESPONSE like a T=0 reader stack."""
    r = card.process(bytes.fromhex(apdu.replace(" ", "")))
    data, sw = r[:-2], int.from_bytes(r[-2:], "big")
    while sw >> 8 == 0x61:
        r = card.process(bytes([0x00, 0xC0, 0x00, 0x00, sw & 0xFF]))
        data, sw = data + r[:-2], int.from_bytes(r[-2:], "big")
    return data, sw


def ok(card: IasEccCard, apdu: str) -> bytes:
    data, sw = tx(card, apdu)
    assert sw == 0x9000, f"{apdu}: {sw:04X}"
    return data


def apdu(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> str:
    out = bytes([cla, ins, p1, p2]) + (bytes([len(data)]) + data if data else b"")
    if le is not None:
        out += bytes([le & 0xFF])
    return out.hex()


def verify(card: IasEccCard, pin: str, ref: int = 1) -> int:
    return tx(card, apdu(0, 0x20, 0, ref, pin.encode()))[1]


# --- SHA from an intermediate state -------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
@pytest.mark.parametrize("size", [0, 1, 55, 56, 63, 64, 65, 119, 128, 1000, 4097])
def test_sha_resume_equals_hashlib(algorithm: str, size: int) -> None:
    message = random.Random(size).randbytes(size)
    state, bits, tail = sha_state(algorithm, message)
    assert bits % 512 == 0 and (1 <= len(tail) <= 64 or size == 0)
    assert sha_resume(algorithm, state, bits, tail) == hashlib.new(algorithm, message).digest()


def test_sha_resume_rejects_partial_blocks() -> None:
    with pytest.raises(ValueError):
        sha_resume("sha256", bytes(32), 100, b"x")


# --- transport and files ------------------------------------------------------------


def test_atr_and_t0_get_response(card: IasEccCard) -> None:
    assert card.atr == CPS3_ATR
    # a case-4 command without Le answers 61xx; GET RESPONSE serves the data
    r = card.process(bytes.fromhex("00A40904063F0000015032"))
    assert r[0] == 0x61
    body = card.process(bytes([0, 0xC0, 0, 0, r[1]]))
    assert body[-2:] == b"\x90\x00" and body[0] == 0x62 and len(body) - 2 == r[1]
    # nothing pending any more
    assert card.process(bytes.fromhex("00C0000010")) == b"\x69\x85"


def test_long_response_in_several_get_responses(card: IasEccCard) -> None:
    ok(card, "00200001 04 31323334")
    ok(card, "002241A4 06 840182 800102")
    r = card.process(bytes.fromhex("00880000 04 01020304"))
    assert r == b"\x61\x00"  # 256 bytes waiting
    part = card.process(bytes.fromhex("00C0000080"))
    assert len(part) == 0x82 and part[-2:] == b"\x61\x80"
    rest = card.process(bytes.fromhex("00C0000080"))
    assert len(rest) == 0x82 and rest[-2:] == b"\x90\x00"


def test_select_forms_and_fcp(card: IasEccCard) -> None:
    assert tx(card, "00A4000C023F00") == (b"", 0x9000)
    assert tx(card, "00A4020C023F00") == (b"", 0x9000)
    fcp = ok(card, "00A40904 04 3F00D003")
    assert fcp.hex().startswith("62") and "8302d003" in fcp.hex() and "8801e0" in fcp.hex()
    assert "a1058c0303ff00" in fcp.hex()  # the ACL tag OpenSC insists on
    df = ok(card, "00A40400 0D" + CPS3_AID.hex())
    assert "820138" in df.hex() and "840d" + CPS3_AID.hex() in df.hex().lower()
    assert ok(card, "00A40204 02 5032")[:1] == b"\x62"  # EF in the application DF
    assert tx(card, "00A40204 02 1234")[1] == 0x6A82
    assert tx(card, "00A40400 05 A000000063")[1] == 0x6A82
    assert tx(card, "00A4 0804 04 0001C001")[1] == 0x9000  # path from the MF


def test_read_binary(card: IasEccCard) -> None:
    sn, sw = tx(card, "00B09C00 00")  # SFI 1C: EF.SN.ICC, Le 00 = 256 bytes
    assert sw == 0x6282 and len(sn) == 12 and sn[:7] == bytes.fromhex("5A0A8025000001")
    ok(card, "00A4020C022F01")
    atr, sw = tx(card, "00B00000 FF")
    assert sw == 0x6282 and atr[0] == 0x80 and "e010" in atr.hex()  # past the end: 62 82
    assert tx(card, "00B00000 04")[1] == 0x9000
    assert tx(card, "00B0 0100 04")[1] == 0x6B00  # offset beyond the end
    card.reset()
    assert tx(card, "00B00000 04")[1] == 0x6986  # no current EF after a reset


def test_ef_dir_and_actua(card: IasEccCard) -> None:
    ok(card, "00A4020C022F00")
    ef_dir = tx(card, "00B0000000")[0]
    assert bytes([0x4F, 0x0D]) + CPS3_AID in ef_dir and bytes.fromhex("51043F000001") in ef_dir
    ok(card, "00A4020C02D010")
    actua = ok(card, "00B00000 14")  # exactly the file size
    assert actua[:4] == b"\xec\x12\x81\x07" and actua[11:13] == b"\x82\x07"


# --- PINs ---------------------------------------------------------------------------


def test_verify_counter_status_and_reset(card: IasEccCard) -> None:
    assert tx(card, "00200001")[1] == 0x63C3  # status: spends nothing
    assert verify(card, "0000") == 0x63C2
    assert tx(card, "00200001")[1] == 0x63C2
    assert verify(card, "1111") == 0x63C1
    assert verify(card, "1234") == 0x9000  # a right PIN gives the tries back
    assert tx(card, "00200001")[1] == 0x9000  # verified
    card.reset()
    assert tx(card, "00200001")[1] == 0x63C3  # a reset clears "verified", keeps counters
    for sw in (0x63C2, 0x63C1, 0x6983, 0x6983):
        assert verify(card, "9999") == sw
    assert verify(card, "1234") == 0x6983  # blocked: even the right PIN fails
    card.reset()
    assert tx(card, "00200001")[1] == 0x6983  # the counter outlives a reset


def test_verify_accepts_ff_padding_and_logout(card: IasEccCard) -> None:
    assert tx(card, "00200001 08 31323334FFFFFFFF")[1] == 0x9000
    assert tx(card, "0020FF01")[1] == 0x9000
    assert tx(card, "00200001")[1] == 0x63C3


def test_change_reference_data(card: IasEccCard) -> None:
    assert tx(card, "00240001 09" + b"1234".hex() + b"98765".hex())[1] == 0x9000
    assert verify(card, "1234") == 0x63C2
    assert verify(card, "98765") == 0x9000
    # wrong old PIN counts as a wrong PIN; the value does not change
    assert tx(card, "00240001 08" + b"0000".hex() + b"5555".hex())[1] == 0x63C2
    assert verify(card, "98765") == 0x9000
    # a new PIN too short is refused without spending a try
    assert tx(card, "00240001 08" + b"98765".hex() + b"123".hex())[1] == 0x6A80
    assert tx(card, "00200001")[1] == 0x9000


def test_unblock_with_puk_then_new_pin(card: IasEccCard) -> None:
    card.block_pin()
    assert verify(card, "1234") == 0x6983
    # OpenSC's way: VERIFY the PUK (reference from SE 2), then RESET RETRY COUNTER P1=02
    assert tx(card, "002C0201 04" + b"4321".hex())[1] == 0x6982  # PUK not verified yet
    assert verify(card, "00000000", ref=2) == 0x63C9  # the PUK has its own counter
    assert verify(card, "12345678", ref=2) == 0x9000
    assert tx(card, "002C0201 04" + b"4321".hex())[1] == 0x9000
    assert verify(card, "4321") == 0x9000
    assert card.pin(2).uses_left == 99
    # P1=00: PUK and new PIN in one command
    card.block_pin()
    assert tx(card, "002C0001 0C" + b"12345678".hex() + b"2468".hex())[1] == 0x9000
    assert verify(card, "2468") == 0x9000
    assert card.pin(1).tries_left == 3 and card.pin(2).uses_left == 98


def test_puk_blocks_and_uses_run_out(card: IasEccCard) -> None:
    for _ in range(9):
        verify(card, "00000000", ref=2)
    assert verify(card, "00000000", ref=2) == 0x6983
    assert tx(card, "002C0001 0C" + b"12345678".hex() + b"2468".hex())[1] == 0x6983
    card.pin(2).tries_left, card.pin(2).uses_left = 10, 0
    assert verify(card, "12345678", ref=2) == 0x6983  # no unblock left: the card is dead


def test_get_data_security_objects_as_opensc_expects(card: IasEccCard) -> None:
    # the exact answers OpenSC accepted (VIRTUAL_CPS3.md)
    ok(card, "00A4000C023F00")
    assert ok(card, "00CB3FFF 0B 4D09 7007 BF8101 03 7F4180").hex().upper() == (
        "BF8101097F410680010881010 4".replace(" ", "")
    )
    assert ok(card, "00CB3FFF 0A 4D08 7006 BF8101 02 A080").hex().upper() == (
        "BF810112A0109A01039B0103A1088C06731100 12FF00".replace(" ", "")
    )
    verify(card, "0000")
    assert ok(card, "00CB3FFF 0A 4D08 7006 BF8101 02 A080")[11] == 2  # 9B: tries left
    assert ok(card, "00CB3FFF 0A 4D08 7006 BF9002 02 A080").hex().upper() == (
        "BF900211A00F80020100A1098C077BFF1111FFFF00"
    )
    assert tx(card, "00CB3FFF 0B 4D09 7007 BF9002 03 7F4880")[1] == 0x6A86
    assert ok(card, "00CB3FFF 0A 4D08 7006 BFFB01 02 7B80").hex().upper() == (
        "7B08A406830101950108"
    )
    assert tx(card, "00CB3FFF 0A 4D08 7006 BF9005 02 A080")[1] == 0x6A88


# --- cryptography -----------------------------------------------------------------


def test_internal_authenticate_needs_the_pin_and_verifies(
    card: IasEccCard, creds: CardCredentials
) -> None:
    message = b"authentication challenge"
    di = digest_info("sha256", hashlib.sha256(message).digest())
    ok(card, "002241A4 06 840182 800102")
    assert tx(card, apdu(0, 0x88, 0, 0, di))[1] == 0x6982
    assert verify(card, "1234") == 0x9000
    sig = ok(card, apdu(0, 0x88, 0, 0, di))
    key = creds.authentication.certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
    # the signature key has no INTERNAL AUTHENTICATE
    ok(card, "002241A4 06 840181 800102")
    assert tx(card, apdu(0, 0x88, 0, 0, di))[1] == 0x6985


@pytest.mark.parametrize(("alg", "ht", "dst"), [("sha256", 0x40, 0x42), ("sha1", 0x10, 0x12)])
@pytest.mark.parametrize("size", [10, 64, 300])
def test_qualified_signature_from_intermediate_hash(
    card: IasEccCard, creds: CardCredentials, alg: str, ht: int, dst: int, size: int
) -> None:
    message = random.Random(size).randbytes(size)
    assert verify(card, "1234") == 0x9000
    ok(card, apdu(0, 0x22, 0x41, 0xAA, bytes([0x80, 1, ht])))
    state, bits, tail = sha_state(alg, message)
    if size <= 64:  # short data: the card hashes it all
        data = b"\x90\x00\x80" + bytes([len(message)]) + message
    else:
        inner = state + bits.to_bytes(8, "big")
        data = b"\x90" + bytes([len(inner)]) + inner + b"\x80" + bytes([len(tail)]) + tail
    ok(card, apdu(0, 0x2A, 0x90, 0xA0, data))
    ok(card, apdu(0, 0x22, 0x41, 0xB6, bytes([0x80, 1, dst, 0x84, 1, 0x81])))
    sig = ok(card, "002A9E9A00")
    key = creds.signature.certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(sig, message, padding.PKCS1v15(), hashes.SHA256() if alg == "sha256" else
               hashes.SHA1())  # fmt: skip
    assert tx(card, "002A9E9A00")[1] == 0x6985  # the hash is used up


def test_cds_refused_on_the_authentication_key(card: IasEccCard) -> None:
    verify(card, "1234")
    ok(card, "002241AA 03 800140")
    ok(card, "002A90A0 05 9000800161")
    ok(card, "002241B6 06 800142 840182")
    assert tx(card, "002A9E9A00")[1] == 0x6985


def test_chained_decipher(card: IasEccCard, creds: CardCredentials) -> None:
    key = creds.authentication.certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    cryptogram = key.encrypt(b"session key", padding.PKCS1v15())
    payload = b"\x81" + cryptogram  # 257 bytes: two commands
    ok(card, "002241B8 06 840182 80011A")
    assert tx(card, apdu(0x10, 0x2A, 0x80, 0x86, payload[:255]))[1] == 0x9000
    assert tx(card, apdu(0x00, 0x2A, 0x80, 0x86, payload[255:]))[1] == 0x6982
    verify(card, "1234")
    assert tx(card, apdu(0x10, 0x2A, 0x80, 0x86, payload[:255]))[1] == 0x9000
    assert ok(card, apdu(0x00, 0x2A, 0x80, 0x86, payload[255:])) == b"session key"
    # a chain broken by another command
    tx(card, apdu(0x10, 0x2A, 0x80, 0x86, payload[:255]))
    assert tx(card, "00200001")[1] == 0x6883


def test_mse_checks(card: IasEccCard) -> None:
    assert tx(card, "002241A4 06 840199 800102")[1] == 0x6A88  # no such key
    assert tx(card, "002241A4 06 840182 800177")[1] == 0x6A80  # unknown algorithm
    assert tx(card, "002241C0 03 800102")[1] == 0x6A86
    assert tx(card, "0022F301")[1] == 0x9000  # RESTORE SE
    assert tx(card, "00880000 04 01020304")[1] == 0x6985  # no environment


# --- robustness ---------------------------------------------------------------------


def test_unknown_commands_get_iso_status_words(card: IasEccCard) -> None:
    assert tx(card, "00AA0000")[1] == 0x6D00
    assert tx(card, "80CA9F7F00")[1] == 0x6E00
    assert tx(card, "01A4040C 08 80250000 01FF0100")[1] == 0x6881  # CPS4 probe: channel 1
    assert tx(card, "0CB0000000")[1] == 0x6882  # secure messaging
    assert tx(card, "10A4000C023F00")[1] == 0x6884  # chaining where none is allowed
    assert card.process(b"\x00") == b"\x67\x00"
    assert card.process(bytes.fromhex("00A4000C053F00"))[-2:] == b"\x67\x00"


def test_random_apdus_never_crash(card: IasEccCard) -> None:
    rng = random.Random(2024)
    known = [0xA4, 0xB0, 0x20, 0x24, 0x2C, 0xCB, 0x22, 0x88, 0x2A, 0x84, 0xC0]
    for _ in range(3000):
        ins = rng.choice(known) if rng.random() < 0.8 else rng.randrange(256)
        head = bytes([rng.choice([0x00, 0x10, 0x80, 0x0C, 0x01]), ins,
                      rng.randrange(256), rng.randrange(256)])  # fmt: skip
        body = rng.randbytes(rng.randrange(0, 40))
        r = card.process(head + body)
        assert len(r) >= 2
        assert r[-2] in (0x90, 0x61, 0x62, 0x63, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6D, 0x6E)
    assert card.apdu_count >= 3000


# --- the image ----------------------------------------------------------------------


def _read(card: IasEccCard, path: str) -> bytes:
    ok(card, "00A4000C023F00")
    ok(card, "00A40804" + bytes([len(bytes.fromhex(path))]).hex() + path)
    out = b""
    while True:
        data, sw = tx(card, apdu(0, 0xB0, len(out) >> 8, len(out) & 0xFF, le=0xE7))
        out += data
        if sw == 0x6282 or not data or sw == 0x6B00:
            return out


def test_pkcs15_files_are_der_with_the_cps_labels(card: IasEccCard) -> None:
    odf = _read(card, "00015031")
    assert [c[2] for c in _parse_all(odf)] == [8, 0, 4, 7]  # AODF, PrKDF, CDF, DODF
    tokeninfo = _parse_all(_read(card, "00015032"))
    assert len(tokeninfo) == 1
    assert [c[2] for c in _parse_all(tokeninfo[0][4])][-1] == 2  # supportedAlgorithms [2]
    prkdf = _read(card, "00017002")
    cdf = _read(card, "00017004")
    assert len(_parse_all(prkdf)) == len(_parse_all(cdf)) == 2
    aodf = _read(card, "00017001")
    assert len(_parse_all(aodf)) == 2  # the holder PIN, and the PUK the ANS module unblocks with
    assert b"PUK" in aodf and b"\x80\x01\x02" in aodf  # PUK reference 02
    assert AUTH_KEY_LABEL.encode() in prkdf and SIGN_KEY_LABEL.encode() in prkdf
    assert AUTH_CERT_LABEL.encode() in cdf and SIGN_CERT_LABEL.encode() in cdf
    assert b"\x02\x02\x00\x82" in prkdf and b"\x02\x02\x00\x81" in prkdf  # key references
    dodf = _read(card, "00017005")
    assert len(_parse_all(dodf)) == 7
    for label in ("CPS_ID_CARD", "CPS_NAME_PS", "CPS_DATA", "CPS_ACTIVITY_01_PS", "CPS_SIT_FACT"):
        assert label.encode() in dodf


def test_private_data_objects_need_the_pin(card: IasEccCard) -> None:
    ok(card, "00A40804 04 0001D102")
    assert ok(card, "00B00000 0E") == b"JEAN MEDECIN-TEST"[:14]  # CPS_NAME_PS: public
    ok(card, "00A40804 04 0001D106")  # CPS_ACTIVITY_01_PS
    assert tx(card, "00B00000 04")[1] == 0x6982
    verify(card, "1234")
    assert tx(card, "00B00000 04")[1] == 0x9000


def _parse_all(blob: bytes) -> list[tuple[int, int, int, bytes, bytes, bytes]]:
    """Strict DER walk: every constructed element must parse completely."""
    out = []
    while blob:
        element = parser.parse(blob)
        _, method, _, header, contents, trailer = element
        out.append(element)
        if method == 1:
            _parse_all(contents)
        blob = blob[len(header) + len(contents) + len(trailer) :]
    return out


def test_certificates_on_the_card(card: IasEccCard, creds: CardCredentials) -> None:
    assert _read(card, "0001C001") == creds.authentication.der
    assert _read(card, "0001C002") == creds.signature.der


def test_serial_follows_content(cps_pki: TestPki, creds: CardCredentials) -> None:
    _, a = build_cps3_from_credentials(creds)
    _, b = build_cps3_from_credentials(creds)
    _, other = build_cps3_from_credentials(cps_pki.issue_card(key_name="another card"))
    assert a.serial == b.serial != other.serial
    _, fixed = build_cps3_from_credentials(creds, serial="2812345678")
    assert fixed.serial == "2812345678"


def test_bad_arguments(creds: CardCredentials) -> None:
    for kwargs in ({"pin": "12"}, {"puk": "1234"}, {"serial": "12"}, {"pin_tries": 0}):
        with pytest.raises(TestCardError):
            build_cps3_from_credentials(creds, **kwargs)
    from cps_middleware.testing.cps3image import build_cps3

    with pytest.raises(TestCardError):
        build_cps3(
            authentication=(creds.authentication.certificate, creds.signature.private_key),  # type: ignore[arg-type]
            signature=(creds.signature.certificate, creds.signature.private_key),  # type: ignore[arg-type]
        )


def test_virtual_cps3_controls_without_a_reader(creds: CardCredentials) -> None:
    from cps_middleware.testing.cps3image import VirtualCps3

    card = VirtualCps3(creds, port=35965, pin="4567")
    assert card.reader == "Virtual PCD 35965 00 00" and not card.inserted
    assert card.pin_tries_left == 3 and card.puk_tries_left == 10
    card.set_pin_tries(1)
    assert verify(card.card, "0000") == 0x6983
    card.reset()
    assert card.pin_tries_left == 3 and verify(card.card, "4567") == 0x9000
    assert tx(card.card, "00240001 08" + b"4567".hex() + b"1111".hex())[1] == 0x9000
    card.block_pin()
    card.block_puk()
    assert verify(card.card, "12345678", ref=2) == 0x6983
    card.reset()  # back to the issued PIN and full counters
    assert card.card.pin(1).value == b"4567" and verify(card.card, "4567") == 0x9000
    assert card.puk_tries_left == 10
