"""TLS client authentication with keys on SoftHSM-backed CPS test cards."""

from __future__ import annotations

import contextlib
import json
import re
import ssl
import threading
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from cps_middleware.card import CpsCard, open_card
from cps_middleware.errors import CardRemoved, CpsError
from cps_middleware.pkcs11 import Pin
from cps_middleware.testing import CpsTestCard, test_token_module
from cps_middleware.testing.servers import MutualTlsServer, OpenSslServer
from cps_middleware.tls import client_context, requests_session


@pytest.fixture
def open_logged_in() -> Iterator[Callable[[CpsTestCard], CpsCard]]:
    opened: list[CpsCard] = []

    def do(test_card: CpsTestCard) -> CpsCard:
        card = open_card(module=test_token_module(), serial=test_card.serial)
        card.login(Pin(test_card.pin))
        opened.append(card)
        return card

    yield do
    for card in opened:
        with contextlib.suppress(CpsError):
            card.close()


def _page(url: str, ctx: ssl.SSLContext) -> str:
    with urllib.request.urlopen(url, context=ctx, timeout=20) as r:
        return r.read().decode()  # type: ignore[no-any-return]


def _get(url: str, ctx: ssl.SSLContext) -> dict[str, object]:
    return json.loads(_page(url, ctx))  # type: ignore[no-any-return]


def test_cps3_card_tls12_pkcs1(
    cps_card: CpsTestCard,
    open_logged_in: Callable[[CpsTestCard], CpsCard],
    cps_tls_server: MutualTlsServer,
) -> None:
    card = open_logged_in(cps_card)
    ctx = client_context(card, cadata=cps_tls_server.ca_pem.decode())
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2  # derived from the mechanism list
    body = _get(cps_tls_server.url, ctx)
    assert body["tls"]["version"] == "TLSv1.2"  # type: ignore[index]
    assert body["client"]["ps_id_nat"] == cps_card.holder.ps_idnat  # type: ignore[index]


def test_cps4_card_tls13_pss(
    cps4_card: CpsTestCard,
    open_logged_in: Callable[[CpsTestCard], CpsCard],
    cps_openssl_server_factory: Callable[..., OpenSslServer],
) -> None:
    card = open_logged_in(cps4_card)
    server = cps_openssl_server_factory()
    ctx = client_context(card, cadata=server.ca_pem.decode())
    page = _page(server.url, ctx)
    assert "Protocol  : TLSv1.3" in page
    assert "Peer signature type: RSA-PSS" in page


def test_ec_card_tls13(
    cps_ec_card: CpsTestCard,
    open_logged_in: Callable[[CpsTestCard], CpsCard],
    cps_tls_server: MutualTlsServer,
) -> None:
    card = open_logged_in(cps_ec_card)
    body = _get(cps_tls_server.url, client_context(card, cadata=cps_tls_server.ca_pem.decode()))
    assert body["tls"]["version"] == "TLSv1.3"  # type: ignore[index]


def test_cps3_card_against_server_offering_pss_first(
    cps_card: CpsTestCard,
    open_logged_in: Callable[[CpsTestCard], CpsCard],
    cps_openssl_server_factory: Callable[..., OpenSslServer],
) -> None:
    card = open_logged_in(cps_card)
    server = cps_openssl_server_factory(
        client_sigalgs="rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pkcs1_sha256"
    )
    ctx = client_context(card, cadata=server.ca_pem.decode())
    page = _page(server.url, ctx)
    assert "Protocol  : TLSv1.2" in page
    assert re.search(r"Peer signature type: RSA\b(?!-PSS)", page)


def test_card_pulled_then_reinserted(
    cps_card: CpsTestCard,
    open_logged_in: Callable[[CpsTestCard], CpsCard],
    cps_tls_server: MutualTlsServer,
) -> None:
    card = open_logged_in(cps_card)
    ctx = client_context(card, cadata=cps_tls_server.ca_pem.decode())
    assert _get(cps_tls_server.url, ctx)["client"] is not None
    cps_card.remove()
    with pytest.raises(CardRemoved):
        _get(cps_tls_server.url, ctx)
    cps_card.insert()
    # Handles are gone after a removal: open the card again and log in again.
    card2 = open_logged_in(cps_card)
    ctx2 = client_context(card2, cadata=cps_tls_server.ca_pem.decode())
    assert _get(cps_tls_server.url, ctx2)["client"] is not None


