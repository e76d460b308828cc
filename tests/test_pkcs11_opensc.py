"""cps_middleware.pkcs11 on OpenSC's module and the virtual IAS-ECC CPS3 (pcscd + vpcd).

A card reset by another process, or pulled and put back, behind the library's
back: what needs no login works at the first call; what needs the login raises
CardRemoved once and works after a fresh login. And OpenSC's unblock, which
it refuses unless configured to.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cps_middleware.errors import CardRemoved, NotLoggedIn
from cps_middleware.pkcs11 import Mechanism, Pin, PinStatus, Token, load_module
from cps_middleware.testing.cps3image import AUTH_KEY_LABEL, VirtualCps3
from cps_middleware.testing.iasecc import digest_info

pytestmark = pytest.mark.pcsc

DI = digest_info("sha256", hashlib.sha256(b"x").digest())

_RESET = """
import sys
from smartcard.scard import (SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1, SCARD_RESET_CARD,
    SCARD_S_SUCCESS, SCARD_SCOPE_USER, SCARD_SHARE_SHARED, SCardConnect, SCardDisconnect,
    SCardEstablishContext, SCardReleaseContext)
rv, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
assert rv == SCARD_S_SUCCESS, rv
rv, card, _ = SCardConnect(ctx, sys.argv[1], SCARD_SHARE_SHARED,
                           SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)
