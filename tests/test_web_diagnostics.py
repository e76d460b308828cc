"""The local diagnostic web page: security of the server, and end to end in headless Chromium.

Chromium is Debian's (/usr/bin/chromium) driven by playwright; no browser is
downloaded. The card is a virtual CPS3 on the vpcd reader of port 35968 (this
area's reader), and the diagnostic is limited to that reader.
"""

from __future__ import annotations

import http.client
import http.server
import json
import logging
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from cps_middleware.diagnostics import DiagnosticOptions
from cps_middleware.diagnostics.web import DiagnosticServer
from cps_middleware.testing.vpcd import SimpleCpsCard, VirtualCard, vpcd_reader_name

PORT = 35968
READER = vpcd_reader_name(PORT)  # "Virtual PCD 35967 00 01"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


@pytest.fixture
def server() -> Iterator[DiagnosticServer]:
    srv = DiagnosticServer.for_options(DiagnosticOptions(reader=READER), lang="fr")
    srv.start()
    yield srv
    srv.stop()


def _request(
    srv: DiagnosticServer,
    method: str,
    path: str,
    *,
    host: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host if host is not None else f"127.0.0.1:{srv.port}")
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# --- security -----------------------------------------------------------------------------


def test_listens_on_loopback_only_with_a_random_token(server: DiagnosticServer) -> None:
    assert server._sock.getsockname()[0] == "127.0.0.1"
    assert server.url == f"http://127.0.0.1:{server.port}/{server.token}/"
    assert len(server.token) >= 32
    other = DiagnosticServer.for_options(DiagnosticOptions())
    try:
        assert other.token != server.token
    finally:
        other.stop()
    status, headers, body = _request(server, "GET", f"/{server.token}/")
    assert status == 200 and b"Diagnostic de la carte CPS" in body
    assert headers["cache-control"] == "no-store"
    assert headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/", "/app.js", "/api/runs", "/wrong-token/", "/x/api/runs"])
def test_requests_without_the_token_are_not_found(server: DiagnosticServer, path: str) -> None:
    status, _h, body = _request(server, "GET", path)
    assert status == 404
    assert b"Diagnostic" not in body


def test_token_prefix_is_not_enough(server: DiagnosticServer) -> None:
    status, _h, _b = _request(server, "GET", f"/{server.token[:-1]}/")
    assert status == 404
    status, _h, _b = _request(server, "GET", f"/{server.token}x/")
    assert status == 404


@pytest.mark.parametrize("host", [
    "evil.example", "evil.example:{port}", "localhost:{port}", "127.0.0.1", "127.0.0.1:1",
    "[::1]:{port}", "",
])
def test_a_foreign_host_header_is_refused(server: DiagnosticServer, host: str) -> None:
    # A DNS-rebinding page reaches 127.0.0.1 under its own name: its Host gives it away.
    status, headers, body = _request(
        server, "GET", f"/{server.token}/", host=host.format(port=server.port))
    assert status == 403
    assert b"Diagnostic" not in body
    assert not any(k.startswith("access-control-") for k in headers)


def test_no_cors_headers_and_cross_origin_posts_refused(server: DiagnosticServer) -> None:
    base = f"/{server.token}/api/runs"
    status, headers, _b = _request(server, "OPTIONS", base, headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert status == 403
    assert not any(k.startswith("access-control-") for k in headers)
    status, headers, _b = _request(server, "POST", base, body=b'{"lang":"fr"}', headers={
        "Origin": "https://evil.example", "Content-Type": "application/json"})
    assert status == 403
    assert not any(k.startswith("access-control-") for k in headers)
    # A cross-site form can only send text/plain or form bodies: refused as well.
    status, headers, _b = _request(server, "POST", base, body=b'{"lang":"fr"}',
                                   headers={"Content-Type": "text/plain"})
    assert status == 415
    status, headers, _b = _request(server, "GET", f"/{server.token}/")
    assert not any(k.startswith("access-control-") for k in headers)


def test_api_rejects_a_non_https_test_ssl_address(server: DiagnosticServer) -> None:
    status, _h, body = _request(
        server, "POST", f"/{server.token}/api/runs",
        body=json.dumps({"url": "http://example.org/"}).encode(),
        headers={"Content-Type": "application/json"})
    assert status == 400 and b"https://" in body


# --- Chromium -------------------------------------------------------------------------------


def _png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) to RGB pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, ctype = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype, _c, _f, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and ctype in (2, 6) and interlace == 0
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    bpp = 4 if ctype == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        pixels.extend(tuple(line[x * bpp:x * bpp + 3]) for x in range(width))  # type: ignore[misc]
        prev = line
    return width, height, pixels


def _share_of(pixels: list[tuple[int, int, int]], rgb: tuple[int, int, int]) -> float:
    hits = sum(1 for p in pixels if all(abs(p[i] - rgb[i]) <= 6 for i in range(3)))
    return hits / max(len(pixels), 1)


OK_GREEN = (0x1B, 0x7F, 0x3B)
ERROR_RED = (0xB3, 0x26, 0x1E)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def cps3_in_reader() -> Iterator[VirtualCard]:
    with VirtualCard(SimpleCpsCard.cps3(), port=PORT) as card:
        yield card


