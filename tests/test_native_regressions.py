"""Regressions of memory and resource bugs found in the native parts (bridge, test token)."""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import gc
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from cps_middleware.testing.pki import CardCredentials, TestHolder, TestPki
from cps_middleware.testing.testcard import CpsTestCard
from cps_middleware.tls import _native


@pytest.fixture(scope="module")
def rsa_creds(cps_pki: TestPki) -> CardCredentials:
    return cps_pki.issue_card(TestHolder())


def _libcrypto() -> ctypes.CDLL:
    # the libcrypto the bridge runs with (the one already in the process)
    path = next(p for p in _native.bridge().loaded_openssl() if "libcrypto" in Path(p).name)
    lib = ctypes.CDLL(path)
    lib.ERR_clear_error.argtypes = []
    lib.EVP_MD_CTX_new.restype = ctypes.c_void_p
    lib.EVP_MD_CTX_free.argtypes = [ctypes.c_void_p]
    lib.EVP_DigestSignInit_ex.argtypes = (
        [ctypes.c_void_p] * 2 + [ctypes.c_char_p] + [ctypes.c_void_p] * 4
    )
    lib.EVP_DigestSignUpdate.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.EVP_DigestSignFinal.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
    ]
    return lib


def _pkey_pointer(key: object) -> int:
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    pointer = get(key, b"cpsbridge.key")
    assert pointer
    return int(pointer)


def test_rsa_signature_never_overruns_a_short_caller_buffer(rsa_creds: CardCredentials) -> None:
    """bridge.c call_signer: a short signer answer was left-padded to the modulus
    size into the caller's buffer without checking the buffer held the modulus size
    (EVP_DigestSignFinal with *siglen = 64 got 256 bytes written)."""
    b = _native.bridge()
    key = b.new_key(rsa_creds.authentication.der, lambda *a: b"\x01" * 16)  # a short answer
    crypto = _libcrypto()
    mctx = crypto.EVP_MD_CTX_new()
    assert mctx
    try:
        pkey = _pkey_pointer(key)
        assert crypto.EVP_DigestSignInit_ex(mctx, None, b"SHA256", None, None, pkey, None) == 1
        assert crypto.EVP_DigestSignUpdate(mctx, b"data", 4) == 1
        announced = 64
        buf = ctypes.create_string_buffer(b"\xaa" * 512, 512)  # room to see an overrun safely
        siglen = ctypes.c_size_t(announced)
        rc = crypto.EVP_DigestSignFinal(mctx, buf, ctypes.byref(siglen))
        assert rc == 0
        assert buf.raw[announced:] == b"\xaa" * (512 - announced)
    finally:
        crypto.EVP_MD_CTX_free(mctx)
        crypto.ERR_clear_error()  # the failure is left on this thread's queue for its caller
    error = b.take_error()
    assert isinstance(error, ValueError)
    assert "buffer" in str(error)


def _tiny_rsa_certificate() -> bytes:
    """A certificate for a 512-bit RSA public key (signed by a normal key)."""
    issuer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = rsa.RSAPublicNumbers(65537, (1 << 511) | 0x10001).public_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tiny")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(issuer_key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


def test_pss_maximum_salt_on_a_key_too_small_for_the_digest_is_refused() -> None:
    """bridge.c call_signer: emlen - hlen - 2 wrapped around (size_t) for a key
    smaller than the digest + 2 bytes; the signer was then asked for a negative salt."""
    calls: list[tuple[object, ...]] = []

    def signer(*args: object) -> bytes:
        calls.append(args)
        return b"\x01" * 64

    b = _native.bridge()
    key = b.new_key(_tiny_rsa_certificate(), signer)
    with pytest.raises(b.Error):
        b.digest_sign(key, "SHA512", b"data", "pss", -3)  # -3: RSA_PSS_SALTLEN_MAX
    assert calls == []
    assert b.take_error() is None
    assert b.error_queue_empty()


def test_signer_reference_is_owned_by_the_key_alone(rsa_creds: CardCredentials) -> None:
    """The key holds exactly one reference to its signer, released with the key."""

    def signer(*args: object) -> bytes:
        raise AssertionError("not called")

    b = _native.bridge()
    gc.collect()
    base = sys.getrefcount(signer)
    keys = [b.new_key(rsa_creds.authentication.der, signer) for _ in range(5)]
    assert sys.getrefcount(signer) == base + 5
    del keys
    gc.collect()
    assert sys.getrefcount(signer) == base
    # a certificate the bridge refuses takes no reference either
    with pytest.raises(b.Error):
        b.new_key(_unsupported_curve_certificate(), signer)
    assert sys.getrefcount(signer) == base


def _unsupported_curve_certificate() -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256K1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


# -- test token ---------------------------------------------------------------------

DLOPEN_SPY = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
void *dlopen(const char *file, int flags)
{
    static void *(*real)(const char *, int);
    if (!real)
        real = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
    if (file && strncmp(file, "/proc/self/fd/", 14) == 0)
        fprintf(stderr, "SPY dlopen deepbind=%d\n", (flags & RTLD_DEEPBIND) != 0);
    return real(file, flags);
}
"""


@pytest.fixture(scope="module")
def dlopen_spy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the dlopen spy")
    folder = tmp_path_factory.mktemp("dlopen-spy")
    (folder / "spy.c").write_text(DLOPEN_SPY)
    spy = folder / "spy.so"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-o", str(spy), str(folder / "spy.c"), "-ldl"],
        check=True,
        capture_output=True,
    )
    return spy


@pytest.mark.parametrize("global_module", [False, True])
def test_softhsm_copy_is_never_deep_bound_and_signs_beside_global_pkcs11_names(
    cps_card: CpsTestCard, dlopen_spy: Path, global_module: bool
) -> None:
    """softhsm.c load_library: RTLD_DEEPBIND broke a preloaded allocator (jemalloc,
    tcmalloc), sanitizer runtimes and Chromium (libp11-kit linked in: SoftHSM freed
    Chromium's memory with libc's free). The copy is loaded normally and its function
    list rebound to its own symbols, so it signs even when another PKCS#11 module's
    names are in the global scope."""
    module = cps_card.module_path
    before = (
        f"import ctypes, os; ctypes.CDLL({module!r}, mode=os.RTLD_GLOBAL | os.RTLD_NOW)\n"
        if global_module
        else ""
    )
    code = before + textwrap.dedent(
        f"""
        import pkcs11
        from pkcs11 import Mechanism, ObjectClass
        lib = pkcs11.lib({module!r})
        token = lib.get_slots(token_present=True)[0].get_token()
        with token.open(user_pin="1234") as session:
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="CPS_PRIV_AUT")
            print(len(key.sign(b"data", mechanism=Mechanism.SHA256_RSA_PKCS)))
        """
    )
    env = {**os.environ, **cps_card.env, "LD_PRELOAD": str(dlopen_spy)}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "256"
    spied = [line for line in proc.stderr.splitlines() if line.startswith("SPY dlopen")]
    assert spied == ["SPY dlopen deepbind=0"]
