"""Virtual CPS4 benchmark: mutual TLS 1.3 with the card key through the ANS module.

Both cards go through the same middleware, the unmodified ANS Cryptolib module
(``../shared/ans-cryptolib/libcps3_pkcs11_lux.so`` or ``$CPS_ANS_MODULE``),
loaded in this process with private ``/etc/opt`` and ``/var/opt`` (a mount
namespace: run as root, e.g. inside ``/work``'s isolation or CI):

* the virtual CPS4 (ChipDoc, ``cps_middleware.testing.cps4image``): TLS 1.3,
  the CertificateVerify signed RSA-PSS (rsa_pss_rsae_sha256) by the card
  (MSE SET DST tag 91 + PSO CDS);
* the virtual CPS3 (IAS-ECC): TLS 1.2, rsa_pkcs1_sha256 (INTERNAL AUTHENTICATE),
  the reference the ratio is taken against.

Each measure is a full handshake on a new connection plus one HTTP request to
a Python ``MutualTlsServer`` that requires a client certificate; the APDUs one
handshake sends are counted on the card side.

Run: ``.venv/bin/python benchmarks/bench_virtual_cps4.py [--rounds 20] [--json]``
(pcscd with the vpcd readers running: ``bash scripts/pcscd.sh start``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from cps_middleware.card import open_card
from cps_middleware.errors import CpsError, NoSuchToken
from cps_middleware.pkcs11 import Pin, load_module
from cps_middleware.testing.ansmodule import ans_module_path, configure_ans
from cps_middleware.testing.cps3image import VirtualCps3
from cps_middleware.testing.cps4image import VirtualCps4
from cps_middleware.testing.pki import TestPki
from cps_middleware.testing.servers import MutualTlsServer
from cps_middleware.tls import client_context


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": statistics.median(values) * 1000,
        "min_ms": min(values) * 1000,
        "max_ms": max(values) * 1000,
        "n": len(values),
    }


def _wait_token(module_path: str, serial: str, timeout: float = 15.0) -> None:
    module = load_module(module_path)
    deadline = time.monotonic() + timeout
    while True:
        try:
            module.open_token(serial=serial).close()
            return
        except NoSuchToken:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def bench_card(
    module_path: str, card: VirtualCps3 | VirtualCps4, server: MutualTlsServer, rounds: int
) -> dict[str, Any]:
    serial = card.objects.serial[:8]  # the ANS module shows 8 of the 10 digits
    _wait_token(module_path, serial)
    cps = open_card(module_path, serial=serial)
    try:
        cps.login(Pin(card.pin))
        ctx = client_context(cps, cadata=server.ca_pem.decode())
        version: list[str] = []

        def get() -> None:
            req = urllib.request.Request(server.url, headers={"Connection": "close"})
            with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
                body = json.loads(r.read())
            version.append(body["tls"]["version"])

        get()  # warm: key lookup, first signature
        count0 = card.card.apdu_count
        get()
        apdus = card.card.apdu_count - count0
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            get()
            times.append(time.perf_counter() - t)
    finally:
        cps.close()
    return {"protocol": version[-1], "handshake_request": _stats(times), "apdus": apdus}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--cps3-port", type=int, default=35965)
    ap.add_argument("--cps4-port", type=int, default=35966)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    module = ans_module_path(Path(__file__).resolve().parent)
    if module is None:
        print("the ANS module is not available (set CPS_ANS_MODULE)", file=sys.stderr)
        return 2
    try:
        configure_ans()
    except CpsError as exc:
        print(f"cannot give the ANS module a private /etc/opt: {exc}", file=sys.stderr)
        return 2

    pki = TestPki(seed="bench-virtual-cps4")
    cps3 = VirtualCps3(pki.issue_card(), port=args.cps3_port)
    cps4 = VirtualCps4(pki.issue_card(), port=args.cps4_port)
    results: dict[str, Any] = {}
    runs: list[tuple[str, VirtualCps3 | VirtualCps4]] = [("cps3", cps3), ("cps4", cps4)]
    with MutualTlsServer(list(pki.ca_certificates)) as server:
        for name, card in runs:
            card.insert()
            try:
                results[name] = bench_card(str(module), card, server, args.rounds)
            finally:
                card.remove()
    r3, r4 = results["cps3"], results["cps4"]
    results["ratio_cps4_tls13_over_cps3_tls12_time"] = (
        r4["handshake_request"]["median_ms"] / r3["handshake_request"]["median_ms"]
    )
    results["ratio_cps4_over_cps3_apdus"] = r4["apdus"] / r3["apdus"]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0

    def fmt(label: str, r: dict[str, Any]) -> str:
        h = r["handshake_request"]
        return (f"{label:34s} {r['protocol']:8s} median {h['median_ms']:7.2f} ms"
                f"  min {h['min_ms']:7.2f}  max {h['max_ms']:7.2f}"
                f"  {r['apdus']:3d} APDUs  (n={h['n']})")  # fmt: skip

    print(fmt("virtual CPS3 via ANS (reference)", r3))
    print(fmt("virtual CPS4 via ANS", r4))
    print(f"{'ratio CPS4 TLS 1.3 / CPS3 TLS 1.2':34s} time x"
          f"{results['ratio_cps4_tls13_over_cps3_tls12_time']:.2f}, "
          f"APDUs x{results['ratio_cps4_over_cps3_apdus']:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
