"""The native OpenSSL provider bridge, below TLS: keys, signatures, errors, lifetime."""

from __future__ import annotations

import gc
import ssl

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.serialization import Encoding

from cps_middleware.errors import BridgeUnavailable
from cps_middleware.testing.pki import CardCredentials, TestHolder, TestPki
from cps_middleware.tls import _native


@pytest.fixture(scope="module")
def rsa_creds(cps_pki: TestPki) -> CardCredentials:
    return cps_pki.issue_card(TestHolder())


@pytest.fixture(scope="module", params=["p256", "p384"])
def ec_creds(cps_pki: TestPki, request: pytest.FixtureRequest) -> CardCredentials:
    return cps_pki.issue_card(TestHolder(), key_type=request.param)


def _key(creds: CardCredentials, signer: object = None) -> object:
    auth = creds.authentication
    sign = signer or _native.make_signer(auth.private_key)
    return _native.bridge().new_key(auth.der, sign)


def test_same_openssl_as_ssl_module() -> None:
    b = _native.bridge()
    assert b.openssl_version_number() == ssl.OPENSSL_VERSION_NUMBER
    assert len(b.loaded_openssl()) == 2  # one libssl, one libcrypto


@pytest.mark.parametrize("digest", ["SHA256", "SHA384", "SHA512"])
def test_rsa_pkcs1_signature_verifies(rsa_creds: CardCredentials, digest: str) -> None:
    sig = _native.bridge().digest_sign(_key(rsa_creds), digest, b"to be signed", "pkcs1")
    algorithm = getattr(hashes, digest)()
    rsa_creds.authentication.certificate.public_key().verify(  # type: ignore[call-arg]
        sig, b"to be signed", padding.PKCS1v15(), algorithm
    )


@pytest.mark.parametrize(("salt", "expected"), [(-1, 32), (20, 20), (-3, 256 - 32 - 2)])
def test_rsa_pss_salt_lengths_reach_the_signer(
    rsa_creds: CardCredentials, salt: int, expected: int
) -> None:
    seen: list[tuple[object, ...]] = []
    inner = _native.make_signer(rsa_creds.authentication.private_key)

    def signer(*args: object) -> bytes:
        seen.append(args)
        return inner(*args)  # type: ignore[arg-type]

    sig = _native.bridge().digest_sign(_key(rsa_creds, signer), "SHA256", b"data", "pss", salt)
    assert seen == [("sha256", seen[0][1], "pss", expected, "sha256")]
    rsa_creds.authentication.certificate.public_key().verify(  # type: ignore[call-arg]
        sig, b"data", padding.PSS(padding.MGF1(hashes.SHA256()), expected), hashes.SHA256()
    )


def test_ecdsa_signature_verifies(ec_creds: CardCredentials) -> None:
    sig = _native.bridge().digest_sign(_key(ec_creds), "SHA384", b"data")
    public = ec_creds.authentication.certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(sig, b"data", ec.ECDSA(hashes.SHA384()))


def test_signer_exception_is_returned_and_queue_clean(rsa_creds: CardCredentials) -> None:
    class CardGone(Exception):
        pass

    def failing(*args: object) -> bytes:
        raise CardGone("pulled")

    b = _native.bridge()
    with pytest.raises(CardGone, match="pulled") as info:
        b.digest_sign(_key(rsa_creds, failing), "SHA256", b"x", "pkcs1")
    assert info.value.__traceback__ is not None
    assert b.error_queue_empty()
    assert b.take_error() is None


