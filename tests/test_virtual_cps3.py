"""A virtual CPS3 driven by OpenSC's unmodified PKCS#11 module through pcscd + vpcd.

Real components only: pcscd with the vpcd driver, the IAS-ECC engine on the
card side, ``opensc-pkcs11.so`` (driver "IAS/ECC CPx") and ``pkcs11-tool``.
The card is in ``Virtual PCD 35965 00 00`` (see ``_fixtures_cps3``); OpenSC
lists every reader as a slot, so the slot is chosen by reader name.

OpenSC only unblocks a PIN through PKCS#11 when configured to
(``user_pin_unblock_style = init_pin_in_so_session``): the unblock runs in a
subprocess with its own ``OPENSC_CONF``, because the module loaded in this
process has read its configuration already.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pkcs11 import Attribute, Mechanism, ObjectClass, TokenFlag
from pkcs11 import exceptions as px

from cps_middleware.testing.cps3image import (
    AUTH_CERT_LABEL,
    AUTH_KEY_LABEL,
    SIGN_CERT_LABEL,
    SIGN_KEY_LABEL,
    VirtualCps3,
)
from cps_middleware.testing.iasecc import digest_info

pytestmark = pytest.mark.pcsc

UNBLOCK_CONF = """\
app default {
    framework pkcs15 { }
}
app opensc-pkcs11 {
    pkcs11 {
        user_pin_unblock_style = init_pin_in_so_session;
    }
}
"""


@pytest.fixture(scope="module")
def lib(cps_opensc_module: str) -> Any:
    # python-pkcs11 caches modules by path string; the library loads the real
    # path, so use the same key to share the one initialised module.
    return pkcs11.lib(os.path.realpath(cps_opensc_module))


def slot_of(lib: Any, card: VirtualCps3) -> Any:
    for slot in lib.get_slots():
        if slot.slot_description.strip() == card.reader:
            return slot
    raise AssertionError(f"OpenSC has no slot for {card.reader!r}")


def token_of(lib: Any, card: VirtualCps3) -> Any:
    return slot_of(lib, card).get_token()


@pytest.fixture
def token(lib: Any, cps_iasecc_cps3: VirtualCps3) -> Any:
    return token_of(lib, cps_iasecc_cps3)


def pkcs11_tool(module: str, card: VirtualCps3, *args: str, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        ["pkcs11-tool", "--module", module, "--slot-description", card.reader, *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.fixture
def unblock_conf(tmp_path: Path) -> str:
    path = tmp_path / "opensc.conf"
    path.write_text(UNBLOCK_CONF)
    return str(path)


def auth_public_key(card: VirtualCps3) -> rsa.RSAPublicKey:
    key = card.objects.auth_certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


# --- what pkcs11-tool shows ------------------------------------------------------------


def test_pkcs11_tool_lists_the_token(cps_opensc_module: str, cps_iasecc_cps3: VirtualCps3) -> None:
    out = pkcs11_tool(cps_opensc_module, cps_iasecc_cps3, "-L")
    assert out.returncode == 0, out.stderr
    section = out.stdout.split(cps_iasecc_cps3.reader, 1)[1].split("Slot ", 1)[0]
    assert "token label        : CPS" in section
    assert "token manufacturer : ANS" in section
    assert f"serial num         : {cps_iasecc_cps3.objects.serial}" in section
    assert "login required" in section and "PIN initialized" in section
    assert "pin min/max        : 4/8" in section


def test_pkcs11_tool_lists_both_certificates(
    cps_opensc_module: str, cps_iasecc_cps3: VirtualCps3
) -> None:
    out = pkcs11_tool(cps_opensc_module, cps_iasecc_cps3, "-O")
    assert out.returncode == 0, out.stderr
    assert f"label:      {AUTH_CERT_LABEL}" in out.stdout
    assert f"label:      {SIGN_CERT_LABEL}" in out.stdout
    assert "CN=810009876543" in out.stdout  # the holder's PS_IdNat
    assert f"ID:         {cps_iasecc_cps3.objects.auth_id.hex()}" in out.stdout
    assert "Private Key Object" not in out.stdout  # private keys need the PIN
    out = pkcs11_tool(cps_opensc_module, cps_iasecc_cps3, "--login", "--pin", cps_iasecc_cps3.pin,
                      "-O", "--type", "privkey")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"label:      {AUTH_KEY_LABEL}" in out.stdout
    assert f"label:      {SIGN_KEY_LABEL}" in out.stdout
    assert "non-repudiation" in out.stdout


# --- python-pkcs11 on OpenSC's module --------------------------------------------------------


def test_certificates_read_through_pkcs11(token: Any, cps_iasecc_cps3: VirtualCps3) -> None:
    with token.open() as session:
        certs = {
            c[Attribute.LABEL]: c[Attribute.VALUE]
            for c in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE})
        }
    assert certs[AUTH_CERT_LABEL] == cps_iasecc_cps3.credentials.authentication.der
    assert certs[SIGN_CERT_LABEL] == cps_iasecc_cps3.credentials.signature.der


def test_data_objects(token: Any, cps_iasecc_cps3: VirtualCps3) -> None:
    def values(session: Any) -> dict[str, bytes]:
        return {
            o[Attribute.LABEL]: o[Attribute.VALUE]
            for o in session.get_objects({Attribute.CLASS: ObjectClass.DATA})
        }

    with token.open() as session:
        public = values(session)
    assert set(public) == {"CPS_ID_CARD", "CPS_NAME_PS", "CPS_LANG_PS", "CPS_INFO_PS", "CPS_DATA"}
    assert public["CPS_NAME_PS"] == b"CLAIRE IASECC-TEST"
    with token.open(user_pin=cps_iasecc_cps3.pin) as session:
        private = values(session)
    assert private["CPS_ACTIVITY_01_PS"] == "Médecin".encode()
    assert "CPS_SIT_FACT" in private


def test_authentication_signature_verifies(token: Any, cps_iasecc_cps3: VirtualCps3) -> None:
    message = b"TLS 1.2 CertificateVerify transcript"
    di = digest_info("sha256", hashlib.sha256(message).digest())
    with token.open(user_pin=cps_iasecc_cps3.pin) as session:
        key = session.get_key(ObjectClass.PRIVATE_KEY, label=AUTH_KEY_LABEL)
        signature = key.sign(di, mechanism=Mechanism.RSA_PKCS)
    auth_public_key(cps_iasecc_cps3).verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


def test_decryption(token: Any, cps_iasecc_cps3: VirtualCps3) -> None:
    secret = os.urandom(32)
    cryptogram = auth_public_key(cps_iasecc_cps3).encrypt(secret, padding.PKCS1v15())
    with token.open(user_pin=cps_iasecc_cps3.pin) as session:
        key = session.get_key(ObjectClass.PRIVATE_KEY, label=AUTH_KEY_LABEL)
        assert key.decrypt(cryptogram, mechanism=Mechanism.RSA_PKCS) == secret
    # 257 bytes (padding indicator + 256) do not fit one APDU: OpenSC chains
    log = cps_iasecc_cps3.vpcd.apdu_log
    assert any(c[:4] == bytes.fromhex("102A8086") for c, _ in log)


def test_signature_key_cannot_sign_through_opensc(token: Any, cps_iasecc_cps3: VirtualCps3) -> None:
    """A fact, not a card fault: OpenSC's IAS-ECC qualified signature needs OpenSSL < 3."""
    with token.open(user_pin=cps_iasecc_cps3.pin) as session:
        key = session.get_key(ObjectClass.PRIVATE_KEY, label=SIGN_KEY_LABEL)
        start = len(cps_iasecc_cps3.vpcd.apdu_log)
        with pytest.raises(px.FunctionNotSupported):
            key.sign(b"contract", mechanism=Mechanism.SHA256_RSA_PKCS)
        sent = [c for c, _ in cps_iasecc_cps3.vpcd.apdu_log[start:]]
        assert any(c[:4] == bytes.fromhex("002241B6") for c in sent)  # MSE SET DST went out
        assert not any(c[1:4] == bytes.fromhex("2A9E9A") for c in sent)  # no PSO CDS
        with pytest.raises(px.MechanismInvalid):  # and no raw RSA on a non-repudiation key
            key.sign(digest_info("sha256", bytes(32)), mechanism=Mechanism.RSA_PKCS)
        auth = session.get_key(ObjectClass.PRIVATE_KEY, label=AUTH_KEY_LABEL)
        with pytest.raises(px.MechanismInvalid):  # hash-and-sign refused on the auth key
            auth.sign(b"data", mechanism=Mechanism.SHA256_RSA_PKCS)


