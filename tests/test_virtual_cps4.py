"""A virtual CPS4 (ChipDoc) driven by the ANS Cryptolib module through pcscd + vpcd.

Real components only: pcscd with the vpcd driver, the ChipDoc card model on the
card side (``cps_middleware.testing.cps4image``), the unmodified ANS module
``libcps3_pkcs11_lux.so`` 5.2.2 loaded in this process with private
``/etc/opt`` and ``/var/opt`` (``cps_ans_module``), and the library's own
PKCS#11 layer on top. Signatures are checked against the card's certificates.

The scenarios take one ``backend`` fixture (module path + card): a
backend-parametrised conformance suite can run them as its CPS4 backend.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import select
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cps_middleware import diagnostics
from cps_middleware.card import CpsCard, open_card
from cps_middleware.cards.atr import CPS4_CHIPDOC_AID, CardGeneration
from cps_middleware.cli import main as cli_main
from cps_middleware.diagnostics import DiagnosticOptions, Status
from cps_middleware.errors import CpsError, FinalTryRefused, NoSuchToken, PinIncorrect, PinLocked
from cps_middleware.pcsc.card import PinStatusKind, probe_generation, read_pin_tries
from cps_middleware.pkcs11 import (
    Mechanism,
    Pin,
    PinStatus,
    PssParams,
    Puk,
    Token,
    load_module,
)
from cps_middleware.testing._fixtures_cps4 import Backend, VirtualCps4Factory
from cps_middleware.testing.cps3image import VirtualCps3
from cps_middleware.testing.cps4image import (
    AUTH_CERT_LABEL,
    AUTH_KEY_LABEL,
    CPS4_PROFILE,
    SIGN_CERT_LABEL,
    SIGN_KEY_LABEL,
    VirtualCps4,
)
from cps_middleware.testing.iasecc import digest_info
from cps_middleware.testing.servers import MutualTlsServer, OpenSslServer
from cps_middleware.tls import client_context
from cps_middleware.tls import test_ssl as run_test_ssl

pytestmark = pytest.mark.pcsc

MESSAGE = b"ordonnance 2026-12-06: amoxicilline 1 g x 3/j"


@pytest.fixture(scope="module", autouse=True)
def _empty_readers_at_the_end(cps_ans_cps4_factory: VirtualCps4Factory) -> Iterator[None]:
    yield
    cps_ans_cps4_factory.remove_all()  # the next test modules expect empty readers


@pytest.fixture
def backend(cps_ans_cps4_backend: Backend) -> Backend:
    return cps_ans_cps4_backend


def _token(backend: Backend, timeout: float = 10.0) -> Token:
    """The card's token; after a reinsertion the module needs a moment to see it."""
    module = load_module(backend.module)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return module.open_token(serial=backend.card.objects.serial[:8])
        except NoSuchToken:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def token(backend: Backend) -> Iterator[Token]:
    tok = _token(backend)
    yield tok
    tok.close()


def _public(backend: Backend, which: str) -> rsa.RSAPublicKey:
    cert = (backend.card.objects.auth_certificate if which == "auth"
            else backend.card.objects.sign_certificate)  # fmt: skip
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def _sent(card: VirtualCps4, start: int = 0) -> list[bytes]:
    return [c for c, _ in card.vpcd.apdu_log[start:]]


# --- listing ---------------------------------------------------------------------------


def test_token_listed_with_both_certificates(token: Token, backend: Backend) -> None:
    card = backend.card
    info = token.info
    assert info.label.startswith("CPS") and info.manufacturer == "ANS"
    assert info.serial == card.objects.serial[:8]  # the module shows 8 of the 10 digits
    assert info.flags.login_required and info.flags.user_pin_initialized
    assert (info.min_pin_len, info.max_pin_len) == (4, 8)
    certs = {c.label: c.der for c in token.certificates()}
    assert certs[AUTH_CERT_LABEL] == card.credentials.authentication.der
    assert certs[SIGN_CERT_LABEL] == card.credentials.signature.der
    # the ANS CPS4 driver selects the ChipDoc applet on logical channel 1
    assert bytes.fromhex("01A4040C08") + card.card.profile.chipdoc_aid in _sent(card)


def test_mechanisms_include_pss(token: Token) -> None:
    offered = token.mechanisms()
    assert int(Mechanism.RSA_PKCS) in offered
    assert int(Mechanism.RSA_PKCS_PSS) in offered