def test_card_8_threads_x_20_handshakes(
    cps4_card: CpsTestCard,
    open_logged_in: Callable[[CpsTestCard], CpsCard],
    cps_tls_server: MutualTlsServer,
) -> None:
    card = open_logged_in(cps4_card)
    ctx = client_context(card, cadata=cps_tls_server.ca_pem.decode())
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with requests_session(ctx) as s:
                for _ in range(20):
                    # a new connection each time: one card signature per request
                    r = s.get(cps_tls_server.url, headers={"Connection": "close"}, timeout=30)
                    assert r.status_code == 200
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == []


def test_test_ssl_with_the_card(
    cps_card: CpsTestCard,
    open_logged_in: Callable[[CpsTestCard], CpsCard],
    cps_tls_server: MutualTlsServer,
) -> None:
    from cps_middleware.tls import test_ssl

    card = open_logged_in(cps_card)
    r = test_ssl(cps_tls_server.url, card, cadata=cps_tls_server.ca_pem)
    assert r.ok, r.to_text()
    assert r.protocol == "TLSv1.2" and r.client_signature == "rsa_pkcs1 sha256"
    assert r.client_holder is not None and r.client_holder.ps_id_nat == cps_card.holder.ps_idnat


def test_test_ssl_pin_needed(cps_card: CpsTestCard, cps_tls_server: MutualTlsServer) -> None:
    from cps_middleware.tls import Failure, test_ssl

    with open_card(module=test_token_module(), serial=cps_card.serial) as card:
        r = test_ssl(cps_tls_server.url, card, cadata=cps_tls_server.ca_pem)
    assert not r.ok and r.failure is Failure.PIN_NEEDED, r.to_text()


def test_test_ssl_cps3_refuses_pss(
    cps_card: CpsTestCard,
    open_logged_in: Callable[[CpsTestCard], CpsCard],
    cps_tls_server: MutualTlsServer,
) -> None:
    from cps_middleware.tls import Failure, test_ssl

    card = open_logged_in(cps_card)
    # forcing PSS on a CPS3 (as a wrong configuration would): the card refuses
    r = test_ssl(cps_tls_server.url, card, cadata=cps_tls_server.ca_pem, pss=True)
    assert not r.ok and r.failure is Failure.MECHANISM_REFUSED, r.to_text()


def test_async_loop_runs_while_the_card_signs(
    cps4_card: CpsTestCard, open_logged_in: Callable[[CpsTestCard], CpsCard],
    cps_tls_server: MutualTlsServer,
) -> None:
    import asyncio
    import time

    from cps_middleware.testing.servers import max_loop_lag
    from cps_middleware.tls.aio import open_connection

    card = open_logged_in(cps4_card)
    ctx = client_context(card, cadata=cps_tls_server.ca_pem)
    cps4_card.set_latency(200)  # like a real card's signature
    try:

        async def get() -> bytes:
            reader, writer = await open_connection(
                "127.0.0.1", cps_tls_server.port, ssl=ctx, server_hostname="localhost"
            )
            writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = await reader.read()
            writer.close()
            return data

        async def timed_get() -> tuple[bytes, float]:
            t = time.perf_counter()
            data = await get()
            return data, time.perf_counter() - t

        async def main() -> tuple[bytes, float, float]:
            (data, elapsed), stall = await max_loop_lag(timed_get())
            return data, stall, elapsed

        data, stall, elapsed = asyncio.run(main())
    finally:
        cps4_card.set_latency(0)
    assert cps4_card.holder.ps_idnat.encode() in data
    assert elapsed >= 0.2  # the card's latency was there
    assert stall < 0.1, f"event loop stalled {stall * 1000:.0f} ms"
