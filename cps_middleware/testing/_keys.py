"""Deterministic key pairs for the test PKI.

`cryptography` cannot generate a key from a seed, and a test PKI must be the
same in every run (fixtures, golden files, the benchmark corpus). Keys are made
here from a seeded PRNG — RSA by a plain Miller-Rabin prime search, EC by a
seeded scalar — and cached on disk (the search takes ~0.2 s per RSA-2048 key),
so a second run loads them in microseconds. These keys are for tests only: the
PRNG is not a cryptographic one.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cps_middleware._files import write_atomically

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]
_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "p256": ec.SECP256R1,
    "p384": ec.SECP384R1,
    "p521": ec.SECP521R1,
}
_memo: dict[str, PrivateKey] = {}
_lock = threading.Lock()


def cache_dir() -> Path:
    """Where generated test keys are kept (``CPS_TEST_KEY_CACHE`` overrides)."""
    env = os.environ.get("CPS_TEST_KEY_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cps-middleware" / "test-keys"


def _is_probable_prime(n: int, rng: random.Random, rounds: int = 24) -> bool:
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 2), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, rng: random.Random, e: int) -> int:
    while True:
        # top two bits set so that p*q has exactly 2*bits bits
        n = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
        if (n - 1) % e and _is_probable_prime(n, rng):
            return n


def _rsa_from_seed(seed: bytes, bits: int) -> rsa.RSAPrivateKey:
    rng = random.Random(int.from_bytes(hashlib.sha256(seed).digest(), "big"))
    e = 65537
    while True:
        p = _prime(bits // 2, rng, e)
        q = _prime(bits - bits // 2, rng, e)
        if p != q and (p * q).bit_length() == bits:
            break
    if p < q:
        p, q = q, p
    phi = (p - 1) * (q - 1)
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=d % (p - 1),
        dmq1=d % (q - 1),
        iqmp=pow(q, -1, p),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    )
    return numbers.private_key()


def _ec_from_seed(seed: bytes, curve: str) -> ec.EllipticCurvePrivateKey:
    curve_obj = _CURVES[curve]()
    order_bits = curve_obj.key_size
    scalar = int.from_bytes(hashlib.sha512(seed).digest() * 2, "big") % (2**order_bits - 1)
    return ec.derive_private_key(scalar or 1, curve_obj)


def deterministic_key(name: str, key_type: str = "rsa2048") -> PrivateKey:
    """The test key called *name* of *key_type* (``rsa2048``, ``rsa4096``, ``p256``, ``p384``).

    The same name and type give the same key in every process and on every machine.
    """
    ident = f"{key_type}:{name}"
    with _lock:
        key = _memo.get(ident)
        if key is not None:
            return key
        seed = ident.encode()
        if key_type in _CURVES:
            key = _ec_from_seed(seed, key_type)
        elif key_type.startswith("rsa") and key_type[3:].isdigit():
            key = _load_or_make_rsa(seed, int(key_type[3:]))
        else:
            raise ValueError(f"unknown test key type {key_type!r}")
        _memo[ident] = key
        return key


def _load_or_make_rsa(seed: bytes, bits: int) -> rsa.RSAPrivateKey:
    path = cache_dir() / (hashlib.sha256(seed).hexdigest()[:32] + ".pem")
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(loaded, rsa.RSAPrivateKey) and loaded.key_size == bits:
            return loaded
    except (OSError, ValueError):
        pass
    key = _rsa_from_seed(seed, bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, pem, mode=0o644)
    except OSError:
        pass  # a read-only home only costs the generation time next run
    return key
