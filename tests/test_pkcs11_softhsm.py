"""cps_middleware.pkcs11 against real SoftHSM tokens (no test-token wrapper).

SoftHSM reads SOFTHSM2_CONF once, at C_Initialize, and other tests of the
process may load SoftHSM with their own configuration: this module loads a
private *copy* of libsofthsm2.so (a distinct file is a distinct library with
its own state for the dynamic linker) after making its tokens.
"""

from __future__ import annotations

import asyncio
import ctypes
import datetime
import logging
import os
import pickle
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pkcs11 as p11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from pkcs11.util.rsa import decode_rsa_private_key, decode_rsa_public_key
from pkcs11.util.x509 import decode_x509_certificate

from cps_middleware.errors import (
    CpsError,
    InvalidInput,
    MechanismUnsupported,
    MultipleObjects,
    MultipleTokens,
    NoSuchObject,
    NoSuchToken,
    NotLoggedIn,
    PinFormatError,
    PinIncorrect,
    PukIncorrect,
)
from cps_middleware.pkcs11 import (
    KeyRef,
    Mechanism,
    OaepParams,
    Pin,
    PinStatus,
    PssParams,
    Puk,
    Token,
    load_module,
)
from cps_middleware.testing import softhsm_library

SOFTHSM = softhsm_library()
pytestmark = pytest.mark.skipif(
    SOFTHSM is None or shutil.which("softhsm2-util") is None, reason="SoftHSM is not installed"
)

PIN = "73915846"
SO_PIN = "28461937"
LABEL_A = "SOFTHSM-A"
LABEL_B = "SOFTHSM-B"
AUTH_CERT = "Certificat d'Authentification CPS"
AUTH_KEY = "CPS_PRIV_AUT"
SIGN_KEY = "CPS_PRIV_SIG"
KEY_ID = bytes.fromhex("a1b2c3")


@dataclass
class Hsm:
    module_path: str
    conf: str
    key: rsa.RSAPrivateKey
    cert: x509.Certificate


def _cert_for(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TEST AUTH")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


def _provision(lib_path: str, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> None:
    lib = p11.lib(lib_path)
    token = lib.get_token(token_label=LABEL_A)
    der_key = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der_pub = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )
    A, OC = p11.Attribute, p11.ObjectClass
    with token.open(rw=True, user_pin=PIN) as s:
        attrs = decode_rsa_private_key(der_key)
        attrs.update({A.LABEL: AUTH_KEY, A.ID: KEY_ID, A.TOKEN: True, A.PRIVATE: True})
        attrs.update({A.SENSITIVE: True, A.EXTRACTABLE: False, A.SIGN: True, A.DECRYPT: True})
        s.create_object(attrs)
        # A qualified-signature-like key: the PIN is asked again for each use.
        sig_attrs = decode_rsa_private_key(der_key)
        sig_attrs.update({A.LABEL: SIGN_KEY, A.ID: b"\x02", A.TOKEN: True, A.PRIVATE: True})
        sig_attrs.update({A.SENSITIVE: True, A.SIGN: True, A.ALWAYS_AUTHENTICATE: True})
        s.create_object(sig_attrs)
        pub = decode_rsa_public_key(der_pub)
        pub.update({A.LABEL: "CPS_PUB_AUT", A.ID: KEY_ID, A.TOKEN: True, A.VERIFY: True,
                    A.ENCRYPT: True})  # fmt: skip
        s.create_object(pub)
        c = decode_x509_certificate(cert.public_bytes(serialization.Encoding.DER))
        c.update({A.LABEL: AUTH_CERT, A.ID: KEY_ID, A.TOKEN: True, A.PRIVATE: False})
        s.create_object(c)
        for label, value, private in (
            ("CPS_ID_CARD", b"\x01\x02card", False),
            ("CPS_ACTIVITY_01_PS", b"activity", True),
            ("DUP", b"one", False),
            ("DUP", b"two", False),
        ):
            s.create_object({A.CLASS: OC.DATA, A.LABEL: label, A.VALUE: value,
                             A.APPLICATION: "CPS", A.TOKEN: True, A.PRIVATE: private})  # fmt: skip


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hsm]:
    assert SOFTHSM is not None
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    copy = root / "libsofthsm2-copy.so"
    shutil.copyfile(SOFTHSM, copy)
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    for label in (LABEL_A, LABEL_B):
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label,
             "--pin", PIN, "--so-pin", SO_PIN],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
    old = os.environ.get("SOFTHSM2_CONF")
    # Kept for the whole module: a forked child re-initialises SoftHSM and reads it again.
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = _cert_for(key)
        _provision(str(copy), key, cert)
        yield Hsm(str(copy), str(conf), key, cert)
    finally:
        if old is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old


