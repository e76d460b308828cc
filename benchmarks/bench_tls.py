"""TLS client authentication cost: bridge key vs file key, same server, same run.

Measures, for RSA-2048 (TLS 1.3 PSS and TLS 1.2 PKCS#1) and EC P-256:

* the bridge's own cost per signature: ``EVP_DigestSign`` through the provider
  with a signer that returns a ready signature, minus calling that signer
  from Python directly (goal: <= 20 µs);
* the signature through the bridge with the real file key vs the same
  ``key.sign()`` called directly;
* sequential full handshakes per second against one ``openssl s_server
  -Verify 1`` on 127.0.0.1: the file key loaded by OpenSSL itself
  (``load_cert_chain``), the same file key through the bridge, and the key on
  a SoftHSM CPS test card (CPS4 for TLS 1.3, CPS3 for TLS 1.2; goal: token-key
  handshake <= 1.25x file-key handshake).

Run: ``.venv/bin/python benchmarks/bench_tls.py [--handshakes N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from cps_middleware.testing.pki import CardCredentials, TestHolder, TestPki
from cps_middleware.testing.servers import OpenSslServer, ServerPki
from cps_middleware.tls import _native, client_context


def _median_us(fn: Callable[[], object], n: int, repeat: int = 5) -> float:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(runs)


def signature_costs(creds: CardCredentials, n: int) -> dict[str, float]:
    b = _native.bridge()
    key = creds.authentication.private_key
    der = creds.authentication.der
    data = b"x" * 200  # about the size TLS signs
    is_rsa = isinstance(key, rsa.RSAPrivateKey)
    pad = "pkcs1" if is_rsa else None
    fixed = (
        key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if is_rsa
        else key.sign(data, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg]
    )

    def trivial(md: str, digest: bytes, p: str | None, salt: int, mgf1: str | None) -> bytes:
        return fixed

    bkey_trivial = b.new_key(der, trivial)
    t_bridge_trivial = _median_us(lambda: b.digest_sign(bkey_trivial, "SHA256", data, pad), n)
    t_python_trivial = _median_us(lambda: trivial("sha256", data[:32], pad, 0, None), n)

    real = _native.make_signer(key)
    bkey = b.new_key(der, real)
    m = max(50, n // 20)
    t_bridge_real = _median_us(lambda: b.digest_sign(bkey, "SHA256", data, pad), m)
    if is_rsa:
        t_direct = _median_us(lambda: key.sign(data, padding.PKCS1v15(), hashes.SHA256()), m)  # type: ignore[call-arg]
    else:
        t_direct = _median_us(lambda: key.sign(data, ec.ECDSA(hashes.SHA256())), m)  # type: ignore[call-arg]
    return {
        "bridge_overhead_us": t_bridge_trivial - t_python_trivial,
        "bridge_trivial_signer_us": t_bridge_trivial,
        "python_trivial_signer_us": t_python_trivial,
        "bridge_file_key_us": t_bridge_real,
        "direct_file_key_us": t_direct,
    }


def _handshake_rate(ctx: ssl.SSLContext, port: int, n: int) -> float:
    """Median ms per full handshake (connect, handshake, close)."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as s,
        ):
            if s.version() == "TLSv1.3":
                # the client certificate is checked after the client's Finished:
                # wait for the server's answer so the whole exchange is counted
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                s.recv(1)
            else:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                s.recv(1)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def _file_context(creds: CardCredentials, ca_pem: bytes, tmp: Path, tls12: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=ca_pem.decode())
    cert, key = tmp / "c.pem", tmp / "k.pem"
    cert.write_bytes(creds.authentication.pem)
    key.write_bytes(creds.authentication.private_key_pem())
    ctx.load_cert_chain(cert, key)
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def handshakes(pki: TestPki, n: int, with_card: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    server_pki = ServerPki()
    cards: dict[str, Any] = {}
    cards_dir = None
    if with_card:
        cards_dir = tempfile.TemporaryDirectory(prefix="cps-bench-cards-")
        os.environ["CPS_TEST_CARDS_DIR"] = cards_dir.name
    configs = [
        ("RSA-2048 TLS1.3 PSS", "rsa2048", "CPS4", False),
        ("RSA-2048 TLS1.2 PKCS1", "rsa2048", "CPS3", True),
        ("EC P-256 TLS1.3", "p256", "CPS4", False),
    ]
    try:
        with (
            OpenSslServer(list(pki.ca_certificates), server_pki=server_pki) as srv,
            tempfile.TemporaryDirectory() as tmp,
        ):
            for i, (label, key_type, generation, tls12) in enumerate(configs):
                holder = TestHolder(card_number=f"8025000001/28000091{i:02d}")
                creds = pki.issue_card(holder, key_type=key_type)
                file_ctx = _file_context(creds, srv.ca_pem, Path(tmp), tls12)
                bridge_ctx = client_context(
                    creds.authentication.private_key,
                    creds.authentication.certificate,
                    cadata=srv.ca_pem.decode(),
                    pss=not tls12,
                )
                row: dict[str, Any] = {"config": label}
                # interleave the variants so drift affects them alike
                variants: dict[str, ssl.SSLContext] = {"file": file_ctx, "bridge": bridge_ctx}
                if with_card:
                    from cps_middleware.card import open_card
                    from cps_middleware.pkcs11 import Pin
                    from cps_middleware.testing.testcard import CpsTestCard, test_token_module

                    tc = CpsTestCard(
                        cards_dir.name,
                        pki=pki,
                        holder=holder,  # type: ignore[union-attr]
                        generation=generation,
                        key_type=key_type,
                    ).create()
                    card = open_card(module=test_token_module(), serial=tc.serial)
                    card.login(Pin(tc.pin))
                    cards[label] = card
                    token_ctx = client_context(card, cadata=srv.ca_pem.decode())
                    variants["token"] = token_ctx
                for vname, ctx in variants.items():
                    try:
                        _handshake_rate(ctx, srv.port, 5)  # warm up
                    except ssl.SSLError as exc:
                        raise SystemExit(f"{label} / {vname}: {exc}\n{srv.log()[-2000:]}") from exc
                results: dict[str, list[float]] = {k: [] for k in variants}
                for _ in range(5):
                    for name, ctx in variants.items():
                        results[name].append(_handshake_rate(ctx, srv.port, max(1, n // 5)))
                for name, values in results.items():
                    ms = statistics.median(values)
                    row[f"{name}_ms"] = ms
                    row[f"{name}_per_s"] = 1000 / ms
                row["bridge_vs_file"] = row["bridge_ms"] / row["file_ms"]
                if "token_ms" in row:
                    row["token_vs_file"] = row["token_ms"] / row["file_ms"]
                rows.append(row)
    finally:
        for card in cards.values():
            card.close()
        if cards_dir is not None:
            cards_dir.cleanup()
    return rows


def async_stalls(
    pki: TestPki, delay: float = 0.2, connections: int = 3
) -> dict[str, dict[str, float]]:
    """Longest event-loop stall while *connections* handshakes sign with a slow key."""
    import asyncio

    from cps_middleware.testing.servers import MutualTlsServer, SlowRSAKey, max_loop_lag
    from cps_middleware.tls import aio

    creds = pki.issue_card(TestHolder())
    out: dict[str, dict[str, float]] = {}
    with MutualTlsServer(list(pki.ca_certificates)) as srv:
        key = SlowRSAKey(creds.authentication.private_key, delay)  # type: ignore[arg-type]
        ctx = client_context(key, creds.authentication.certificate, cadata=srv.ca_pem)
        for name, opener in (
            ("asyncio.open_connection (plain)", asyncio.open_connection),
            ("cps_middleware.tls.aio.open_connection", aio.open_connection),
        ):

            async def one(opener: Any = opener) -> None:
                reader, writer = await opener(
                    "127.0.0.1", srv.port, ssl=ctx, server_hostname="localhost"
                )
                writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                await reader.read()
                writer.close()

            async def run() -> float:
                work = asyncio.gather(*(one() for _ in range(connections)))
                return (await max_loop_lag(work, tick=0.002))[1]

            t = time.perf_counter()
            stall = asyncio.run(run())
            out[name] = {"max_stall_ms": stall * 1e3, "total_ms": (time.perf_counter() - t) * 1e3}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handshakes", type=int, default=200)
    parser.add_argument("--signatures", type=int, default=20000)
    parser.add_argument("--no-card", action="store_true", help="skip the SoftHSM test card")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    pki = TestPki(seed="bench-tls")
    sig = {
        "RSA-2048": signature_costs(pki.issue_card(TestHolder()), args.signatures),
        "EC P-256": signature_costs(pki.issue_card(TestHolder(), key_type="p256"), args.signatures),
    }
    hs = handshakes(pki, args.handshakes, with_card=not args.no_card)
    stalls = async_stalls(pki)
    if args.json:
        print(json.dumps({"signatures": sig, "handshakes": hs, "async": stalls}, indent=2))
        return 0
    print(f"OpenSSL {ssl.OPENSSL_VERSION}")
    print("\nPer-signature cost (µs, median)")
    print(f"{'key':10} {'bridge overhead':>16} {'bridge+file key':>16} {'file key direct':>16}")
    for name, r in sig.items():
        print(
            f"{name:10} {r['bridge_overhead_us']:16.1f} {r['bridge_file_key_us']:16.1f} "
            f"{r['direct_file_key_us']:16.1f}"
        )
    print("\nFull handshakes against openssl s_server -Verify 1 (ms median, handshakes/s)")
    head = f"{'config':24} {'file key':>16} {'bridge file key':>18}"
    if not args.no_card:
        head += f" {'SoftHSM token':>16} {'token/file':>10}"
    print(head)
    for row in hs:
        line = (
            f"{row['config']:24} {row['file_ms']:7.2f} ({row['file_per_s']:5.0f}/s)"
            f" {row['bridge_ms']:8.2f} ({row['bridge_per_s']:5.0f}/s)"
        )
        if "token_ms" in row:
            line += (
                f" {row['token_ms']:7.2f} ({row['token_per_s']:5.0f}/s)"
                f" {row['token_vs_file']:9.2f}x"
            )
        print(line)
    print("\nasyncio, 3 connections, key signing in 200 ms (max event-loop stall, total)")
    for name, r in stalls.items():
        print(f"{name:42} {r['max_stall_ms']:7.1f} ms stall {r['total_ms']:7.1f} ms total")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
