"""PIN-pad login through the real middleware, with a reader that has a PIN pad.

The reader is the package's own pcscd driver (``_ifdpinpad.so``,
``native/pinpad/pinpad.c``): vpcd's protocol plus PC/SC part 10 secure PIN
entry (FEATURE_VERIFY_PIN_DIRECT), as CCID PIN-pad readers do it. The virtual
CPS3 sits in ``CPS PIN pad 35969 00 00``; the person at the reader is the
card's :class:`~cps_middleware.testing.vpcd.Keypad`.

What the two real modules do with such a reader (both observed here):

* OpenSC sees the reader's PIN pad, sets CKF_PROTECTED_AUTHENTICATION_PATH and
  logs in with a NULL PIN: the reader builds the VERIFY APDU, the PIN never
  crosses the middleware. OpenSC shows only 4 readers by default
  (max_virtual_slots 16 / slots_per_card 4); the bench has 7, so OpenSC runs
  in a subprocess with an ``OPENSC_CONF`` that raises the limit.
* The ANS module for Linux (3.1.0, OpenSC 0.11.12 inside) has no PC/SC part 10
  code at all (no feature request is ever sent, whatever ``enable_pinpad``
  says): the token does not show a PIN pad, and the holder types the PIN in
  the application, which the module sends in a plain VERIFY through the same
  reader.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cps_middleware.errors import PinFormatError
from cps_middleware.pkcs11 import Pin
from cps_middleware.testing.cps3image import VirtualCps3
from cps_middleware.testing.pcscd import DEFAULT_PINPAD_PORTS, pinpad_reader_name
from cps_middleware.testing.vpcd import Keypad

pytestmark = pytest.mark.pcsc

PAD_PORT = DEFAULT_PINPAD_PORTS[0]
SERIAL = "2800000969"

OPENSC_CONF = """\
app default {
    framework pkcs15 { }
}
app opensc-pkcs11 {
    pkcs11 {
        max_virtual_slots = 64;
    }
}
"""

# Run by a fresh interpreter whose OpenSC reads OPENSC_CONF: each step logs in
# on the PIN pad (the parent types the keys), then signs and checks the
# signature with the card's certificate.
SCENARIO = textwrap.dedent("""\
    import json, sys
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cps_middleware import CpsError, open_card

    out = {}
    with open_card(sys.argv[1], serial=sys.argv[2]) as card:
        out["pin_status"] = card.pin_status.value
        for step in sys.argv[3:]:
            try:
                card.login()
            except CpsError as exc:
                out[step] = [type(exc).__name__, exc.code_name, getattr(exc, "tries_left", None)]
                continue
            sig = card.private_key("auth").sign(b"pin pad", padding.PKCS1v15(), hashes.SHA256())
            card.certificate("auth").public_key().verify(
                sig, b"pin pad", padding.PKCS1v15(), hashes.SHA256())
            out[step] = "signed"
            card.logout()
    print(json.dumps(out))
