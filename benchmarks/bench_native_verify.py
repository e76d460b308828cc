"""Benchmark: batch signature verification in native code against the floor.

    .venv/bin/python benchmarks/bench_native_verify.py [--quick]

For RSA-4096 (the IGC-Santé issuing CAs' size, the headline) and RSA-2048
issuer keys, signs a corpus of certificate-sized TBS blobs (1.2 KB, SHA-256,
PKCS#1 v1.5) and measures, in the same run, medians of 5 rounds:

* the physical floor: ``openssl speed -seconds N rsaBITS`` verify/s (one core),
* a plain Python loop over cryptography's ``RSAPublicKey.verify`` (anchor),
* ``cps_middleware._verify.verify_many`` with 1 thread and with 2 threads
  (hash + verify per item, one call per batch, GIL released).

Goals (issue 13): one thread >= 0.8 x openssl speed; two threads >= 1.8 x one.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cps_middleware import _verify


def _openssl_speed(bits: int, seconds: int) -> float:
    out = subprocess.run(
        ["openssl", "speed", "-seconds", str(seconds), f"rsa{bits}"],
        capture_output=True, text=True, check=True,
    ).stdout
    m = re.search(rf"rsa {bits} bits\s+\S+\s+\S+\s+\S+\s+(\S+)", out)
    if not m:
        raise SystemExit(f"cannot read openssl speed output:\n{out}")
    return float(m.group(1))


def _median_rate(fn: object, n: int, rounds: int) -> float:
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 1500 if args.quick else 6000
    rounds = 3 if args.quick else 5
    missed = []
    print(f"{'issuer key':<10} {'what':<34} {'verify/s':>10} {'ratio':>22}")
    for bits in (4096, 2048):
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        data = [os.urandom(1200) for _ in range(n)]
        sigs = [key.sign(d, padding.PKCS1v15(), hashes.SHA256()) for d in data]
        native = _verify.Key(spki, "rsa-pkcs1-sha256")
        keys = [native] * n
        pub = key.public_key()

        def crypto_loop(pub: rsa.RSAPublicKey = pub, sigs: list[bytes] = sigs,
                        data: list[bytes] = data) -> None:
            for s, d in zip(sigs, data, strict=True):
                pub.verify(s, d, padding.PKCS1v15(), hashes.SHA256())

        def batch(threads: int, keys: list[_verify.Key] = keys, sigs: list[bytes] = sigs,
                  data: list[bytes] = data) -> bytes:
            return _verify.verify_many(keys, sigs, data, threads=threads)

        floor = statistics.median(_openssl_speed(bits, 1 if args.quick else 2) for _ in range(3))
        loop = _median_rate(crypto_loop, n, rounds)
        one = _median_rate(lambda: batch(1), n, rounds)
        two = _median_rate(lambda: batch(2), n, rounds)
        assert batch(2) == b"\x01" * n
        rows = [
            ("openssl speed (floor, 1 core)", floor, ""),
            ("cryptography verify loop (anchor)", loop, f"{loop / floor:.2f} x floor"),
            ("native verify_many, 1 thread", one, f"{one / floor:.2f} x floor (>= 0.8)"),
            ("native verify_many, 2 threads", two, f"{two / one:.2f} x 1 thread (>= 1.8)"),
        ]
        for what, rate, ratio in rows:
            print(f"RSA-{bits:<6} {what:<34} {rate:>10,.0f} {ratio:>22}")
        if one < 0.8 * floor:
            missed.append(f"RSA-{bits} one thread {one / floor:.2f} x floor")
        if os.cpu_count() and os.cpu_count() >= 2 and two < 1.8 * one:  # type: ignore[operator]
            missed.append(f"RSA-{bits} two threads {two / one:.2f} x one")
    print("goals met" if not missed else "missed: " + "; ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