@pytest.fixture
def token(hsm: Hsm) -> Iterator[Token]:
    tok = load_module(hsm.module_path).open_token(label=LABEL_A)
    yield tok
    tok.close()


def _open_sessions(tok: Token) -> int:
    """How many sessions the module has open (SoftHSM numbers them from 1)."""
    info = (ctypes.c_ulong * 4)()
    return sum(
        tok.module._raw_call("C_GetSessionInfo", ctypes.c_ulong(h), ctypes.byref(info)) == 0
        for h in range(1, 256)
    )


def _verify_pkcs1(hsm: Hsm, sig: bytes, data: bytes) -> None:
    hsm.key.public_key().verify(sig, data, padding.PKCS1v15(), hashes.SHA256())


# --- module, slots, tokens -----------------------------------------------------------


def test_module_is_loaded_once_per_resolved_path(hsm: Hsm, tmp_path: Path) -> None:
    link = tmp_path / "link.so"
    link.symlink_to(hsm.module_path)
    m1 = load_module(hsm.module_path)
    assert load_module(link) is m1
    assert m1.manufacturer == "SoftHSM"
    assert m1.resolved_path == os.path.realpath(hsm.module_path)


def test_module_already_initialised_by_someone_else_is_used(
    hsm: Hsm, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from pkcs11 import _pkcs11

    caplog.set_level(logging.DEBUG, logger="cps_middleware.pkcs11")

    copy = tmp_path / "libsofthsm2-other.so"  # a distinct file: a fresh SoftHSM instance
    shutil.copyfile(hsm.module_path, copy)
    other = _pkcs11.lib(str(copy))  # C_Initialize by another user, outside python-pkcs11's cache
    assert other.initialized
    module = load_module(copy)  # gets CKR_CRYPTOKI_ALREADY_INITIALIZED and carries on
    assert any("already initialised" in r.getMessage() for r in caplog.records)
    tok = module.open_token(label=LABEL_A)
    try:
        tok.login(Pin(PIN))
        key = tok.private_key(label=AUTH_KEY)
        _verify_pkcs1(hsm, tok.sign(key, Mechanism.SHA256_RSA_PKCS, b"shared"), b"shared")
    finally:
        tok.close()


def test_tokens_listed_with_named_flags(hsm: Hsm) -> None:
    module = load_module(hsm.module_path)
    infos = {t.label: t for t in module.tokens()}
    assert {LABEL_A, LABEL_B} <= set(infos)
    a = infos[LABEL_A]
    assert a.manufacturer == "SoftHSM project" and a.model == "SoftHSM v2"
    assert a.flags.token_initialized and a.flags.user_pin_initialized and a.flags.login_required
    assert not a.flags.user_pin_locked
    assert not a.is_cps and a.max_pin_tries is None and a.generation is None
    assert a.pin_status is PinStatus.OK
    # The free slot SoftHSM always adds is listed too, uninitialised.
    reports = module.scan_slots()
    assert len(reports) == 3 and all(r.error is None for r in reports)
    assert sum(1 for r in reports if r.token and not r.token.flags.token_initialized) == 1


def test_token_selection_explains_itself(hsm: Hsm) -> None:
    module = load_module(hsm.module_path)
    with pytest.raises(NoSuchToken) as e:
        module.open_token(label="NOPE")
    assert LABEL_A in str(e.value) and LABEL_B in str(e.value)
    with pytest.raises(MultipleTokens):
        module.open_token(serial=None, label=None)
    with pytest.raises(NoSuchToken):
        module.open_token(label=LABEL_A, cps_only=True)
    t1 = module.open_token(label=LABEL_A)
    assert module.open_token(serial=t1.serial) is t1  # one Token (and login) per card
    t1.close()


# --- objects ------------------------------------------------------------------------


def test_objects_by_label_id_class(token: Token, hsm: Hsm) -> None:
    stored = token.certificate(label=AUTH_CERT)
    assert stored.certificate == hsm.cert and stored.id == KEY_ID
    assert token.certificate(id=KEY_ID).label == AUTH_CERT
    assert [c.label for c in token.certificates()] == [AUTH_CERT]
    assert token.data_object("CPS_ID_CARD") == b"\x01\x02card"
    with pytest.raises(NoSuchObject):
        token.data_object("CPS_ACTIVITY_01_PS")  # private: needs the PIN
    with pytest.raises(MultipleObjects):
        token.data_object("DUP")
    with pytest.raises(NoSuchObject) as e:
        token.certificate(label="Certificat de Signature CPS")
    assert "Certificat de Signature CPS" in str(e.value)
    pub = token.public_key(id=KEY_ID)
    assert pub.modulus == hsm.key.public_key().public_numbers().n and pub.bits == 2048
    token.login(Pin(PIN))
    key = token.private_key(label=AUTH_KEY)
    assert (key.key_type, key.bits, key.id, key.can_sign, key.can_decrypt) == (
        "RSA", 2048, KEY_ID, True, True)  # fmt: skip
    assert key.public_exponent == 65537
    assert token.data_object("CPS_ACTIVITY_01_PS") == b"activity"
    assert {d.label for d in token.data_objects()} >= {"CPS_ID_CARD", "CPS_ACTIVITY_01_PS"}


# --- signing --------------------------------------------------------------------------


def test_sign_with_explicit_mechanisms(token: Token, hsm: Hsm) -> None:
    with pytest.raises(NotLoggedIn):
        token.sign(token.public_key(id=KEY_ID), Mechanism.SHA256_RSA_PKCS, b"x")
    token.login(Pin(PIN))
    key = token.private_key(label=AUTH_KEY)
    pub = hsm.key.public_key()
    data = b"message to sign"

    sig = token.sign(key, Mechanism.SHA256_RSA_PKCS, data)
    _verify_pkcs1(hsm, sig, data)

    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    d = digest.finalize()
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + d
    assert token.sign(key, Mechanism.RSA_PKCS, digest_info) == sig  # PKCS#1 v1.5 is deterministic

    pss = PssParams.for_hash(Mechanism.SHA256)
    sig_pss = token.sign(key, Mechanism.RSA_PKCS_PSS, d, pss_params=pss)
    pub.verify(
        sig_pss, data,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256(),
    )  # fmt: skip
    with pytest.raises(InvalidInput):
        token.sign(key, Mechanism.RSA_PKCS_PSS, d)  # never python-pkcs11's SHA-1 default
    with pytest.raises(InvalidInput):
        token.sign(key, Mechanism.SHA256_RSA_PKCS, data, pss_params=pss)
    with pytest.raises(InvalidInput):
        token.sign(key, Mechanism.SHA256_RSA_PKCS, data, pin=Pin(PIN))  # no per-use PIN here

    # The python-pkcs11 exception is kept as the cause of the mapped error.
    with pytest.raises(CpsError) as e:
        token.sign(key, Mechanism.ECDSA, d)  # an EC mechanism with an RSA key
    # (SoftHSM 2.6 answers CKR_GENERAL_ERROR here rather than KEY_TYPE_INCONSISTENT)
    assert e.value.code_name == "CKR_GENERAL_ERROR" and e.value.function == "C_Sign"
    assert isinstance(e.value.__cause__, p11.exceptions.GeneralError)
    assert token.is_logged_in  # an operation error does not end the login


def test_always_authenticate_key_takes_the_pin_for_each_signature(token: Token, hsm: Hsm) -> None:
    token.login(Pin(PIN))
    key = token.private_key(label=SIGN_KEY)
    assert key.always_authenticate
    with pytest.raises(NotLoggedIn):
        token.sign(key, Mechanism.SHA256_RSA_PKCS, b"doc")
    with pytest.raises(PinIncorrect):
        token.sign(key, Mechanism.SHA256_RSA_PKCS, b"doc", pin=Pin("0000"))
    _verify_pkcs1(hsm, token.sign(key, Mechanism.SHA256_RSA_PKCS, b"doc", pin=Pin(PIN)), b"doc")


def test_unsupported_mechanism_lists_what_the_token_offers(token: Token) -> None:
    token.login(Pin(PIN))
    key = token.private_key(label=AUTH_KEY)
    offered = token.mechanisms()
    assert Mechanism.SHA256_RSA_PKCS in offered
    missing = next(int(m) for m in p11.Mechanism if int(m) not in offered and int(m) < 0x80000000)
    with pytest.raises(MechanismUnsupported) as e:
        token.sign(key, missing, b"x")
    assert "CKM_SHA256_RSA_PKCS" in e.value.available
    assert "CKM_SHA256_RSA_PKCS" in str(e.value)


def test_decrypt_oaep(token: Token, hsm: Hsm) -> None:
    # SoftHSM 2.6 does OAEP with SHA-1 only.
    token.login(Pin(PIN))
    key = token.private_key(label=AUTH_KEY)
    ct = hsm.key.public_key().encrypt(
        b"secret", padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(),
                                label=None),
    )  # fmt: skip
    pt = token.decrypt(
        key, Mechanism.RSA_PKCS_OAEP, ct, oaep_params=OaepParams.for_hash(Mechanism.SHA_1)
    )
    assert pt == b"secret"