def _flags(lib: Any, card: VirtualCps3) -> TokenFlag:
    return TokenFlag(token_of(lib, card).flags)


def test_pin_counts_down_and_locks(lib: Any, cps_iasecc_cps3: VirtualCps3) -> None:
    low, final, locked = (TokenFlag.USER_PIN_COUNT_LOW, TokenFlag.USER_PIN_FINAL_TRY,
                          TokenFlag.USER_PIN_LOCKED)  # fmt: skip
    assert not _flags(lib, cps_iasecc_cps3) & (low | final | locked)
    token = token_of(lib, cps_iasecc_cps3)
    with pytest.raises(px.PinIncorrect):
        token.open(user_pin="0000")
    assert cps_iasecc_cps3.pin_tries_left == 2
    assert _flags(lib, cps_iasecc_cps3) & low and not _flags(lib, cps_iasecc_cps3) & final
    with pytest.raises(px.PinIncorrect):
        token.open(user_pin="0000")
    assert _flags(lib, cps_iasecc_cps3) & final
    with pytest.raises((px.PinLocked, px.PinIncorrect)):
        token.open(user_pin="0000")
    assert _flags(lib, cps_iasecc_cps3) & locked
    assert cps_iasecc_cps3.pin_tries_left == 0
    with pytest.raises(px.PinLocked):  # even the right PIN
        token.open(user_pin=cps_iasecc_cps3.pin)


