"""One scenario suite, every middleware: the CPS test token, OpenSC + virtual CPS3,
the ANS Cryptolib CPS module + virtual CPS3 (``cps_backend``, see
``cps_middleware.testing._fixtures_conformance``).

Where a middleware must behave differently, the scenario says so with the
exact difference and why; everything else is asserted alike for all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import ssl
import threading
import time
import urllib.request

import jwt
import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import pkcs7

from cps_middleware.card import CpsCard
from cps_middleware.cards.atr import CardGeneration
from cps_middleware.errors import (
    CardRemoved,
    CpsError,
    FinalTryRefused,
    MechanismUnsupported,
    NotLoggedIn,
    PinIncorrect,
    PinLocked,
    UnblockNotSupported,
)
from cps_middleware.pkcs11 import Pin, PinStatus, Puk, load_module
from cps_middleware.testing._fixtures_conformance import Backend
from cps_middleware.testing.servers import MutualTlsServer
from cps_middleware.tls import client_context

pytestmark = pytest.mark.pcsc

HASHES = (hashes.SHA256(), hashes.SHA384(), hashes.SHA512())

#: What the ANS module answers a SHA-384/512 DigestInfo on the signature key.
ANS_SIGN_KEY_SHA384_CKR = {
    CardGeneration.CPS3: "CKR_KEY_TYPE_INCONSISTENT",
    CardGeneration.CPS4: "CKR_DATA_INVALID",
}

#: The CKR code of the wrong PIN that blocks the card (the 3rd in a row).
LOCK_CKR = {"ANS": "CKR_PIN_LOCKED", "OpenSC": "CKR_PIN_LOCKED", "test token": "CKR_PIN_LOCKED"}


@pytest.fixture
def card(cps_backend: Backend) -> CpsCard:
    c = cps_backend.open()
    yield c  # type: ignore[misc]
    with contextlib.suppress(CpsError):
        c.close()


def _login(card: CpsCard, backend: Backend) -> None:
    card.login(Pin(backend.pin))


def _verify(backend: Backend, usage: str, sig: bytes, data: bytes, h: hashes.HashAlgorithm) -> None:
    cert = backend.auth_certificate if usage == "auth" else backend.sign_certificate
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(sig, data, padding.PKCS1v15(), h)


def test_discovered_as_one_card(cps_backend: Backend, card: CpsCard) -> None:
    tokens = [t for t in load_module(cps_backend.module).tokens() if t.serial == card.serial]
    assert len(tokens) == 1 and tokens[0].is_cps
    assert card.generation == cps_backend.generation or cps_backend.middleware == "OpenSC"
    # OpenSC shows the model "PKCS#15 emulated", the ANS module and the test token "IAS ECC".
    assert tokens[0].model == ("PKCS#15 emulated" if cps_backend.middleware == "OpenSC"
                               else "IAS ECC")  # fmt: skip


def test_holder_certificates_and_key_pairing(cps_backend: Backend, card: CpsCard) -> None:
    assert card.certificate("auth") == cps_backend.auth_certificate
    assert card.certificate("sign") == cps_backend.sign_certificate
    assert card.holder.surname
    _login(card, cps_backend)
    chosen = card.select()
    assert chosen.certificate.certificate == cps_backend.auth_certificate
    assert chosen.key.public_key is None or (
        chosen.key.public_key.public_numbers() == cps_backend.auth_certificate.public_key()
        .public_numbers()  # type: ignore[union-attr]
    )


def test_pin_status_spends_no_try(cps_backend: Backend, card: CpsCard) -> None:
    for _ in range(3):
        assert card.pin_status == PinStatus.OK
        assert card.pin_tries_left == 3
    assert cps_backend.pin_tries_left() == 3


def test_wrong_pins_count_down_guard_the_final_try_and_lock(
    cps_backend: Backend, card: CpsCard
) -> None:
    wrong = Pin("9999" if cps_backend.pin != "9999" else "8888")
    for left in (2, 1):
        with pytest.raises(PinIncorrect) as e:
            card.login(wrong, allow_final_try=True)
        assert e.value.tries_left == left and e.value.code_name == "CKR_PIN_INCORRECT"
        assert cps_backend.pin_tries_left() == left
    assert card.pin_status == PinStatus.FINAL_TRY
    with pytest.raises(FinalTryRefused):
        card.login(wrong)
    assert cps_backend.pin_tries_left() == 1  # nothing was sent
    with pytest.raises(PinLocked) as locked:
        card.login(wrong, allow_final_try=True)
    assert locked.value.code_name == LOCK_CKR[cps_backend.middleware]
    assert card.pin_status == PinStatus.LOCKED and cps_backend.pin_tries_left() == 0
    with pytest.raises(PinLocked):  # refused without a call to the card
        card.login(Pin(cps_backend.pin))


def test_puk_unblock_then_pin_change(cps_backend: Backend, card: CpsCard) -> None:
    cps_backend.set_pin_tries(0)
    assert card.pin_status == PinStatus.LOCKED
    if cps_backend.middleware == "OpenSC":
        # OpenSC unblocks through PKCS#11 only when configured to
        # (user_pin_unblock_style), which its default configuration is not; with
        # set_pin_in_unlogged_session the library unblocks a CPS3 as issued
        # (test_pkcs11_opensc.py::test_unblock_a_cps3_as_issued_through_opensc).
        with pytest.raises(UnblockNotSupported):
            card.token.unblock(Puk(cps_backend.puk), Pin("5678"))
        assert cps_backend.pin_tries_left() == 0
        return
    card.token.unblock(Puk(cps_backend.puk), Pin("5678"))
    assert cps_backend.pin_tries_left() == 3
    card.login(Pin("5678"))
    card.token.change_pin(Pin("5678"), Pin(cps_backend.pin))
    card.logout()
    card.login(Pin(cps_backend.pin))


@pytest.mark.parametrize("prehashed", [False, True], ids=["message", "prehashed"])
def test_authentication_key_signs_pkcs1_with_every_hash(
    cps_backend: Backend, card: CpsCard, prehashed: bool
) -> None:
    _login(card, cps_backend)
    key = card.private_key("auth")
    for h in HASHES:
        data = b"conformance " + h.name.encode()
        if prehashed:
            sig = key.sign(hashlib.new(h.name, data).digest(), padding.PKCS1v15(), Prehashed(h))
        else:
            sig = key.sign(data, padding.PKCS1v15(), h)  # type: ignore[arg-type]
        _verify(cps_backend, "auth", sig, data, h)


def test_signature_key(cps_backend: Backend, card: CpsCard) -> None:
    _login(card, cps_backend)
    key = card.private_key("sign")
    data = b"document"
    if cps_backend.middleware == "OpenSC":
        # OpenSC built on OpenSSL 3 cannot sign with the CPS3 non-repudiation key
        # (its IAS-ECC qualified-signature code needs OpenSSL < 3): every path is
        # refused, with the hint that signing documents needs the ANS middleware.
        for h in HASHES:
            with pytest.raises(MechanismUnsupported) as e:
                key.sign(data, padding.PKCS1v15(), h)  # type: ignore[arg-type]
            assert "ANS" in (e.value.hint or "")
        return
    sig = key.sign(data, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[arg-type]
    _verify(cps_backend, "sign", sig, data, hashes.SHA256())
    digest = hashlib.sha256(data).digest()
    sig = key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    _verify(cps_backend, "sign", sig, data, hashes.SHA256())
    for h in HASHES[1:]:
        if cps_backend.middleware == "ANS":
            # The ANS module has the card finish a SHA-1/SHA-256 hash for the
            # qualified signature; a SHA-384/512 DigestInfo is refused, with
            # another code per generation.
            with pytest.raises(MechanismUnsupported) as e:
                key.sign(data, padding.PKCS1v15(), h)  # type: ignore[arg-type]
            assert e.value.code_name == ANS_SIGN_KEY_SHA384_CKR[cps_backend.generation]
        else:
            sig = key.sign(data, padding.PKCS1v15(), h)  # type: ignore[arg-type]
            _verify(cps_backend, "sign", sig, data, h)


def _cms(card: CpsCard, usage: str) -> bytes:
    return pkcs7.PKCS7SignatureBuilder().set_data(b"document").add_signer(
        card.certificate(usage), card.private_key(usage), hashes.SHA256()  # type: ignore[arg-type]
    ).sign(serialization.Encoding.DER, [])


def _check_cms(backend: Backend, usage: str, der: bytes) -> None:
    signer = cms.ContentInfo.load(der)["content"]["signer_infos"][0]
    attrs = signer["signed_attrs"]
    digest = next(a["values"][0].native for a in attrs if a["type"].native == "message_digest")
    assert digest == hashlib.sha256(b"document").digest()
    signed = b"\x31" + attrs.dump()[1:]  # the SET OF the attributes is what was signed
    _verify(backend, usage, signer["signature"].native, signed, hashes.SHA256())


@pytest.mark.parametrize("usage", ["auth", "sign"])
def test_jwt_and_cms(cps_backend: Backend, card: CpsCard, usage: str) -> None:
    _login(card, cps_backend)
    if usage == "sign" and cps_backend.middleware == "OpenSC":
        # OpenSC cannot sign with the signature key (see test_signature_key).
        with pytest.raises(MechanismUnsupported):
            jwt.encode({"sub": "x"}, card.private_key(usage), algorithm="RS256")
        return
    token = jwt.encode({"sub": "conformance"}, card.private_key(usage), algorithm="RS256")
    cert = cps_backend.auth_certificate if usage == "auth" else cps_backend.sign_certificate
    claims = jwt.decode(token, cert.public_key(), algorithms=["RS256"])  # type: ignore[arg-type]
    assert claims == {"sub": "conformance"}
    _check_cms(cps_backend, usage, _cms(card, usage))


def test_tls12_client_authentication(
    cps_backend: Backend, card: CpsCard, cps_tls_server: MutualTlsServer
) -> None:
    _login(card, cps_backend)
    ctx = client_context(card, cadata=cps_tls_server.ca_pem.decode())
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with urllib.request.urlopen(cps_tls_server.url, context=ctx, timeout=30) as r:
        body = json.loads(r.read().decode())
    assert body["tls"]["version"] == "TLSv1.2"


def test_decryption_with_the_authentication_key(cps_backend: Backend, card: CpsCard) -> None:
    _login(card, cps_backend)
    public = cps_backend.auth_certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    ct = public.encrypt(b"session key", padding.PKCS1v15())
    assert card.private_key("auth").decrypt(ct, padding.PKCS1v15()) == b"session key"


def test_card_pulled_mid_session_then_put_back(cps_backend: Backend, card: CpsCard) -> None:
    _login(card, cps_backend)
    key = card.private_key("auth")
    key.sign(b"before", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[arg-type]
    cps_backend.pull()
    with pytest.raises(CardRemoved):
        key.sign(b"while out", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[arg-type]
    cps_backend.put_back()
    with pytest.raises((CardRemoved, NotLoggedIn)):
        key.sign(b"after", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[arg-type]
    assert not card.is_logged_in
    _login(card, cps_backend)
    sig = key.sign(b"after", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[arg-type]
    _verify(cps_backend, "auth", sig, b"after", hashes.SHA256())


# The command that computes a signature, whatever the card and module choose:
# INTERNAL AUTHENTICATE (88) or a PERFORM SECURITY OPERATION (2A: compute digital
# signature, or decipher — the ANS module signs with a CPS4's authentication key
# through a chained PSO DECIPHER), on any logical channel.
def _signing_command(apdu: bytes) -> bool:
    return len(apdu) >= 4 and apdu[1] in (0x88, 0x2A)


def test_card_pulled_while_it_signs_then_put_back(cps_backend: Backend, card: CpsCard) -> None:
    """The holder pulls the card while the reader waits for the signature. Both real
    modules answer CKR_GENERAL_ERROR and see the card gone only at pcscd's next poll
    (0.3-0.5 s later): the library looks, and raises CardRemoved — not "the
    middleware failed" — without hanging; after putting the card back, one login
    signs again."""
    if cps_backend.pull_on is None:
        pytest.skip("the test token has no card commands to interrupt")
    _login(card, cps_backend)
    key = card.private_key("auth")
    key.sign(b"before", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[arg-type]
    cps_backend.pull_on(_signing_command)
    t0 = time.monotonic()
    with pytest.raises(CardRemoved) as pulled:
        key.sign(b"while pulled", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[arg-type]
    assert time.monotonic() - t0 < 5
    assert pulled.value.function == "C_Sign"
    assert not card.is_logged_in
    cps_backend.put_back()
    with pytest.raises((CardRemoved, NotLoggedIn)):
        key.sign(b"after", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[arg-type]
    _login(card, cps_backend)
    sig = key.sign(b"after", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[arg-type]
    _verify(cps_backend, "auth", sig, b"after", hashes.SHA256())


def test_fork_child_uses_the_card_parent_recovers_with_one_login(
    cps_backend: Backend, card: CpsCard
) -> None:
    _login(card, cps_backend)
    key = card.private_key("auth")
    key.sign(b"before", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[arg-type]
    pid = os.fork()
    if pid == 0:  # the child reads the PIN status, as a worker pool would
        code = 0
        try:
            child = cps_backend.open()
            code = 0 if child.pin_status == PinStatus.OK and not child.is_logged_in else 3
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # is_logged_in tells the truth at once (never a stuck True)
    assert card.is_logged_in is (cps_backend.middleware != "ANS")
    try:
        sig = key.sign(b"after", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[arg-type]
    except CardRemoved as exc:  # SessionLost: the child's use broke the parent's sessions
        # The ANS module: a forked child's C_Initialize releases the parent's PC/SC
        # context; the parent is told once, then is simply not logged in.
        assert cps_backend.middleware == "ANS", exc
        assert "log in again" in (exc.hint or "")
        assert not card.is_logged_in
        with pytest.raises(NotLoggedIn):
            key.sign(b"after", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[arg-type]
        _login(card, cps_backend)
        sig = key.sign(b"after", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[arg-type]
    _verify(cps_backend, "auth", sig, b"after", hashes.SHA256())


def test_eight_threads_sign_concurrently(cps_backend: Backend, card: CpsCard) -> None:
    per_thread = int(os.environ.get("CPS_CONFORMANCE_SIGNATURES", "200"))
    _login(card, cps_backend)
    key = card.private_key("auth")
    errors: list[BaseException] = []
    sigs: list[tuple[bytes, bytes]] = []

    def worker(n: int) -> None:
        try:
            for i in range(per_thread):
                data = b"%d-%d" % (n, i)
                sig = key.sign(data, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[arg-type]
                sigs.append((data, sig))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert len(sigs) == 8 * per_thread
    for data, sig in sigs[:: max(1, len(sigs) // 16)]:
        _verify(cps_backend, "auth", sig, data, hashes.SHA256())


def test_token_information_is_a_cps3s(cps_backend: Backend, card: CpsCard) -> None:
    from cps_middleware.cards.profiles import CPS3

    info = card.token.info
    assert (info.min_pin_len, info.max_pin_len) == (CPS3.pin_min_len, CPS3.pin_max_len)
    assert (info.hardware_version, info.firmware_version) == (
        CPS3.hardware_version, CPS3.firmware_version)  # fmt: skip
    assert info.manufacturer == CPS3.manufacturer
    assert info.flags.protected_authentication_path is False
    if cps_backend.middleware == "OpenSC":
        # OpenSC shows its PKCS#15 emulation and a read-only token.
        assert info.model == "PKCS#15 emulated"
        assert info.flags.value == CPS3.token_flags | 0x2  # + CKF_WRITE_PROTECTED
        return
    # The test token shows what the ANS module shows for the same card (the ANS
    # module names a CPS4's token model "IAS ECC" too).
    assert info.model == CPS3.model and info.label.startswith(CPS3.token_label)
    assert info.flags.value == CPS3.token_flags
    assert load_module(cps_backend.module).middleware == cps_backend.middleware
