"""The native batch verifier (cps_middleware._verify) against cryptography as the oracle."""

from __future__ import annotations

import threading

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from cps_middleware import _verify

_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def _spki(key: object) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def keys() -> dict[str, object]:
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP384R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "ed448": ed448.Ed448PrivateKey.generate(),
    }


def _sign(keys: dict[str, object], scheme: str, data: bytes) -> tuple[bytes, object]:
    """A signature made by cryptography, and the public key, for ``scheme``."""
    if scheme.startswith("rsa-pkcs1-"):
        k = keys["rsa"]
        h = _HASHES[scheme[10:]]()
        return k.sign(data, padding.PKCS1v15(), h), k  # type: ignore[attr-defined]
    if scheme.startswith("rsa-pss-"):
        name, salt = scheme[8:].split(":")
        k = keys["rsa"]
        h = _HASHES[name]
        pad = padding.PSS(padding.MGF1(h()), int(salt))
        return k.sign(data, pad, h()), k  # type: ignore[attr-defined]
    if scheme.startswith("ecdsa-"):
        k = keys["ec"]
        return k.sign(data, ec.ECDSA(_HASHES[scheme[6:]]())), k  # type: ignore[attr-defined]
    k = keys[scheme]
    return k.sign(data), k  # type: ignore[attr-defined]


SCHEMES = [
    "rsa-pkcs1-sha256", "rsa-pkcs1-sha384", "rsa-pkcs1-sha512",
    "rsa-pss-sha256:32", "rsa-pss-sha384:48", "rsa-pss-sha512:64",
    "ecdsa-sha256", "ecdsa-sha384", "ecdsa-sha512", "ed25519", "ed448",
]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_scheme_verifies_and_rejects(keys: dict[str, object], scheme: str) -> None:
    sig, k = _sign(keys, scheme, b"to be signed")
    key = _verify.Key(_spki(k), scheme)
    assert key.verify(sig, b"to be signed")
    assert not key.verify(sig, b"to be signed!")
    assert not key.verify(sig[:-1] + bytes([sig[-1] ^ 1]), b"to be signed")
    assert not key.verify(b"", b"to be signed")
    out = _verify.verify_many([key, key, None], [sig, sig[:5], sig], [b"to be signed"] * 3)
    assert out == b"\x01\x00\x00"


def test_a_batch_matches_one_by_one_over_threads(keys: dict[str, object]) -> None:
    rsa_key = _verify.Key(_spki(keys["rsa"]), "rsa-pkcs1-sha256")
    ec_key = _verify.Key(_spki(keys["ec"]), "ecdsa-sha256")
    items = []
    for i in range(300):
        data = i.to_bytes(4, "big") * 50
        scheme, key = ("rsa-pkcs1-sha256", rsa_key) if i % 3 else ("ecdsa-sha256", ec_key)
        sig, _ = _sign(keys, scheme, data)
        if i % 7 == 0:
            data += b"tampered"
        items.append((key, sig, data))
    expected = bytes(int(k.verify(s, d)) for k, s, d in items)
    assert expected.count(0) == len([i for i in range(300) if i % 7 == 0])
    for threads in (1, 2, 5, 100):
        got = _verify.verify_many(*zip(*items, strict=True), threads=threads)
        assert got == expected


