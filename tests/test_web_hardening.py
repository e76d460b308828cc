"""The diagnostic web server under hostile local clients, over real sockets: idle and
half-sent connections time out, a connection cap, a body-size limit, bounded JSON depth,
4xx not 500; ``--open`` keeps the token off every command line."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cps_middleware.diagnostics.framework import DiagnosticRun, RunObserver
from cps_middleware.diagnostics.web import MAX_BODY, DiagnosticServer

TIMEOUT = 1.0


def _no_run(lang: str, url: str | None, pin: str | None, obs: RunObserver) -> DiagnosticRun:
    raise AssertionError("no diagnostic should run in these tests")


@pytest.fixture
def server() -> Iterator[DiagnosticServer]:
    srv = DiagnosticServer(_no_run, read_timeout=TIMEOUT, max_connections=4)
    srv.start()
    yield srv
    srv.stop()


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``sock`` (fails if it stays open longer)."""
    sock.settimeout(seconds)
    t0 = time.monotonic()
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the connection was still open after {seconds} s")
    return time.monotonic() - t0


def _connect(srv: DiagnosticServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=5)


def _get_page(srv: DiagnosticServer) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request("GET", f"/{srv.token}/")
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _post(srv: DiagnosticServer, body: bytes, **headers: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request("POST", f"/{srv.token}/api/runs", body=body,
                     headers={"Content-Type": "application/json", **headers})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_idle_and_half_sent_connections_are_closed(server: DiagnosticServer) -> None:
    host = f"Host: 127.0.0.1:{server.port}\r\n".encode()
    idle = _connect(server)
    half_headers = _connect(server)
    half_headers.sendall(b"GET /" + server.token.encode() + b"/ HTTP/1.1\r\n" + host)
    half_body = _connect(server)
    half_body.sendall(b"POST /" + server.token.encode() + b"/api/runs HTTP/1.1\r\n" + host
                      + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"url\"")
    for sock in (idle, half_headers, half_body):
        with sock:
            assert _closed_within(sock, TIMEOUT + 3) <= TIMEOUT + 3
    assert _get_page(server) == 200


def test_slow_drip_does_not_extend_the_deadline(server: DiagnosticServer) -> None:
    with _connect(server) as sock:
        t0 = time.monotonic()
        request = f"GET /{server.token}/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX: "
        sock.sendall(request.encode())
        try:
            for _ in range(int(TIMEOUT * 10) + 20):  # one byte every 0.1 s
                sock.sendall(b"a")
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(2)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(1) == b""
        assert time.monotonic() - t0 < TIMEOUT + 3


def test_connection_cap_then_the_page_is_reachable_again(server: DiagnosticServer) -> None:
    held = [_connect(server) for _ in range(4)]
    time.sleep(0.2)  # the server has accepted them
    with _connect(server) as extra:  # over the cap: closed at once, not after the timeout
        assert _closed_within(extra, TIMEOUT / 2 + 0.4) < TIMEOUT
    for sock in held:
        sock.close()
    time.sleep(0.2)
    assert _get_page(server) == 200


def test_body_size_and_json_depth_get_4xx(server: DiagnosticServer) -> None:
    assert _post(server, b"{" + b" " * MAX_BODY + b"}") == 413
    assert _post(server, b"{}", **{"Content-Length": "x"}) in (400, 413)
    assert _post(server, b"[" * 5000 + b"]" * 5000) == 400
    assert _post(server, b'{"url": [[[[["x"]]]]]}') == 400
    assert _post(server, b'{"url": "\\u005b[[[[[[[[["}') == 400  # not https://: a string
    assert _post(server, b"\xff\xfe") == 400
    assert _post(server, b'{"url": 5}') == 400


def test_open_keeps_the_token_off_the_command_line(server: DiagnosticServer) -> None:
    opened: list[str] = []
    opener = server.open_browser(browser=opened.append)
    try:
        assert len(opened) == 1 and server.token not in opened[0]
        assert opened[0].startswith("file://")
        path = Path(opener.path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        page = path.read_text(encoding="utf-8")
        assert f'content="0;url={server.url}"' in page
        # The file leads to the page: its URL answers.
        assert _get_page(server) == 200
    finally:
        opener.cleanup()
    assert not Path(opener.path).exists()


def test_serve_open_in_the_cli_uses_the_file(tmp_path: Path) -> None:
    """`cps diag --serve --open` with BROWSER set to a script that records its arguments."""
    import os
    import signal
    import subprocess
    import sys

    record = tmp_path / "argv.json"
    browser = tmp_path / "browser.py"
    browser.write_text(
        f"import json, sys\nopen({str(record)!r}, 'w').write(json.dumps(sys.argv))\n")
    browser.chmod(0o700)
    env = dict(os.environ, BROWSER=f"{sys.executable} {browser} %s")
    proc = subprocess.Popen([sys.executable, "-m", "cps_middleware.cli", "diag", "--serve",
                             "--open"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split(" : ", 1)[1].strip()
        token = url.rstrip("/").rsplit("/", 1)[1]
        deadline = time.monotonic() + 20
        while not record.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        argv = json.loads(record.read_text())
        assert all(token not in a for a in argv), argv
        assert any(a.startswith("file://") for a in argv), argv
    finally:
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_page_in_french_then_english(server: DiagnosticServer) -> None:
    import re

    from test_cli_lang import _english_words

    def page(query: str) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            conn.request("GET", f"/{server.token}/{query}")
            resp = conn.getresponse()
            assert resp.status == 200
            return resp.read().decode()
        finally:
            conn.close()

    fr = page("")
    assert '<html lang="fr">' in fr and "Lancer le diagnostic" in fr
    words = re.sub(r"<[^>]+>|\b(lang|data|type|id|href|src|rel)\S*", " ", fr)
    assert not _english_words(words), _english_words(words)
    en = page("?lang=en")
    assert '<html lang="en">' in en and "Run the diagnostic" in en
