"""TLS client authentication with bridge keys (file keys) against real local servers."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import threading
import urllib.request
from collections.abc import Callable

import pytest
from cryptography import x509

from cps_middleware.errors import CardRemoved, InvalidInput, SignatureFailed
from cps_middleware.testing.pki import CardCredentials, TestHolder, TestPki
from cps_middleware.testing.servers import MutualTlsServer, OpenSslServer, ServerPki
from cps_middleware.tls import _native, client_context, requests_session


@pytest.fixture(scope="module")
def rsa_creds(cps_pki: TestPki) -> CardCredentials:
    return cps_pki.issue_card(TestHolder())


@pytest.fixture(scope="module")
def p256_creds(cps_pki: TestPki) -> CardCredentials:
    return cps_pki.issue_card(TestHolder(), key_type="p256")


@pytest.fixture(scope="module")
def p384_creds(cps_pki: TestPki) -> CardCredentials:
    return cps_pki.issue_card(TestHolder(), key_type="p384")


def _ctx(
    creds: CardCredentials, server: MutualTlsServer | OpenSslServer, **kw: object
) -> ssl.SSLContext:
    auth = creds.authentication
    return client_context(
        auth.private_key,
        auth.certificate,
        chain=creds.chain[:1],
        cadata=server.ca_pem.decode(),
        **kw,  # type: ignore[arg-type]
    )


def _get(url: str, ctx: ssl.SSLContext) -> dict[str, object]:
    with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
        return json.load(r)  # type: ignore[no-any-return]


class _Spy:
    """Wraps a key's signer to record the exact operations the bridge asked for."""

    def __init__(self, creds: CardCredentials, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, str | None, int, str | None]] = []
        real = _native.make_signer

        def make(key: object) -> _native.Signer:
            inner = real(key)

            def sign(md: str, digest: bytes, pad: str | None, salt: int, mgf1: str | None) -> bytes:
                self.calls.append((md, pad, salt, mgf1))
                return inner(md, digest, pad, salt, mgf1)

            return sign

        monkeypatch.setattr(_native, "make_signer", make)


# -- handshakes ------------------------------------------------------------------


