"""Run every benchmark in turn: ``.venv/bin/python benchmarks/run_all.py [--quick]``.

Each benchmark measures its reference tools in the same run and prints its
own table with ratios; this script only runs them one after another (never
in parallel: they would measure each other) and says which ones missed a goal.
pcscd with the vpcd readers must be running for the PC/SC and virtual-card
benchmarks (``bash scripts/pcscd.sh start``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    ("PKCS#11 signing", ["bench_pkcs11.py"], []),
    ("PC/SC discovery and events", ["bench_pcsc.py"], []),
    ("TLS with the card key", ["bench_tls.py"], []),
    ("Chain validation", ["bench_validation.py"], ["--quick"]),
    ("Native batch signature check", ["bench_native_verify.py"], ["--quick"]),
    ("Revocation sources (CRL over HTTP, OCSP)", ["bench_revocation.py"], ["--rounds", "10"]),
    ("Virtual CPS3 through OpenSC", ["bench_virtual_cps3.py"], []),
    ("Virtual CPS4: TLS 1.3 through the ANS module", ["bench_virtual_cps4.py"], []),
    ("Demo", ["bench_demo.py"], []),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs where supported")
    args = parser.parse_args(argv)
    failed: list[str] = []
    for title, script, quick_args in BENCHMARKS:
        print(f"\n=== {title} ({script[0]})", flush=True)
        start = time.perf_counter()
        cmd = [sys.executable, str(HERE / script[0]), *(quick_args if args.quick else [])]
        rc = subprocess.call(cmd)
        print(f"=== {title}: exit {rc}, {time.perf_counter() - start:.1f} s", flush=True)
        if rc != 0:
            failed.append(title)
    print("\nall benchmarks met their goals" if not failed else f"\nmissed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
