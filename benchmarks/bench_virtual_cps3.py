"""Virtual CPS3 (IAS-ECC on vpcd) benchmark: what a CI run with real middleware costs.

Measures, with the card in one vpcd reader of the running pcscd:

* APDUs per second through pcscd + vpcd (pyscard, ``VERIFY`` status query and
  a 231-byte ``READ BINARY``, the chunk OpenSC reads);
* the engine alone (``IasEccCard.process`` without PC/SC), for comparison;
* OpenSC's PKCS#11 module: the first listing of every object after insertion
  (OpenSC reads the PKCS#15 structure and certificates then, and answers later
  listings from its cache), private keys after login, a
  ``pkcs11-tool -O`` process from start to end, an authentication signature
  (CKM_RSA_PKCS) and a decryption;
* a TLS 1.2 mutual-TLS request on a new connection (full handshake) with the
  card's authentication key through OpenSC and the library's TLS bridge;
* APDUs each operation sends.

Goals (issue 9): APDU ≈ 1 ms; an object listing 30–100 ms; a handshake < 150 ms.

Run: ``.venv/bin/python benchmarks/bench_virtual_cps3.py [--port 35965] [--json]``
(``--reader`` for a reader layout other than ``scripts/pcscd.sh``'s).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pkcs11
from pkcs11 import Mechanism, ObjectClass
from smartcard.System import readers

from cps_middleware.testing.cps3image import AUTH_KEY_LABEL, VirtualCps3
from cps_middleware.testing.iasecc import digest_info
from cps_middleware.testing.pki import TestPki

OPENSC = "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so"


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": statistics.median(values) * 1000,
        "min_ms": min(values) * 1000,
        "max_ms": max(values) * 1000,
        "n": len(values),
    }


def _timed(fn: Callable[[], object], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bench_apdus(card: VirtualCps3, n: int) -> dict[str, Any]:
    reader = next(r for r in readers() if str(r) == card.reader)
    conn = reader.createConnection()
    conn.connect()
    try:
        status = [0x00, 0x20, 0x00, 0x01]
        read = [0x00, 0xB0, 0x00, 0x00, 0xE7]
        conn.transmit([0x00, 0xA4, 0x02, 0x0C, 0x02, 0x2F, 0x01])  # EF.ATR (42 bytes)
        conn.transmit([0x00, 0xA4, 0x09, 0x0C, 0x06, 0x3F, 0x00, 0x00, 0x01, 0xC0, 0x01])
        t = time.perf_counter()
        for _ in range(n):
            _, sw1, _ = conn.transmit(status)
        status_s = time.perf_counter() - t
        assert sw1 == 0x63
        t = time.perf_counter()
        for _ in range(n):
            data, sw1, _ = conn.transmit(read)
        read_s = time.perf_counter() - t
        assert sw1 == 0x90 and len(data) == 0xE7
    finally:
        conn.disconnect()
    return {
        "status_query_per_s": n / status_s,
        "status_query_ms": status_s / n * 1000,
        "read_binary_231_per_s": n / read_s,
        "read_binary_231_ms": read_s / n * 1000,
    }


def bench_engine(card: VirtualCps3, n: int) -> dict[str, float]:
    engine = card.card
    t = time.perf_counter()
    for _ in range(n):
        engine.process(b"\x00\x20\x00\x01")
    return {"engine_status_query_us": (time.perf_counter() - t) / n * 1e6}


def bench_opensc(card: VirtualCps3, rounds: int) -> dict[str, Any]:
    engine = card.card
    count0 = engine.apdu_count
    t = time.perf_counter()
    lib = pkcs11.lib(OPENSC)  # C_Initialize: OpenSC detects the card and binds PKCS#15
    slot = next(s for s in lib.get_slots() if s.slot_description.strip() == card.reader)
    token = slot.get_token()
    with token.open() as session:  # OpenSC binds PKCS#15 and reads every object here
        n_public = sum(1 for _ in session.get_objects())
    first = time.perf_counter() - t
    first_apdus = engine.apdu_count - count0

    def list_public() -> int:
        with token.open() as session:
            return sum(1 for _ in session.get_objects())

    count0 = engine.apdu_count
    list_public()
    list_apdus = engine.apdu_count - count0
    listing = _timed(list_public, rounds)

    di = digest_info("sha256", hashlib.sha256(b"bench").digest())
    pub = card.objects.auth_certificate.public_key()
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    assert isinstance(pub, rsa.RSAPublicKey)
    cryptogram = pub.encrypt(b"k" * 32, padding.PKCS1v15())
    with token.open(user_pin=card.pin) as session:
        t = time.perf_counter()
        n_private = sum(1 for _ in session.get_objects())
        listing_logged_in = time.perf_counter() - t
        key = session.get_key(ObjectClass.PRIVATE_KEY, label=AUTH_KEY_LABEL)
        count0 = engine.apdu_count
        key.sign(di, mechanism=Mechanism.RSA_PKCS)
        sign_apdus = engine.apdu_count - count0
        signing = _timed(lambda: key.sign(di, mechanism=Mechanism.RSA_PKCS), rounds)
        count0 = engine.apdu_count
        key.decrypt(cryptogram, mechanism=Mechanism.RSA_PKCS)
        decrypt_apdus = engine.apdu_count - count0
        decrypting = _timed(lambda: key.decrypt(cryptogram, mechanism=Mechanism.RSA_PKCS), rounds)

    tool = _timed(
        lambda: subprocess.run(
            ["pkcs11-tool", "--module", OPENSC, "--slot-description", card.reader, "-O"],
            check=True, capture_output=True,
        ),
        max(3, rounds // 4),
    )  # fmt: skip
    return {
        "module_init_and_first_listing_ms": first * 1000,
        "first_listing_apdus": first_apdus,
        "objects_public": n_public,
        "list_objects_again_cached": _stats(listing),
        "list_objects_again_apdus": list_apdus,
        "list_objects_after_login_ms": listing_logged_in * 1000,
        "objects_after_login": n_private,
        "sign_rsa_pkcs": _stats(signing),
        "sign_apdus": sign_apdus,
        "decrypt_rsa_pkcs": _stats(decrypting),
        "decrypt_apdus": decrypt_apdus,
        "pkcs11_tool_O_process": _stats(tool),
    }


def bench_tls(card: VirtualCps3, pki: TestPki, rounds: int) -> dict[str, Any]:
    """Full TLS 1.2 handshakes (new connection each) with the card key through OpenSC."""
    import urllib.request

    from cps_middleware.card import open_card
    from cps_middleware.pkcs11 import Pin
    from cps_middleware.testing.servers import MutualTlsServer
    from cps_middleware.tls import client_context

    cps = open_card(module=OPENSC, serial=card.objects.serial)
    try:
        cps.login(Pin(card.pin))
        with MutualTlsServer(list(pki.ca_certificates)) as server:
            ctx = client_context(cps, cadata=server.ca_pem.decode())

            def get() -> None:
                req = urllib.request.Request(server.url, headers={"Connection": "close"})
                with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
                    r.read()

            get()
            count0 = card.card.apdu_count
            get()
            apdus = card.card.apdu_count - count0
            times = _timed(get, rounds)
    finally:
        cps.close()
    return {"tls12_handshake_request": _stats(times), "tls_handshake_apdus": apdus}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=35965)
    ap.add_argument("--reader", default=None)
    ap.add_argument("--apdus", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    pki = TestPki(seed="bench-virtual-cps3")
    credentials = pki.issue_card()
    card = VirtualCps3(credentials, port=args.port, reader=args.reader)
    t = time.perf_counter()
    card.insert()
    insert_s = time.perf_counter() - t
    try:
        results: dict[str, Any] = {"insert_seen_by_pcscd_ms": insert_s * 1000}
        results.update(bench_apdus(card, args.apdus))
        results.update(bench_engine(card, args.apdus * 10))
        results.update(bench_opensc(card, args.rounds))
        results.update(bench_tls(card, pki, args.rounds))
    finally:
        card.remove()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, value in results.items():
            if isinstance(value, dict):
                print(
                    f"{name:32s} median {value['median_ms']:8.2f} ms  min {value['min_ms']:8.2f}"
                    f"  max {value['max_ms']:8.2f}  (n={value['n']})"
                )
            elif isinstance(value, float):
                print(f"{name:32s} {value:10.2f}")
            else:
                print(f"{name:32s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