def test_rsa_tls13_signs_pss(
    rsa_creds: CardCredentials, cps_tls_server: MutualTlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Spy(rsa_creds, monkeypatch)
    body = _get(cps_tls_server.url, _ctx(rsa_creds, cps_tls_server))
    assert body["tls"] == {"version": "TLSv1.3", "cipher": body["tls"]["cipher"]}  # type: ignore[index]
    client = body["client"]
    assert isinstance(client, dict)
    assert client["ps_id_nat"] == rsa_creds.holder.ps_idnat
    assert spy.calls == [("sha256", "pss", 32, "sha256")]


def test_pkcs1_only_key_uses_tls12_pkcs1(
    rsa_creds: CardCredentials, cps_tls_server: MutualTlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Spy(rsa_creds, monkeypatch)
    ctx = _ctx(rsa_creds, cps_tls_server, pss=False)
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2
    body = _get(cps_tls_server.url, ctx)
    assert body["tls"]["version"] == "TLSv1.2"  # type: ignore[index]
    assert len(spy.calls) == 1 and spy.calls[0][1] == "pkcs1"


@pytest.mark.parametrize("creds_name", ["p256_creds", "p384_creds"])
def test_ec_keys_tls13(
    creds_name: str, cps_tls_server: MutualTlsServer, request: pytest.FixtureRequest
) -> None:
    creds: CardCredentials = request.getfixturevalue(creds_name)
    body = _get(cps_tls_server.url, _ctx(creds, cps_tls_server))
    assert body["tls"]["version"] == "TLSv1.3"  # type: ignore[index]
    assert body["client"]["ps_id_nat"] == creds.holder.ps_idnat  # type: ignore[index]


def _s_server_page(server: OpenSslServer, ctx: ssl.SSLContext) -> str:
    with urllib.request.urlopen(server.url, context=ctx, timeout=10) as r:
        return r.read().decode()


@pytest.mark.parametrize(
    ("creds_name", "pss", "version", "peer_type"),
    [
        ("rsa_creds", None, "TLSv1.3", "RSA-PSS"),
        ("rsa_creds", False, "TLSv1.2", "RSA"),
        ("p256_creds", None, "TLSv1.3", "ECDSA"),
        ("p384_creds", None, "TLSv1.3", "ECDSA"),
    ],
)
def test_openssl_s_server_verify(
    cps_openssl_server_factory: Callable[..., OpenSslServer],
    request: pytest.FixtureRequest,
    creds_name: str,
    pss: bool | None,
    version: str,
    peer_type: str,
) -> None:
    creds: CardCredentials = request.getfixturevalue(creds_name)
    server = cps_openssl_server_factory()
    page = _s_server_page(server, _ctx(creds, server, pss=pss))
    assert f"Protocol  : {version}" in page
    assert f"Peer signature type: {peer_type}\n" in page + "\n" or re.search(
        rf"Peer signature type: {peer_type}\b", page
    )
    assert rf"CN={creds.holder.ps_idnat}" in page.replace(" = ", "=")


def test_pkcs1_only_key_against_server_offering_pss_first(
    rsa_creds: CardCredentials, cps_openssl_server_factory: Callable[..., OpenSslServer]
) -> None:
    server = cps_openssl_server_factory(
        tls_version="1.2",
        client_sigalgs="rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pkcs1_sha256:rsa_pkcs1_sha384",
    )
    page = _s_server_page(server, _ctx(rsa_creds, server, pss=False))
    assert "Protocol  : TLSv1.2" in page
    assert re.search(r"Peer signature type: RSA\b(?!-PSS)", page)
    # Without the restriction the same key would have signed PSS.
    page = _s_server_page(
        server, _ctx(rsa_creds, server, pss=True, maximum_version=ssl.TLSVersion.TLSv1_2)
    )
    assert "Peer signature type: RSA-PSS" in page


def test_pkcs1_only_key_refuses_tls13(
    rsa_creds: CardCredentials, cps_tls_server: MutualTlsServer
) -> None:
    with pytest.raises(InvalidInput):
        _ctx(rsa_creds, cps_tls_server, pss=False, maximum_version=ssl.TLSVersion.TLSv1_3)


# -- HTTP clients ------------------------------------------------------------------


def test_requests(rsa_creds: CardCredentials, cps_tls_server: MutualTlsServer) -> None:
    ctx = _ctx(rsa_creds, cps_tls_server)
    with requests_session(ctx) as s:
        r = s.get(cps_tls_server.url, timeout=10)
    assert r.status_code == 200
    assert r.json()["client"]["ps_id_nat"] == rsa_creds.holder.ps_idnat


def test_httpx_sync(rsa_creds: CardCredentials, cps_tls_server: MutualTlsServer) -> None:
    import httpx

    with httpx.Client(verify=_ctx(rsa_creds, cps_tls_server)) as c:
        r = c.get(cps_tls_server.url)
    assert r.json()["client"]["ps_id_nat"] == rsa_creds.holder.ps_idnat


def test_httpx_async(rsa_creds: CardCredentials, cps_tls_server: MutualTlsServer) -> None:
    import httpx

    async def main() -> dict[str, object]:
        async with httpx.AsyncClient(verify=_ctx(rsa_creds, cps_tls_server)) as c:
            r = await c.get(cps_tls_server.url)
            return r.json()  # type: ignore[no-any-return]

    assert asyncio.run(main())["client"]["ps_id_nat"] == rsa_creds.holder.ps_idnat  # type: ignore[index]


def test_aiohttp(rsa_creds: CardCredentials, cps_tls_server: MutualTlsServer) -> None:
    import aiohttp

    async def main() -> dict[str, object]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(cps_tls_server.url, ssl=_ctx(rsa_creds, cps_tls_server)) as r,
        ):
            return await r.json()  # type: ignore[no-any-return]

    assert asyncio.run(main())["client"]["ps_id_nat"] == rsa_creds.holder.ps_idnat  # type: ignore[index]


def test_asyncio_streams(rsa_creds: CardCredentials, cps_tls_server: MutualTlsServer) -> None:
    async def main() -> bytes:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1",
            cps_tls_server.port,
            ssl=_ctx(rsa_creds, cps_tls_server),
            server_hostname="localhost",
        )
        writer.write(b"GET /streams HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = await reader.read()
        writer.close()
        return data

    assert rsa_creds.holder.ps_idnat.encode() in asyncio.run(main())


# -- failures ------------------------------------------------------------------------


def test_untrusted_server_is_rejected(
    rsa_creds: CardCredentials, cps_tls_server: MutualTlsServer
) -> None:
    other_ca = ServerPki().ca_pem.decode()
    ctx = client_context(
        rsa_creds.authentication.private_key, rsa_creds.authentication.certificate, cadata=other_ca
    )
    with pytest.raises(urllib.error.URLError) as info:
        _get(cps_tls_server.url, ctx)
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)


