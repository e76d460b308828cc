"""Bounded HTTP for the revocation sources: one request with a hard deadline and a size cap.

Why ``http.client`` (standard library) and not httpx or urllib:

* no new runtime dependency and a small import (httpx pulls httpcore, h11,
  anyio, certifi, idna, sniffio; it stays a test dependency);
* a *hard* deadline: a socket timeout bounds each read, but a server that
  drips one byte per second never trips it. With ``http.client`` we hold the
  socket, so a watchdog timer shuts it down when the deadline passes and the
  blocked read returns at once (urllib hides the socket until the headers
  are read; one shared watchdog thread serves every request);
* the body is read in pieces and refused as soon as it passes the size cap
  (``Content-Length`` is checked first), never buffered whole.

Proxies come from the environment (``http_proxy``, ``https_proxy``,
``no_proxy``) as with urllib; loopback addresses never go through a proxy.
Name resolution is not covered by the deadline (``getaddrinfo`` cannot be
interrupted): an unreachable DNS server can add its own timeout.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import ipaddress
import itertools
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cps_middleware.errors import RevocationFetchError

__all__ = ["HttpResponse", "http_request"]

USER_AGENT = "cps-middleware (revocation)"
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class HttpResponse:
    """What came back: final URL, status, headers (lower-case names) and body."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed: float  # seconds, all redirects included


def http_request(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    deadline: float = 30.0,
    max_bytes: int = 16 * 1024 * 1024,
    max_redirects: int = 3,
    function: str = "http_request",
) -> HttpResponse:
    """One HTTP exchange; raises :class:`RevocationFetchError` (``code_name`` says why).

    *timeout* bounds each network wait, *deadline* the whole exchange
    (redirects included). GET follows up to *max_redirects* redirects to
    ``http``/``https`` URLs; other methods never follow them. Every status is
    returned (the caller decides what 304 or 404 means).
    """
    start = time.monotonic()
    end = start + deadline
    current = url
    for _ in range(max_redirects + 1):
        status, hdrs, data = _once(
            current, method, body, headers or {}, timeout, end, max_bytes, function
        )
        if method == "GET" and status in _REDIRECTS and "location" in hdrs:
            current = urllib.parse.urljoin(current, hdrs["location"])
            continue
        return HttpResponse(current, status, hdrs, data, time.monotonic() - start)
    raise RevocationFetchError(
        f"{url}: more than {max_redirects} redirects",
        function=function,
        code_name="TOO_MANY_REDIRECTS",
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _proxy_for(scheme: str, host: str) -> tuple[str, int] | None:
    if _is_loopback(host) or urllib.request.proxy_bypass(host):
        return None
    proxy = urllib.request.getproxies().get(scheme)
    if not proxy:
        return None
    p = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
    if not p.hostname:
        return None
    return p.hostname, p.port or 8080


def _once(
    url: str,
    method: str,
    body: bytes | None,
    headers: Mapping[str, str],
    timeout: float,
    end: float,
    max_bytes: int,
    function: str,
) -> tuple[int, dict[str, str], bytes]:
    def fail(code: str, why: str, exc: BaseException | None = None) -> RevocationFetchError:
        err = RevocationFetchError(f"{url}: {why}", function=function, code_name=code)
        err.__cause__ = exc
        return err

    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise fail("BAD_URL", "not a URL", exc) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail("BAD_URL", "only http:// and https:// addresses can be fetched")
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    remaining = end - time.monotonic()
    if remaining <= 0:
        raise fail("TIMEOUT", "deadline passed")
    wait = min(timeout, remaining)
    proxy = _proxy_for(parts.scheme, host)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            *(proxy or (host, port)), timeout=wait, context=ssl.create_default_context()
        )
        if proxy:
            conn.set_tunnel(host, port)
    else:
        conn = http.client.HTTPConnection(*(proxy or (host, port)), timeout=wait)
        if proxy:
            target = url  # absolute form through an HTTP proxy
    fired = threading.Event()

    def expire() -> None:
        fired.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    token = _WATCHDOG.arm(end, expire)
    try:
        hdrs = {"User-Agent": USER_AGENT, "Connection": "close", **headers}
        conn.request(method, target, body=body, headers=hdrs)
        resp = conn.getresponse()
        out_headers = {k.lower(): v for k, v in resp.getheaders()}
        if resp.status != 200:
            return resp.status, out_headers, b""
        length = out_headers.get("content-length", "")
        if length.isdigit() and int(length) > max_bytes:
            raise fail("TOO_LARGE", f"{int(length)} bytes announced, at most {max_bytes} allowed")
        chunks: list[bytes] = []
        total = 0
        while True:
            if time.monotonic() > end:
                raise fail("TIMEOUT", "download deadline passed")
            chunk = resp.read1(65536)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise fail("TOO_LARGE", f"more than {max_bytes} bytes")
            chunks.append(chunk)
        if fired.is_set():
            raise fail("TIMEOUT", "download deadline passed")
        return resp.status, out_headers, b"".join(chunks)
    except RevocationFetchError:
        raise
    except TimeoutError as exc:
        raise fail("TIMEOUT", f"no answer within {wait:.1f} s", exc) from exc
    except (http.client.HTTPException, OSError, ValueError) as exc:
        if fired.is_set():
            raise fail("TIMEOUT", "download deadline passed", exc) from exc
        raise fail("NETWORK", f"{type(exc).__name__}: {exc}", exc) from exc
    finally:
        _WATCHDOG.disarm(token)
        conn.close()


class _Watchdog:
    """One daemon thread that calls the expiry function of each request whose deadline
    passed (a thread per request costs its start-up on every call, more on a busy machine)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, Callable[[], None]] = {}
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, when: float, expire: Callable[[], None]) -> int:
        token = next(self._seq)
        with self._cond:
            self._armed[token] = expire
            heapq.heappush(self._heap, (when, token))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="cps-http-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return token

    def disarm(self, token: int) -> None:
        with self._cond:
            self._armed.pop(token, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)  # disarmed
                if not self._heap:
                    self._cond.wait(timeout=30.0)
                    if not self._heap:
                        self._thread = None
                        return  # idle: the next arm() starts a new thread
                    continue
                when, token = self._heap[0]
                left = when - time.monotonic()
                if left > 0:
                    self._cond.wait(timeout=left)
                    continue
                heapq.heappop(self._heap)
                expire = self._armed.pop(token, None)
            if expire is not None:
                expire()


_WATCHDOG = _Watchdog()