assert rv == SCARD_S_SUCCESS, rv
assert SCardDisconnect(card, SCARD_RESET_CARD) == SCARD_S_SUCCESS
SCardReleaseContext(ctx)
"""


def _reset_by_another_process(card: VirtualCps3) -> None:
    subprocess.run([sys.executable, "-c", _RESET, card.reader], check=True, timeout=60)


def _reinsert(card: VirtualCps3) -> None:
    card.remove()
    card.insert()


DISRUPTIONS: dict[str, Callable[[VirtualCps3], None]] = {
    "reset-by-another-process": _reset_by_another_process,
    "pulled-and-put-back": _reinsert,
}

PUBLIC_READS: dict[str, Callable[[Token], object]] = {
    "token info": lambda t: t.info.serial,
    "PIN status": lambda t: t.pin_status,
    "certificates": lambda t: sorted(c.label for c in t.certificates()),
    "public keys": lambda t: sorted(k.label for k in t.public_keys()),
    "data objects": lambda t: sorted(d.label for d in t.data_objects() if not d.private),
    "data object": lambda t: t.data_object("CPS_NAME_PS"),
}


def _token(cps_opensc_module: str, card: VirtualCps3) -> Token:
    return load_module(cps_opensc_module).open_token(serial=card.objects.serial)


def _verify(card: VirtualCps3, signature: bytes) -> None:
    key = card.objects.auth_certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, b"x", padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("disrupt", list(DISRUPTIONS))
def test_reads_needing_no_login_work_at_once_after_the_card_changed(
    cps_opensc_module: str, cps_iasecc_cps3: VirtualCps3, disrupt: str
) -> None:
    token = _token(cps_opensc_module, cps_iasecc_cps3)
    token.logout()
    expected = {name: read(token) for name, read in PUBLIC_READS.items()}
    assert expected["data object"] == b"CLAIRE IASECC-TEST"
    for name, read in PUBLIC_READS.items():
        token.login(Pin(cps_iasecc_cps3.pin))
        token.sign(token.private_key(label=AUTH_KEY_LABEL), Mechanism.RSA_PKCS, DI)
        DISRUPTIONS[disrupt](cps_iasecc_cps3)
        again = _token(cps_opensc_module, cps_iasecc_cps3)
        assert read(again) == expected[name], name  # the first call works
        assert not again.is_logged_in
        assert cps_iasecc_cps3.pin_tries_left == 3
        again.logout()


@pytest.mark.parametrize("disrupt", list(DISRUPTIONS))
def test_signing_raises_card_removed_once_then_works_after_a_new_login(
    cps_opensc_module: str, cps_iasecc_cps3: VirtualCps3, disrupt: str
) -> None:
    token = _token(cps_opensc_module, cps_iasecc_cps3)
    token.login(Pin(cps_iasecc_cps3.pin))
    key = token.private_key(label=AUTH_KEY_LABEL)
    _verify(cps_iasecc_cps3, token.sign(key, Mechanism.RSA_PKCS, DI))
    DISRUPTIONS[disrupt](cps_iasecc_cps3)
    token = _token(cps_opensc_module, cps_iasecc_cps3)
    assert token.pin_status is PinStatus.OK
    with pytest.raises(CardRemoved) as e:
        token.sign(key, Mechanism.RSA_PKCS, DI)
    assert "log in again" in (e.value.hint or "")
    with pytest.raises(NotLoggedIn):  # once: the library does not log in by itself
        token.sign(key, Mechanism.RSA_PKCS, DI)
    token.login(Pin(cps_iasecc_cps3.pin))
    _verify(cps_iasecc_cps3, token.sign(key, Mechanism.RSA_PKCS, DI))
    token.logout()


# --- unblock: OpenSC refuses unless configured to --------------------------------------


NO_UNBLOCK_CONF = """\
app default {
    framework pkcs15 { }
}
"""


def test_unblock_on_opensc_without_the_setting_says_what_to_configure(
    cps_opensc_module: str, cps_iasecc_cps3: VirtualCps3, tmp_path: Path
) -> None:
    """In a subprocess: OpenSC reads OPENSC_CONF when the module starts, and this
    process's module may have read another one."""
    conf = tmp_path / "opensc.conf"
    conf.write_text(NO_UNBLOCK_CONF)
    cps_iasecc_cps3.block_pin()
    script = textwrap.dedent(f"""
        from cps_middleware.errors import PinError, UnblockNotSupported
        from cps_middleware.pkcs11 import Pin, PinStatus, Puk, load_module
        token = load_module({cps_opensc_module!r}).open_token(
            serial={cps_iasecc_cps3.objects.serial!r})
        assert token.pin_status is PinStatus.LOCKED, token.pin_status
        try:
            token.unblock(Puk({cps_iasecc_cps3.puk!r}), Pin("2468"))
        except UnblockNotSupported as exc:
            assert isinstance(exc, PinError)
            assert exc.function == "C_InitPIN", exc.function
            print(exc.hint)
        else:
            raise SystemExit("unblock did not fail")
        assert token.pin_status is PinStatus.LOCKED, token.pin_status
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "OPENSC_CONF": str(conf)})  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    hint = out.stdout.strip()
    assert "user_pin_unblock_style = set_pin_in_unlogged_session" in hint  # a CPS3 as issued
    assert "init_pin_in_so_session" in hint  # a card that does not list its PUK (this one)
    assert "OPENSC_CONF" in hint and "ANS middleware" in hint and "no such limit" in hint
    assert cps_iasecc_cps3.pin_tries_left == 0  # still blocked, nothing pretended
    assert cps_iasecc_cps3.puk_tries_left == 10  # the right PUK spent nothing


UNLOGGED_UNBLOCK_CONF = """\
app default {
    framework pkcs15 { }
}
app opensc-pkcs11 {
    pkcs11 {
        user_pin_unblock_style = set_pin_in_unlogged_session;
    }
}
"""


@pytest.mark.parametrize("configured", [True, False], ids=["configured", "default-conf"])
def test_unblock_a_cps3_as_issued_through_opensc(
    cps_opensc_module: str, cps_iasecc_cps3_factory: Any, tmp_path: Path, configured: bool
) -> None:
    """A CPS3 as issued lists its unblocking code (the PUK object the ANS module
    needs): OpenSC then refuses C_InitPIN in an SO session whatever its setting,
    and unblocks only with C_SetPIN(PUK, new) in an unlogged session when configured
    with set_pin_in_unlogged_session. The library takes that path by itself; with
    OpenSC's default configuration the PIN stays blocked, no try of either code is
    spent, and the hint names the setting."""
    card = cps_iasecc_cps3_factory(serial="2800000313")  # the default image: PUK listed
    assert card.layout.puk_in_aodf
    card.block_pin()
    conf = tmp_path / "opensc.conf"
    conf.write_text(UNLOGGED_UNBLOCK_CONF if configured else NO_UNBLOCK_CONF)
    script = textwrap.dedent(f"""
        from cps_middleware.errors import UnblockNotSupported
        from cps_middleware.pkcs11 import Pin, PinStatus, Puk, load_module
        token = load_module({cps_opensc_module!r}).open_token(serial={card.objects.serial!r})
        try:
            token.unblock(Puk({card.puk!r}), Pin("2468"))
        except UnblockNotSupported as exc:
            print("refused", exc.hint)
        else:
            assert token.pin_status is PinStatus.OK, token.pin_status
            token.login(Pin("2468"))
            print("unblocked")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "OPENSC_CONF": str(conf)})  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert card.puk_tries_left == 10
    if configured:
        assert out.stdout.strip() == "unblocked"
        assert card.pin_tries_left == 3
        assert card.card.pin(card.layout.pin_ref).value == b"2468"
    else:
        assert out.stdout.startswith("refused")
        assert "set_pin_in_unlogged_session" in out.stdout
        assert card.pin_tries_left == 0  # the PUK checked as the PIN of a blocked PIN: nothing