""")


def _pad_readers() -> list[str]:
    from cps_middleware.pcsc.context import PcscContext

    with PcscContext() as ctx:
        return [r for r in ctx.list_reader_names() if r.startswith("CPS PIN pad")]


@pytest.fixture
def pad_card(cps_pcscd: object, cps_iasecc_cps3_factory: Any) -> Iterator[VirtualCps3]:
    if pinpad_reader_name(PAD_PORT) not in _pad_readers():
        pytest.skip("the running pcscd has no PIN-pad reader (started by an older layout): "
                    "restart it with scripts/pcscd.sh restart")  # fmt: skip
    card: VirtualCps3 = cps_iasecc_cps3_factory(serial=SERIAL, port=PAD_PORT)
    card.vpcd.keypad = Keypad()  # nothing typed yet, no request counted
    card.keypad.max_wait = 2.0  # the reader's own timeout is 30 s
    yield card
    card.remove()


def test_the_pin_pad_reader_carries_a_card_like_vpcd(pad_card: VirtualCps3) -> None:
    from cps_middleware.pcsc.readers import list_readers

    (reader,) = [r for r in list_readers() if r.name == pinpad_reader_name(PAD_PORT)]
    assert reader.card_present and reader.atr == pad_card.card.atr


def test_opensc_logs_in_on_the_pin_pad(
    pad_card: VirtualCps3, cps_opensc_module: str, tmp_path: Path
) -> None:
    conf = tmp_path / "opensc.conf"
    conf.write_text(OPENSC_CONF)
    pad_card.keypad.type("9999")  # wrong
    pad_card.keypad.cancel()
    pad_card.keypad.walk_away()  # the reader times out
    pad_card.keypad.type(pad_card.pin)
    run = subprocess.run(
        [sys.executable, "-c", SCENARIO, cps_opensc_module, SERIAL,
         "wrong", "cancelled", "timed_out", "right"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "OPENSC_CONF": str(conf)},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["pin_status"] == "pin_pad"
    assert out["wrong"] == ["PinIncorrect", "CKR_PIN_INCORRECT", 2]
    # cancel key and timeout: OpenSC says CKR_FUNCTION_CANCELED for both; no try spent
    assert out["cancelled"] == ["PinEntryCancelled", "CKR_FUNCTION_CANCELED", None]
    assert out["timed_out"] == ["PinEntryCancelled", "CKR_FUNCTION_CANCELED", None]
    assert out["right"] == "signed"
    assert pad_card.keypad.requests == 4 and pad_card.keypad.pending == 0
    assert pad_card.pin_tries_left == 3  # the right PIN reset the counter
    # the reader built each VERIFY: the digits typed on the pad, in ASCII, Lc set
    verifies = [c for c, _ in pad_card.vpcd.apdu_log if c[1] == 0x20 and len(c) > 5]
    assert [c[5:] for c in verifies] == [b"9999", pad_card.pin.encode()]
    assert pad_card.pin not in run.stdout + run.stderr


def test_the_ans_module_for_linux_has_no_pin_pad_support(
    pad_card: VirtualCps3, cps_ans_module: str
) -> None:
    from cps_middleware.card import open_card

    with open_card(cps_ans_module, serial=SERIAL[:8]) as card:  # ANS shows 8 digits
        assert card.pin_status.value != "pin_pad"
        with pytest.raises(PinFormatError):
            card.login()  # no PIN and no PIN pad: refused before C_Login
        card.login(Pin(pad_card.pin))  # typed in the application, sent through the reader
        assert card.is_logged_in
        card.logout()
    assert pad_card.keypad.requests == 0
    assert pad_card.pin_tries_left == 3


def test_a_malformed_pin_pad_request_is_an_error_not_a_hang(pad_card: VirtualCps3) -> None:
    """The driver checks the PIN_VERIFY_STRUCTURE it is given (length fields, room
    for the PIN) and answers an error instead of writing past the APDU."""
    from smartcard.scard import (
        SCARD_CTL_CODE,
        SCARD_LEAVE_CARD,
        SCARD_PROTOCOL_T0,
        SCARD_PROTOCOL_T1,
        SCARD_S_SUCCESS,
        SCARD_SCOPE_USER,
        SCARD_SHARE_SHARED,
        SCardConnect,
        SCardControl,
        SCardDisconnect,
        SCardEstablishContext,
        SCardReleaseContext,
    )

    rv, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
    assert rv == SCARD_S_SUCCESS
    try:
        rv, handle, _ = SCardConnect(ctx, pinpad_reader_name(PAD_PORT), SCARD_SHARE_SHARED,
                                     SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)  # fmt: skip
        assert rv == SCARD_S_SUCCESS
        rv, features = SCardControl(handle, SCARD_CTL_CODE(3400), [])
        assert rv == SCARD_S_SUCCESS
        tlv = bytes(features)
        verify = int.from_bytes(tlv[2:6], "big")
        assert tlv[0] == 0x06 and tlv[6] == 0x0A  # VERIFY_PIN_DIRECT, IFD_PIN_PROPERTIES
        pad_card.keypad.type("1234")
        # ulDataLength says 13 bytes, 5 are given: refused, nothing sent to the card
        bad = bytes([30, 30, 0x82, 0x08, 0, 8, 4, 2, 0, 0, 0, 0, 0, 0, 0, 13, 0, 0, 0,
                     0, 0x20, 0, 1, 8])  # fmt: skip
        before = len(pad_card.vpcd.apdu_log)
        rv, _ = SCardControl(handle, verify, list(bad))
        assert rv != SCARD_S_SUCCESS
        assert len(pad_card.vpcd.apdu_log) == before
        # PIN position past an 8-byte template: refused after reading the keys
        far = bytes([30, 30, 0x82 | (15 << 3), 0x08, 0, 8, 4, 2, 0, 0, 0, 0, 0, 0, 0, 13, 0,
                     0, 0, 0, 0x20, 0, 1, 8]) + b"\xff" * 8  # fmt: skip
        rv, _ = SCardControl(handle, verify, list(far))
        assert rv != SCARD_S_SUCCESS
        assert len(pad_card.vpcd.apdu_log) == before
        SCardDisconnect(handle, SCARD_LEAVE_CARD)
    finally:
        SCardReleaseContext(ctx)


def test_cps_testcard_virtual_pin_pad_prompts_for_the_pin(
    cps_pcscd: object, cps_opensc_module: str, tmp_path: Path
) -> None:
    """``cps testcard create --virtual --pin-pad``: the card in the PIN-pad reader; when
    the middleware logs in on the pad, the command asks the person for the PIN (here
    its standard input: no terminal) and the reader presents it."""
    if pinpad_reader_name(PAD_PORT) not in _pad_readers():
        pytest.skip("the running pcscd has no PIN-pad reader: restart it")
    conf = tmp_path / "opensc.conf"
    conf.write_text(OPENSC_CONF)
    env = {**os.environ, "OPENSC_CONF": str(conf)}
    serve = subprocess.Popen(
        [sys.executable, "-m", "cps_middleware.cli", "--lang", "en", "testcard", "create",
         "--virtual", "--pin-pad", "--json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env=env,
    )  # fmt: skip
    try:
        assert serve.stdout is not None and serve.stdin is not None
        info = json.loads(serve.stdout.readline())
        assert info["reader"] == pinpad_reader_name(PAD_PORT) and info["port"] == PAD_PORT
        serve.stdin.write("0000\n" + info["pin"] + "\n")  # a wrong PIN, then the right one
        serve.stdin.flush()
        listing = subprocess.run(["pkcs11-tool", "--module", cps_opensc_module, "-L"],
                                 capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
        slot = next(line.split("(")[1].split(")")[0] for line in listing.stdout.splitlines()
                    if pinpad_reader_name(PAD_PORT) in line)  # fmt: skip
        runs = [subprocess.run(["pkcs11-tool", "--module", cps_opensc_module, "--slot", slot,
                                "--login", "--list-objects", "--type", "privkey"],
                               capture_output=True, text=True, env=env, timeout=60)
                for _ in range(2)]  # fmt: skip
        assert runs[0].returncode != 0 and "CKR_PIN_INCORRECT" in runs[0].stderr
        assert runs[1].returncode == 0, runs[1].stderr
        assert "Private Key Object" in runs[1].stdout
        assert info["pin"] not in runs[1].stdout + runs[1].stderr  # the pad presented it
    finally:
        serve.terminate()
        _, err = serve.communicate(timeout=30)
    assert serve.returncode == 0, err
    assert err.count("The PIN-pad reader asks for the PIN") == 2
