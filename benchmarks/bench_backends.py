"""The same card operations through each middleware, as ratios to the CPS test token.

Backends (the conformance suite's): the CPS test token (SoftHSM-backed CPS3
test card), OpenSC + the virtual CPS3 (pcscd + vpcd), the ANS Cryptolib CPS
module + the virtual CPS3. Measured in one process, one run:

* an authentication signature through the public path
  (``card.private_key("auth").sign(data, PKCS1v15(), SHA256())``);
* a TLS 1.2 mutual-TLS request on a new connection (full handshake) with the
  card's authentication key through the library's TLS bridge.

Needs pcscd with the vpcd readers; the ANS module writes /etc/opt and /var/opt,
so run it in private namespaces:

    /work/tools/isolated bash -c 'source scripts/_setup.sh; \
        .venv/bin/python benchmarks/bench_backends.py [--n 200] [--rounds 30] [--json]'

(``CPS_ANS_MODULE`` or ``../shared/ans-cryptolib/`` for the ANS module; the
row is left out, saying so, when it is absent.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from cps_middleware.card import CpsCard, open_card
from cps_middleware.pkcs11 import Pin
from cps_middleware.testing._fixtures_cps3 import OPENSC_MODULE_PATHS
from cps_middleware.testing.ansmodule import ans_module_path
from cps_middleware.testing.cps3image import VirtualCps3
from cps_middleware.testing.pki import TestHolder, TestPki
from cps_middleware.testing.servers import MutualTlsServer
from cps_middleware.tls import client_context


def _median_ms(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


@contextmanager
def _backends(pki: TestPki) -> Iterator[list[tuple[str, CpsCard]]]:
    from cps_middleware.testing.testcard import CpsTestCard, test_token_module

    holder = TestHolder(given_name="BENCH", surname="BACKENDS")
    creds = pki.issue_card(holder)
    opened: list[tuple[str, CpsCard]] = []
    virtual: list[VirtualCps3] = []
    with tempfile.TemporaryDirectory() as cards_dir:
        os.environ["CPS_TEST_CARDS_DIR"] = cards_dir
        test_card = CpsTestCard(cards_dir, pki=pki, credentials=creds).create()
        try:
            opened.append(
                ("CPS test token", open_card(test_token_module(), serial=test_card.serial))
            )
            opensc = next((p for p in OPENSC_MODULE_PATHS if Path(p).is_file()), None)
            if opensc:
                card = VirtualCps3(creds, port=35965, serial="2800003101")
                card.insert()
                virtual.append(card)
                opened.append(("OpenSC + virtual CPS3", open_card(opensc, serial="2800003101")))
            else:
                print("OpenSC is not installed: no OpenSC row", file=sys.stderr)
            ans = ans_module_path(Path.cwd())
            if ans:
                card = VirtualCps3(creds, port=35966, serial="2800003202")
                card.insert()
                virtual.append(card)
                opened.append(("ANS module + virtual CPS3", open_card(str(ans), serial="28000032")))
            else:
                print("the ANS module is absent: no ANS row", file=sys.stderr)
            for _, c in opened:
                c.login(Pin("1234"))
            yield opened
        finally:
            for _, c in opened:
                c.close()
            for card in virtual:
                card.remove()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="signatures per backend")
    ap.add_argument("--rounds", type=int, default=30, help="TLS handshakes per backend")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    pki = TestPki(seed="cps-middleware-bench-backends")
    rows: list[dict[str, Any]] = []
    with _backends(pki) as backends, MutualTlsServer(list(pki.ca_certificates)) as server:
        for name, card in backends:
            key = card.private_key("auth")

            def sign(key: Any = key) -> None:
                key.sign(b"benchmark", padding.PKCS1v15(), hashes.SHA256())

            sign()  # the first signature finds the key and the mechanism
            sig_ms = _median_ms(sign, args.n)
            ctx = client_context(card, cadata=server.ca_pem.decode())

            def get(ctx: Any = ctx) -> None:
                req = urllib.request.Request(server.url, headers={"Connection": "close"})
                with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
                    r.read()

            get()
            tls_ms = _median_ms(get, args.rounds)
            rows.append({"backend": name, "signature_ms": sig_ms, "tls12_ms": tls_ms})
    base = rows[0]
    for r in rows:
        r["signature_ratio"] = r["signature_ms"] / base["signature_ms"]
        r["tls12_ratio"] = r["tls12_ms"] / base["tls12_ms"]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("| backend | signature (ms, median) | × test token | TLS 1.2 handshake + request "
          "(ms, median) | × test token |")  # fmt: skip
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['signature_ms']:.2f} | {r['signature_ratio']:.2f} | "
              f"{r['tls12_ms']:.2f} | {r['tls12_ratio']:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