def test_right_pin_restores_the_counter(lib: Any, cps_iasecc_cps3: VirtualCps3) -> None:
    token = token_of(lib, cps_iasecc_cps3)
    with pytest.raises(px.PinIncorrect):
        token.open(user_pin="0000")
    with token.open(user_pin=cps_iasecc_cps3.pin):
        pass
    assert cps_iasecc_cps3.pin_tries_left == 3
    assert not _flags(lib, cps_iasecc_cps3) & TokenFlag.USER_PIN_COUNT_LOW


def test_unblock_with_puk_then_change_pin(
    lib: Any, cps_opensc_module: str, cps_iasecc_cps3: VirtualCps3, unblock_conf: str
) -> None:
    cps_iasecc_cps3.block_pin()
    assert _flags(lib, cps_iasecc_cps3) & TokenFlag.USER_PIN_LOCKED
    out = pkcs11_tool(cps_opensc_module, cps_iasecc_cps3, "--login", "--login-type", "so",
                      "--so-pin", cps_iasecc_cps3.puk, "--init-pin", "--new-pin", "4321",
                      env={"OPENSC_CONF": unblock_conf})  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert cps_iasecc_cps3.pin_tries_left == 3
    assert cps_iasecc_cps3.card.pin(cps_iasecc_cps3.layout.puk_ref).uses_left == 99
    flags = _flags(lib, cps_iasecc_cps3)
    assert not flags & (TokenFlag.USER_PIN_LOCKED | TokenFlag.USER_PIN_COUNT_LOW)
    token = token_of(lib, cps_iasecc_cps3)
    with token.open(user_pin="4321", rw=True) as session:
        session.set_pin("4321", "97531")  # C_SetPIN: CHANGE REFERENCE DATA
    assert cps_iasecc_cps3.card.pin(cps_iasecc_cps3.layout.pin_ref).value == b"97531"
    # The card keeps "PIN verified" until reset, and OpenSC's IAS-ECC driver then
    # accepts the PIN it verified last without sending it: clear the card's state
    # as a power cycle would before checking that the old PIN is refused.
    cps_iasecc_cps3.card.reset()
    with pytest.raises(px.PinIncorrect):
        token.open(user_pin="4321")
    with token.open(user_pin="97531"):
        pass


def test_wrong_puk_is_counted(
    cps_opensc_module: str, cps_iasecc_cps3: VirtualCps3, unblock_conf: str
) -> None:
    cps_iasecc_cps3.block_pin()
    out = pkcs11_tool(cps_opensc_module, cps_iasecc_cps3, "--login", "--login-type", "so",
                      "--so-pin", "00000000", "--init-pin", "--new-pin", "4321",
                      env={"OPENSC_CONF": unblock_conf})  # fmt: skip
    assert out.returncode != 0
    assert "CKR_PIN_INCORRECT" in out.stdout + out.stderr
    assert cps_iasecc_cps3.puk_tries_left == 9
    assert cps_iasecc_cps3.pin_tries_left == 0