def test_batches_from_several_python_threads_at_once(keys: dict[str, object]) -> None:
    key = _verify.Key(_spki(keys["rsa"]), "rsa-pss-sha256:32")
    sig, _ = _sign(keys, "rsa-pss-sha256:32", b"abc")
    results: list[bytes] = []

    def run() -> None:
        results.append(_verify.verify_many([key] * 200, [sig] * 200, [b"abc"] * 200, threads=2))

    ts = [threading.Thread(target=run) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert results == [b"\x01" * 200] * 4


@pytest.mark.parametrize(
    ("spki", "scheme"),
    [
        (b"\x30\x00", "rsa-pkcs1-sha256"),
        (b"not der", "ecdsa-sha256"),
        (None, "rsa-pkcs1-md5"),
        (None, "rsa-pss-sha256"),
        (None, "rsa-pss-sha256:-1"),
        (None, "ecdsa-sha256"),  # an RSA key under an EC scheme
        (None, "ed448"),
    ],
)
def test_bad_keys_and_schemes_are_value_errors(
    keys: dict[str, object], spki: bytes | None, scheme: str
) -> None:
    with pytest.raises(ValueError):
        _verify.Key(spki if spki is not None else _spki(keys["rsa"]), scheme)


def test_trailing_bytes_after_the_key_are_refused(keys: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _verify.Key(_spki(keys["rsa"]) + b"\x00", "rsa-pkcs1-sha256")


def test_wrong_argument_types_are_type_errors(keys: dict[str, object]) -> None:
    key = _verify.Key(_spki(keys["ec"]), "ecdsa-sha256")
    with pytest.raises(TypeError):
        _verify.verify_many([object()], [b""], [b""])
    with pytest.raises(TypeError):
        _verify.verify_many([key], ["text"], [b""])
    with pytest.raises(ValueError):
        _verify.verify_many([key], [b""], [])
    assert _verify.verify_many([], [], []) == b""


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(SCHEMES),
    data=st.binary(max_size=300),
    flip=st.one_of(st.none(), st.integers(min_value=0, max_value=10_000)),
    cut=st.integers(min_value=0, max_value=3),
)
def test_verdicts_agree_with_cryptography(
    keys: dict[str, object], scheme: str, data: bytes, flip: int | None, cut: int
) -> None:
    sig, k = _sign(keys, scheme, data)
    if flip is not None:
        i = flip % len(sig)
        sig = sig[:i] + bytes([sig[i] ^ (1 + flip % 255)]) + sig[i + 1 :]
    sig = sig[: len(sig) - cut]
    pub = k.public_key()  # type: ignore[attr-defined]
    try:
        if scheme.startswith("rsa-pkcs1-"):
            pub.verify(sig, data, padding.PKCS1v15(), _HASHES[scheme[10:]]())
        elif scheme.startswith("rsa-pss-"):
            name, salt = scheme[8:].split(":")
            pub.verify(sig, data, padding.PSS(padding.MGF1(_HASHES[name]()), int(salt)),
                       _HASHES[name]())
        elif scheme.startswith("ecdsa-"):
            pub.verify(sig, data, ec.ECDSA(_HASHES[scheme[6:]]()))
        else:
            pub.verify(sig, data)
        oracle = True
    except (InvalidSignature, ValueError):
        oracle = False
    assert _verify.Key(_spki(k), scheme).verify(sig, data) is oracle


def test_a_started_batch_gives_what_verify_many_gives(keys: dict[str, object]) -> None:
    key = _verify.Key(_spki(keys["rsa"]), "rsa-pkcs1-sha256")
    datas = [i.to_bytes(2, "big") * 40 for i in range(120)]
    sigs = [_sign(keys, "rsa-pkcs1-sha256", d)[0] for d in datas]
    sigs[7] = sigs[8]  # one wrong signature
    ks: list[_verify.Key | None] = [key] * 120
    ks[3] = None
    expected = _verify.verify_many(ks, sigs, datas, threads=1)
    assert expected.count(0) == 2
    for threads in (0, 1, 3):
        pending = _verify.start_many(ks, sigs, datas, threads=threads)
        assert pending.result() == expected
        assert pending.result() == expected  # the verdicts stay
    # a batch dropped without asking for its result is joined, not leaked or crashed
    for _ in range(20):
        _verify.start_many(ks, sigs, datas, threads=2)


def test_a_started_batch_runs_while_this_thread_holds_the_gil(keys: dict[str, object]) -> None:
    """The native threads need no GIL: they finish while Python code runs here."""
    key = _verify.Key(_spki(keys["ec"]), "ecdsa-sha256")
    sig, _ = _sign(keys, "ecdsa-sha256", b"x")
    pending = _verify.start_many([key] * 400, [sig] * 400, [b"x"] * 400, threads=1)
    busy = 0
    for i in range(200_000):  # pure Python, GIL held
        busy += i
    assert pending.result() == b"\x01" * 400