@pytest.mark.parametrize(
    ("result", "error"), [("not bytes", TypeError), (b"\x01" * 300, ValueError)]
)
def test_bad_signer_results_are_refused(
    rsa_creds: CardCredentials, result: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        _native.bridge().digest_sign(_key(rsa_creds, lambda *a: result), "SHA256", b"x", "pkcs1")


def test_short_rsa_signature_is_left_padded(rsa_creds: CardCredentials) -> None:
    inner = _native.make_signer(rsa_creds.authentication.private_key)
    stripped: list[int] = []

    def signer(*args: object) -> bytes:
        # sign until the signature starts with a zero byte, then strip it
        sig = inner(*args)  # type: ignore[arg-type]
        stripped.append(len(sig) - len(sig.lstrip(b"\0")))
        return sig.lstrip(b"\0")

    for i in range(600):
        data = str(i).encode()
        sig = _native.bridge().digest_sign(_key(rsa_creds, signer), "SHA256", data, "pkcs1")
        assert len(sig) == 256
        if stripped[-1]:
            rsa_creds.authentication.certificate.public_key().verify(  # type: ignore[call-arg]
                sig, data, padding.PKCS1v15(), hashes.SHA256()
            )
            return
    pytest.fail("no signature with a leading zero byte in 600 tries")


def test_public_only_operations_never_reach_another_provider(rsa_creds: CardCredentials) -> None:
    # The bridge key signs with its own provider only; with another key type name
    # OpenSSL finds no implementation and fails cleanly.
    b = _native.bridge()
    with pytest.raises(b.Error):
        b.digest_sign(_key(rsa_creds), "MD5", b"x", "pkcs1")
    assert b.error_queue_empty()


def test_keys_are_freed_with_their_context(rsa_creds: CardCredentials) -> None:
    b = _native.bridge()
    gc.collect()
    before = b.stats()["live_keys"]
    for _ in range(50):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        key = _key(rsa_creds)
        b.install(ctx, key, rsa_creds.authentication.der, [], None)
        del ctx, key
    gc.collect()
    assert b.stats()["live_keys"] <= before + 2  # + the certificate key's cached import


def test_signer_reference_is_released(rsa_creds: CardCredentials) -> None:
    import weakref

    class Signer:
        def __call__(self, *args: object) -> bytes:
            return b""

    s = Signer()
    ref = weakref.ref(s)
    key = _key(rsa_creds, s)
    del s
    assert ref() is not None
    del key
    gc.collect()
    assert ref() is None


def test_install_refuses_other_objects(rsa_creds: CardCredentials) -> None:
    b = _native.bridge()
    with pytest.raises(TypeError):
        b.install(object(), _key(rsa_creds), rsa_creds.authentication.der, [], None)


def test_install_refuses_a_key_for_another_certificate(
    rsa_creds: CardCredentials, cps_pki: TestPki
) -> None:
    other = cps_pki.issue_card(TestHolder(given_name="AUTRE", id_number="10000000099"))
    b = _native.bridge()
    with pytest.raises(b.Error, match="does not match"):
        b.install(
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
            _key(rsa_creds),
            other.authentication.der,
            [],
            None,
        )
    assert b.error_queue_empty()


def test_plain_contexts_still_load_file_keys(rsa_creds: CardCredentials, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The provider is registered process-wide: un-qualified fetches must keep
    # finding OpenSSL's default implementations (a PEM private key loads whole).
    _native.bridge()
    cert = tmp_path / "c.pem"
    key = tmp_path / "k.pem"
    cert.write_bytes(rsa_creds.authentication.certificate.public_bytes(Encoding.PEM))
    key.write_bytes(rsa_creds.authentication.private_key_pem())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)


def test_bridge_unavailable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_native, "_module", None)
    monkeypatch.setattr(ssl, "OPENSSL_VERSION_NUMBER", 0x10101000)
    with pytest.raises(BridgeUnavailable, match="Python's ssl"):
        _native.bridge()


def test_generic_fetches_keep_openssl_default_provider(ec_creds: CardCredentials) -> None:
    # An EC signature outside TLS used to leave the bridge's EC key management
    # in OpenSSL's query cache for un-qualified fetches (new contexts then lost
    # the NIST curves: TLS 1.2 with an ECDSA server failed).
    b = _native.bridge()
    b.digest_sign(_key(ec_creds), "SHA256", b"x")
    assert b.generic_keymgmt_provider("EC") == "default"
    assert b.generic_keymgmt_provider("RSA") == "default"