def test_system_cas_by_default(rsa_creds: CardCredentials, cps_tls_server: MutualTlsServer) -> None:
    ctx = client_context(rsa_creds.authentication.private_key, rsa_creds.authentication.certificate)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    with pytest.raises(urllib.error.URLError):
        _get(cps_tls_server.url, ctx)  # the test server CA is not a system CA


def test_hostname_is_checked(rsa_creds: CardCredentials, cps_tls_server: MutualTlsServer) -> None:
    ctx = _ctx(rsa_creds, cps_tls_server)
    url = cps_tls_server.url.replace("localhost", "127.0.0.2")
    with pytest.raises(urllib.error.URLError):
        _get(url, ctx)


def test_wrong_certificate_for_key(rsa_creds: CardCredentials, p256_creds: CardCredentials) -> None:
    with pytest.raises(InvalidInput, match="does not belong"):
        client_context(rsa_creds.authentication.private_key, p256_creds.authentication.certificate)


class _Flaky:
    """A switch that makes the key's signer fail with *error* (a pulled card)."""

    def __init__(self, error: BaseException) -> None:
        self.error, self.fail = error, False


def _flaky_ctx(
    creds: CardCredentials,
    server: MutualTlsServer,
    error: BaseException,
    monkeypatch: pytest.MonkeyPatch,
    **kw: object,
) -> tuple[ssl.SSLContext, _Flaky]:
    flaky = _Flaky(error)
    real = _native.make_signer

    def make(key: object) -> _native.Signer:
        inner = real(key)

        def sign(*args: object) -> bytes:
            if flaky.fail:
                raise flaky.error
            return inner(*args)  # type: ignore[arg-type]

        return sign

    monkeypatch.setattr(_native, "make_signer", make)
    return _ctx(creds, server, **kw), flaky


@pytest.mark.parametrize("pss", [None, False])
def test_card_pulled_mid_handshake_then_next_connection_works(
    rsa_creds: CardCredentials,
    cps_tls_server: MutualTlsServer,
    monkeypatch: pytest.MonkeyPatch,
    pss: bool | None,
) -> None:
    ctx, flaky = _flaky_ctx(
        rsa_creds, cps_tls_server, CardRemoved("card pulled"), monkeypatch, pss=pss
    )
    flaky.fail = True
    with pytest.raises(CardRemoved, match="card pulled") as info:
        _get(cps_tls_server.url, ctx)
    assert isinstance(info.value.__context__, ssl.SSLError)
    assert _native.bridge().error_queue_empty()
    flaky.fail = False
    assert _get(cps_tls_server.url, ctx)["client"] is not None