def test_private_keys_after_login(token: Token, backend: Backend) -> None:
    token.login(Pin(backend.card.pin))
    labels = {k.label for k in token.private_keys()}
    assert {AUTH_KEY_LABEL, SIGN_KEY_LABEL} <= labels


# --- PIN life cycle ----------------------------------------------------------------------


def test_pin_counter_and_unblock(token: Token, backend: Backend) -> None:
    card = backend.card
    start = len(card.vpcd.apdu_log)
    with pytest.raises(PinIncorrect) as exc:
        token.login(Pin("9999"))
    assert exc.value.tries_left == 2 and card.pin_tries_left == 2
    assert token.pin_status is PinStatus.COUNT_LOW
    with pytest.raises(PinIncorrect):
        token.login(Pin("9998"))
    assert card.pin_tries_left == 1
    assert token.pin_status is PinStatus.FINAL_TRY
    with pytest.raises(FinalTryRefused):  # the library's guard: nothing sent
        token.login(Pin("9997"))
    assert card.pin_tries_left == 1
    with pytest.raises(PinLocked):
        token.login(Pin("9997"), allow_final_try=True)
    assert card.pin_tries_left == 0 and token.pin_status is PinStatus.LOCKED
    # the CPS4 PIN-status APDU: VERIFY without data on channel 1
    assert bytes.fromhex("01200001") in _sent(card, start)

    token.unblock(Puk(card.puk), Pin("4321"))
    assert card.pin_tries_left == 3
    token.login(Pin("4321"))
    assert token.is_logged_in
    assert token.pin_status is PinStatus.OK  # the status query after login says 63 C3
    sent = _sent(card, start)
    assert any(c[:4] == bytes.fromhex("012C0381") for c in sent)  # reset the counter
    assert any(c[:4] == bytes.fromhex("01240101") for c in sent)  # then the new PIN


def test_pin_change(token: Token, backend: Backend) -> None:
    token.change_pin(Pin(backend.card.pin), Pin("56789"))
    token.logout()
    with pytest.raises(PinIncorrect):
        token.login(Pin(backend.card.pin))
    token.login(Pin("56789"))


# --- signatures ---------------------------------------------------------------------------


def test_authentication_pkcs1(token: Token, backend: Backend) -> None:
    token.login(Pin(backend.card.pin))
    key = token.private_key(AUTH_KEY_LABEL)
    di = digest_info("sha256", hashlib.sha256(MESSAGE).digest())
    start = len(backend.card.vpcd.apdu_log)
    signature = token.sign(key, Mechanism.RSA_PKCS, di)
    _public(backend, "auth").verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    # the driver pads on the host and sends the block through chained PSO DECIPHER
    assert any(c[:4] == bytes.fromhex("112A8086") for c in _sent(backend.card, start))


@pytest.mark.parametrize("which", ["auth", "sign"])
@pytest.mark.parametrize("hash_name", ["sha256", "sha1"])
def test_pss_signature(token: Token, backend: Backend, which: str, hash_name: str) -> None:
    token.login(Pin(backend.card.pin))
    key = token.private_key(AUTH_KEY_LABEL if which == "auth" else SIGN_KEY_LABEL)
    mech_hash, algorithm = {
        "sha256": (Mechanism.SHA256, hashes.SHA256()),
        "sha1": (Mechanism.SHA_1, hashes.SHA1()),
    }[hash_name]
    digest = hashlib.new(hash_name, MESSAGE).digest()
    signature = token.sign(
        key, Mechanism.RSA_PKCS_PSS, digest, pss_params=PssParams.for_hash(mech_hash)
    )
    _public(backend, which).verify(
        signature, MESSAGE,
        padding.PSS(padding.MGF1(algorithm), len(digest)), algorithm,
    )  # fmt: skip


def test_non_repudiation_pkcs1(token: Token, backend: Backend) -> None:
    token.login(Pin(backend.card.pin))
    key = token.private_key(SIGN_KEY_LABEL)
    start = len(backend.card.vpcd.apdu_log)
    signature = token.sign(key, Mechanism.SHA256_RSA_PKCS, MESSAGE)
    _public(backend, "sign").verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    sent = _sent(backend.card, start)
    # MSE SET DST with the CPS4 tag 91 {SHA-256 PKCS#1 = 28, key | 80}, then PSO CDS
    ref = backend.card.layout.sign_key_ref | 0x80
    assert bytes.fromhex("012281B6049102") + bytes([0x28, ref]) in sent
    assert any(c[:4] == bytes.fromhex("012A9E9A") for c in sent)