def test_pulled_card_errors_then_works_after_new_login(
    lib: Any, cps_iasecc_cps3: VirtualCps3
) -> None:
    di = digest_info("sha256", hashlib.sha256(b"x").digest())
    token = token_of(lib, cps_iasecc_cps3)
    session = token.open(user_pin=cps_iasecc_cps3.pin)
    try:
        key = session.get_key(ObjectClass.PRIVATE_KEY, label=AUTH_KEY_LABEL)
        key.sign(di, mechanism=Mechanism.RSA_PKCS)
        cps_iasecc_cps3.remove()
        with pytest.raises((px.DeviceRemoved, px.TokenNotPresent, px.SessionHandleInvalid,
                            px.SessionClosed, px.DeviceError)):  # fmt: skip
            key.sign(di, mechanism=Mechanism.RSA_PKCS)
    finally:
        with contextlib.suppress(px.PKCS11Error):  # the session died with the card
            session.close()
    cps_iasecc_cps3.insert()
    with token_of(lib, cps_iasecc_cps3).open(user_pin=cps_iasecc_cps3.pin) as session:
        key = session.get_key(ObjectClass.PRIVATE_KEY, label=AUTH_KEY_LABEL)
        signature = key.sign(di, mechanism=Mechanism.RSA_PKCS)
    auth_public_key(cps_iasecc_cps3).verify(signature, b"x", padding.PKCS1v15(), hashes.SHA256())


# --- the library's PKCS#11 layer on top --------------------------------------------------------


@pytest.fixture
def lib_token(cps_opensc_module: str, cps_iasecc_cps3: VirtualCps3) -> Iterator[Any]:
    from cps_middleware.pkcs11 import load_module

    module = load_module(cps_opensc_module)
    token = module.open_token(serial=cps_iasecc_cps3.objects.serial)
    yield token
    token.logout()


def test_library_pin_status_login_sign_decrypt(
    lib_token: Any, cps_iasecc_cps3: VirtualCps3
) -> None:
    from cps_middleware.errors import FinalTryRefused, PinIncorrect, PinLocked
    from cps_middleware.pkcs11 import Pin, PinStatus

    assert lib_token.pin_status is PinStatus.OK
    with pytest.raises(PinIncorrect) as wrong:
        lib_token.login(Pin("0000"))
    assert wrong.value.tries_left == 2
    assert lib_token.pin_status is PinStatus.COUNT_LOW
    with pytest.raises(PinIncorrect):
        lib_token.login(Pin("0000"))
    assert lib_token.pin_status is PinStatus.FINAL_TRY
    with pytest.raises(FinalTryRefused):  # the library never spends the last try by itself
        lib_token.login(Pin("0000"))
    assert cps_iasecc_cps3.pin_tries_left == 1
    lib_token.login(Pin(cps_iasecc_cps3.pin), allow_final_try=True)
    assert lib_token.pin_status is PinStatus.OK and cps_iasecc_cps3.pin_tries_left == 3

    key = lib_token.private_key(label=AUTH_KEY_LABEL)
    di = digest_info("sha256", hashlib.sha256(b"hello").digest())
    signature = lib_token.sign(key, int(Mechanism.RSA_PKCS), di)
    auth_public_key(cps_iasecc_cps3).verify(
        signature, b"hello", padding.PKCS1v15(), hashes.SHA256())
    cryptogram = auth_public_key(cps_iasecc_cps3).encrypt(b"k" * 16, padding.PKCS1v15())
    assert lib_token.decrypt(key, int(Mechanism.RSA_PKCS), cryptogram) == b"k" * 16
    lib_token.logout()

    cps_iasecc_cps3.block_pin()
    assert lib_token.pin_status is PinStatus.LOCKED
    with pytest.raises(PinLocked):
        lib_token.login(Pin(cps_iasecc_cps3.pin), allow_final_try=True)