def test_foreign_signer_error_becomes_signature_failed(
    rsa_creds: CardCredentials, cps_tls_server: MutualTlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, flaky = _flaky_ctx(rsa_creds, cps_tls_server, ValueError("token said no"), monkeypatch)
    flaky.fail = True
    with pytest.raises(SignatureFailed) as info:
        _get(cps_tls_server.url, ctx)
    assert isinstance(info.value.__cause__, ValueError)


def test_keyboard_interrupt_stays_keyboard_interrupt(
    rsa_creds: CardCredentials, cps_tls_server: MutualTlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, flaky = _flaky_ctx(rsa_creds, cps_tls_server, KeyboardInterrupt(), monkeypatch)
    flaky.fail = True
    with pytest.raises(KeyboardInterrupt):
        _get(cps_tls_server.url, ctx)


def test_signer_error_through_requests_and_aiohttp(
    rsa_creds: CardCredentials, cps_tls_server: MutualTlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiohttp

    ctx, flaky = _flaky_ctx(rsa_creds, cps_tls_server, CardRemoved("pulled"), monkeypatch)
    flaky.fail = True
    with requests_session(ctx) as s, pytest.raises(CardRemoved):
        s.get(cps_tls_server.url, timeout=10)

    async def main() -> None:
        async with aiohttp.ClientSession() as s:
            await s.get(cps_tls_server.url, ssl=ctx)

    with pytest.raises(CardRemoved):
        asyncio.run(main())


# -- concurrency ------------------------------------------------------------------


def test_8_threads_x_20_handshakes(
    rsa_creds: CardCredentials, cps_tls_server: MutualTlsServer
) -> None:
    ctx = _ctx(rsa_creds, cps_tls_server)
    errors: list[BaseException] = []
    done = [0]
    lock = threading.Lock()

    def worker() -> None:
        try:
            for _ in range(20):
                assert _get(cps_tls_server.url, ctx)["client"] is not None
                with lock:
                    done[0] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert done[0] == 160


def test_context_accepts_pem_and_der_certificates(
    rsa_creds: CardCredentials, cps_tls_server: MutualTlsServer
) -> None:
    cert = rsa_creds.authentication.certificate
    for form in (rsa_creds.authentication.der, rsa_creds.authentication.pem):
        ctx = client_context(
            rsa_creds.authentication.private_key, form, cadata=cps_tls_server.ca_pem.decode()
        )
        assert ctx.credentials.certificate == cert  # type: ignore[attr-defined]
    assert isinstance(cert, x509.Certificate)


_EXIT_SCRIPT = r"""
import sys, threading, time, urllib.request
from cps_middleware.testing.pki import TestPki, TestHolder
from cps_middleware.testing.servers import MutualTlsServer, SlowRSAKey
from cps_middleware.tls import client_context

pki = TestPki(seed="cps-middleware-tests")
creds = pki.issue_card(TestHolder())
server = MutualTlsServer(list(pki.ca_certificates)).start()
key = SlowRSAKey(creds.authentication.private_key, float(sys.argv[1]))
ctx = client_context(key, creds.authentication.certificate, cadata=server.ca_pem)

def loop():
    while True:
        try:
            urllib.request.urlopen(server.url, context=ctx, timeout=5).read()
        except Exception:
            pass

for _ in range(4):
    threading.Thread(target=loop, daemon=True).start()
time.sleep(0.5)
print("signatures", key.signatures, flush=True)
sys.exit(0)  # daemon threads are mid-handshake, some inside the signer
"""


@pytest.mark.parametrize("delay", [0.0, 0.05])
def test_process_exit_during_handshakes(delay: float) -> None:
    import subprocess
    import sys

    for _ in range(3):
        proc = subprocess.run(
            [sys.executable, "-c", _EXIT_SCRIPT, str(delay)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "Fatal Python error" not in proc.stderr
        assert int(proc.stdout.split()[-1]) > 0


def test_ctrl_c_during_a_slow_signature(
    rsa_creds: CardCredentials, cps_tls_server: MutualTlsServer
) -> None:
    import os
    import signal
    import time

    from cps_middleware.testing.servers import SlowRSAKey

    key = SlowRSAKey(rsa_creds.authentication.private_key, 2.0)  # type: ignore[arg-type]
    ctx = client_context(key, rsa_creds.authentication.certificate, cadata=cps_tls_server.ca_pem)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    t = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        _get(cps_tls_server.url, ctx)
    timer.join()
    assert time.perf_counter() - t < 1.5
    assert _native.bridge().error_queue_empty()
    key.delay = 0.0
    assert _get(cps_tls_server.url, ctx)["client"] is not None