# --- decryption --------------------------------------------------------------------------


def test_decryption(token: Token, backend: Backend) -> None:
    token.login(Pin(backend.card.pin))
    key = token.private_key(AUTH_KEY_LABEL)
    secret = os.urandom(32)
    cryptogram = _public(backend, "auth").encrypt(secret, padding.PKCS1v15())
    start = len(backend.card.vpcd.apdu_log)
    assert token.decrypt(key, Mechanism.RSA_PKCS, cryptogram) == secret
    sent = _sent(backend.card, start)
    assert bytes.fromhex("012241B8038301") + b"\x20" in sent  # MSE SET CT, key 20
    assert any(c[:5] == bytes.fromhex("112A8086FF") for c in sent)  # chained decipher


# --- TLS 1.3 with the card key -------------------------------------------------------------


@pytest.fixture
def card(backend: Backend) -> Iterator[CpsCard]:
    _token(backend).close()  # wait until the module sees the card
    opened = open_card(backend.module, serial=backend.card.objects.serial[:8])
    opened.login(Pin(backend.card.pin))
    yield opened
    opened.close()


def test_tls13_against_openssl_s_server(
    card: CpsCard, backend: Backend, cps_openssl_server_factory: Callable[..., OpenSslServer]
) -> None:
    server = cps_openssl_server_factory()
    ctx = client_context(card, cadata=server.ca_pem.decode())
    assert ctx.maximum_version != ssl.TLSVersion.TLSv1_2  # PSS offered: TLS 1.3 allowed
    start = len(backend.card.vpcd.apdu_log)
    with urllib.request.urlopen(server.url, context=ctx, timeout=30) as r:
        page = r.read().decode()
    assert "Protocol  : TLSv1.3" in page
    assert "Peer signature type: RSA-PSS" in page
    # CertificateVerify: rsa_pss_rsae_sha256 signed by the card (MSE alg 2C, key 20|80)
    assert bytes.fromhex("012281B60491022CA0") in _sent(backend.card, start)


def test_tls13_against_python_server(
    card: CpsCard, backend: Backend, cps_tls_server: MutualTlsServer
) -> None:
    ctx = client_context(card, cadata=cps_tls_server.ca_pem.decode())
    with urllib.request.urlopen(cps_tls_server.url, context=ctx, timeout=30) as r:
        body = json.loads(r.read())
    assert body["tls"]["version"] == "TLSv1.3"
    assert body["client"]["ps_id_nat"] == "810004444444"


def test_test_ssl_reports_protocol_and_scheme(
    card: CpsCard, cps_tls_server: MutualTlsServer
) -> None:
    report = run_test_ssl(cps_tls_server.url, card, cadata=cps_tls_server.ca_pem.decode())
    assert report.ok, report.to_text()
    assert report.protocol == "TLSv1.3"
    assert report.signature_scheme == "rsa_pss_rsae_sha256"
    assert "rsa_pss_rsae_sha256" in report.to_text()


def test_cps3_through_ans_stays_on_tls12(
    cps_ans_module: str,
    cps_iasecc_cps3: VirtualCps3,
    cps_tls_server: MutualTlsServer,
) -> None:
    cps3 = cps_iasecc_cps3
    _token(Backend("ans-cps3", cps_ans_module, cps3, "CPS3", pss=False)).close()
    opened = open_card(cps_ans_module, serial=cps3.objects.serial[:8])
    try:
        opened.login(Pin(cps3.pin))
        ctx = client_context(opened, cadata=cps_tls_server.ca_pem.decode())
        assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2  # no PSS on a CPS3
        report = run_test_ssl(cps_tls_server.url, opened, cadata=cps_tls_server.ca_pem.decode())
    finally:
        opened.close()
    assert report.ok, report.to_text()
    assert (report.protocol, report.signature_scheme) == ("TLSv1.2", "rsa_pkcs1_sha256")


# --- which middleware works: the facade, OpenSC, the diagnostic ----------------------------


def test_card_generation_is_cps4(card: CpsCard) -> None:
    # the ANS module 5.2.2 names the model "IAS ECC" for a CPS4 too; PSS tells them apart
    assert card.token.info.model == "IAS ECC"
    assert card.generation is CardGeneration.CPS4