def test_library_unblock_and_change(
    cps_opensc_module: str, cps_iasecc_cps3: VirtualCps3, unblock_conf: str
) -> None:
    """In a subprocess: OpenSC must read the unblock style before it initialises."""
    cps_iasecc_cps3.block_pin()
    script = textwrap.dedent(f"""
        from cps_middleware.pkcs11 import Pin, PinStatus, Puk, load_module
        token = load_module({cps_opensc_module!r}).open_token(
            serial={cps_iasecc_cps3.objects.serial!r})
        assert token.pin_status is PinStatus.LOCKED, token.pin_status
        token.unblock(Puk({cps_iasecc_cps3.puk!r}), Pin("2468"))
        assert token.pin_status is PinStatus.OK, token.pin_status
        token.login(Pin("2468"))
        token.change_pin(Pin("2468"), Pin("135790"))
        token.logout()
        token.login(Pin("135790"))
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "OPENSC_CONF": unblock_conf})  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr
    assert cps_iasecc_cps3.card.pin(cps_iasecc_cps3.layout.pin_ref).value == b"135790"


def test_mutual_tls_12_through_opensc_server_offering_pss_first(
    cps_opensc_module: str,
    cps_iasecc_cps3: VirtualCps3,
    cps_openssl_server_factory: Callable[..., Any],
) -> None:
    import re
    import ssl
    import urllib.request

    from cps_middleware.card import open_card
    from cps_middleware.errors import InvalidInput
    from cps_middleware.pkcs11 import Pin
    from cps_middleware.tls import client_context

    card = open_card(module=cps_opensc_module, serial=cps_iasecc_cps3.objects.serial)
    try:
        card.login(Pin(cps_iasecc_cps3.pin))
        server = cps_openssl_server_factory(
            client_sigalgs="rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pkcs1_sha256"
        )
        ctx = client_context(card, cadata=server.ca_pem.decode())
        assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2  # no PSS on a CPS3
        with pytest.raises(InvalidInput):  # TLS 1.3 needs PSS: refused up front
            client_context(card, cadata=server.ca_pem.decode(),
                           maximum_version=ssl.TLSVersion.TLSv1_3)  # fmt: skip
        start = cps_iasecc_cps3.card.apdu_count
        with urllib.request.urlopen(server.url, context=ctx, timeout=30) as r:
            page = r.read().decode()
        assert "Protocol  : TLSv1.2" in page
        assert re.search(r"Peer signature type: RSA\b(?!-PSS)", page)
        assert cps_iasecc_cps3.card.apdu_count > start  # the card signed
    finally:
        card.close()


def test_library_card_pulled_mid_session_then_new_login(
    cps_opensc_module: str, cps_iasecc_cps3: VirtualCps3, cps_tls_server: Any
) -> None:
    import urllib.request

    from cps_middleware.card import open_card
    from cps_middleware.errors import CardRemoved
    from cps_middleware.pkcs11 import Pin
    from cps_middleware.tls import client_context

    def get(ctx: Any) -> int:
        with urllib.request.urlopen(cps_tls_server.url, context=ctx, timeout=30) as r:
            return int(r.status)

    card = open_card(module=cps_opensc_module, serial=cps_iasecc_cps3.objects.serial)
    card.login(Pin(cps_iasecc_cps3.pin))
    ctx = client_context(card, cadata=cps_tls_server.ca_pem.decode())
    assert get(ctx) == 200
    cps_iasecc_cps3.remove()
    with pytest.raises(CardRemoved):
        get(ctx)
    with contextlib.suppress(Exception):
        card.close()
    cps_iasecc_cps3.insert()
    card = open_card(module=cps_opensc_module, serial=cps_iasecc_cps3.objects.serial)
    try:
        card.login(Pin(cps_iasecc_cps3.pin))
        assert get(client_context(card, cadata=cps_tls_server.ca_pem.decode())) == 200
    finally:
        card.close()


def test_library_discovers_the_virtual_cps3(
    cps_opensc_module: str, cps_iasecc_cps3: VirtualCps3
) -> None:
    from cps_middleware.discovery import discover


    found = [c for c in discover(module_path=cps_opensc_module)
             if c.reader == cps_iasecc_cps3.reader]
    assert len(found) == 1, found
    card = found[0]
    assert card.atr == cps_iasecc_cps3.card.atr and card.is_cps
    assert card.generation is not None and "CPS3" in str(card.generation)
    assert card.token is not None and card.token.serial == cps_iasecc_cps3.objects.serial
    assert card.holder is not None, card.pkcs11_error
    assert card.holder.ps_id_nat == "810009876543"
    assert (card.holder.given_name, card.holder.surname) == ("CLAIRE", "IASECC-TEST")
    assert card.holder.is_test_card
