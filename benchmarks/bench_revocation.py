"""Revocation sources on loopback: CRL download / refresh / cache, OCSP round trip.

Same run, same servers, medians:

* CRL fetch through :class:`CrlFetcher` (download + issuer/signature/scope
  checks + cache write) vs the plain reference: ``urllib`` GET +
  ``cryptography`` load + ``is_signature_valid``; then a conditional refresh
  answered 304, and a cache hit (no request; the cached CRL is checked again);
  for a small CRL and a large one (``--entries``, default 20 000 entries);
* OCSP through :class:`OcspClient` (request with nonce, response signature,
  responder, certID, nonce and dates checked) against ``openssl ocsp`` vs the
  plain reference: ``cryptography`` request + ``urllib`` POST + load (no
  checks), and vs the ``openssl ocsp`` client command (one process per query);
  then a cache hit.

Run: ``.venv/bin/python benchmarks/bench_revocation.py [--rounds N] [--entries N]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from cps_middleware.testing.pki import CertifiedKey, Revocation, TestHolder, TestPki
from cps_middleware.testing.revocation_servers import OpenSslOcspResponder, RevocationHttpServer
from cps_middleware.validation.ocsp import OcspClient
from cps_middleware.validation.revocation import CrlFetcher, CrlOutcome, RevocationSources

BASE = "http://igc-sante.esante.gouv.fr/CRL/"


def median_ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def bench_crl(
    pki: TestPki, leaf: x509.Certificate, server: RevocationHttpServer, entries: int, rounds: int
) -> list[tuple[str, float, float | None]]:
    inter = pki.intermediate.certificate
    extra = [Revocation(n + 1) for n in range(entries)]
    crl = pki.crl("intermediate", extra=extra)
    der = crl.public_bytes(serialization.Encoding.DER)
    server.publish("/CRL/ACI-FO-PP-TEST.crl", der)
    url = server.url("/CRL/ACI-FO-PP-TEST.crl")
    sources = RevocationSources.igc_sante().with_mirror(BASE, server.url("/CRL/"))
    label = f"{entries} entries, {len(der) / 1024:.0f} KiB"

    def reference() -> None:
        with urllib.request.urlopen(url, timeout=10) as r:
            data = r.read()
        c = x509.load_der_x509_crl(data)
        assert c.is_signature_valid(inter.public_key())  # type: ignore[arg-type]

    def download() -> None:
        f = CrlFetcher(None, sources=sources).fetch_for(leaf, inter)[-1]
        assert f.outcome is CrlOutcome.DOWNLOADED, f.error

    with tempfile.TemporaryDirectory() as d:
        fetcher = CrlFetcher(Path(d), sources=sources)
        assert fetcher.fetch_for(leaf, inter)[-1].outcome is CrlOutcome.DOWNLOADED

        def refresh() -> None:
            f = fetcher.fetch(BASE + "ACI-FO-PP-TEST.crl", inter, subject=leaf, force=True)
            assert f.outcome is CrlOutcome.NOT_MODIFIED, f.error

        def cached() -> None:
            assert fetcher.fetch_for(leaf, inter)[-1].outcome is CrlOutcome.CACHED

        ref = median_ms(reference, rounds)
        return [
            (f"CRL {label}: plain urllib + load + verify", ref, None),
            (f"CRL {label}: CrlFetcher download", median_ms(download, rounds), ref),
            (f"CRL {label}: CrlFetcher 304 refresh", median_ms(refresh, rounds), ref),
            (f"CRL {label}: CrlFetcher cache hit", median_ms(cached, rounds), ref),
        ]


def bench_ocsp(
    pki: TestPki, leaf: x509.Certificate, rounds: int
) -> list[tuple[str, float, float | None]]:
    rows: list[tuple[str, float, float | None]] = []
    for signer_name, signer in (("CA RSA-4096", pki.intermediate),
                                ("delegated P-256", pki.ocsp_responder())):
        rows += _bench_responder(pki, leaf, signer_name, signer, rounds)
    return rows


def _bench_responder(
    pki: TestPki, leaf: x509.Certificate, signer_name: str, signer: CertifiedKey, rounds: int
) -> list[tuple[str, float, float | None]]:
    inter = pki.intermediate.certificate
    rows: list[tuple[str, float, float | None]] = []
    with OpenSslOcspResponder(inter, signer, good=[leaf]) as responder:
        request = (
            ocsp.OCSPRequestBuilder().add_certificate(leaf, inter, hashes.SHA1()).build()
        ).public_bytes(serialization.Encoding.DER)

        def reference() -> None:
            req = urllib.request.Request(
                responder.url, data=request, headers={"Content-Type": "application/ocsp-request"})
            with urllib.request.urlopen(req, timeout=10) as r:
                ocsp.load_der_ocsp_response(r.read())

        client = OcspClient(responder.url)

        def ours() -> None:
            client.clear_cache()
            assert client.check(leaf, inter).ok

        ref = median_ms(reference, rounds)
        rows.append((f"OCSP ({signer_name}): plain request + POST + load", ref, None))
        rows.append((f"OCSP ({signer_name}): OcspClient.check", median_ms(ours, rounds), ref))
        client.check(leaf, inter)
        rows.append((f"OCSP ({signer_name}): OcspClient cache hit",
                     median_ms(lambda: client.check(leaf, inter), rounds), ref))
        openssl = shutil.which("openssl")
        if openssl and signer is pki.intermediate:
            with tempfile.TemporaryDirectory() as d:
                (Path(d) / "ca.pem").write_bytes(inter.public_bytes(serialization.Encoding.PEM))
                (Path(d) / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
                cmd = [openssl, "ocsp", "-issuer", f"{d}/ca.pem", "-cert", f"{d}/leaf.pem",
                       "-url", responder.url, "-VAfile", f"{d}/ca.pem"]
                rows.append((f"OCSP ({signer_name}): openssl ocsp client command",
                             median_ms(lambda: subprocess.run(cmd, capture_output=True,
                                                              check=True),
                                       max(5, rounds // 4)), ref))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--entries", type=int, default=20000)
    args = parser.parse_args(argv)
    pki = TestPki(seed="cps-middleware-tests")
    leaf = pki.issue_card(
        TestHolder(id_number="10001700001", card_number="8025000001/2800017001"), key_type="p256"
    ).authentication.certificate
    rows: list[tuple[str, float, float | None]] = []
    with RevocationHttpServer() as server:
        for n in (0, args.entries):
            rows += bench_crl(pki, leaf, server, n, args.rounds)
    rows += bench_ocsp(pki, leaf, args.rounds)
    print(f"{'measure':64} {'median ms':>10} {'x reference':>12}")
    for name, ms, ref in rows:
        ratio = f"{ms / ref:.2f}" if ref else "1.00"
        print(f"{name:64} {ms:10.3f} {ratio:>12}")
    print(f"(python {sys.version.split()[0]}, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
