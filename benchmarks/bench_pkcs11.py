"""Signatures per second: cps_middleware.pkcs11 vs python-pkcs11 directly, 1 vs 2 threads.

Same SoftHSM token, same RSA-2048 key, same mechanism (CKM_SHA256_RSA_PKCS),
same 32-byte message, in one process. The token lives in a private temporary
SoftHSM configuration (never the system token directory).

    .venv/bin/python benchmarks/bench_pkcs11.py [--n 2000] [--rounds 5] [--json]

Exit status 1 when the library reaches less than 0.9 of python-pkcs11's rate.
Two threads do not sign faster than one: the library serialises every call
into a module (python-pkcs11 initialises modules without OS locking, and
concurrent calls crash SoftHSM); the second thread shows that the lock and
the session pool cost nothing, not that they add throughput.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cps_middleware.testing import softhsm_library

PIN = "1234"
LABEL = "BENCH"
KEY_LABEL = "CPS_PRIV_AUT"
DATA = b"\x5a" * 32


def _make_token(root: Path) -> str:
    """A SoftHSM token with one RSA-2048 key pair; returns the module path."""
    library = softhsm_library()
    if library is None or shutil.which("softhsm2-util") is None:
        sys.exit("SoftHSM is not installed (apt-get install softhsm2)")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read by SoftHSM at C_Initialize, below
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", LABEL, "--pin", PIN,
         "--so-pin", "12345678"],
        check=True, capture_output=True,
    )  # fmt: skip
    return library


def _elapsed(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - t0


def _paired_rates(
    a: Callable[[], float], b: Callable[[], float], chunks: int
) -> tuple[float, float]:
    """Total time of ``a`` and of ``b`` over ``chunks`` interleaved runs (a b, b a, ...):
    on a shared machine the load drifts, and interleaving spreads it evenly."""
    ta = tb = 0.0
    for i in range(chunks):
        if i % 2:
            tb += b()
            ta += a()
        else:
            ta += a()
            tb += b()
    return ta, tb


def _threaded_elapsed(fn: Callable[[], object], n: int, threads: int) -> float:
    per = n // threads
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(per):
            fn()

    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--n", type=int, default=2000, help="signatures per measurement")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (median kept)")
    ap.add_argument("--chunk", type=int, default=100, help="signatures per interleaved run")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-pkcs11-") as tmp:
        library = _make_token(Path(tmp))

        import pkcs11

        from cps_middleware.pkcs11 import Mechanism, Pin, load_module

        # python-pkcs11 directly.
        lib = pkcs11.lib(library)
        raw_token = lib.get_token(token_label=LABEL)
        session = raw_token.open(rw=True, user_pin=PIN)
        session.generate_keypair(pkcs11.KeyType.RSA, 2048, store=True, label=KEY_LABEL, id=b"\x01")
        raw_key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=KEY_LABEL)
        raw_mech = pkcs11.Mechanism.SHA256_RSA_PKCS

        def raw_sign() -> bytes:
            return raw_key.sign(DATA, mechanism=raw_mech)  # type: ignore[attr-defined,no-any-return]

        # The library, on the same module object and token.
        token = load_module(library).open_token(label=LABEL)
        # python-pkcs11's session above already logged the token in: the library
        # would warn that this login checked no PIN.
        logging.getLogger("cps_middleware").setLevel(logging.ERROR)
        token.login(Pin(PIN))
        key = token.private_key(label=KEY_LABEL)

        def lib_sign() -> bytes:
            return token.sign(key, Mechanism.SHA256_RSA_PKCS, DATA)

        assert raw_sign() and lib_sign()  # warm up (first find, pooled session)
        chunk, chunks = args.chunk, max(2, args.n // args.chunk)
        total = chunk * chunks
        raw_rates, lib_rates, one, two = [], [], [], []
        for _ in range(args.rounds):
            t_raw, t_lib = _paired_rates(
                lambda: _elapsed(raw_sign, chunk), lambda: _elapsed(lib_sign, chunk), chunks
            )
            raw_rates.append(total / t_raw)
            lib_rates.append(total / t_lib)
            t1, t2 = _paired_rates(
                lambda: _threaded_elapsed(lib_sign, chunk, 1),
                lambda: _threaded_elapsed(lib_sign, chunk, 2),
                chunks,
            )
            one.append(total / t1)
            two.append(total / t2)
        token.close()
        session.close()

    result = {
        "n": args.n,
        "rounds": args.rounds,
        "python_pkcs11_sig_per_s": round(statistics.median(raw_rates), 1),
        "library_sig_per_s": round(statistics.median(lib_rates), 1),
        "ratio": round(statistics.median(lib_rates) / statistics.median(raw_rates), 3),
        "library_1_thread_sig_per_s": round(statistics.median(one), 1),
        "library_2_threads_sig_per_s": round(statistics.median(two), 1),
    }
    result["threads_2_vs_1"] = round(
        result["library_2_threads_sig_per_s"] / result["library_1_thread_sig_per_s"], 3
    )
    ok = result["ratio"] >= 0.9
    if args.json:
        print(json.dumps({**result, "ok": ok}))
    else:
        print(f"RSA-2048 CKM_SHA256_RSA_PKCS on SoftHSM, {args.n} signatures x {args.rounds} "
              "rounds (median)")  # fmt: skip
        print(f"  python-pkcs11 directly : {result['python_pkcs11_sig_per_s']:9.1f} sig/s")
        print(f"  cps_middleware.pkcs11  : {result['library_sig_per_s']:9.1f} sig/s"
              f"   ratio {result['ratio']:.3f} ({'OK' if ok else 'BELOW 0.9'})")  # fmt: skip
        print(f"  library, 1 thread      : {result['library_1_thread_sig_per_s']:9.1f} sig/s")
        print(
            f"  library, 2 threads     : {result['library_2_threads_sig_per_s']:9.1f} sig/s"
            f"   x{result['threads_2_vs_1']:.2f} (one lock per module: calls are serialised)"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
