"""Async clients keep their event loop running while the card signs."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cps_middleware.errors import CardRemoved
from cps_middleware.testing.pki import CardCredentials, TestHolder, TestPki
from cps_middleware.testing.servers import MutualTlsServer, ServerPki, SlowRSAKey, max_loop_lag
from cps_middleware.tls import _native, client_context
from cps_middleware.tls.aio import aiohttp_connector, httpx_transport, open_connection

DELAY = 0.2  # a card's RSA signature


@pytest.fixture(scope="module")
def creds(cps_pki: TestPki) -> CardCredentials:
    return cps_pki.issue_card(TestHolder())


def _slow_ctx(creds: CardCredentials, server: MutualTlsServer) -> tuple[ssl.SSLContext, SlowRSAKey]:
    key = SlowRSAKey(creds.authentication.private_key, DELAY)  # type: ignore[arg-type]
    ctx = client_context(
        key, creds.authentication.certificate, chain=creds.chain[:1], cadata=server.ca_pem
    )
    return ctx, key


async def _streams_get(server: MutualTlsServer, ctx: ssl.SSLContext) -> dict[str, Any]:
    reader, writer = await open_connection(
        "127.0.0.1", server.port, ssl=ctx, server_hostname="localhost"
    )
    writer.write(b"GET /aio HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])  # type: ignore[no-any-return]


async def _aiohttp_get(server: MutualTlsServer, ctx: ssl.SSLContext) -> dict[str, Any]:
    import aiohttp

    async with (
        aiohttp.ClientSession(connector=aiohttp_connector()) as s,
        s.get(server.url, ssl=ctx) as r,
    ):
        return await r.json()  # type: ignore[no-any-return]


async def _httpx_get(server: MutualTlsServer, ctx: ssl.SSLContext) -> dict[str, Any]:
    import httpx

    async with httpx.AsyncClient(transport=httpx_transport(ctx)) as c:
        r = await c.get(server.url)
        return r.json()  # type: ignore[no-any-return]


CLIENTS: dict[str, Callable[[MutualTlsServer, ssl.SSLContext], Awaitable[dict[str, Any]]]] = {
    "asyncio-streams": _streams_get,
    "aiohttp": _aiohttp_get,
    "httpx": _httpx_get,
}


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_loop_keeps_running_while_card_signs(
    client: str, creds: CardCredentials, cps_tls_server: MutualTlsServer
) -> None:
    ctx, key = _slow_ctx(creds, cps_tls_server)

    async def main() -> tuple[list[dict[str, Any]], float]:
        # three connections at once: each waits 200 ms for "the card"
        work = asyncio.gather(*(CLIENTS[client](cps_tls_server, ctx) for _ in range(3)))
        return await max_loop_lag(work)

    t = time.perf_counter()
    bodies, lag = asyncio.run(main())
    elapsed = time.perf_counter() - t
    assert key.signatures == 3
    assert all(b["client"]["ps_id_nat"] == creds.holder.ps_idnat for b in bodies)
    assert lag < DELAY / 2, f"event loop stalled {lag * 1000:.0f} ms"
    assert elapsed < 3 * DELAY + 1.0  # signatures overlap in worker threads


def test_plain_context_blocks_the_loop(
    creds: CardCredentials, cps_tls_server: MutualTlsServer
) -> None:
    # What the helpers avoid: the standard asyncio path signs on the loop thread.
    ctx, _key = _slow_ctx(creds, cps_tls_server)

    async def plain() -> bytes:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", cps_tls_server.port, ssl=ctx, server_hostname="localhost"
        )
        writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = await reader.read()
        writer.close()
        return data

    async def main() -> float:
        return (await max_loop_lag(plain()))[1]

    assert asyncio.run(main()) >= DELAY * 0.9


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_signer_error_reaches_async_caller(
    client: str,
    creds: CardCredentials,
    cps_tls_server: MutualTlsServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = _native.make_signer

    def failing(key: object) -> _native.Signer:
        real(key)

        def sign(*args: object) -> bytes:
            raise CardRemoved("pulled during the async handshake")

        return sign

    monkeypatch.setattr(_native, "make_signer", failing)
    ctx = client_context(
        creds.authentication.private_key,
        creds.authentication.certificate,
        cadata=cps_tls_server.ca_pem,
    )
    with pytest.raises(CardRemoved):
        asyncio.run(CLIENTS[client](cps_tls_server, ctx))


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_untrusted_server_async(
    client: str, creds: CardCredentials, cps_tls_server: MutualTlsServer
) -> None:
    ctx = client_context(
        creds.authentication.private_key,
        creds.authentication.certificate,
        cadata=ServerPki().ca_pem,
    )
    with pytest.raises(Exception) as info:  # each library wraps it its own way
        asyncio.run(CLIENTS[client](cps_tls_server, ctx))
    err: BaseException | None = info.value
    seen = []
    while err is not None:
        seen.append(err)
        err = (
            err.__cause__
            or err.__context__
            or (
                err.args[1]
                if len(err.args) > 1 and isinstance(err.args[1], BaseException)
                else None
            )
        )
    assert any(isinstance(e, ssl.SSLCertVerificationError) for e in seen), seen


def test_many_async_connections_pss_and_pkcs1(
    creds: CardCredentials, cps_tls_server: MutualTlsServer
) -> None:
    async def main() -> list[dict[str, Any]]:
        out = []
        for pss in (True, False):
            ctx = client_context(
                creds.authentication.private_key,
                creds.authentication.certificate,
                cadata=cps_tls_server.ca_pem,
                pss=pss,
            )
            out += await asyncio.gather(*(_streams_get(cps_tls_server, ctx) for _ in range(10)))
        return out

    bodies = asyncio.run(main())
    versions = [b["tls"]["version"] for b in bodies]
    assert versions == ["TLSv1.3"] * 10 + ["TLSv1.2"] * 10