def test_eight_threads_sign_500_times_each(token: Token, hsm: Hsm) -> None:
    token.login(Pin(PIN))
    key = token.private_key(label=AUTH_KEY)
    errors: list[BaseException] = []
    results: list[list[tuple[bytes, bytes]]] = [[] for _ in range(8)]

    def work(n: int) -> None:
        try:
            for i in range(500):
                data = f"{n}-{i}".encode()
                results[n].append((data, token.sign(key, Mechanism.SHA256_RSA_PKCS, data)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(len(r) for r in results) == 4000
    for r in results:
        for data, sig in r[::25]:
            _verify_pkcs1(hsm, sig, data)
    assert _open_sessions(token) <= 1 + Token.pool_size


def test_forked_child_signs_after_a_fresh_login(token: Token, hsm: Hsm) -> None:
    token.login(Pin(PIN))
    key = token.private_key(label=AUTH_KEY)
    token.sign(key, Mechanism.SHA256_RSA_PKCS, b"parent")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report through the pipe, never return into pytest
        code = 1
        try:
            try:
                token.sign(key, Mechanism.SHA256_RSA_PKCS, b"child")
                os.write(w, b"signed without login\n")
            except NotLoggedIn:
                token.login(Pin(PIN))
                sig = token.sign(key, Mechanism.SHA256_RSA_PKCS, b"child")
                os.write(w, sig.hex().encode() + b"\n")
                code = 0
        except BaseException as exc:
            os.write(w, repr(exc).encode() + b"\n")
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read().strip()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    _verify_pkcs1(hsm, bytes.fromhex(out), b"child")
    # The parent's sessions are untouched.
    _verify_pkcs1(hsm, token.sign(key, Mechanism.SHA256_RSA_PKCS, b"parent"), b"parent")


def _child_signs(token: Token, key: KeyRef) -> tuple[int, str]:
    """Fork; the child logs in, signs and reports the signature hex; returns (exit code, text)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            token.login(Pin(PIN))
            os.write(w, token.sign(key, Mechanism.SHA256_RSA_PKCS, b"child").hex().encode())
            code = 0
        except BaseException as exc:
            os.write(w, repr(exc).encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


def test_fork_while_other_threads_sign(token: Token, hsm: Hsm) -> None:
    # The fork waits until no thread is inside the module, so the child never
    # inherits a half-done call (or a lock held by a thread it does not have).
    token.login(Pin(PIN))
    key = token.private_key(label=AUTH_KEY)
    stop = threading.Event()
    errors: list[BaseException] = []
    count = [0]

    def work() -> None:
        try:
            while not stop.is_set():
                token.sign(key, Mechanism.SHA256_RSA_PKCS, b"busy")
                count[0] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(5):
            code, out = _child_signs(token, key)
            assert code == 0, out
            _verify_pkcs1(hsm, bytes.fromhex(out), b"child")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == [] and count[0] > 0


def test_async_login_and_sign_keep_the_loop_running(token: Token, hsm: Hsm) -> None:
    async def main() -> tuple[list[bytes], int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.create_task(ticker())
        await token.login_async(Pin(PIN))
        key = await asyncio.to_thread(token.private_key, AUTH_KEY)
        sigs = await asyncio.gather(
            *(token.sign_async(key, Mechanism.SHA256_RSA_PKCS, b"%d" % i) for i in range(20))
        )
        stop.set()
        await t
        return list(sigs), ticks

    sigs, ticks = asyncio.run(main())
    for i, sig in enumerate(sigs):
        _verify_pkcs1(hsm, sig, b"%d" % i)
    assert ticks > 20


# --- PIN --------------------------------------------------------------------------------


def test_wrong_pin_is_typed_and_leaks_no_session(token: Token) -> None:
    before = _open_sessions(token)
    for _ in range(3):
        with pytest.raises(PinIncorrect) as e:
            token.login(Pin("0000"))
        assert e.value.code_name == "CKR_PIN_INCORRECT" and e.value.function == "C_Login"
        assert e.value.tries_left is None  # SoftHSM has no try counter
    assert _open_sessions(token) == before
    assert token.pin_status == PinStatus.COUNT_LOW
    token.login(Pin(PIN))
    assert (token.is_logged_in, token.pin_status) == (True, PinStatus.OK)
    token.login(Pin("0000"))  # already logged in: nothing is sent to the card
    with pytest.raises(PinFormatError):
        token.login("1234")  # type: ignore[arg-type]  # a str is refused


def test_change_pin_and_unblock_with_the_so_pin(hsm: Hsm) -> None:
    tok = load_module(hsm.module_path).open_token(label=LABEL_B)
    try:
        tok.change_pin(Pin(PIN), Pin("2468"))
        with pytest.raises(PinIncorrect):
            tok.login(Pin(PIN))
        tok.login(Pin("2468"))
        tok.logout()
        with pytest.raises(PukIncorrect):
            tok.unblock(Puk("00000000"), Pin(PIN))
        tok.unblock(Puk(SO_PIN), Pin(PIN))
        tok.login(Pin(PIN))
        assert tok.is_logged_in
    finally:
        tok.close()


def test_no_pin_digits_in_logs_reprs_or_errors(hsm: Hsm, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong, other, puk_wrong = "64203518", "51829364", "90573124"
    texts: list[str] = []

    def collect(exc: BaseException) -> None:
        while exc is not None:
            texts.extend((str(exc), repr(exc), repr(exc.args)))
            exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]

    tok = load_module(hsm.module_path).open_token(label=LABEL_B)
    try:
        for call in (
            lambda: tok.login(Pin(wrong)),
            lambda: tok.change_pin(Pin(wrong), Pin(other)),
            lambda: tok.unblock(Puk(puk_wrong), Pin(other)),
            lambda: Pin(wrong + "x"),
            lambda: Pin(wrong + wrong),
            lambda: Puk(wrong[:6]),
        ):
            with pytest.raises(CpsError) as e:
                call()
            collect(e.value)
        tok.login(Pin(PIN))
        tok.change_pin(Pin(PIN), Pin(other))
        tok.change_pin(Pin(other), Pin(PIN))
        texts += [repr(Pin(wrong)), str(Pin(wrong)), f"{Pin(wrong)}", repr(tok), repr(Puk(SO_PIN))]
        texts += [repr(vars(tok))]
    finally:
        tok.close()
    texts += [r.getMessage() for r in caplog.records] + [repr(r.args) for r in caplog.records]
    assert caplog.records, "the library logs its PIN operations"
    for secret in (wrong, other, puk_wrong, PIN, SO_PIN):
        leaks = [t for t in texts if secret in t]
        assert not leaks, leaks
    with pytest.raises(TypeError):
        pickle.dumps(Pin(PIN))


def test_session_count_stable_after_many_logins(hsm: Hsm) -> None:
    tok = load_module(hsm.module_path).open_token(label=LABEL_B)
    try:
        base = _open_sessions(tok)
        for _ in range(5):
            tok.login(Pin(PIN))
            tok.logout()
        tok.close()
        assert _open_sessions(tok) <= base
    finally:
        tok.close()


def _frames_and_errors(exc: BaseException) -> tuple[list[object], list[BaseException]]:
    """Every frame of every traceback in the exception chain, and the exceptions."""
    frames: list[object] = []
    errors: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is seen for seen in errors):
            continue
        errors.append(e)
        tb = e.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        todo += [e.__cause__, e.__context__]
    return frames, errors


def _shown(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return value.decode("latin-1")
    try:
        return repr(value)
    except Exception:  # a python-pkcs11 object of a closed session
        return ""


def test_wrong_pin_per_use_leaves_no_digits_in_any_frame_or_exception(token: Token) -> None:
    # What pytest --showlocals or Sentry would show: every local of every frame of
    # the raised error and of its causes, and every exception's text and state.
    token.login(Pin(PIN))
    key = token.private_key(label=SIGN_KEY)
    secret = "86420975"
    with pytest.raises(PinIncorrect) as e:
        token.sign(key, Mechanism.SHA256_RSA_PKCS, b"doc", pin=Pin(secret))
    frames, errors = _frames_and_errors(e.value)
    this = sys._getframe().f_code
    frames = [f for f in frames if f.f_code is not this]  # type: ignore[attr-defined]
    assert len(frames) > 2
    for frame in frames:
        for name, value in frame.f_locals.items():  # type: ignore[attr-defined]
            text = _shown(value)
            assert secret not in text, f"PIN digits in local {name!r}"
            if isinstance(value, dict | list | tuple):
                assert secret not in str(value)
    for err in errors:
        assert secret not in str(err) and secret not in repr(err.__dict__)
        assert secret not in repr(err.args)
