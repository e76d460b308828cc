"""cps_middleware.pkcs11 against the CPS test token (_cpstoken.so over SoftHSM).

The test token behaves like a card where SoftHSM does not: 3 PIN tries that
lock, a PUK counter (10), card removal on demand, latency, the CPS3/CPS4
mechanism sets. Each test that changes a PIN uses its own card.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cps_middleware.errors import (
    CardRemoved,
    FinalTryRefused,
    MechanismUnsupported,
    NoSuchObject,
    NotLoggedIn,
    PinIncorrect,
    PinLocked,
    PukIncorrect,
    PukLocked,
)
from cps_middleware.pkcs11 import Mechanism, Pin, PinStatus, PssParams, Puk, Token, load_module

CardFactory = Callable[..., Any]
AUTH_KEY = "CPS_PRIV_AUT"
AUTH_CERT = "Certificat d'Authentification CPS"
SIGN_KEY = "CPS_PRIV_SIG"
SIGN_CERT = "Certificat de Signature CPS"

pytestmark = pytest.mark.skipif(
    not os.path.exists(os.path.join(os.path.dirname(__file__), "..", "cps_middleware",
                                    "_cpstoken.so")),
    reason="the CPS test-token module is not built",
)  # fmt: skip


def _token(card: Any) -> Token:
    return load_module(card.module_path).open_token(serial=card.serial)


def _own_card(factory: CardFactory, name: str, number: int, **kw: Any) -> Any:
    return factory(name=name, serial=f"28990000{number:02d}", label=f"CPS {name}", **kw)


def _verify(token: Token, cert_label: str, sig: bytes, data: bytes, pad: Any) -> None:
    pub = token.certificate(label=cert_label).certificate.public_key()
    assert isinstance(pub, rsa.RSAPublicKey)
    pub.verify(sig, data, pad, hashes.SHA256())


# --- holder PIN: counter, final try, lock ---------------------------------------------


def test_three_wrong_pins_lock_with_flags_at_each_step(cps_card_factory: CardFactory) -> None:
    card = _own_card(cps_card_factory, "p11-lock", 1)
    tok = _token(card)
    info = tok.info
    assert info.is_cps and info.generation == "CPS3" and info.manufacturer == "ANS"
    assert (tok.pin_status, tok.pin_tries_left) == (PinStatus.OK, 3)

    with pytest.raises(PinIncorrect) as e1:
        tok.login(Pin("0000"))
    assert e1.value.tries_left == 2 and "2 tries left" in str(e1.value)
    assert (tok.pin_status, tok.pin_tries_left) == (PinStatus.COUNT_LOW, 2)

    with pytest.raises(PinIncorrect) as e2:
        tok.login(Pin("0000"))
    assert e2.value.tries_left == 1 and "1 try left" in str(e2.value)
    assert (tok.pin_status, tok.pin_tries_left) == (PinStatus.FINAL_TRY, 1)

    # The guard: the final try is not spent without the explicit flag, even with
    # the right PIN, and the card is not asked at all.
    for pin in ("0000", card.pin):
        with pytest.raises(FinalTryRefused):
            tok.login(Pin(pin))
    assert card.state().pin_tries_left == 1

    with pytest.raises(PinLocked) as e3:
        tok.login(Pin("0000"), allow_final_try=True)
    assert e3.value.code_name == "CKR_PIN_INCORRECT" or e3.value.code_name == "CKR_PIN_LOCKED"
    assert (tok.pin_status, tok.pin_tries_left) == (PinStatus.LOCKED, 0)
    assert tok.info.flags.user_pin_locked

    with pytest.raises(PinLocked):  # refused before C_Login: the card is not asked
        tok.login(Pin(card.pin), allow_final_try=True)
    assert not tok.is_logged_in


def test_final_try_with_the_right_pin_and_the_flag_logs_in(cps_card_factory: CardFactory) -> None:
    card = _own_card(cps_card_factory, "p11-final", 2)
    tok = _token(card)
    for _ in range(2):
        with pytest.raises(PinIncorrect):
            tok.login(Pin("9999"))
    tok.login(Pin(card.pin), allow_final_try=True)
    assert tok.is_logged_in
    assert (tok.pin_status, tok.pin_tries_left) == (PinStatus.OK, 3)  # a success resets


def test_locked_pin_is_visible_to_pkcs11_tool(cps_card_factory: CardFactory) -> None:
    tool = shutil.which("pkcs11-tool")
    if tool is None:
        pytest.skip("pkcs11-tool (OpenSC) is not installed")
    card = _own_card(cps_card_factory, "p11-tool", 3)
    tok = _token(card)
    for allow in (False, False, True):
        with pytest.raises((PinIncorrect, PinLocked)):
            tok.login(Pin("0000"), allow_final_try=allow)
    out = subprocess.run(
        [tool, "--module", card.module_path, "--list-token-slots"],
        capture_output=True, text=True, env={**os.environ, **card.env}, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    block = out.stdout[out.stdout.index(card.serial) - 600 : out.stdout.index(card.serial)]
    assert "locked" in block.lower(), out.stdout


# --- PUK ------------------------------------------------------------------------------


def test_unblock_with_the_puk_then_log_in_with_the_new_pin(cps_card_factory: CardFactory) -> None:
    card = _own_card(cps_card_factory, "p11-unblock", 4)
    tok = _token(card)
    card.block_pin()
    assert tok.pin_status is PinStatus.LOCKED
    with pytest.raises(PukIncorrect) as e:
        tok.unblock(Puk("00000000"), Pin("4321"))
    assert e.value.code_name == "CKR_PIN_INCORRECT" and e.value.function == "C_Login"
    assert tok.info.flags.so_pin_count_low
    tok.unblock(Puk(card.puk), Pin("4321"))
    assert (tok.pin_status, tok.info.flags.so_pin_count_low) == (PinStatus.OK, False)
    with pytest.raises(PinIncorrect):
        tok.login(Pin(card.pin))  # the old PIN is gone
    tok.login(Pin("4321"))
    assert tok.is_logged_in
    tok.change_pin(Pin("4321"), Pin(card.pin))


def test_puk_counter_locks_after_ten(cps_card_factory: CardFactory) -> None:
    card = _own_card(cps_card_factory, "p11-puklock", 5)
    tok = _token(card)
    for i in range(9):
        with pytest.raises(PukIncorrect) as e:
            tok.unblock(Puk("00000000"), Pin("4321"))
        assert e.value.tries_left == (1 if i == 8 else None)
    assert tok.info.flags.so_pin_final_try and tok.info.puk_tries_left == 1
    with pytest.raises(FinalTryRefused):
        tok.unblock(Puk(card.puk), Pin("4321"))
    assert card.state().puk_tries_left == 1
    with pytest.raises(PukLocked):
        tok.unblock(Puk("00000000"), Pin("4321"), allow_final_try=True)
    assert tok.info.flags.so_pin_locked and tok.info.puk_tries_left == 0
    with pytest.raises(PukLocked):  # refused before the card is asked
        tok.unblock(Puk(card.puk), Pin("4321"), allow_final_try=True)
    tok.login(Pin(card.pin))  # the holder PIN itself still works


def test_change_pin(cps_card_factory: CardFactory) -> None:
    card = _own_card(cps_card_factory, "p11-change", 6)
    tok = _token(card)
    with pytest.raises(PinIncorrect) as e:
        tok.change_pin(Pin("0000"), Pin("13572468"))
    assert e.value.tries_left == 2 and e.value.function == "C_SetPIN"
    tok.change_pin(Pin(card.pin), Pin("13572468"))
    with pytest.raises(PinIncorrect):
        tok.login(Pin(card.pin))
    tok.login(Pin("13572468"))
    tok.change_pin(Pin("13572468"), Pin(card.pin))
    tok.logout()
    tok.login(Pin(card.pin))


# --- card removal ------------------------------------------------------------------------


def test_pulled_card_raises_card_removed_and_works_after_reinsert_and_login(
    cps_card: Any,
) -> None:
    tok = _token(cps_card)
    tok.login(Pin(cps_card.pin))
    key = tok.private_key(label=AUTH_KEY)
    pad = padding.PKCS1v15()
    _verify(tok, AUTH_CERT, tok.sign(key, Mechanism.SHA256_RSA_PKCS, b"before"), b"before", pad)

    cps_card.remove()
    try:
        with pytest.raises(CardRemoved) as e:
            tok.sign(key, Mechanism.SHA256_RSA_PKCS, b"while out")
        assert e.value.code_name in (
            "CKR_DEVICE_REMOVED", "CKR_TOKEN_NOT_PRESENT", "CKR_SESSION_HANDLE_INVALID"
        )  # fmt: skip
        assert not tok.is_logged_in
        with pytest.raises(CardRemoved):
            _ = tok.pin_status
        with pytest.raises(CardRemoved):
            tok.sign(key, Mechanism.SHA256_RSA_PKCS, b"while out")
        with pytest.raises(CardRemoved):
            tok.login(Pin(cps_card.pin))
    finally:
        cps_card.insert()

    with pytest.raises(NotLoggedIn):  # the PIN was not kept: a fresh login is needed
        tok.sign(key, Mechanism.SHA256_RSA_PKCS, b"after")
    tok.login(Pin(cps_card.pin))
    sig = tok.sign(key, Mechanism.SHA256_RSA_PKCS, b"after")  # the same KeyRef, found again
    _verify(tok, AUTH_CERT, sig, b"after", pad)


def test_pulled_and_reinserted_between_two_calls(cps_card: Any) -> None:
    tok = _token(cps_card)
    tok.login(Pin(cps_card.pin))
    key = tok.private_key(label=AUTH_KEY)
    tok.sign(key, Mechanism.SHA256_RSA_PKCS, b"x")
    cps_card.remove()
    cps_card.insert()
    with pytest.raises(CardRemoved):
        tok.sign(key, Mechanism.SHA256_RSA_PKCS, b"x")
    tok.login(Pin(cps_card.pin))
    tok.sign(key, Mechanism.SHA256_RSA_PKCS, b"x")


def test_login_after_an_unnoticed_reinsert_really_logs_in(cps_card: Any) -> None:
    tok = _token(cps_card)
    tok.login(Pin(cps_card.pin))
    key = tok.private_key(label=AUTH_KEY)
    cps_card.remove()
    cps_card.insert()
    with pytest.raises(PinIncorrect):  # the old login is not taken for granted
        tok.login(Pin("0000"))
    tok.login(Pin(cps_card.pin))
    tok.sign(key, Mechanism.SHA256_RSA_PKCS, b"x")


_PUBLIC_READS: dict[str, Callable[[Token], object]] = {
    "token info": lambda t: t.info.label,
    "PIN status": lambda t: t.pin_status,
    "mechanisms": lambda t: t.mechanism_names(),
    "certificates": lambda t: sorted(c.label for c in t.certificates()),
    "certificate": lambda t: t.certificate(label=SIGN_CERT).label,
    "public keys": lambda t: sorted(k.label for k in t.public_keys()),
    "public key": lambda t: t.public_key(label="CPS_PUB_AUT").label,
    "data objects": lambda t: sorted(d.label for d in t.data_objects() if not d.private),
    "data object": lambda t: t.data_object("CPS_NAME_PS"),
}


@pytest.mark.parametrize("logged_in", [False, True], ids=["not-logged-in", "logged-in"])
def test_reads_needing_no_login_work_at_once_after_a_reinsert(
    cps_card: Any, logged_in: bool
) -> None:
    """A card pulled and put back while the process looked away: the Token handed
    out again by open_token has dead sessions; what needs no login must not show it."""
    expected = {}
    for name, read in _PUBLIC_READS.items():
        tok = _token(cps_card)
        expected[name] = read(tok)
        if logged_in:
            tok.login(Pin(cps_card.pin))
            tok.sign(tok.private_key(label=AUTH_KEY), Mechanism.SHA256_RSA_PKCS, b"x")
        tries = cps_card.state().pin_tries_left
        cps_card.remove()
        cps_card.insert()
        again = _token(cps_card)
        assert again is tok  # the same Token: one per card
        assert read(again) == expected[name], name  # the first call works
        assert read(again) == expected[name], name
        assert not again.is_logged_in  # the login died with the card; the PIN was not re-sent
        assert cps_card.state().pin_tries_left == tries
        again.logout()


def test_reads_needing_no_login_retry_through_the_same_token_object(cps_card: Any) -> None:
    # Without going through open_token: the Token met the dead session itself.
    tok = _token(cps_card)
    tok.certificates()
    for name, read in _PUBLIC_READS.items():
        cps_card.remove()
        cps_card.insert()
        assert read(tok) is not None, name


_LOGIN_OPS: dict[str, Callable[[Token, Any], object]] = {
    "private keys": lambda t, k: t.private_keys(),
    "private key": lambda t, k: t.private_key(label=SIGN_KEY),
    "sign": lambda t, k: t.sign(k, Mechanism.SHA256_RSA_PKCS, b"x"),
    "decrypt": lambda t, k: t.decrypt(k, Mechanism.RSA_PKCS, b"\0" * 256),
    "private data object": lambda t, k: t.data_object("CPS_ACTIVITY_01_PS"),
}


@pytest.mark.parametrize("op", list(_LOGIN_OPS))
def test_operations_needing_the_login_raise_card_removed_once_after_a_reinsert(
    cps_card: Any, op: str
) -> None:
    run = _LOGIN_OPS[op]
    tok = _token(cps_card)
    tok.login(Pin(cps_card.pin))
    key = tok.private_key(label=AUTH_KEY)
    sign_key = tok.private_key(label=SIGN_KEY)
    assert {d.label for d in tok.data_objects()} >= {"CPS_ACTIVITY_01_PS", "CPS_SIT_FACT"}
    tries = cps_card.state().pin_tries_left
    cps_card.remove()
    cps_card.insert()
    tok = _token(cps_card)
    with pytest.raises(CardRemoved) as e:
        run(tok, key)
    assert "log in again" in (e.value.hint or "")
    assert cps_card.state().pin_tries_left == tries  # no PIN was sent by the library
    # Exactly once: from now on the token is simply not logged in.
    if op == "sign":
        with pytest.raises(NotLoggedIn):
            run(tok, key)
    elif op == "private keys":
        assert run(tok, key) == []  # the test token hides private keys before login
    elif op != "decrypt":
        with pytest.raises(NoSuchObject):
            run(tok, key)
    assert not tok.is_logged_in
    tok.login(Pin(cps_card.pin))  # a fresh login, and everything works again
    assert {k.label for k in tok.private_keys()} == {AUTH_KEY, SIGN_KEY}
    assert tok.private_key(label=SIGN_KEY) == sign_key
    assert tok.data_object("CPS_ACTIVITY_01_PS") == b"activity=cabinet;mode=liberal"
    pad = padding.PKCS1v15()
    _verify(tok, AUTH_CERT, tok.sign(key, Mechanism.SHA256_RSA_PKCS, b"after"), b"after", pad)
    tok.logout()


def test_card_facade_after_a_reinsert(cps_card: Any) -> None:
    from cps_middleware.card import open_card

    card = open_card(cps_card.module_path, serial=cps_card.serial)
    holder = card.holder
    card.login(Pin(cps_card.pin))
    key = card.private_key("sign")
    key.sign(b"x", padding.PKCS1v15(), hashes.SHA256())
    cps_card.remove()
    cps_card.insert()
    card = open_card(cps_card.module_path, serial=cps_card.serial)
    assert card.holder == holder and card.pin_status is PinStatus.OK  # no error first
    assert len(card.certificates()) == 4
    with pytest.raises(CardRemoved):
        key.sign(b"x", padding.PKCS1v15(), hashes.SHA256())
    card.login(Pin(cps_card.pin))
    sig = key.sign(b"x", padding.PKCS1v15(), hashes.SHA256())
    card.certificate("sign").public_key().verify(  # type: ignore[union-attr]
        sig, b"x", padding.PKCS1v15(), hashes.SHA256()
    )
    card.logout()


def test_pin_pad_reader_logs_in_without_a_pin(cps_card_factory: CardFactory) -> None:
    from cps_middleware.testing import _tokenstate

    card = _own_card(cps_card_factory, "p11-pinpad", 7)
    _tokenstate.update(card.directory, pin_pad=True, pad_pin=card.pin)
    try:
        tok = _token(card)
        assert tok.pin_status is PinStatus.PIN_PAD and tok.info.flags.protected_authentication_path
        tok.login()  # the holder types the PIN on the reader
        assert tok.is_logged_in
        tok.logout()
        _tokenstate.update(card.directory, pad_pin="0000")
        with pytest.raises(PinIncorrect):
            tok.login()
    finally:
        _tokenstate.update(card.directory, pin_pad=False, pad_pin="")


# --- mechanisms -----------------------------------------------------------------------


def test_cps3_has_no_pss_and_says_what_it_offers(cps_card: Any) -> None:
    tok = _token(cps_card)
    tok.login(Pin(cps_card.pin))
    key = tok.private_key(label=AUTH_KEY)
    with pytest.raises(MechanismUnsupported) as e:
        tok.sign(key, Mechanism.RSA_PKCS_PSS, b"\0" * 32,
                 pss_params=PssParams.for_hash(Mechanism.SHA256))  # fmt: skip
    assert set(e.value.available) == {
        "CKM_RSA_PKCS", "CKM_RSA_X_509", "CKM_SHA1_RSA_PKCS", "CKM_SHA256_RSA_PKCS"
    }  # fmt: skip
    sig = tok.sign(tok.private_key(label=SIGN_KEY), Mechanism.SHA256_RSA_PKCS, b"m")
    _verify(tok, SIGN_CERT, sig, b"m", padding.PKCS1v15())


def test_cps4_signs_pss(cps4_card: Any) -> None:
    tok = _token(cps4_card)
    assert tok.info.generation == "CPS4"
    tok.login(Pin(cps4_card.pin))
    key = tok.private_key(label=AUTH_KEY)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"tls13")
    sig = tok.sign(key, Mechanism.RSA_PKCS_PSS, digest.finalize(),
                   pss_params=PssParams.for_hash(Mechanism.SHA256))  # fmt: skip
    _verify(tok, AUTH_CERT, sig, b"tls13",
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32))  # fmt: skip


# --- concurrency ---------------------------------------------------------------------


def test_threads_and_fork_on_the_test_token(cps_card: Any) -> None:
    tok = _token(cps_card)
    tok.login(Pin(cps_card.pin))
    key = tok.private_key(label=AUTH_KEY)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(50):
                tok.sign(key, Mechanism.SHA256_RSA_PKCS, b"%d" % i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            tok.login(Pin(cps_card.pin))
            os.write(w, tok.sign(key, Mechanism.SHA256_RSA_PKCS, b"child").hex().encode())
            code = 0
        except BaseException as exc:
            os.write(w, repr(exc).encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    _verify(tok, AUTH_CERT, bytes.fromhex(out), b"child", padding.PKCS1v15())
    tok.sign(key, Mechanism.SHA256_RSA_PKCS, b"parent still signs")


def test_async_sign_does_not_block_the_loop_on_a_slow_card(cps_card: Any) -> None:
    card = cps_card
    card.set_latency(100)
    tok = _token(card)

    async def main() -> tuple[int, float]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        t = asyncio.create_task(ticker())
        await tok.login_async(Pin(card.pin))
        key = await asyncio.to_thread(tok.private_key, AUTH_KEY)
        t0 = time.perf_counter()
        await tok.sign_async(key, Mechanism.SHA256_RSA_PKCS, b"slow")
        elapsed = time.perf_counter() - t0
        done.set()
        await t
        return ticks, elapsed

    ticks, elapsed = asyncio.run(main())
    assert elapsed >= 0.09  # the latency is real
    assert ticks >= 5  # the loop ran during the signature
    card.set_latency(0)


def _open_sessions(tok: Token) -> int:
    """Sessions open on this token's slot (CK_SESSION_INFO.slotID)."""
    info = (ctypes.c_ulong * 4)()
    return sum(
        tok.module._raw_call("C_GetSessionInfo", ctypes.c_ulong(h), ctypes.byref(info)) == 0
        and info[0] == tok.slot_id
        for h in range(1, 4096)
    )


def test_logout_during_a_signature_leaks_no_session(cps_card: Any) -> None:
    tok = _token(cps_card)
    tok.login(Pin(cps_card.pin))
    key = tok.private_key(label=AUTH_KEY)
    tok.sign(key, Mechanism.SHA256_RSA_PKCS, b"warm")  # opens one pooled session
    assert _open_sessions(tok) >= 2  # the main session and the pooled one(s)
    cps_card.set_latency(150)
    try:
        result: list[bytes] = []
        t = threading.Thread(
            target=lambda: result.append(tok.sign(key, Mechanism.SHA256_RSA_PKCS, b"slow"))
        )
        t.start()
        time.sleep(0.05)  # the signature is in the card now
        tok.logout()
        t.join()
    finally:
        cps_card.set_latency(0)
    assert len(result) == 1 and not tok.is_logged_in
    assert _open_sessions(tok) == 1  # only the main session: the busy one closed on return
    with pytest.raises(NotLoggedIn):
        tok.sign(key, Mechanism.SHA256_RSA_PKCS, b"x")