@pytest.mark.pcsc
@pytest.mark.slow
def test_chromium_runs_the_diagnostic_and_shows_the_card(
    server: DiagnosticServer, browser: object, cps3_in_reader: VirtualCard,
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    page = browser.new_page(viewport={"width": 1000, "height": 1400})  # type: ignore[attr-defined]
    try:
        page.goto(server.url)
        assert page.title() == "Diagnostic de la carte CPS"
        page.fill("#pin", "73915062")  # typed; used for this run only (no Test SSL URL here)
        page.click("#run")
        page.wait_for_selector("body[data-state=done]", timeout=60_000)
        assert page.input_value("#pin") == ""  # the page cleared it

        card = page.locator('section[data-check="card.atr"]')
        assert card.is_visible()
        assert "CPS3" in card.locator(".seen").inner_text()
        assert card.locator(".badge").inner_text() == "OK"
        shot = card.screenshot(path=str(tmp_path / "card-atr.png"))
        _w, _h, pixels = _png_pixels(shot)
        assert _share_of(pixels, OK_GREEN) > 0.005  # the green OK badge and border are drawn
        assert _share_of(pixels, ERROR_RED) == 0

        full = page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        assert full[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / "page.png").stat().st_size > 10_000
        assert page.locator("#overall .overall").is_visible()
        href = page.get_attribute("#report-json", "href")
        content = page.content()
    finally:
        page.close()

    run = server.wait_run(10)
    assert run is not None
    assert run.result("card.atr").status.value == "ok"
    status, _h, body = _request(server, "GET", f"/{server.token}/{href}")
    assert status == 200 and json.loads(body)["results"][3]["id"] == "card.atr"
    assert run.options["pin_given"] is True
    assert "73915062" not in run.to_json()
    assert "73915062" not in content
    assert "73915062" not in caplog.text


@pytest.mark.pcsc
@pytest.mark.slow
def test_chromium_shows_the_remedy_when_no_card(
    browser: object, tmp_path: Path
) -> None:
    srv = DiagnosticServer.for_options(DiagnosticOptions(reader=READER), lang="en")
    srv.start()
    page = browser.new_page(viewport={"width": 1000, "height": 1400})  # type: ignore[attr-defined]
    try:
        page.goto(srv.url)
        page.click("#run")
        page.wait_for_selector("body[data-state=done]", timeout=60_000)
        card = page.locator('section[data-check="pcsc.card"]')
        assert card.get_attribute("data-status") == "error"
        assert card.locator(".badge").inner_text() == "Error"
        remedy = card.locator(".remedy")
        assert remedy.is_visible()
        assert "Insert your CPS card" in remedy.inner_text()
        assert "chip first" in remedy.inner_text()
        _w, _h, pixels = _png_pixels(card.screenshot(path=str(tmp_path / "no-card.png")))
        assert _share_of(pixels, ERROR_RED) > 0.005
        overall = page.locator("#overall .overall")
        assert overall.get_attribute("data-overall") == "error"
        assert "A problem prevents using the card." in overall.inner_text()
    finally:
        page.close()
        srv.stop()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.slow
def test_chromium_another_site_cannot_drive_the_page(
    server: DiagnosticServer, browser: object, tmp_path: Path
) -> None:
    # A page of another origin, even one that knows the token, cannot start a run:
    # no CORS header is sent, and the server refuses its Origin.
    (tmp_path / "index.html").write_text("<!DOCTYPE html><title>other site</title>")
    other = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: _Quiet(*a, directory=str(tmp_path)))
    threading.Thread(target=other.serve_forever, daemon=True).start()
    page = browser.new_page()  # type: ignore[attr-defined]
    try:
        page.goto(f"http://127.0.0.1:{other.server_address[1]}/index.html")
        outcome = page.evaluate(
            """async (url) => {
                 try {
                   const r = await fetch(url + "api/runs", {method: "POST",
                     headers: {"Content-Type": "application/json"}, body: "{}"});
                   return "status " + r.status;
                 } catch (e) { return "blocked: " + e.name; }
               }""",
            server.url,
        )
        assert outcome.startswith("blocked"), outcome
        assert server.wait_run(0.5) is None  # no run was started
    finally:
        page.close()
        other.shutdown()


@pytest.mark.slow
def test_chromium_test_ssl_with_the_pin_typed_in_the_page(
    browser: object, cps_card_factory: object, cps_tls_server: object,
    caplog: pytest.LogCaptureFixture, tmp_path: Path,
) -> None:
    from cps_middleware.testing.pki import TestHolder

    card = cps_card_factory(  # type: ignore[operator]
        pin="73915062", name="web-pin",
        holder=TestHolder(given_name="WEB", surname="PAGE-TEST", id_number="10000000095",
                          card_number="8025000001/2800000095"))
    caplog.set_level(logging.DEBUG)
    srv = DiagnosticServer.for_options(DiagnosticOptions(
        module=card.module_path, token=card.serial, reader=READER,
        ca_file=str(cps_tls_server.ca_file)), lang="fr")  # type: ignore[attr-defined]
    srv.start()
    page = browser.new_page(viewport={"width": 1000, "height": 1600})  # type: ignore[attr-defined]
    try:
        page.goto(srv.url)
        page.fill("#url", cps_tls_server.url)  # type: ignore[attr-defined]
        page.fill("#pin", "73915062")
        page.click("#run")
        page.wait_for_selector("body[data-state=done]", timeout=60_000)
        tls = page.locator('section[data-check="tls.test_ssl"]')
        assert tls.get_attribute("data-status") == "ok"
        assert "Connexion sécurisée avec la carte acceptée" in tls.inner_text()
        _w, _h, pixels = _png_pixels(tls.screenshot(path=str(tmp_path / "tls.png")))
        assert _share_of(pixels, OK_GREEN) > 0.005
        content = page.content()
    finally:
        page.close()
        srv.stop()
    run = srv.wait_run(5)
    assert run is not None and run.result("tls.test_ssl").status.value == "ok"
    assert card.state().pin_tries_left == 3  # type: ignore[attr-defined]
    for text in (run.to_json(), content, caplog.text):
        assert "73915062" not in text