def _diagnose(
    module: str, card: VirtualCps4, lang: str, *more: str
) -> diagnostics.DiagnosticRun:
    opts = DiagnosticOptions(module=module, reader=card.reader, token=card.objects.serial[:8])
    return diagnostics.run(opts, lang=lang, only=["card.atr", "pkcs11.module", *more])


def test_diagnostic_says_what_the_ans_module_does(backend: Backend) -> None:
    run = _diagnose(backend.module, backend.card, "fr", "pkcs11.token")
    assert run.result("card.atr").status is Status.OK
    assert run.result("pkcs11.token").seen.startswith("Carte CPS4 ")
    module = run.result("pkcs11.module")
    assert module.status is Status.OK
    assert module.details["support"] == [
        "CPS4 avec ANS Cryptolib CPS : carte lue oui, authentification oui, signature oui, "
        "déchiffrement oui, TLS 1.3 oui."
    ]


def test_opensc_does_not_know_the_cps4(cps_opensc_module: str, backend: Backend) -> None:
    """A fact about OpenSC (0.23, Debian 12): no driver matches the CPS4 ATR."""
    out = subprocess.run(
        ["pkcs11-tool", "--module", cps_opensc_module, "-L"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    section = out.stdout.split(backend.card.reader, 1)[1].split("Slot ", 1)[0]
    assert "token not recognized" in section
    run = _diagnose(cps_opensc_module, backend.card, "en")
    module = run.result("pkcs11.module")
    assert module.status is Status.ERROR and module.reason == "pkcs11.opensc_cps4"
    assert "Cryptolib CPS 5.2 or later" in module.seen
    assert module.remedy is not None and module.remedy.id == "cps4_needs_ans"
    # the library says it too when asked to open the card through OpenSC
    with pytest.raises(NoSuchToken) as exc:
        open_card(cps_opensc_module, serial=backend.card.objects.serial[:8])
    assert exc.value.hint is not None and "Cryptolib CPS 5.2" in exc.value.hint


# --- the PC/SC layer: PIN status and generation from the driver's facts ----------------------


def test_pcsc_pin_status_on_channel_1(cps_ans_cps4: VirtualCps4) -> None:
    card = cps_ans_cps4
    start = len(card.vpcd.apdu_log)
    res = read_pin_tries(card.reader)
    assert (res.status, res.tries_left) == (PinStatusKind.TRIES_LEFT, 3)
    card.set_pin_tries(1)
    assert read_pin_tries(card.reader).tries_left == 1
    card.block_pin()
    assert read_pin_tries(card.reader).status is PinStatusKind.BLOCKED
    sent = _sent(card, start)
    assert bytes.fromhex("01A4040C08") + CPS4_CHIPDOC_AID in sent
    assert bytes.fromhex("01200001") in sent
    assert not any(c[1] == 0x20 and len(c) > 4 for c in sent)  # never a PIN on the wire


def test_generation_by_atr_sends_nothing(cps_ans_cps4: VirtualCps4) -> None:
    start = len(cps_ans_cps4.vpcd.apdu_log)
    probed = probe_generation(cps_ans_cps4.reader)
    assert (probed.generation, probed.by_atr) == (CardGeneration.CPS4, True)
    assert _sent(cps_ans_cps4, start) == []


def test_generation_probed_like_the_ans_module(
    cps_ans_cps4_factory: VirtualCps4Factory,
) -> None:
    """A CPS4 behind an unknown ATR: the ChipDoc applet and EF.SN.ICC tell."""
    odd = cps_ans_cps4_factory(profile=replace(CPS4_PROFILE, atr=bytes.fromhex("3B021450")))
    try:
        probed = probe_generation(odd.reader)
        assert probed.generation is CardGeneration.CPS4 and not probed.by_atr
        assert probed.serial == odd.objects.serial
        assert read_pin_tries(odd.reader).status is PinStatusKind.NOT_CPS  # nothing sent
        res = read_pin_tries(odd.reader, force=True)
        assert (res.status, res.tries_left) == (PinStatusKind.TRIES_LEFT, 3)
    finally:
        odd.remove()


def test_generation_probe_of_a_cps3(cps_iasecc_cps3: VirtualCps3) -> None:
    cps3 = cps_iasecc_cps3
    probed = probe_generation(cps3.reader, force=True)
    assert (probed.generation, probed.serial) == (CardGeneration.CPS3, cps3.objects.serial)


# --- cps testcard create --virtual --generation CPS4 ----------------------------------------


def test_cli_serves_a_virtual_cps4_for_the_ans_module(
    cps_ans_module: str, cps_pcscd: object
) -> None:
    port = 35967
    proc = subprocess.Popen(
        [sys.executable, "-m", "cps_middleware.cli", "testcard", "create", "--virtual",
         "--generation", "CPS4", "--port", str(port), "--json", "--module", cps_ans_module],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "no output from `cps testcard create --virtual` within 60 s"
        info = json.loads(proc.stdout.readline())
        assert info["generation"] == "CPS4" and info["module"] == cps_ans_module
        assert info["atr"] == "3B 9B 18 80 01 00 12 25 00 64 80 04 01 00 00 90 44"
        module = load_module(cps_ans_module)
        deadline = time.monotonic() + 10
        while True:
            try:
                token = module.open_token(serial=info["serial"][:8])
                break
            except NoSuchToken:
                assert time.monotonic() < deadline, "the ANS module does not see the card"
                time.sleep(0.1)
        labels = {c.label for c in token.certificates()}
        assert {AUTH_CERT_LABEL, SIGN_CERT_LABEL} <= labels
        token.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, proc.stderr.read() if proc.stderr else ""


def test_what_the_ans_module_refuses(token: Token, backend: Backend) -> None:
    """Facts of the module, not of the card (recorded with the virtual CPS4)."""
    token.login(Pin(backend.card.pin))
    auth = token.private_key(AUTH_KEY_LABEL)
    sign = token.private_key(SIGN_KEY_LABEL)
    # PKCS#1 hash-and-sign only on the non-repudiation key: the driver builds no MSE for it
    with pytest.raises(CpsError) as exc:
        token.sign(auth, Mechanism.SHA256_RSA_PKCS, MESSAGE)
    assert exc.value.code_name == "CKR_GENERAL_ERROR"
    with pytest.raises(CpsError) as exc:
        token.sign(auth, Mechanism.RSA_X_509, bytes(256))
    assert exc.value.code_name == "CKR_FUNCTION_NOT_SUPPORTED"
    # CKM_RSA_PKCS on the signature key: the module strips the DigestInfo, the card signs the hash
    di = digest_info("sha256", hashlib.sha256(MESSAGE).digest())
    signature = token.sign(sign, Mechanism.RSA_PKCS, di)
    _public(backend, "sign").verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())


def test_a_card_refusal_after_a_fork_keeps_the_login(token: Token, backend: Backend) -> None:
    """After any fork of the process, a CKR_GENERAL_ERROR that is the card's own
    refusal (the CPS4's hash-and-sign on the authentication key) must not be taken
    for a child's damage: the module still answers, the login stays."""
    pid = os.fork()
    if pid == 0:  # a child that never touches the card
        os._exit(0)
    os.waitpid(pid, 0)
    token.login(Pin(backend.card.pin))
    auth = token.private_key(AUTH_KEY_LABEL)
    with pytest.raises(CpsError) as exc:
        token.sign(auth, Mechanism.SHA256_RSA_PKCS, MESSAGE)
    assert exc.value.code_name == "CKR_GENERAL_ERROR"
    assert token.is_logged_in
    di = digest_info("sha256", hashlib.sha256(MESSAGE).digest())
    signature = token.sign(auth, Mechanism.RSA_PKCS, di)
    _public(backend, "auth").verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())


def test_card_keys_through_cryptography(card: CpsCard, backend: Backend) -> None:
    """What a health application calls: cryptography's key interface, PSS and PKCS#1."""
    for usage in ("auth", "sign"):
        key = card.private_key(usage)
        pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
        sig = key.sign(MESSAGE, pss, hashes.SHA256())
        _public(backend, usage).verify(sig, MESSAGE, pss, hashes.SHA256())
        sig = key.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256())
        _public(backend, usage).verify(sig, MESSAGE, padding.PKCS1v15(), hashes.SHA256())


def test_cps_test_ssl_command_reports_tls13(
    backend: Backend, cps_tls_server: MutualTlsServer,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    _token(backend).close()
    monkeypatch.setattr("sys.stdin", io.StringIO(backend.card.pin + "\n"))
    code = cli_main(["test-ssl", cps_tls_server.url, "--cafile", str(cps_tls_server.ca_file),
                     "--json", "--module", backend.module,
                     "--serial", backend.card.objects.serial[:8]])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, out + err
    report = json.loads(out)
    assert (report["protocol"], report["signature_scheme"]) == ("TLSv1.3", "rsa_pss_rsae_sha256")
    assert report["client_signature"] == "rsa_pss sha256"
